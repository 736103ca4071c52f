"""The DMS's memory between cycles: acknowledged DER set-points enter its model."""

from __future__ import annotations

from twin.dms.cycle import DMSState
from twin.dms.decisions import Decision
from twin.grid.build import build_net
from twin.scenario import GridSpec


def _decision(value: float) -> Decision:
    return Decision(t_s=0.0, function="volt_var", action="set_der_q", target="sgen:WKA 7",
                    value=value, mode="direct", reason="test")


def test_only_acknowledged_set_points_are_believed():
    state = DMSState(model=build_net(GridSpec(builtin="cigre_mv")))
    state.pending = {"dms-1": _decision(-0.4), "dms-2": _decision(-0.8)}
    state.on_outcome({"id": "dms-2", "status": "timeout"})
    assert state.der_q_mvar == {} and "dms-2" not in state.pending
    state.on_outcome({"id": "dms-1", "status": "success"})
    assert state.der_q_mvar == {"WKA 7": -0.4} and state.pending == {}
    state.on_outcome({"id": "operator-7", "status": "success"})  # not the DMS's: ignored
    assert state.der_q_mvar == {"WKA 7": -0.4}


def test_a_night_when_current_magnitudes_stall_the_estimator():
    """Recorded at 00:51 of the default day with the DMS on: four |I| meters on nearly
    idle lines keep the WLS from converging; the cycle estimates without them, says so,
    and uses the metered wind, battery and EV powers as known injections."""
    import json
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from twin.build.prepare import prepare
    from twin.dms.cycle import known_injections, run_cycle
    from twin.scenario import load_scenario

    root = Path(__file__).resolve().parents[2]
    prep = prepare(load_scenario(root / "scenarios" / "cigre_mv_day.yaml",
                                 ["dms.enabled=true"]))
    rows = pd.read_csv(root / "tests" / "data" / "dms_night_telemetry.csv")
    forecast = json.loads((root / "tests" / "data" / "dms_night_forecast.json").read_text())
    plan = prep.dms.instance.controller.plan  # the built-in DMS's
    state = plan.state
    state.ingest(rows.to_dict("records"))
    t_s = forecast["t_s"]
    result = run_cycle(state, t_s, np.array(forecast["load_factor"]),
                       np.array(forecast["sgen_factor"]), plan.settings)
    assert result.failed == "" and result.se.success
    assert "4 current-magnitude measurement(s); estimated without them" in result.se.message
    assert 0.95 < result.se.vm_pu.min() and result.se.vm_pu.max() < 1.05
    known = known_injections(state.model, pd.DataFrame(rows), t_s, 120.0, {})
    assert {(t, q) for t, _i, q in known} == {("sgen", "p_mw"), ("sgen", "q_mvar"),
                                             ("storage", "p_mw"), ("load", "p_mw")}


def _tie_case(s1_reported_closed: bool, acknowledged_open_at_s: float | None):
    """CIGRE MV with the tie S1 (Line 14-8, at Bus 8) closed in the DMS's model, the
    field reporting it at 10 s, and possibly an acknowledged opening after that; one
    cycle at 30 s on the forecast alone."""
    import numpy as np

    from twin.dms.cycle import CycleSettings, run_cycle

    net = build_net(GridSpec(builtin="cigre_mv"))
    net.switch.loc[net.switch.name == "S1", "closed"] = True
    state = DMSState(model=net)
    state.ingest([{"element": "switch:S1", "quantity": "closed",
                   "value": 1.0 if s1_reported_closed else 0.0, "source_t_s": 10.0,
                   "delivery_t_s": 10.1, "sigma": 0.0}])
    if acknowledged_open_at_s is not None:
        state.pending["dms-1"] = Decision(t_s=15.0, function="flisr", action="open_switch",
                                          target="switch:S1", value=None, mode="direct",
                                          reason="test")
        state.on_outcome({"id": "dms-1", "status": "success",
                          "applied_t_s": acknowledged_open_at_s,
                          "result_t_s": acknowledged_open_at_s + 0.1})
    result = run_cycle(state, 30.0, np.ones(len(net.load)), np.zeros(len(net.sgen)),
                       CycleSettings())
    assert result.failed == "" and result.se.success
    return result


def test_the_estimator_uses_an_acknowledged_switching_newer_than_the_telemetry():
    """The switch was opened (acknowledged at 20 s) after its last report (closed, 10 s):
    the DMS believes it open, and so must its state estimator, like Volt/Var and load
    management after it."""
    import numpy as np

    line = 14  # Line 14-8: S1 sits at its Bus 8 end
    acked = _tie_case(s1_reported_closed=True, acknowledged_open_at_s=20.0)
    assert not acked.model.switch.set_index("name").at["S1", "closed"]
    reported_open = _tie_case(s1_reported_closed=False, acknowledged_open_at_s=None)
    reported_closed = _tie_case(s1_reported_closed=True, acknowledged_open_at_s=None)
    # with the tie open, Line 14-8 is an open-ended stub: only its charging current flows,
    # and the estimate is the one of a field reporting S1 open
    assert np.allclose(acked.se.vm_pu, reported_open.se.vm_pu, atol=1e-9)
    assert np.allclose(acked.se.p_line_from_mw, reported_open.se.p_line_from_mw, atol=1e-9)
    assert abs(acked.se.p_line_from_mw[line]) < 1e-3
    # closed, the tie carries the loop flow between the two feeders: the case tells them apart
    assert abs(reported_closed.se.p_line_from_mw[line]) > 10 * abs(acked.se.p_line_from_mw[line])
