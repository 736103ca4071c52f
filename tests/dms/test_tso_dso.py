"""TSO–DSO coordination at CIGRE MV's interface trafo 0 (Trafo 0-1, 110/20 kV, feeding
buses 1–11): the reactive-power range the DSO offers, requests inside and outside it, and
an export limit during high PV — each checked by applying the decisions to a copy of the
net and running pandapower's power flow.

The grid is ``create_cigre_network_mv(with_der="pv_wind")`` with what a DSO would have:
the OLTC the twin's CIGRE grid gets (HV side, ±9 × 1.5 %, as
:func:`twin.grid.build._add_oltc`), inverters rated 1.2 × their output (a reactive margin
at full output) and two capacitor banks, Cap 5 (3 × 0.5 Mvar) and Cap 10 (2 × 0.5 Mvar).
At the operating point the interface draws 22.58 MW and 8.58 Mvar, and bus 11 is at
0.947 p.u., just below the band.
"""

from __future__ import annotations

import copy

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

from twin.dms.curtailment import eligible, units_from_net
from twin.dms.tso_dso import (
    interface_q_capability,
    inverter_q_ranges,
    meet_p_limit,
    meet_q_request,
)
from twin.grid.build import _add_oltc

TRAFO = "trafo:Trafo 0-1"
CAPS = ["shunt:Cap 5", "shunt:Cap 10"]
FEEDER = list(range(1, 12))  # the buses behind Trafo 0-1 (S1–S3 open)
BAND = (0.95, 1.05)
TOL_MVAR = 0.05

_COLUMN = {"set_tap": "tap_pos", "set_capacitor_step": "step", "set_der_q": "q_mvar",
           "set_der_p_limit": "p_mw", "set_battery_p": "p_mw"}


def _cigre() -> pp.pandapowerNet:
    net = pn.create_cigre_network_mv(with_der="pv_wind")
    _add_oltc(net)  # the OLTC the twin gives CIGRE's HV/MV trafos
    net.sgen["sn_mva"] = 1.2 * net.sgen.p_mw
    pp.create_shunt(net, 5, q_mvar=-0.5, p_mw=0.0, step=0, max_step=3, name="Cap 5")
    pp.create_shunt(net, 10, q_mvar=-0.5, p_mw=0.0, step=0, max_step=2, name="Cap 10")
    return net


def _high_pv() -> pp.pandapowerNet:
    """Midday: loads at 20 %, the rooftop PV at 0.3 MW each and a 3 MW park at bus 1; the
    interface exports 1.98 MW."""
    net = pn.create_cigre_network_mv(with_der="pv_wind")
    net.load[["p_mw", "q_mvar"]] *= 0.2
    pv = net.sgen.type == "PV"
    net.sgen.loc[pv, "p_mw"] = 0.3
    net.sgen.loc[pv, "sn_mva"] = 0.35
    pp.create_sgen(net, 1, 3.0, sn_mva=3.0, name="PV park 1", type="PV")
    return net


def _apply(net, decisions) -> pp.pandapowerNet:
    """A copy of ``net`` with the decisions carried out, solved."""
    out = copy.deepcopy(net)
    for d in decisions:
        table, name = d.target.split(":", 1)
        idx = out[table].index[out[table].name == name][0]
        out[table].at[idx, _COLUMN[d.action]] = d.value
    pp.runpp(out)
    return out


def _q_mvar(net) -> float:
    return float(net.res_trafo.q_hv_mvar.at[0])


def _feeder_vm(net) -> tuple[float, float]:
    vm = net.res_bus.vm_pu.loc[FEEDER]
    return float(vm.min()), float(vm.max())


@pytest.fixture(scope="module")
def grid():
    net = _cigre()
    pp.runpp(net)
    return net


@pytest.fixture(scope="module")
def der(grid):
    return inverter_q_ranges(grid, [f"sgen:{n}" for n in grid.sgen.name])


@pytest.fixture(scope="module")
def capability(grid, der):
    return interface_q_capability(grid, TRAFO, der, CAPS)


def test_inverter_ranges_follow_the_rating(der):
    # WKA 7: 1.5 MW on a 1.8 MVA inverter → ±sqrt(1.8² − 1.5²) = ±0.995 Mvar
    assert der["sgen:WKA 7"] == pytest.approx((-0.995, 0.995), abs=1e-3)


def test_capability_contains_the_current_q(grid, der, capability):
    tables = {t: grid[t].copy() for t in ("sgen", "shunt", "trafo")}
    cap = interface_q_capability(grid, TRAFO, der, CAPS)
    assert all(tables[t].equals(grid[t]) for t in tables), "the caller's net is not changed"
    assert cap.q_now_mvar == pytest.approx(_q_mvar(grid))
    assert cap.contains(cap.q_now_mvar)
    # measured: 4.63 … 9.94 Mvar around 8.58 Mvar
    assert cap.q_min_mvar == pytest.approx(4.63, abs=0.01)
    assert cap.q_max_mvar == pytest.approx(9.94, abs=0.01)
    # the low end is every DER at its maximum injection and every capacitor step in
    extreme = copy.deepcopy(grid)
    for ref, (_lo, hi) in der.items():
        extreme.sgen.loc[extreme.sgen.name == ref[5:], "q_mvar"] = hi
    extreme.shunt["step"] = extreme.shunt.max_step
    pp.runpp(extreme)
    assert _q_mvar(extreme) == pytest.approx(cap.q_min_mvar, abs=1e-6)
    # not a linear guess: 2.5 Mvar of capacitors and 1.13 Mvar of DER nominal give 3.95 Mvar
    # at the interface (capacitor Q ∝ V² at the raised voltage, less reactive loss)
    nominal = 2.5 + sum(hi for _lo, hi in der.values())
    assert nominal == pytest.approx(3.63, abs=0.01)
    assert cap.q_now_mvar - cap.q_min_mvar == pytest.approx(3.95, abs=0.01)


@pytest.mark.parametrize("offset_mvar", [-1.3, +0.4])
def test_a_request_inside_the_range_is_met(grid, der, capability, offset_mvar):
    request = capability.q_now_mvar + offset_mvar
    plan = meet_q_request(grid, TRAFO, request, der, CAPS)
    after = _apply(grid, plan.decisions(t_s=0.0))
    assert plan.met
    assert abs(_q_mvar(after) - request) <= TOL_MVAR
    assert _q_mvar(after) == pytest.approx(plan.q_achieved_mvar, abs=2e-3)  # rounded set-points
    # bus 11 started at 0.947 p.u.: the plan brings the feeder into the band
    assert _feeder_vm(grid)[0] < BAND[0]
    vm_min, vm_max = _feeder_vm(after)
    assert BAND[0] <= vm_min and vm_max <= BAND[1]
    # DER pro rata to capability: the same fraction of each one's range
    fractions = [(q - der[ref][0]) / (der[ref][1] - der[ref][0])
                 for ref, q in plan.der_q_mvar.items()]
    assert np.ptp(fractions) < 1e-9
    if offset_mvar < 0:
        # less import: capacitors in (measured: one step each)
        assert plan.capacitor_steps == {"shunt:Cap 5": 1, "shunt:Cap 10": 1}
    else:
        # more import: DER absorb, and the tap raises the feeder voltage (measured: 0 → −1)
        assert plan.capacitor_steps == {"shunt:Cap 5": 0, "shunt:Cap 10": 0}
        assert all(q < 0 for q in plan.der_q_mvar.values())
        assert plan.tap_pos[TRAFO] < 0


def test_a_request_below_the_range_is_met_as_far_as_it_goes(grid, der, capability):
    request = capability.q_min_mvar - 1.0
    plan = meet_q_request(grid, TRAFO, request, der, CAPS)
    after = _apply(grid, plan.decisions(t_s=0.0))
    assert not plan.met
    assert _q_mvar(after) == pytest.approx(capability.q_min_mvar, abs=TOL_MVAR)
    assert plan.shortfall_mvar == pytest.approx(request - plan.q_achieved_mvar)
    assert plan.shortfall_mvar == pytest.approx(-1.0, abs=TOL_MVAR)
    assert plan.capacitor_steps == {"shunt:Cap 5": 3, "shunt:Cap 10": 2}
    assert "outside the 4.63–9.94 Mvar" in plan.reason
    vm_min, vm_max = _feeder_vm(after)  # measured 1.012–1.028 p.u.
    assert BAND[0] <= vm_min and vm_max <= BAND[1]


def test_a_request_above_the_range_keeps_the_voltages_in_the_band(grid, der, capability):
    request = capability.q_max_mvar + 1.0
    plan = meet_q_request(grid, TRAFO, request, der, CAPS)
    after = _apply(grid, plan.decisions(t_s=0.0))
    assert not plan.met
    # every DER absorbing all it can, capacitors out; the tap raises the voltages the
    # absorption pulls down (0.921 p.u. at the capability's extreme), which lowers the
    # feeder's reactive losses: measured 9.71 Mvar, 1.22 Mvar short
    q = _q_mvar(after)
    assert capability.q_now_mvar + 1.0 < q <= capability.q_max_mvar
    assert plan.shortfall_mvar == pytest.approx(request - q, abs=2e-3)
    assert plan.shortfall_mvar > 1.0
    assert all(plan.der_q_mvar[ref] == pytest.approx(lo) for ref, (lo, _hi) in der.items())
    vm_min, vm_max = _feeder_vm(after)
    assert BAND[0] <= vm_min and vm_max <= BAND[1]


def test_an_export_limit_during_high_pv_is_met_by_curtailment():
    net = _high_pv()
    pp.runpp(net)
    assert -net.res_trafo.p_hv_mw.at[0] == pytest.approx(1.98, abs=0.01)
    units = units_from_net(net)
    plan = meet_p_limit(net, TRAFO, max_export_mw=1.0, units=units)
    after = _apply(net, plan.decisions(t_s=0.0))
    export = -float(after.res_trafo.p_hv_mw.at[0])
    assert plan.met and 0.98 < export <= 1.0
    assert export == pytest.approx(-plan.p_after_mw, abs=1e-4)
    # the park at the substation bus: its curtailment passes no line losses (measured
    # 0.986 MW curtailed for 0.985 MW less export)
    assert set(plan.curtailment.p_limits_mw) == {"sgen:PV park 1"}
    # pro rata over every eligible unit needs more for the same export
    eligible_units = [u for u in units if eligible(u)]
    lo, hi = 0.0, 1.0
    for _ in range(30):
        f = (lo + hi) / 2
        cut = _apply(net, [])
        for u in eligible_units:
            cut.sgen.loc[cut.sgen.name == u.name, "p_mw"] = u.p_mw * (1 - f)
        pp.runpp(cut)
        lo, hi = (lo, f) if -cut.res_trafo.p_hv_mw.at[0] <= export else (f, hi)
    assert plan.curtailment.curtailed_mw < hi * sum(u.p_mw for u in eligible_units)


def test_batteries_take_the_export_first():
    net = _high_pv()
    pp.create_storage(net, 5, 0.0, max_e_mwh=2.0, name="Battery 5")
    units = units_from_net(net)
    alone = meet_p_limit(net, TRAFO, max_export_mw=1.0, units=units)
    plan = meet_p_limit(net, TRAFO, max_export_mw=1.0, units=units,
                        batteries={"storage:Battery 5": (-0.5, 0.5)})
    after = _apply(net, plan.decisions(t_s=0.0))
    assert plan.met and -after.res_trafo.p_hv_mw.at[0] <= 1.0
    assert plan.battery_p_mw == {"storage:Battery 5": pytest.approx(0.5)}
    # the battery's 0.5 MW is not curtailed (measured 0.508 MW against 0.986 MW alone)
    assert alone.curtailment.curtailed_mw - plan.curtailment.curtailed_mw == pytest.approx(
        0.48, abs=0.02)
    # a small excess the battery takes alone: no curtailment
    small = meet_p_limit(net, TRAFO, max_export_mw=1.7, units=units,
                         batteries={"storage:Battery 5": (-0.5, 0.5)})
    assert small.met and small.curtailment is None
    assert 0.0 < small.battery_p_mw["storage:Battery 5"] < 0.5


def test_an_import_limit_discharges_batteries_and_reports_what_is_left(grid):
    net = copy.deepcopy(grid)
    pp.create_storage(net, 5, 0.0, max_e_mwh=2.0, name="Battery 5")
    pp.create_storage(net, 10, 0.1, max_e_mwh=2.0, name="Battery 10")
    batteries = {"storage:Battery 5": (-0.5, 0.5), "storage:Battery 10": (-0.3, 0.3)}
    units = units_from_net(net)
    plan = meet_p_limit(net, TRAFO, max_import_mw=22.4, units=units, batteries=batteries)
    after = _apply(net, plan.decisions(t_s=0.0))
    assert plan.met and 22.38 < after.res_trafo.p_hv_mw.at[0] <= 22.4
    # pro rata to the room: 0.5 and 0.4 MW (Battery 10 was charging at 0.1 MW)
    moved = {r: 0.0 - plan.battery_p_mw[r] for r in batteries}
    moved["storage:Battery 10"] += 0.1
    assert moved["storage:Battery 5"] / moved["storage:Battery 10"] == pytest.approx(0.5 / 0.4)
    short = meet_p_limit(net, TRAFO, max_import_mw=21.0, units=units, batteries=batteries)
    assert not short.met and short.curtailment is None  # curtailment cannot lower an import
    assert short.battery_p_mw == pytest.approx({"storage:Battery 5": -0.5,
                                                "storage:Battery 10": -0.3})
    assert short.residual_mw == pytest.approx(short.p_after_mw - 21.0)
    assert "curtailment cannot lower an import" in short.reason
