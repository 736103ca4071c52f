"""The DMS controller driven by hand, without mosaik: its cycle schedule, Volt/Var on a
voltage violation, outcomes reaching FLISR, and the switchgear check on a topology change."""

from __future__ import annotations

import copy

import numpy as np
import pandapower as pp

from twin.dms.controller import DMSController, DMSPlan
from twin.dms.cycle import CycleSettings, DMSState
from twin.dms.decisions import Decision
from twin.dms.flisr_control import FlisrController, FlisrSettings
from twin.dms.short_circuit import default_ratings, short_circuit_report
from twin.dms.switchgear import SwitchgearWatch
from twin.dms.volt_var import VoltVarSettings
from twin.grid.build import build_net
from twin.grid.names import element_names
from twin.grid.paper import create_paper_flisr_net
from twin.scenario import GridSpec


def _plan(net, settings: CycleSettings | None = None, **functions) -> DMSPlan:
    """A plan whose forecast is the model's nominal powers (factor 1 everywhere)."""
    factors = (np.ones(len(net.load)), np.ones(len(net.sgen)))
    return DMSPlan(state=DMSState(model=copy.deepcopy(net)), settings=settings or CycleSettings(),
                   cycle_offset_s=5.0, cycle_s=60.0, forecast=lambda t_s: factors,
                   **functions)


def _meter_rows(truth, t_s: float, sigma_pu: float = 0.002) -> list[dict]:
    """Every bus voltage of a solved ``truth`` net, as the field would deliver it."""
    names = element_names(truth, "bus")
    return [{"element": f"bus:{n}", "quantity": "vm_pu", "value": float(v),
             "source_t_s": t_s, "delivery_t_s": t_s + 0.1, "sigma": sigma_pu, "rtu": "R"}
            for n, v in zip(names, truth.res_bus.vm_pu)]


def _cycles(step) -> list[dict]:
    return [r for r in step.records if r["measurement"] == "dms_cycle"]


def test_the_cycle_schedule_is_kept_in_seconds():
    net = build_net(GridSpec(builtin="cigre_mv"))
    ctl = DMSController(_plan(net))
    first = ctl.step(0.0, [], [])
    assert _cycles(first) == [] and first.next_call_s == 5.0       # the offset
    at_offset = ctl.step(5.0, [], [])
    assert len(_cycles(at_offset)) == 1 and at_offset.next_call_s == 65.0
    between = ctl.step(30.0, [], [])                                 # telemetry arrived
    assert _cycles(between) == [] and between.next_call_s == 65.0
    # called late (a tick after), the cycle runs and the schedule does not slip
    late = ctl.step(65.01, [], [])
    assert len(_cycles(late)) == 1 and late.next_call_s == 125.0


def test_a_voltage_violation_gets_a_volt_var_command():
    net = build_net(GridSpec(builtin="cigre_mv"))
    net.trafo["tap_pos"] = -4  # both trafos raise their feeders by 6 %: above the band
    truth = copy.deepcopy(net)
    pp.runpp(truth)
    band = (0.95, 1.05)
    assert truth.res_bus.vm_pu.max() > band[1]
    settings = CycleSettings(band_pu=band, volt_var_mode="direct",
                             volt_var=VoltVarSettings(band_pu=band))
    ctl = DMSController(_plan(net, settings))
    step = ctl.step(5.0, _meter_rows(truth, 4.0), [])
    taps = [c for c in step.commands if c["action"] == "set_tap"]
    assert taps and all(c["source"] == "volt_var" for c in taps)
    decision = next(d.record() for d in step.decisions if d.action == "set_tap")
    # what it judged is what the meters said, within their noise
    assert abs(decision["fields"]["in_vm_max_pu"] - truth.res_bus.vm_pu.max()) < 0.005
    # and the commanded taps bring the true voltages down
    for c in taps:
        trafo = element_names(truth, "trafo").index(c["target"].split(":", 1)[1])
        truth.trafo.loc[truth.trafo.index[trafo], "tap_pos"] = c["value"]
    vm_before = truth.res_bus.vm_pu.max()
    pp.runpp(truth)
    assert truth.res_bus.vm_pu.max() < vm_before


def _trip_rows(t_s: float) -> list[dict]:
    """Breaker 2 of the paper's grid tripped; the indicators say the fault is behind L2."""
    rows = {("switch:Breaker 2", "tripped"): 1.0, ("switch:Breaker 2", "closed"): 0.0,
            ("line:Line S1-L1", "fault_passed"): 1.0, ("line:Line L1-L2", "fault_passed"): 1.0,
            ("line:Line L2-L3", "fault_passed"): 0.0, ("line:Line L3-S2", "fault_passed"): 0.0}
    return [{"element": e, "quantity": q, "value": v, "source_t_s": t_s,
             "delivery_t_s": t_s + 0.05, "sigma": 0.0} for (e, q), v in rows.items()]


def _success(commands: list[dict], t_s: float) -> list[dict]:
    return [{"id": c["id"], "status": "success", "applied_t_s": t_s, "result_t_s": t_s + 0.1,
             "target": c["target"], "action": c["action"]} for c in commands]


def test_flisr_wakes_the_controller_and_its_outcomes_reach_it():
    net = create_paper_flisr_net()
    wait_s = 5.0
    flisr = FlisrController(FlisrSettings(mode="direct", wait_s=wait_s), net)
    ctl = DMSController(_plan(net, flisr=flisr))
    ctl.step(5.0, [], [])                                 # the first cycle; next at 65 s
    trip = ctl.step(30.0, _trip_rows(30.0), [])
    assert trip.commands == [] and trip.next_call_s == 30.0 + wait_s  # before the cycle
    isolate = ctl.step(trip.next_call_s, [], [])
    assert [c["action"] for c in isolate.commands] == ["open"] and flisr.phase == "isolating"
    # nothing arrives: it keeps waiting for the outcome
    assert ctl.step(36.0, [], []).commands == [] and flisr.phase == "isolating"
    restore = ctl.step(37.0, [], _success(isolate.commands, 36.5))
    assert flisr.phase != "isolating"
    # the tie, and in the same step the crew for the isolated section's repair
    assert [(c["action"], c["target"]) for c in restore.commands] == [
        ("close", "switch:Breaker 4"), ("repair", "line:Line L1-L2")]


def test_the_switchgear_is_checked_when_the_topology_changes():
    net = build_net(GridSpec(builtin="cigre_mv"))
    ratings = default_ratings(net)
    watch = SwitchgearWatch(ratings)
    ctl = DMSController(_plan(net, switchgear=watch))
    state = ctl.plan.state
    start = ctl.step(5.0, [], [])
    assert watch.n_checks == 1                            # at the start
    assert ctl.step(30.0, [], []).records == [] and watch.n_checks == 1

    def outcome(k: int, action: str, t_s: float) -> list[dict]:
        state.pending[f"dms-{k}"] = Decision(t_s - 1.0, "load_management", action,
                                             "switch:S1", None, "direct", "test")
        return [{"id": f"dms-{k}", "status": "success", "applied_t_s": t_s,
                 "result_t_s": t_s + 0.1}]

    closed = ctl.step(40.0, [], outcome(1, "close_switch", 39.5))  # a tie closes: a mesh
    assert watch.n_checks == 2
    # the records are IEC 60909 of the new topology, computed here on its own
    meshed = copy.deepcopy(net)
    meshed.switch.loc[meshed.switch.name == "S1", "closed"] = True
    expected = {f"switch:{c.name}": c.ikss_max_ka
                for c in short_circuit_report(meshed, ratings).breakers if c.ikss_max_ka > 0}
    got = {r["tags"]["element"]: r["fields"]["ikss_max_ka"] for r in closed.records
           if r["measurement"] == "dms_short_circuit"}
    assert got.keys() == expected.keys()
    assert all(np.isclose(got[k], expected[k]) for k in expected)
    before = {r["tags"]["element"]: r["fields"]["ikss_max_ka"] for r in start.records
              if r["measurement"] == "dms_short_circuit"}
    assert any(not np.isclose(got[k], before.get(k, 0.0)) for k in got)
    # the same topology confirmed again is no change
    ctl.step(45.0, [], outcome(2, "close_switch", 44.5))
    assert watch.n_checks == 2
