"""Load management: relieve overloaded lines and trafos by moving load to other feeders.

After each state estimation the DMS looks at the estimated loadings; an element above its
limit starts a search for a radial configuration that brings every loading within the
limit at the lowest losses (:func:`twin.dms.reconfiguration.minimize_losses`). The plan is
carried out in stages that never close a loop (:func:`twin.dms.flisr.switching_sequence`):
a switch opens just before the tie that takes its area over closes, so each area is off
for one switching time. A plan whose topology would put a switch's fault currents above its
ratings (the short-circuit check) is refused. ``advisory`` records the plan; ``direct``
also sends it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import pandapower as pp

from twin.dms.decisions import Decision, Mode
from twin.dms.flisr import build_sections, switch_states, switching_sequence
from twin.dms.reconfiguration import minimize_losses
from twin.dms.state_estimation import SEResult
from twin.grid.names import element_names, split_ref


@dataclass(frozen=True)
class LoadManagementSettings:
    mode: Mode = "off"
    max_loading_percent: float = 100.0
    vm_min_pu: float = 0.95
    hold_s: float = 900.0         # after a plan (or a finding that none helps), look again then
    manual_switches: frozenset[str] = frozenset()


class LoadManager:
    """Watches estimated loadings and plans (and, in direct mode, carries out) switching."""

    def __init__(self, settings: LoadManagementSettings, net: pp.pandapowerNet,
                 check: Callable[[pp.pandapowerNet], list[str]] | None = None):
        self.settings = settings
        self.check = check  # the plan's topology against the switchgear ratings
        self.sections = build_sections(net)
        self.names = {t: element_names(net, t) for t in ("switch", "line", "trafo")}
        self.index = {t: {int(i): k for k, i in enumerate(net[t].index)}
                      for t in ("switch", "line", "trafo")}
        self.by_name = {n: int(i) for n, i in zip(self.names["switch"], net.switch.index)}
        self.next_look_s = -float("inf")
        self.stages: list[list[tuple[int, str]]] = []
        self.waiting: dict[int, Decision] = {}

    @property
    def busy(self) -> bool:
        return bool(self.stages or self.waiting)

    def _name(self, table: str, idx: int) -> str:
        return self.names[table][self.index[table][idx]]

    def overloads(self, se: SEResult) -> list[tuple[str, float]]:
        """Estimated loadings above the limit: ("line:Line A-1", 123.0), worst first."""
        limit = self.settings.max_loading_percent
        found = [(f"{table}:{self._name(table, int(i))}", float(v))
                 for table, series in (("line", se.line_loading_percent),
                                       ("trafo", se.trafo_loading_percent))
                 for i, v in series.items() if v == v and v > limit]
        return sorted(found, key=lambda x: -x[1])

    def on_estimate(self, t_s: float, se: SEResult, model: pp.pandapowerNet) -> list[Decision]:
        """Decisions after an estimate; ``model`` holds the believed switch states and the
        loads as estimated (it is not changed)."""
        s = self.settings
        if s.mode == "off" or self.busy or t_s < self.next_look_s or not se.success:
            return []
        over = self.overloads(se)
        if not over:
            return []
        self.next_look_s = t_s + s.hold_s
        worst = ", ".join(f"{el.split(':', 1)[1]} at {v:.0f} %" for el, v in over[:3])
        inputs = {"element": over[0][0], "loading_percent": round(over[0][1], 3),
                  "overloads": len(over)}
        try:
            plan = minimize_losses(model, vm_min_pu=s.vm_min_pu,
                                   max_loading_percent=s.max_loading_percent)
        except ValueError as exc:
            return [Decision(t_s, "load_management", "none", over[0][0], None, "advisory",
                             f"{worst} (estimated): no plan, {exc}.", inputs)]
        if not plan.open and not plan.close or plan.max_loading_percent > s.max_loading_percent:
            return [Decision(t_s, "load_management", "none", over[0][0], None, "advisory",
                             f"{worst} (estimated): no radial configuration brings it within "
                             f"{s.max_loading_percent:.0f} %; shed or curtail load.", inputs)]
        target = switch_states(model)
        for name in plan.open:
            target[self.by_name[name]] = False
        for name in plan.close:
            target[self.by_name[name]] = True
        if self.check is not None:
            proposed = copy.deepcopy(model)
            proposed.switch["closed"] = [target[int(i)] for i in proposed.switch.index]
            violations = self.check(proposed)
            if violations:
                return [Decision(t_s, "load_management", "none", over[0][0], None, "advisory",
                                 f"{worst} (estimated): the plan (open {', '.join(plan.open)};"
                                 f" close {', '.join(plan.close)}) is refused: "
                                 f"{'; '.join(violations[:2])}.", inputs)]
        stages = switching_sequence(self.sections, target, switch_states(model))
        moves = f"open {', '.join(plan.open)}; close {', '.join(plan.close)}"
        summary = Decision(
            t_s, "load_management", "reconfigure", over[0][0], None,
            "advisory" if s.mode == "advisory" else "direct",
            f"{worst} (estimated): move load to other feeders ({moves}); max loading then "
            f"{plan.max_loading_percent:.0f} %, lowest voltage {plan.vm_min_pu:.3f} p.u., "
            f"losses {plan.p_loss_before_mw * 1000:.0f} → {plan.p_loss_mw * 1000:.0f} kW.",
            {**inputs, "max_loading_after_percent": round(plan.max_loading_percent, 3),
             "p_loss_before_mw": round(plan.p_loss_before_mw, 6),
             "p_loss_mw": round(plan.p_loss_mw, 6), "stages": len(stages)})
        if s.mode == "advisory":
            return [summary] + [self._switch(t_s, sw, action, "advisory")
                                for stage in stages for sw, action in stage]
        self.stages = stages
        return [summary] + self._next_stage(t_s)

    def step(self, t_s: float, outcomes: list[tuple[Decision, dict]] = ()) -> list[Decision]:
        """Carry on with the plan as the outcomes of its commands come in."""
        failed = []
        for decision, outcome in outcomes:
            sw = self.by_name.get(split_ref(decision.target)[1])
            if self.waiting.get(sw) is not decision:
                continue
            del self.waiting[sw]
            if outcome.get("status") != "success":
                failed.append((decision.target, outcome.get("status")))
        if failed:
            self.stages, self.waiting = [], {}
            said = ", ".join(f"{target} ({status})" for target, status in failed)
            return [Decision(t_s, "load_management", "none", failed[0][0], None, "advisory",
                             f"Plan stopped: {said} did not switch; the operator decides.",
                             {"failed": len(failed)})]
        if self.waiting or not self.stages:
            return []
        return self._next_stage(t_s)

    def _next_stage(self, t_s: float) -> list[Decision]:
        out = []
        for sw, action in self.stages.pop(0):
            name = self._name("switch", sw)
            mode = "manual" if name in self.settings.manual_switches else "direct"
            d = self._switch(t_s, sw, action, mode)
            self.waiting[sw] = d
            out.append(d)
        return out

    def _switch(self, t_s: float, sw: int, action: str, mode: str) -> Decision:
        name = self._name("switch", sw)
        why = ("opens first, so that the tie taking its area over closes no loop"
               if action == "open" else "takes the area over from the overloaded feeder")
        return Decision(t_s, "load_management", f"{action}_switch", f"switch:{name}", None,
                        mode, f"{action.capitalize()} {name}: {why}.", {})
