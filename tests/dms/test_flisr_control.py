"""The FLISR controller's sequencing, fed telemetry and outcomes by hand: it waits for the
indicators, advises without commands in advisory mode, resends a failed command once and
then hands over to the operator."""

from __future__ import annotations

import copy

from twin.dms.flisr_control import FlisrController, FlisrSettings
from twin.grid.paper import create_paper_flisr_net


def telemetry(trip_t_s: float) -> dict:
    rows = {("switch:Breaker 2", "tripped"): 1.0, ("switch:Breaker 2", "closed"): 0.0,
            ("line:Line S1-L1", "fault_passed"): 1.0, ("line:Line L1-L2", "fault_passed"): 1.0,
            ("line:Line L2-L3", "fault_passed"): 0.0, ("line:Line L3-S2", "fault_passed"): 0.0}
    return {key: {"value": v, "source_t_s": trip_t_s} for key, v in rows.items()}


def model_after_trip():
    net = create_paper_flisr_net()
    net.switch.loc[net.switch.name == "Breaker 2", "closed"] = False
    return lambda: copy.deepcopy(net)


def test_waits_for_the_indicators_then_advises_the_whole_plan():
    net = create_paper_flisr_net()
    ctl = FlisrController(FlisrSettings(mode="advisory", wait_s=5.0), net)
    tel = telemetry(100.0)
    assert ctl.step(101.0, tel, model_after_trip()) == [] and ctl.wake_s == 105.0
    decisions = ctl.step(105.0, tel, model_after_trip())
    assert [(d.action, d.target) for d in decisions] == [
        ("locate_fault", "switch:Breaker 2"), ("open_switch", "switch:Breaker 3"),
        ("close_switch", "switch:Breaker 4")]
    assert all(d.mode == "advisory" and d.command("x") is None for d in decisions)
    assert ctl.phase == "idle"
    assert ctl.step(200.0, tel, model_after_trip()) == []  # the same trip is not news


def test_a_failed_command_is_resent_once_then_the_operator_takes_over():
    net = create_paper_flisr_net()
    ctl = FlisrController(FlisrSettings(mode="direct", wait_s=0.0), net)
    tel = telemetry(100.0)
    first = ctl.step(100.0, tel, model_after_trip())
    open_b3 = next(d for d in first if d.action == "open_switch")
    assert open_b3.mode == "direct" and ctl.phase == "isolating"
    timeout = {"status": "timeout", "reason": "no acknowledgement"}
    again = ctl.step(106.0, tel, model_after_trip(), [(open_b3, timeout)])
    assert [(d.action, d.target) for d in again] == [("open_switch", "switch:Breaker 3")]
    assert "sent again" in again[0].reason
    stop = ctl.step(112.0, tel, model_after_trip(), [(again[0], timeout)])
    assert [d.action for d in stop] == ["none"] and "operator takes over" in stop[0].reason
    assert "Breaker 3" in stop[0].reason and ctl.phase == "idle"
