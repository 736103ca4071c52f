"""The grid model on CIGRE MV: physical invariants, switching, taps, failures."""

from __future__ import annotations

import numpy as np
import pytest

from twin.grid.build import build_net
from twin.grid.model import GridModel
from twin.scenario import GridSpec


@pytest.fixture()
def model() -> GridModel:
    return GridModel(build_net(GridSpec(builtin="cigre_mv")))


def test_energy_balance_closes(model):
    # pandapower sign convention: ext_grid + sgens = loads + storage + losses.
    assert model.solve().converged
    s = model.summary
    balance = s["p_ext_grid_mw"] + s["p_sgen_mw"] - s["p_load_mw"] - s["p_storage_mw"] - s["p_loss_mw"]
    assert abs(balance) < 1e-6
    assert 0.0 < s["p_loss_mw"] < 0.05 * s["p_load_mw"]  # MV losses are a few percent


def test_recycled_solve_equals_full_solve(model):
    model.solve()
    model.set_injection("load", 0, 10.0, 2.0)
    model.solve()  # recycled
    vm_recycled = model.results["bus"]["vm_pu"].copy()
    fresh = GridModel(model.net)
    fresh.solve()  # full
    assert np.allclose(vm_recycled, fresh.results["bus"]["vm_pu"], atol=1e-9)


def test_closing_a_tie_switch_changes_the_flow(model):
    model.solve()
    # Line 14-8 ends at the open switch S1: only its charging current flows.
    before = model.value("line", 14, "p_from_mw")
    assert abs(before) < 1e-4
    assert model.set_switch(4, True)  # S1
    model.solve()
    assert abs(model.value("line", 14, "p_from_mw")) > 0.1
    assert not model.set_switch(4, True)  # no change, no rebuild


def test_tap_changes_lv_voltage(model):
    net = model.net
    assert net.trafo.at[0, "tap_changer_type"] == "Ratio"  # tap data the builder adds
    model.solve()
    vm0 = model.value("bus", 1, "vm_pu")
    model.set_tap(0, 4)  # higher HV tap → lower LV voltage, about 4 × 1.5 %
    model.solve()
    assert vm0 - 0.07 < model.value("bus", 1, "vm_pu") < vm0 - 0.05
    model.set_tap(0, 99)  # clipped to tap_max
    model.solve()
    assert model.value("trafo", 0, "tap_pos") == 9


def test_non_convergence_is_an_outcome_not_an_exception(model):
    model.solve()
    model.set_injection("load", 0, 5000.0, 2000.0)  # impossible load
    outcome = model.solve()
    assert not outcome.converged and "converge" in outcome.message
    assert model.summary["converged"] == 0
    assert np.isnan(model.results["bus"]["vm_pu"]).all()
    model.set_injection("load", 0, 15.0, 3.0)
    assert model.solve().converged  # recovers with a full solve
    assert model.n_failed == 1 and model.n_solves == 3


def test_capacitor_steps_raise_the_voltage():
    from twin.build.devices import add_capacitors
    from twin.scenario.field import DevicesSpec

    net = build_net(GridSpec(builtin="cigre_mv"))
    spec = DevicesSpec(capacitors=[{"name": "Cap 11", "bus": "Bus 11", "q_step_mvar": 0.5,
                                    "max_step": 3}])
    (idx,) = add_capacitors(net, spec)
    model = GridModel(net)
    model.solve()
    vm0 = model.value("bus", 11, "vm_pu")
    assert model.value("shunt", idx, "q_mvar") == 0.0
    assert model.set_shunt_step(idx, 2)
    model.solve()
    # two steps of 0.5 Mvar at ~1 p.u. feed 1 Mvar: the bus voltage rises
    assert model.value("shunt", idx, "q_mvar") == pytest.approx(-1.0 * model.value("bus", 11, "vm_pu") ** 2)
    assert model.value("bus", 11, "vm_pu") > vm0 + 1e-3
    model.set_shunt_step(idx, 9)  # clipped to max_step
    assert model.net.shunt.at[idx, "step"] == 3


# ------------------------------------------------------------- bad input mid-run
def test_a_command_that_is_not_a_finite_number_is_rejected_and_the_state_stays(model):
    from twin.grid.model import CommandRejected

    model.net.trafo.at[0, "tap_pos"] = 2
    for bad in (float("nan"), float("inf"), "three"):
        with pytest.raises(CommandRejected):
            model.apply_command("trafo", 0, bad)
    assert model.net.trafo.at[0, "tap_pos"] == 2
    with pytest.raises(CommandRejected):
        model.apply_command("switch", 0, float("nan"))
    assert model.apply_command("trafo", 0, 3.0) is None
    assert model.net.trafo.at[0, "tap_pos"] == 3
    assert model.solve().converged


def test_a_tap_or_step_beyond_the_range_is_limited_and_said(model):
    from twin.build.devices import add_capacitors
    from twin.scenario.field import DevicesSpec

    note = model.apply_command("trafo", 0, 99)
    assert note is not None and "99" in note and "limited to 9" in note
    assert model.net.trafo.at[0, "tap_pos"] == 9
    (cap,) = add_capacitors(model.net, DevicesSpec(capacitors=[
        {"name": "Cap 6", "bus": "Bus 6", "q_step_mvar": 0.5, "max_step": 2}]))
    note = model.apply_command("shunt", cap, 5)
    assert note is not None and "limited to 2" in note
    assert model.apply_command("shunt", cap, -1) == "capacitor step -1 is out of range; limited to 0"


def test_a_non_finite_injection_fails_the_solve_not_the_run(model):
    assert model.solve().converged
    model.set_injection("load", 1, float("nan"), None)
    outcome = model.solve()
    assert not outcome.converged and "not run" in outcome.message and "p_mw" in outcome.message
    assert model.summary["converged"] == 0 and np.isnan(model.summary["vm_min_pu"])
    model.set_injection("load", 1, 0.5, None)
    assert model.solve().converged


def test_a_power_flow_that_raises_anything_is_an_outcome(model, monkeypatch):
    import pandapower as pp

    def broken(net, **kwargs):
        raise KeyError("a column pandapower expected")

    monkeypatch.setattr(pp, "runpp", broken)
    outcome = model.solve()
    assert not outcome.converged and "KeyError" in outcome.message
    monkeypatch.undo()
    assert model.solve().converged


def test_a_failing_protection_calculation_is_an_event():
    from twin.build.protection import protection_settings
    from twin.grid.paper import create_paper_flisr_net
    from twin.models.protection import Fault, Protection

    net = create_paper_flisr_net()
    prot = Protection(protection_settings(net))
    m = GridModel(net, protection=prot)

    def broken(*args, **kwargs):
        raise ValueError("All-NaN slice encountered")

    prot.currents = broken
    events = m.inject_fault(Fault("F", 1), 10.0)
    assert events[-1].kind == "protection_failed" and "All-NaN" in events[-1].fields["reason"]
    assert m.solve().converged
