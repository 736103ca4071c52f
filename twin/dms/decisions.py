"""A DMS decision is a record (DESIGN rule 3): when, which function, what action on which
target with which value, in which mode, why (one plain sentence an operator understands),
and the inputs that triggered it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from twin.recording.schema import dms_decision_record

#: How a DMS function runs (Volt/Var, FLISR, load management), the one definition every
#: function's settings use: ``off`` — it does not run; ``advisory`` — it decides and records,
#: nothing is sent; ``direct`` — its decisions become commands. The scenario's YAML schema
#: (:mod:`twin.scenario.dms`) spells the same literal, since the scenario does not depend on
#: the DMS; a test keeps the two equal.
Mode = Literal["off", "advisory", "direct"]

#: How one decision is carried out: ``direct`` (a command to a remote device), ``remote``,
#: ``manual`` (a field crew operates it) or ``advisory`` (recorded for the operator only).
DecisionMode = Literal["direct", "remote", "manual", "advisory"]

#: Actions a decision can carry, and the command action the field understands.
COMMAND_ACTIONS = {
    "open_switch": "open", "close_switch": "close", "set_tap": "set_tap",
    "set_capacitor_step": "set_step", "set_der_q": "set_q", "set_der_p_limit": "set_p_limit",
    "set_battery_p": "set_p", "set_ev_limit": "set_ev_limit", "repair_line": "repair",
}


@dataclass(frozen=True)
class Decision:
    """One decision of a DMS function.

    Attributes
    ----------
    t_s : float
        Scenario time of the decision [s since start].
    function : str
        ``volt_var``, ``flisr``, ``load_management``, …
    action : str
        A key of :data:`COMMAND_ACTIONS`, or ``none`` for a decision to hold.
    target : str
        Element reference, e.g. ``trafo:Trafo 0-1``.
    value : float or None
        New set-point (tap position, capacitor step, Mvar, MW); None for switching.
    mode : {'direct', 'remote', 'manual', 'advisory'}
    reason : str
        One plain sentence.
    inputs : dict
        What triggered it (names → numbers), e.g. ``{"vm_max_pu": 1.061, "bus": "Bus 14"}``.
    """

    t_s: float
    function: str
    action: str
    target: str
    value: float | None
    mode: DecisionMode
    reason: str
    inputs: dict[str, object] = field(default_factory=dict)

    def command(self, command_id: str) -> dict | None:
        """The command to send through the field, or None (advisory, or nothing to do)."""
        if self.mode == "advisory" or self.action not in COMMAND_ACTIONS:
            return None
        return {"id": command_id, "target": self.target,
                "action": COMMAND_ACTIONS[self.action], "value": self.value,
                "source": self.function}

    def record(self) -> dict:
        """The decision as a recorder record (measurement ``dms_decision``)."""
        return dms_decision_record(self.t_s, self.target, self.function, self.action,
                                   self.mode, self.reason, self.value, self.inputs)
