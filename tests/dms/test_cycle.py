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

    from twin.build.wiring import prepare
    from twin.dms.cycle import known_injections, run_cycle
    from twin.scenario import load_scenario

    root = Path(__file__).resolve().parents[2]
    prep = prepare(load_scenario(root / "scenarios" / "cigre_mv_day.yaml",
                                 ["dms.enabled=true"]))
    rows = pd.read_csv(root / "tests" / "data" / "dms_night_telemetry.csv")
    forecast = json.loads((root / "tests" / "data" / "dms_night_forecast.json").read_text())
    state = prep.dms.state
    state.ingest(rows.to_dict("records"))
    t_s = forecast["t_s"]
    result = run_cycle(state, t_s, np.array(forecast["load_factor"]),
                       np.array(forecast["sgen_factor"]), prep.dms.settings)
    assert result.failed == "" and result.se.success
    assert "4 current-magnitude measurement(s); estimated without them" in result.se.message
    assert 0.95 < result.se.vm_pu.min() and result.se.vm_pu.max() < 1.05
    known = known_injections(state.model, pd.DataFrame(rows), t_s, 120.0, {})
    assert {(t, q) for t, _i, q in known} == {("sgen", "p_mw"), ("sgen", "q_mvar"),
                                             ("storage", "p_mw"), ("load", "p_mw")}
