"""The DMS controller: what the built-in DMS starts with and the order it runs its functions in.

:class:`DMSController` takes plain data — the telemetry delivered since its last call and
the outcomes of its commands — and returns plain data: the commands to send, the records
to store and when it wants to be called next. It knows nothing of mosaik; the adapter
(:mod:`simulators.dms`) only converts between the two clocks and passes the data on.

The order of one step: outcomes → FLISR (event-driven: trip reports, its own outcomes)
→ load management's running plan → the cycle when due (load estimation → state
estimation → Volt/Var, then load management on the estimate) → the switchgear check when
the topology may have changed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from twin.dms.api import CommandOutcome, DMSStep, TelemetryRow
from twin.dms.cycle import (
    CycleSettings,
    DMSState,
    believed_topology,
    forecast_model,
    issue,
    run_cycle,
)
from twin.dms.decisions import Decision
from twin.dms.flisr_control import FlisrController
from twin.dms.load_management import LoadManager
from twin.dms.measurements import telemetry_frame
from twin.dms.supervisory import Supervisor
from twin.dms.switchgear import SwitchgearWatch

#: Two times closer than this are the same instant [s]: far below any tick of the
#: simulation clock, far above the rounding of ``tick × resolution``.
TIME_TOLERANCE_S = 1e-6


@dataclass
class DMSPlan:
    """Everything the DMS starts with (built from the scenario by :mod:`twin.build.dms`)."""

    state: DMSState
    settings: CycleSettings
    cycle_offset_s: float    # the first cycle [s since the start]
    cycle_s: float           # between cycles [s]
    # t [s] -> per-load and per-sgen forecast factors of the DMS (its profiles, not truth)
    forecast: Callable[[float], tuple[np.ndarray, np.ndarray]]
    # event-driven: acts on trip reports and command outcomes between cycles
    flisr: FlisrController | None = None
    # after each estimate: overloads → switching plans
    load_manager: LoadManager | None = None
    # the switchgear against fault currents, on every topology change the DMS sees
    switchgear: SwitchgearWatch | None = None
    # after each estimate: cells, curtailment, TSO–DSO, monitoring (the paper's section III)
    supervisor: Supervisor | None = None


class DMSController:
    """The built-in DMS: one :meth:`step` per call, in the order of the module notes.

    Parameters
    ----------
    plan : DMSPlan
        Its network model, settings, schedule, forecast and functions; ``plan.state`` is
        the DMS's memory and changes as it runs.
    """

    def __init__(self, plan: DMSPlan):
        self.plan = plan
        self.n_cycles_due = 0     # cycles whose time has come: the next is at offset + n·cycle

    @property
    def next_cycle_s(self) -> float:
        """When the next cycle is due [s since the start]."""
        # from the count, not by summing cycles: no drift over a long run
        return self.plan.cycle_offset_s + self.n_cycles_due * self.plan.cycle_s

    def step(self, t_s: float, telemetry: list[TelemetryRow],
             outcomes: list[CommandOutcome]) -> DMSStep:
        """Take in what arrived, act, and say when to call again.

        Parameters
        ----------
        t_s : float
            Now [s since the start].
        telemetry : list of TelemetryRow
            Values delivered since the last call, in arrival order.
        outcomes : list of CommandOutcome
            Outcomes of commands (any sender's: the DMS keeps its own) since the last call.

        Returns
        -------
        DMSStep
        """
        plan, state, out = self.plan, self.plan.state, DMSStep()
        state.ingest(telemetry)
        by_function: dict[str, list[tuple[Decision, dict]]] = {"flisr": [],
                                                               "load_management": []}
        for outcome in outcomes:
            decision = state.on_outcome(outcome)
            if decision is not None and decision.function in by_function:
                by_function[decision.function].append((decision, outcome))

        @functools.cache
        def frame() -> pd.DataFrame:
            # the newest telemetry as one table, built at most once a step and only if used
            return telemetry_frame(list(state.telemetry.values()))

        wake_s = math.inf
        if plan.flisr is not None:
            self._issue(out, plan.flisr.step(
                t_s, state.telemetry,
                lambda: forecast_model(state, t_s, *plan.forecast(t_s), telemetry=frame()),
                by_function["flisr"]))
            if plan.flisr.wake_s is not None:
                wake_s = plan.flisr.wake_s
        if plan.load_manager is not None:
            self._issue(out, plan.load_manager.step(t_s, by_function["load_management"]))
        cycle = t_s >= self.next_cycle_s - TIME_TOLERANCE_S
        result = None
        if cycle:
            load_factor, sgen_factor = plan.forecast(t_s)
            result = run_cycle(state, t_s, load_factor, sgen_factor, plan.settings,
                               telemetry=frame())
            out.commands.extend(result.commands)
            out.decisions.extend(result.decisions)
            out.records.extend(result.records)
            lm, sup = plan.load_manager, plan.supervisor
            if (lm is not None or sup is not None) and result.se is not None \
                    and result.se.success and (plan.flisr is None or plan.flisr.phase == "idle"):
                # Volt/Var's forecast net is the same one (it does not change it)
                # (in place: after the cycle only the topology of its model is read)
                forecast = result.forecast if result.forecast is not None else \
                    forecast_model(state, t_s, load_factor, sgen_factor, plan.settings,
                                   model=result.model, telemetry=frame(), in_place=True)
                if lm is not None:
                    self._issue(out, lm.on_estimate(t_s, result.se, forecast))
                if sup is not None:
                    decisions, records = sup.on_estimate(t_s, forecast, frame())
                    out.records.extend(records)
                    self._issue(out, decisions)
            while self.next_cycle_s <= t_s + TIME_TOLERANCE_S:
                self.n_cycles_due += 1
        if plan.switchgear is not None and (cycle or any(by_function.values())):
            # the cycle's topology (it already holds this step's outcomes)
            model = result.model if result is not None else None
            if model is None:
                model = believed_topology(state, frame())
            records, decisions = plan.switchgear.check(t_s, model)
            out.records.extend(records)
            self._issue(out, decisions)
        out.next_call_s = min(self.next_cycle_s, wake_s)
        return out

    def _issue(self, out: DMSStep, decisions: list[Decision]) -> None:
        out.commands.extend(issue(self.plan.state, decisions, self.plan.settings))
        out.decisions.extend(decisions)
