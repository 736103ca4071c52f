"""Pseudo-measurements: sign convention, σ, zero injections, scaling to metered flows."""

from __future__ import annotations

import copy

import numpy as np
import pandapower as pp
import pytest

from twin.dms.load_estimation import pseudo_measurements, zero_injection_buses
from twin.dms.state_estimation import estimate_state, estimation_error
from twin.dms.synthetic_telemetry import cigre_truth
from twin.grid.build import build_net
from twin.scenario import GridSpec

FEEDER_1 = "trafo:Trafo 0-1"
FEEDER_2 = "trafo:Trafo 0-12"


@pytest.fixture(scope="module")
def truth():
    return cigre_truth()


def _by(pseudo, kind):
    rows = pseudo[pseudo["measurement_type"] == kind]
    return rows.set_index("element")


def test_values_are_bus_net_demand_like_res_bus(truth):
    pseudo = pseudo_measurements(truth, 1.0, 1.0)
    for kind, column in (("p", "p_mw"), ("q", "q_mvar")):
        rows = _by(pseudo, kind)
        assert rows["value"].to_numpy() == pytest.approx(
            truth.res_bus.loc[rows.index, column].to_numpy(), abs=1e-12)
    # Bus 7: 0.0765 MW commercial load, 1.5 MW wind → net demand −1.4235 MW
    assert _by(pseudo, "p").at[7, "value"] == pytest.approx(0.0765 - 1.5)


def test_the_estimator_reads_that_sign_as_pandapower_does(truth):
    # Exact pseudo-measurements at every bus + the slack voltage determine the state:
    # the estimate must reproduce the power flow, which it only does with the right sign.
    net = build_net(GridSpec(builtin="cigre_mv"))
    se = estimate_state(net, [], pseudo_measurements(net, 1.0, 1.0), now_s=0.0,
                        slack_sigma_pu=1e-4)
    assert se.success
    assert estimation_error(se, truth.res_bus.vm_pu)["max_abs_dv_pu"] < 1e-6
    flipped = pseudo_measurements(net, 1.0, 1.0)
    flipped["value"] *= -1
    se = estimate_state(net, [], flipped, now_s=0.0, slack_sigma_pu=1e-4)
    assert not se.success or estimation_error(se, truth.res_bus.vm_pu)["max_abs_dv_pu"] > 0.01


def test_sigma_is_root_sum_square_of_element_sigmas_with_a_floor(truth):
    pseudo = pseudo_measurements(truth, 1.0, 1.0, sigma_pct=30.0)
    p = _by(pseudo, "p")
    # Bus 1: two loads, no generation
    assert p.at[1, "std_dev"] == pytest.approx(0.3 * np.hypot(14.994, 4.845))
    # Bus 7: load and wind both uncertain, whatever their sum
    assert p.at[7, "std_dev"] == pytest.approx(0.3 * np.hypot(0.0765, 1.5))
    # Bus 5 has Battery 1 (idle, 0 MW): its σ is 30 % of its 0.6 MW rating
    assert p.at[5, "std_dev"] == pytest.approx(
        0.3 * np.sqrt(0.7275**2 + 0.03**2 + 0.033**2 + 0.6**2))
    # PV is dark (factor 0), the loads at Bus 3 are off (factor 0): floor of 1 kW
    zero = pseudo_measurements(truth, 0.0, 0.0)
    assert _by(zero, "p").at[3, "std_dev"] == pytest.approx(1e-3)
    assert (pseudo["std_dev"] > 0).all()


def test_zero_injection_buses_are_exact_and_the_slack_has_none(truth):
    pseudo = pseudo_measurements(truth, 1.0, 1.0)
    assert zero_injection_buses(truth) == [2]
    zero = pseudo[pseudo["source"] == "zero_injection"]
    assert sorted(zero["element"]) == [2, 2]
    assert (zero["value"] == 0).all() and (zero["std_dev"] <= 1e-4).all()
    assert 0 not in set(pseudo["element"])             # ext_grid bus: unknown infeed
    assert set(pseudo.loc[pseudo.source == "pseudo", "element"]) == set(range(1, 15)) - {2}


def test_buses_fused_with_the_slack_get_no_pseudo_measurement():
    net = pp.create_empty_network()
    hv, hv2, mv = (pp.create_bus(net, vn_kv=v, name=n) for v, n in
                   ((20.0, "A"), (20.0, "B"), (20.0, "C")))
    pp.create_ext_grid(net, hv)
    pp.create_switch(net, hv, hv2, et="b", closed=True)
    pp.create_line(net, hv2, mv, 1.0, "NA2XS2Y 1x95 RM/25 12/20 kV")
    pp.create_load(net, mv, p_mw=1.0, q_mvar=0.2)
    pseudo = pseudo_measurements(net, 1.0, 1.0)
    # B carries nothing itself, but it is the slack's node: a zero there would pin the
    # infeed to zero.
    assert set(pseudo["element"]) == {mv}
    net.switch.at[0, "closed"] = False
    assert zero_injection_buses(net) == [hv2]


def test_one_factor_rescales_all_loads_to_the_substation_meter(truth):
    metered = float(truth.res_ext_grid.p_mw.sum())
    pseudo = pseudo_measurements(truth, 1.2, 1.0, metered_feeder_p_mw=metered)
    assert pseudo.attrs["scale"]["substation"] == pytest.approx(1 / 1.2, rel=1e-4)
    p = _by(pseudo, "p")
    assert p["value"].to_numpy() == pytest.approx(
        truth.res_bus.loc[p.index, "p_mw"].to_numpy(), abs=1e-3)


def test_per_feeder_factors_from_feeder_head_meters(truth):
    feeder_1 = truth.load.bus.isin(range(1, 12)).to_numpy()
    factor = np.where(feeder_1, 1.2, 0.9)
    heads = {FEEDER_1: float(truth.res_trafo.at[0, "p_hv_mw"]),
             FEEDER_2: float(truth.res_trafo.at[1, "p_hv_mw"])}
    pseudo = pseudo_measurements(truth, factor, 1.0, metered_feeder_p_mw=heads)
    assert pseudo.attrs["scale"] == pytest.approx({FEEDER_1: 1 / 1.2, FEEDER_2: 1 / 0.9},
                                                  rel=1e-4)
    loads = _by(pseudo[pseudo.source == "pseudo"], "p")
    assert loads.loc[[1, 5, 10], "scale"].to_numpy() == pytest.approx(1 / 1.2, rel=1e-4)
    assert loads.loc[[12, 13, 14], "scale"].to_numpy() == pytest.approx(1 / 0.9, rel=1e-4)


def test_feeders_joined_by_a_closed_tie_share_one_factor(truth):
    net = copy.deepcopy(truth)
    net.switch.loc[net.switch.name == "S1", "closed"] = True
    pp.runpp(net)
    heads = {FEEDER_1: float(net.res_trafo.at[0, "p_hv_mw"]),
             FEEDER_2: float(net.res_trafo.at[1, "p_hv_mw"])}
    pseudo = pseudo_measurements(net, 1.1, 1.0, metered_feeder_p_mw=heads)
    assert list(pseudo.attrs["scale"]) == [f"{FEEDER_1} + {FEEDER_2}"]
    assert pseudo.attrs["scale"][f"{FEEDER_1} + {FEEDER_2}"] == pytest.approx(1 / 1.1, rel=1e-4)
    # one head alone no longer feeds a feeder of its own: its far side reaches the slack
    with pytest.raises(ValueError, match="not a feeder head"):
        pseudo_measurements(net, 1.1, 1.0, metered_feeder_p_mw={FEEDER_1: 20.0})


def test_bad_inputs(truth):
    with pytest.raises(ValueError, match="18 values"):
        pseudo_measurements(truth, [1.0, 1.0], 1.0)
    with pytest.raises(ValueError, match="no trafo called"):
        pseudo_measurements(truth, 1.0, 1.0, metered_feeder_p_mw={"trafo:T9": 1.0})
    with pytest.raises(ValueError, match="sigma_pct"):
        pseudo_measurements(truth, 1.0, 1.0, sigma_pct=-1.0)


def test_known_element_powers_replace_the_forecast(truth):
    base = _by(pseudo_measurements(truth, 1.0, 1.0), "q")
    # the DMS commanded WKA 7 (sgen 8, Bus 7) to absorb 0.4 Mvar and got the acknowledgement
    known = _by(pseudo_measurements(truth, 1.0, 1.0, known={("sgen", 8, "q_mvar"): (-0.4, 0.0)}),
                "q")
    assert known.at[7, "value"] == pytest.approx(base.at[7, "value"] + 0.4)
    # the set-point is known, so Bus 7's Q σ is the load's alone
    load_q = truth.load.q_mvar[truth.load.bus == 7].abs()
    assert known.at[7, "std_dev"] == pytest.approx(max(0.3 * np.sqrt((load_q**2).sum()), 1e-3))
    assert known.drop(index=7)["value"].equals(base.drop(index=7)["value"])
    with pytest.raises(ValueError, match="known: expected"):
        pseudo_measurements(truth, 1.0, 1.0, known={("sgen", 99, "q_mvar"): (0.1, 0.0)})


def test_a_metered_load_keeps_its_value_while_the_others_scale(truth):
    # load 0 (Bus 1) is metered at 10 MW; the substation meter says 3 MW more than forecast
    p_in = float(truth.res_ext_grid.p_mw.sum()) + 3.0
    pseudo = pseudo_measurements(truth, 1.0, 1.0, p_in, known={("load", 0, "p_mw"): (10.0, 0.05)})
    p = _by(pseudo, "p")
    others = truth.load.p_mw[truth.load.bus == 1].drop(index=0).sum()
    k = pseudo.attrs["scale"]["substation"]
    assert k > 1.0
    assert p.at[1, "value"] == pytest.approx(10.0 + k * others, rel=1e-6)
    assert p.at[1, "std_dev"] == pytest.approx(np.hypot(0.05, 0.3 * k * others), rel=1e-6)
    # a bus without the metered load: its loads scale by the same factor, its PV does not
    load_3 = truth.load.p_mw[truth.load.bus == 3].sum()
    pv_3 = truth.sgen.p_mw[truth.sgen.bus == 3].sum()
    assert p.at[3, "value"] == pytest.approx(k * load_3 - pv_3, rel=1e-6)
