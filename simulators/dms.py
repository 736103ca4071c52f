"""mosaik adapter for the DMS controller (:mod:`twin.dms.cycle`).

Hybrid: it runs a cycle every ``cycle`` seconds (the field hands over everything delivered
up to then at the same tick) and keeps the newest telemetry between cycles. Inputs from the
field: ``measurements`` and ``command_outcomes`` (triggers); outputs: ``commands`` (to the
field) and ``records`` (to the recorder: estimates, cycle status, decisions).
"""

from __future__ import annotations

import math

import mosaik_api_v3

from twin.dms.controller import DMSPlan
from twin.dms.cycle import believed_topology, forecast_model, issue, run_cycle
from twin.dms.measurements import telemetry_frame

META: mosaik_api_v3.Meta = {
    "api_version": "3.0",
    "type": "hybrid",
    "models": {
        "DMS": {
            "public": True,
            "params": ["plan"],
            "attrs": ["measurements", "command_outcomes", "commands", "records"],
            "trigger": ["measurements", "command_outcomes"],
            "non-persistent": ["commands", "records"],
        },
    },
}


def telemetry_row(m: dict, grid_refs: dict[str, str] | None = None) -> dict:
    """A field measurement (``point`` = ``"<element>/<quantity>"``) as a DMS telemetry row,
    the element named as in the grid (``grid_refs``: "ev:Bus 10" → "load:EV Bus 10")."""
    element, _, quantity = m["point"].rpartition("/")
    element = (grid_refs or {}).get(element, element)
    return {"element": element, "quantity": quantity, "value": float(m["value"]),
            "source_t_s": m["source_t_s"], "delivery_t_s": m["delivery_t_s"],
            "sigma": m.get("sigma", 0.0), "rtu": m.get("rtu", "")}


class DMSSim(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.plan: DMSPlan | None = None
        self.res_s = 1.0
        self.next_cycle = 0
        self.commands: list[dict] = []
        self.records: list[dict] = []

    def init(self, sid, time_resolution=1.0, **sim_params):
        self.res_s = float(time_resolution)
        return self.meta

    def create(self, num, model, plan=None):
        if model != "DMS" or num != 1 or self.plan is not None or plan is None:
            raise ValueError("DMSSim holds exactly one DMS (plan=<DMSPlan>)")
        self.plan = plan
        self.next_cycle = plan.cycle_offset_ticks
        return [{"eid": "dms", "type": "DMS", "rel": []}]

    def step(self, time, inputs, max_advance):
        plan = self.plan
        assert plan is not None
        d_in = inputs.get("dms", {})
        for batch in d_in.get("measurements", {}).values():
            plan.state.ingest([telemetry_row(m, plan.settings.grid_refs) for m in batch or ()])
        t_s = time * self.res_s
        outcomes: dict[str, list] = {"flisr": [], "load_management": []}
        for batch in d_in.get("command_outcomes", {}).values():
            for outcome in batch or ():
                decision = plan.state.on_outcome(outcome)
                if decision is not None and decision.function in outcomes:
                    outcomes[decision.function].append((decision, outcome))
        wake = math.inf
        if plan.flisr is not None:
            self._issue(plan.flisr.step(
                t_s, plan.state.telemetry,
                lambda: forecast_model(plan.state, t_s, *plan.forecast(t_s)), outcomes["flisr"]))
            if plan.flisr.wake_s is not None:
                wake = max(time + 1, math.ceil(plan.flisr.wake_s / self.res_s - 1e-9))
        if plan.load_manager is not None:
            self._issue(plan.load_manager.step(t_s, outcomes["load_management"]))
        cycle = time >= self.next_cycle
        if cycle:
            load_factor, sgen_factor = plan.forecast(t_s)
            result = run_cycle(plan.state, t_s, load_factor, sgen_factor, plan.settings)
            self.commands.extend(result.commands)
            self.records.extend(result.records)
            lm = plan.load_manager
            if lm is not None and result.se is not None and (
                    plan.flisr is None or plan.flisr.phase == "idle"):
                self._issue(lm.on_estimate(t_s, result.se, forecast_model(
                    plan.state, t_s, load_factor, sgen_factor, plan.settings,
                    model=result.model)))
            while self.next_cycle <= time:
                self.next_cycle += plan.cycle_ticks
        if plan.switchgear is not None and (cycle or any(outcomes.values())):
            # the cycle's topology (it already holds this step's outcomes)
            model = result.model if cycle else None
            if model is None:
                model = believed_topology(plan.state,
                                          telemetry_frame(list(plan.state.telemetry.values())))
            records, decisions = plan.switchgear.check(t_s, model)
            self.records.extend(records)
            self._issue(decisions)
        return min(self.next_cycle, wake)

    def _issue(self, decisions) -> None:
        assert self.plan is not None
        commands, records = issue(self.plan.state, decisions, self.plan.settings)
        self.commands.extend(commands)
        self.records.extend(records)

    def get_data(self, outputs):
        out = {}
        attrs = outputs.get("dms", [])
        if "commands" in attrs and self.commands:
            out["commands"], self.commands = self.commands, []
        if "records" in attrs and self.records:
            out["records"], self.records = self.records, []
        return {"dms": out} if "dms" in outputs else {}
