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


def test_a_vector_input_sets_a_whole_table_and_per_element_inputs_add_to_it():
    import numpy as np

    sim = _sim()
    net = sim.model.net
    index = net.load.index.to_numpy()
    p_mw = np.linspace(0.1, 0.3, len(index))
    q_mvar = 0.1 * p_mw
    vector = {"table": "load", "index": index, "p_mw": p_mw, "q_mvar": q_mvar}
    first = int(index[0])
    sim.step(60, {"grid": {"injections": {"ts.load-profiles": vector}},
                  f"load-{first}": {"p_mw": {"ev.charger": 0.05}}}, 1000)
    np.testing.assert_allclose(net.load.p_mw.to_numpy()[1:], p_mw[1:], rtol=0, atol=0)
    # an element with both: the vector's value plus its own input
    assert net.load.at[first, "p_mw"] == p_mw[0] + 0.05
    assert net.load.at[first, "q_mvar"] == q_mvar[0]
    got = sim.get_data({f"load-{int(i)}": ["p_mw"] for i in index})
    assert [got[f"load-{int(i)}"]["p_mw"] for i in index] == net.load.p_mw.tolist()
    # the next step's vector replaces the last (nothing accumulates)
    sim.step(120, {"grid": {"injections": {"ts.load-profiles": {**vector, "p_mw": 2 * p_mw}}}},
             1000)
    np.testing.assert_array_equal(net.load.p_mw.to_numpy(), 2 * p_mw)
