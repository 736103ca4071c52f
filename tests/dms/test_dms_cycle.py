"""The DMS's memory between cycles: acknowledged DER set-points enter its model."""

from __future__ import annotations

from twin.dms.cycle import DMSState
from twin.dms.decisions import Decision
from twin.grids import build_net
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
