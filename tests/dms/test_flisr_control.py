"""The FLISR controller's sequencing, fed telemetry and outcomes by hand: it waits for the
indicators, advises without commands in advisory mode, resends a failed command once and
then hands over to the operator."""

from __future__ import annotations

import copy

from twin.dms.flisr import patrol_order
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


def _succeed(decisions):
    return [(d, {"status": "success"}) for d in decisions if d.command("x") is not None]


def test_the_repair_goes_out_with_the_restoration_not_after_it():
    net = create_paper_flisr_net()
    ctl = FlisrController(FlisrSettings(mode="direct", wait_s=0.0), net)
    tel = telemetry(100.0)
    isolate = ctl.step(100.0, tel, model_after_trip())
    restore = ctl.step(101.0, tel, model_after_trip(), _succeed(isolate))
    # the tie first (the crews take jobs in order), the section's repair in the same step
    assert [(d.action, d.target) for d in restore] == [
        ("close_switch", "switch:Breaker 4"), ("repair_line", "line:Line L1-L2")]
    assert restore[1].mode == "manual" and "patrol" in restore[1].reason
    # back to normal only when the tie and the repair are both done
    assert ctl.step(900.0, tel, model_after_trip(), _succeed(restore[:1])) == []
    normal = ctl.step(8000.0, tel, model_after_trip(), _succeed(restore[1:]))
    assert {d.action for d in normal} <= {"open_switch", "close_switch"} and normal
    assert ctl.phase == "normalising"


def test_one_crew_patrols_a_section_of_several_lines_from_the_supply_end():
    from tests.dms.test_flisr import cigre_for_flisr

    net = cigre_for_flisr()
    ctl = FlisrController(FlisrSettings(mode="direct", wait_s=0.0), net)
    line_3_8 = int(net.line.index[net.line.name == "Line 3-8"][0])
    line_7_8 = int(net.line.index[net.line.name == "Line 7-8"][0])
    closed = {int(i): bool(c) for i, c in zip(net.switch.index, net.switch.closed)}
    # bus 3 sits nearer the substation than bus 7: the crew starts on Line 3-8
    assert patrol_order(ctl.sections, (line_7_8, line_3_8), closed) == [line_3_8, line_7_8]
    assert patrol_order(ctl.sections, (line_3_8, line_7_8), closed) == [line_3_8, line_7_8]
