"""IEC 60909 short circuits: the DMS's topology check against pandapower's own calc_sc and
the switchgear ratings, and the fault currents along a line that protection and
fault-passage indicators see, on CIGRE MV and a SimBench feeder.

CIGRE MV as built: feeder 1 is radial from bus 1 (Trafo 0-1, breaker switch 6 at 110 kV)
over Line 1-2 (line 0), Line 2-3 (1), Line 3-4 (2), Line 4-5 (3), Line 5-6 (4), and from
bus 3 over Line 3-8 (9) to 8, 9, 10, 11 and on to 7; Line 11-4 (13) is live from bus 11
only (S3 open at bus 4). Feeder 2 (buses 12–14, Trafo 0-12) has no DER.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandapower.networks as pn
import pandapower.shortcircuit as sc
import pandas.testing as pdt
import pytest

from twin.dms.short_circuit import BreakerRating, default_ratings, short_circuit_report
from twin.grid.build import build_net
from twin.grid.iec60909 import fault_currents, prepare_for_sc
from twin.scenario import GridSpec

PATH_TO_LINE_4_5 = (0, 1, 2)   # lines from bus 1 to the from bus of Line 4-5
K_SGEN = 1.2                   # the default k of prepare_for_sc


@pytest.fixture(scope="module")
def cigre():
    return build_net(GridSpec(builtin="cigre_mv"))


@pytest.fixture(scope="module")
def rural():
    return build_net(GridSpec(simbench="1-MV-rural--0-sw"))


def _prepared(net, switch_states=None):
    out = copy.deepcopy(net)
    for sw, closed in (switch_states or {}).items():
        out.switch.at[sw, "closed"] = closed
    prepare_for_sc(out)
    return out


def _bus_fault(net, bus, fault="3ph", case="max") -> float:
    ref = _prepared(net)
    sc.calc_sc(ref, bus=bus, fault=fault, case=case)
    return float(ref.res_bus_sc.at[bus, "ikss_ka"])


def _der_ka(net, buses) -> float:
    """k·In of the converter DER at ``buses`` [kA] (all CIGRE MV DER are on 20 kV)."""
    sn_mva = float(net.sgen.sn_mva[net.sgen.bus.isin(buses)].sum())
    return K_SGEN * sn_mva / (math.sqrt(3) * 20.0)


# ---------------------------------------------------------------- preparation
def test_prepare_fills_only_what_is_missing():
    net = pn.create_cigre_network_mv(with_der="all")
    net.line["endtemp_degree"] = np.nan
    net.line.at[3, "endtemp_degree"] = 250.0
    prepare_for_sc(net)
    # CIGRE's own short-circuit power of the 110 kV grid stays
    assert net.ext_grid.at[0, "s_sc_max_mva"] == 5000.0
    assert net.ext_grid.at[0, "s_sc_min_mva"] == 5000.0
    assert net.line.at[3, "endtemp_degree"] == 250.0
    assert net.line.at[4, "endtemp_degree"] == 80.0
    assert net.line.at[0, "r0_ohm_per_km"] == pytest.approx(4 * net.line.at[0, "r_ohm_per_km"])
    assert net.line.at[10, "c0_nf_per_km"] == pytest.approx(0.5 * net.line.at[10, "c_nf_per_km"])
    assert (net.trafo.vector_group == "Dyn").all()
    assert (net.sgen.k == K_SGEN).all()
    for fault in ("3ph", "2ph", "1ph"):
        for case in ("max", "min"):
            sc.calc_sc(net, fault=fault, case=case)
            ikss = net.res_bus_sc.ikss_ka
            assert len(ikss) == 15 and (ikss > 0.5).all(), (fault, case)


def test_prepare_gives_simbench_an_upstream_grid(rural):
    net = _prepared(rural)
    assert net.ext_grid.at[0, "s_sc_max_mva"] == 1000.0   # 110 kV ext_grid
    assert net.ext_grid.at[0, "s_sc_min_mva"] == 800.0
    assert net.sgen.current_source.astype(bool).all() and (net.sgen.k == K_SGEN).all()


# ---------------------------------------------------------------- topology check
@pytest.mark.parametrize("states", [{}, {4: True}], ids=["as built", "S1 closed"])
def test_report_bus_currents_are_pandapowers(cigre, states):
    report = short_circuit_report(cigre, switch_states=states)
    ref = _prepared(cigre, states)
    sc.calc_sc(ref, case="max", ip=True)
    assert list(report.bus.index) == list(range(15))
    np.testing.assert_allclose(report.bus.ikss_max_ka, ref.res_bus_sc.ikss_ka, rtol=1e-9)
    np.testing.assert_allclose(report.bus.ip_max_ka, ref.res_bus_sc.ip_ka, rtol=1e-9)
    sc.calc_sc(ref, case="min")
    np.testing.assert_allclose(report.bus.ikss_min_ka, ref.res_bus_sc.ikss_ka, rtol=1e-9)


def test_closing_a_tie_raises_the_fault_currents_on_both_feeders(cigre):
    before = short_circuit_report(cigre).bus
    after = short_circuit_report(cigre, switch_states={4: True}).bus   # S1: bus 14 – bus 8
    # measured: bus 8 1.47 -> 3.10 kA, bus 14 2.01 -> 3.28 kA (fed from both trafos now)
    assert after.at[8, "ikss_max_ka"] > before.at[8, "ikss_max_ka"] + 1.5
    assert after.at[14, "ikss_max_ka"] > before.at[14, "ikss_max_ka"] + 1.2
    # the 110 kV bus hardly notices (DER currents take another path to it)
    assert after.at[0, "ikss_max_ka"] == pytest.approx(before.at[0, "ikss_max_ka"], rel=1e-6)


def test_isolated_buses_are_left_out(cigre):
    # Trafo 0-12's breaker open: feeder 2 (buses 12–14) is dead, S1 being open
    report = short_circuit_report(cigre, switch_states={7: False})
    assert list(report.bus.index) == list(range(12))
    check = {b.switch: b for b in report.breakers}
    assert check[5].ikss_max_ka == 0.0 and check[5].ok      # line switch at bus 14
    assert check[7].ikss_max_ka == pytest.approx(report.bus.at[0, "ikss_max_ka"])


def test_default_ratings(cigre, rural):
    ratings = default_ratings(cigre)
    assert ratings[6] == BreakerRating(31.5, 80.0)          # CB on the 110 kV bus
    assert ratings[4] == BreakerRating(None, 40.0)          # LBS S1, 20 kV
    rural_ratings = default_ratings(rural)
    assert rural_ratings[6] == BreakerRating(16.0, 40.0)    # MV feeder CB
    with_columns = copy.deepcopy(cigre)
    with_columns.switch["breaking_ka"] = np.nan
    with_columns.switch.at[4, "breaking_ka"] = 12.5
    assert default_ratings(with_columns)[4] == BreakerRating(12.5, 40.0)


def test_cigre_switchgear_is_fine_with_default_ratings(cigre):
    report = short_circuit_report(cigre)
    assert report.violations == ()
    assert len(report.breakers) == len(cigre.switch)
    cb = {b.switch: b for b in report.breakers}[6]
    # 110 kV: 1.1 · 5000 MVA / (√3 · 110 kV) = 28.9 kA without the trafos' K_T; pandapower:
    assert cb.ikss_max_ka == pytest.approx(26.26, abs=0.01)
    assert cb.ok and cb.reason == ""


def test_an_undersized_breaker_is_flagged(cigre):
    net = copy.deepcopy(cigre)
    net.switch["breaking_ka"] = np.nan
    net.switch.at[6, "breaking_ka"] = 0.5          # "from the grid file"
    report = short_circuit_report(net)
    assert [v.switch for v in report.violations] == [6]
    v = report.violations[0]
    assert v.reason == ("CB switch_6: fault current 26.3 kA exceeds its breaking "
                        "capability 0.500 kA")
    assert v.breaking_ka == 0.5 and v.making_ka == 80.0
    # the same through a ratings dict, against the making capability
    ratings = default_ratings(cigre)
    ratings[7] = BreakerRating(31.5, 50.0)
    report = short_circuit_report(cigre, ratings=ratings)
    assert [v.switch for v in report.violations] == [7]
    assert report.violations[0].reason == ("CB switch_7: peak current 64.8 kA exceeds its "
                                           "making capability 50.0 kA")


def test_report_on_simbench(rural):
    report = short_circuit_report(rural)
    assert len(report.bus) == 97 and report.violations == ()
    # MV busbar with both 25 MVA trafos in parallel: the largest MV fault, below 16 kA
    assert 8.0 < report.bus.ikss_max_ka.max() < 16.0


# ---------------------------------------------------------------- fault on a line
@pytest.mark.parametrize("line", [0, 2, 9])
@pytest.mark.parametrize("fault,case", [("3ph", "max"), ("1ph", "min")])
def test_fault_at_a_lines_start_is_the_bus_fault(cigre, line, fault, case):
    got = fault_currents(cigre, line, 0.0, fault=fault, case=case)
    from_bus = int(cigre.line.at[line, "from_bus"])
    assert got.ikss_ka == pytest.approx(_bus_fault(cigre, from_bus, fault, case), rel=1e-9)


def test_fault_current_falls_along_the_feeder(cigre):
    currents = [fault_currents(cigre, 0, p).ikss_ka for p in np.arange(0.1, 0.95, 0.1)]
    currents += [fault_currents(cigre, ln, 0.5).ikss_ka for ln in (1, 2, 3, 4)]
    assert all(a > b for a, b in zip(currents, currents[1:]))
    # bus 1 (6.56 kA) … the middle of Line 5-6 (1.35 kA)
    assert currents[0] < _bus_fault(cigre, 1) and currents[-1] > _bus_fault(cigre, 6)


def test_radial_path_carries_the_fault_current_and_nothing_else_flows(cigre):
    # case "min": pandapower counts no DER, so only the grid feeds the fault
    got = fault_currents(cigre, 3, 0.5, case="min")
    for ln, i_ka in got.line_ka.items():
        expected = got.ikss_ka if ln in PATH_TO_LINE_4_5 + (3,) else 0.0
        assert i_ka == pytest.approx(expected, rel=1e-9, abs=1e-12), ln
    # Trafo 0-1 (110/20 kV) feeds feeder 1; its breaker on the 110 kV side sees the same
    assert got.trafo_ka[0] == pytest.approx(got.ikss_ka * 20.0 / 110.0, rel=1e-9)
    assert got.trafo_ka[1] == 0.0
    assert got.switch_ka[6] == pytest.approx(got.trafo_ka[0], rel=1e-12)
    assert got.switch_ka[7] == 0.0


def test_der_feed_the_fault_through_the_other_lines(cigre):
    # case "max": every converter DER injects k·In (at the angle of its bus's impedance);
    # a line off the path carries the k·In of the DER beyond it — exactly for one bus, a
    # shade below the plain sum for several (the angles differ a little) — and the path
    # carries the fault current less the DER beyond the fault (here 3.7 % of it)
    got = fault_currents(cigre, 1, 0.5)
    assert got.line_ka[4] == pytest.approx(_der_ka(cigre, [6]), rel=1e-9)
    for ln, beyond in ((2, [4, 5, 6]), (9, [7, 8, 9, 10, 11])):
        assert 0.999 * _der_ka(cigre, beyond) < got.line_ka[ln] <= _der_ka(cigre, beyond)
    assert got.line_ka[10] == got.line_ka[11] == 0.0       # feeder 2: no DER
    all_der = _der_ka(cigre, range(15))
    for ln in (0, 1):
        assert got.line_ka[ln] == pytest.approx(got.ikss_ka, rel=0.05)
        assert got.ikss_ka - all_der - 1e-9 <= got.line_ka[ln] < got.ikss_ka


def test_fault_resistance_limits_the_current(cigre):
    bolted = fault_currents(cigre, 3, 0.5, case="min")
    arc = fault_currents(cigre, 3, 0.5, r_fault_ohm=20.0, case="min")
    # I"k = c·Un / (√3·|Zk + Rf|), c = 1.0 for "min"; |Zk + Rf| lies between
    # √(|Zk|² + Rf²) (Zk all reactance) and |Zk| + Rf (Zk all resistance)
    e_kv = 1.0 * 20.0 / math.sqrt(3)
    zk_ohm = e_kv / bolted.ikss_ka
    assert e_kv / (zk_ohm + 20.0) < arc.ikss_ka < e_kv / math.hypot(zk_ohm, 20.0)
    assert arc.line_ka[0] == pytest.approx(arc.ikss_ka, rel=1e-9)


def test_a_line_live_from_one_end(cigre):
    # Line 11-4: its switch at bus 11 closed, S3 at bus 4 open; a fault at its bus-4 end
    # is on the line side of S3 and fed round over bus 11
    got = fault_currents(cigre, 13, 1.0)
    assert 0.5 < got.ikss_ka < _bus_fault(cigre, 4)
    assert got.switch_ka[3] == pytest.approx(got.line_ka[13], rel=1e-12)
    assert got.line_ka[13] == pytest.approx(got.ikss_ka, rel=0.01)
    assert set(got.switch_ka) == {0, 3, 5, 6, 7}            # the closed line/trafo switches


def test_a_fault_in_a_loop_is_fed_from_both_ends(cigre):
    net = copy.deepcopy(cigre)
    net.switch.at[1, "closed"] = True     # S2 at bus 7 closes the loop 3-4-5-6-7-8-3
    got = fault_currents(net, 12, 0.4, case="min")
    # switch 0 at bus 6 (Line 6-7's from end), S2 at bus 7 (its to end); all one cable
    # type, so the two infeeds are in phase and add up to the fault current
    assert got.switch_ka[0] == got.line_ka[12] > 0.4 and got.switch_ka[1] > 0.4
    assert got.switch_ka[0] + got.switch_ka[1] == pytest.approx(got.ikss_ka, rel=1e-9)


def test_a_dead_line_carries_nothing(cigre):
    net = copy.deepcopy(cigre)
    net.switch.at[3, "closed"] = False                   # Line 11-4 now open at both ends
    for position in (0.0, 0.5, 1.0):
        got = fault_currents(net, 13, position)
        assert got.ikss_ka == 0.0
        assert set(got.line_ka) == set(range(15)) and not any(got.line_ka.values())
        assert not any(got.trafo_ka.values()) and not any(got.switch_ka.values())


def test_the_callers_net_is_not_changed(cigre):
    net = copy.deepcopy(cigre)
    before = {t: copy.deepcopy(net[t]) for t in ("bus", "line", "switch", "trafo",
                                                 "ext_grid", "sgen")}
    fault_currents(net, 13, 1.0)              # detaches a line end
    fault_currents(net, 0, 0.3, fault="1ph")  # splits a line
    short_circuit_report(net, switch_states={4: True, 7: False})
    for table, df in before.items():
        pdt.assert_frame_equal(net[table], df)


def test_two_phase_is_root3_over_2_of_three_phase(cigre):
    for line, position in ((0, 0.3), (3, 0.7), (11, 0.5)):
        i3 = fault_currents(cigre, line, position, "3ph", case="min").ikss_ka
        i2 = fault_currents(cigre, line, position, "2ph", case="min").ikss_ka
        assert i2 == pytest.approx(math.sqrt(3) / 2 * i3, rel=1e-9)
        # case "max": the DER's k·In is added to both undivided, so a little more
        i3 = fault_currents(cigre, line, position, "3ph").ikss_ka
        i2 = fault_currents(cigre, line, position, "2ph").ikss_ka
        assert math.sqrt(3) / 2 * i3 <= i2 < 1.01 * math.sqrt(3) / 2 * i3


def test_single_phase_fault_on_cigre(cigre):
    i1 = fault_currents(cigre, 3, 0.5, "1ph")
    i3 = fault_currents(cigre, 3, 0.5, "3ph")
    # Dyn trafos earth the MV neutral; the line's Z0 > Z1 makes the earth fault smaller
    assert 0.4 * i3.ikss_ka < i1.ikss_ka < i3.ikss_ka
    assert i1.line_ka[0] > 0.9 * i1.ikss_ka and i1.trafo_ka[0] > 0.0


def test_fault_on_simbench(rural):
    got = fault_currents(rural, 5, 0.5)   # feeder 1, behind CB "MV1.101 Switch 7" on line 0
    assert 1.0 < got.ikss_ka < 16.0
    assert got.switch_ka[6] == pytest.approx(got.line_ka[0], rel=1e-12) and got.line_ka[0] > 1.0
    assert got.line_ka[5] > 1.0
    # two equal trafos in parallel on a coupled MV busbar share the infeed
    assert got.trafo_ka[0] == pytest.approx(got.trafo_ka[1], rel=1e-9) and got.trafo_ka[0] > 0
    # Trafo1's breakers: switch 1 on the 110 kV side, switch 2 on the 20 kV side
    assert got.switch_ka[1] == got.trafo_ka[0]
    assert got.switch_ka[2] == pytest.approx(got.trafo_ka[0] * 110.0 / 20.0, rel=1e-9)
    assert 0 not in got.switch_ka                  # bus-bus switches are not resolved


@pytest.mark.parametrize("kwargs,match", [
    ({"line": 99}, "line: expected an index"),
    ({"position": 1.5}, "position"),
    ({"position": -0.1}, "position"),
    ({"position": float("nan")}, "position"),
    ({"fault": "3p"}, "fault: expected one of 3ph, 2ph, 1ph"),
    ({"case": "mid"}, "case: expected one of max, min"),
])
def test_arguments_are_checked(cigre, kwargs, match):
    args = {"line": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        fault_currents(cigre, **args)
