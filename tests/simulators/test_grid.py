"""The grid simulator's command path: a value the grid cannot apply is an event the run
survives (the device keeps its state), one beyond the device's range is limited and said."""

from __future__ import annotations

import math

from simulators.grid import GridSim
from twin.grid.paper import create_paper_flisr_net
from twin.recording.schema import EVENT


def _sim() -> GridSim:
    sim = GridSim()
    sim.init("grid", time_resolution=1.0)
    sim.create(1, "Grid", net=create_paper_flisr_net(), step_ticks=60)
    sim.step(0, {}, 1000)
    return sim


def _events(sim: GridSim) -> list[dict]:
    records = sim.get_data({"grid": ["records"]})["grid"]["records"]
    return [r for r in records if r["measurement"] == EVENT]


def test_nan_and_infinite_commands_are_rejected_events():
    sim = _sim()
    nxt = sim.step(10, {"trafo-0": {"tap_pos": {"field.dev:trafo": math.nan}},
                        "switch-1": {"closed": {"field.dev:s": math.inf}}},
                   1000)
    assert nxt == 60  # the run goes on to the next regular step
    events = _events(sim)
    assert [(e["tags"]["kind"], e["tags"]["element"]) for e in events] == [
        ("command_rejected", "trafo:Trafo Substation 1"),
        ("command_rejected", "switch:Breaker 2")]
    assert all(e["t_s"] == 10 for e in events) and "finite" in events[0]["fields"]["message"]
    assert sim.get_data({"trafo-0": ["tap_pos"]})["trafo-0"]["tap_pos"] == 0
    assert sim.get_data({"grid": ["converged"]})["grid"]["converged"] == 1


def test_a_tap_beyond_the_range_is_limited_and_said():
    sim = _sim()
    sim.step(20, {"trafo-1": {"tap_pos": {"field.dev:trafo": 15.0}}}, 1000)
    (event,) = _events(sim)
    assert event["tags"]["kind"] == "command_limited"
    assert "limited to 9" in event["fields"]["message"]
    assert sim.get_data({"trafo-1": ["tap_pos"]})["trafo-1"]["tap_pos"] == 9
    sim.step(30, {"trafo-1": {"tap_pos": {"field.dev:trafo": -2.0}}}, 1000)
    assert _events(sim) == []  # in range: no event
