"""The load manager on the paper's three-grid net, fed an estimate by hand: it plans from
the estimated overload, carries the plan out stage by stage as outcomes arrive, refuses a
plan the switchgear cannot take, and waits ``hold`` before looking again."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pandapower as pp
import pandas as pd

from twin.dms.load_management import LoadManagementSettings, LoadManager
from twin.grid.paper import create_paper_load_management_net


def estimate(net) -> SimpleNamespace:
    """What the state estimator would say: here the power flow of the net itself."""
    solved = copy.deepcopy(net)
    pp.runpp(solved)
    return SimpleNamespace(success=True,
                           line_loading_percent=pd.Series(solved.res_line.loading_percent),
                           trafo_loading_percent=pd.Series(solved.res_trafo.loading_percent))


def ok(decision) -> tuple:
    return (decision, {"status": "success"})


def test_direct_plan_goes_stage_by_stage():
    net = create_paper_load_management_net()
    lm = LoadManager(LoadManagementSettings(mode="direct"), net)
    first = lm.on_estimate(0.0, estimate(net), net)
    summary, stage = first[0], first[1:]
    assert summary.action == "reconfigure" and summary.target == "line:Line A-1"
    assert summary.inputs["loading_percent"] > 115 and summary.inputs["max_loading_after_percent"] < 60
    seen = []
    while stage:
        assert all(d.mode == "direct" and d.command("x") is not None for d in stage)
        seen += [(d.action, d.target) for d in stage]
        assert lm.step(1.0) == []  # nothing new before the outcomes
        stage = lm.step(2.0, [ok(d) for d in stage])
    assert seen == [("open_switch", "switch:Breaker A"), ("close_switch", "switch:Breaker B"),
                    ("open_switch", "switch:Breaker 2-3"), ("close_switch", "switch:Breaker C")]
    assert not lm.busy
    assert lm.on_estimate(60.0, estimate(net), net) == []  # hold: not again before 15 min


def test_a_failed_step_stops_the_plan_and_says_so():
    net = create_paper_load_management_net()
    lm = LoadManager(LoadManagementSettings(mode="direct"), net)
    stage = lm.on_estimate(0.0, estimate(net), net)[1:]
    out = lm.step(3.0, [(stage[0], {"status": "timeout"})])
    assert [d.action for d in out] == ["none"] and "Plan stopped" in out[0].reason
    assert not lm.busy


def test_advisory_records_the_plan_without_commands():
    net = create_paper_load_management_net()
    lm = LoadManager(LoadManagementSettings(mode="advisory"), net)
    decisions = lm.on_estimate(0.0, estimate(net), net)
    assert len(decisions) == 5 and all(d.command("x") is None for d in decisions)
    assert not lm.busy


def test_a_plan_the_switchgear_cannot_take_is_refused():
    net = create_paper_load_management_net()
    lm = LoadManager(LoadManagementSettings(mode="direct"), net,
                     check=lambda n: ["CB Breaker C: fault current 9.9 kA exceeds its "
                                      "breaking capability 8.0 kA"]
                     if n.switch.closed[n.switch.name == "Breaker C"].all() else [])
    decisions = lm.on_estimate(0.0, estimate(net), net)
    assert [d.action for d in decisions] == ["none"]
    assert "refused" in decisions[0].reason and "Breaker C" in decisions[0].reason
    assert not lm.busy


def test_no_overload_no_plan():
    net = create_paper_load_management_net()
    net.load["scaling"] = 0.5
    lm = LoadManager(LoadManagementSettings(mode="direct"), net)
    assert lm.on_estimate(0.0, estimate(net), net) == []
