"""FLISR as the DMS runs it: an incident from the breaker trip to the return to normal,
one step at a time, every step a decision with its reason.

Phases: ``idle`` → (a breaker reports a protection trip; wait ``wait_s`` for the
indicators) ``isolating`` → ``restoring`` (restoration over the ties, and at the same time
one crew sent to patrol and repair the isolated section: as soon as it is isolated, not
after the ties) → ``normalising`` (back to the switch states before the fault, once the
section is repaired and the ties are switched) → ``idle``. Each phase sends its commands at
once and goes on when all their outcomes are in; a command that fails is sent once more,
then the incident stops there and says so.

One crew per located section: the DMS knows the section, not the line, so the crew
patrols the section's lines one after another (a job per line, the next when the last is
done); a tie only a crew can switch goes to whichever crew is free first (its command is
sent before the repair's, and the crews take jobs in order).

The planning is in :mod:`twin.dms.flisr`; this module only sequences it and words it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Literal

import pandapower as pp

from twin.dms.decisions import Decision, Mode
from twin.dms.flisr import (
    FaultLocation,
    Restoration,
    Sections,
    build_sections,
    isolation,
    locate,
    patrol_order,
    restoration,
    switch_states,
    switching_sequence,
)
from twin.grid.names import element_names, split_ref

Phase = Literal["idle", "isolating", "restoring", "normalising", "stopped"]


@dataclass(frozen=True)
class FlisrSettings:
    mode: Mode = "off"
    wait_s: float = 5.0                 # after a trip report, for the indicators (and a reclose)
    vm_min_pu: float = 0.95
    vm_max_pu: float = 1.05
    max_loading_percent: float = 100.0
    repair: bool = True                 # send a crew to repair, then return to normal
    manual_switches: frozenset[str] = frozenset()   # switch names only a crew operates
    customers: dict[str, int] = field(default_factory=dict)  # per load name


@dataclass
class Incident:
    breaker: int
    trip_t_s: float
    normal: dict[int, bool]
    location: FaultLocation | None = None
    opened: list[int] = field(default_factory=list)
    restoration: Restoration | None = None
    waiting: dict[int, Decision] = field(default_factory=dict)  # switch/line key -> decision
    retries: dict[str, int] = field(default_factory=dict)
    patrol: list[int] = field(default_factory=list)  # the section's lines the crew has yet to do
    patrol_plan: tuple[int, ...] = ()                 # all of them, in patrol order


#: (model with believed switch states and estimated loads) supplier, called when needed
ModelFn = Callable[[], pp.pandapowerNet]
#: check(net) -> violation sentences (short-circuit ratings) for a proposed topology
CheckFn = Callable[[pp.pandapowerNet], list[str]]


class FlisrController:
    """One controller per DMS; ``step`` is called at every DMS step."""

    def __init__(self, settings: FlisrSettings, net: pp.pandapowerNet,
                 check: CheckFn | None = None):
        self.settings = settings
        self.check = check
        self.sections: Sections = build_sections(net)
        self.names = {t: element_names(net, t) for t in ("switch", "line", "bus", "load", "trafo")}
        self.index = {t: {int(i): k for k, i in enumerate(net[t].index)}
                      for t in ("switch", "line", "bus", "load", "trafo")}
        self.by_name = {t: {n: int(i) for n, i in zip(self.names[t], net[t].index)}
                        for t in ("switch", "line", "trafo")}
        self.phase: Phase = "idle"
        self.incident: Incident | None = None
        self.handled: set[tuple[int, float]] = set()   # (breaker, trip report time)
        self.wake_s: float | None = None
        self._resend: list[Decision] = []
        self._stages: list[list[tuple[int, str]]] = []
        self._stop_reason = ""

    # ---------------------------------------------------------------- naming
    def name(self, table: str, idx: int) -> str:
        return self.names[table][self.index[table][idx]]

    def _mode(self, switch: int) -> str:
        if self.settings.mode == "advisory":
            return "advisory"
        return "manual" if self.name("switch", switch) in self.settings.manual_switches \
            else "direct"

    # ---------------------------------------------------------------- detection
    def _trip_report(self, telemetry: dict) -> tuple[int, float] | None:
        """The newest breaker reporting a protection trip, and its report's source time."""
        found = None
        for (element, quantity), row in telemetry.items():
            if quantity != "tripped" or row["value"] < 0.5 or not element.startswith("switch:"):
                continue
            sw = self.by_name["switch"].get(split_ref(element)[1])
            if sw is None:
                continue
            key = (sw, float(row["source_t_s"]))
            if key not in self.handled and (found is None or key[1] > found[1]):
                found = key
        return found

    def _indicators(self, telemetry: dict, since_s: float) -> dict[tuple[str, int], bool]:
        out = {}
        for (element, quantity), row in telemetry.items():
            if quantity != "fault_passed" or row["source_t_s"] < since_s - 1.0:
                continue
            table, name = split_ref(element)
            idx = self.by_name.get(table, {}).get(name)
            if idx is not None:
                out[(table, idx)] = row["value"] >= 0.5
        return out

    # ---------------------------------------------------------------- the step
    def step(self, t_s: float, telemetry: dict, model: ModelFn,
             outcomes: list[tuple[Decision, dict]] = ()) -> list[Decision]:
        """Decisions to take now. ``telemetry``: the DMS's newest value per (element,
        quantity); ``model()``: its network model (believed switch states, estimated
        loads); ``outcomes``: (decision, outcome) of this controller's commands."""
        if self.settings.mode == "off":
            return []
        self.wake_s = None
        for decision, outcome in outcomes:
            self._on_outcome(decision, outcome)
        inc = self.incident
        if self._resend and inc is not None:
            again = [replace(d, t_s=t_s, reason=d.reason + " (sent again: the first command "
                             "did not succeed)") for d in self._resend]
            self._resend = []
            for d in again:
                inc.waiting[self._key(d)] = d
            return again
        if self.phase == "stopped":
            self.phase = "idle"
            if inc is not None:  # say it once, then wait for the next trip
                self.incident = None
                b = self.name("switch", inc.breaker)
                return [Decision(t_s, "flisr", "none", f"switch:{b}", None, "advisory",
                                 f"FLISR stopped: {self._stop_reason}; the operator takes "
                                 f"over.", {"breaker": b})]
        if self.phase == "idle":
            report = self._trip_report(telemetry)
            if report is None:
                return []
            if t_s < report[1] + self.settings.wait_s:
                self.wake_s = report[1] + self.settings.wait_s
                return []
            row = telemetry[(f"switch:{self.name('switch', report[0])}", "tripped")]
            self.handled.add(report)
            if row["value"] < 0.5:
                return []
            out = self._start(t_s, report, telemetry, model())
        else:
            out = []
        # each phase goes on when its commands are done (at once if it sent none)
        while self.incident is not None and not self.incident.waiting:
            phase = self.phase
            if phase == "isolating":
                out += self._restore(t_s, model())
            elif phase == "restoring" and self.incident.patrol:
                out += self._patrol_next(t_s)
                break  # the same phase goes on when that job is done
            elif phase == "restoring":
                if not self._repairs_due():
                    self.phase, self.incident = "idle", None
                else:
                    out += self._normalise(t_s, model())
            elif phase == "normalising" and self._stages:
                out += self._next_stage(t_s)
            elif phase == "normalising":
                self.phase, self.incident = "idle", None
            if self.phase == phase:
                break
        return out

    def _start(self, t_s: float, report: tuple[int, float], telemetry: dict,
               net: pp.pandapowerNet) -> list[Decision]:
        breaker, trip_t_s = report
        closed = switch_states(net)
        closed[breaker] = False  # the trip report is newer than anything else we know
        net.switch["closed"] = [closed[int(i)] for i in net.switch.index]
        normal = {**closed, breaker: True}
        inc = self.incident = Incident(breaker, trip_t_s, normal)
        indicators = self._indicators(telemetry, trip_t_s)
        loc = inc.location = locate(net, self.sections, breaker, indicators)
        b = self.name("switch", breaker)
        buses = [self.name("bus", x) for x in loc.buses]
        where = _between(loc)
        decisions = [Decision(
            t_s, "flisr", "locate_fault", f"switch:{b}", None,
            "advisory" if self.settings.mode == "advisory" else "direct",
            f"{b} tripped on a fault; fault current seen by {_names(loc.saw_fault)}, not by "
            f"{_names(loc.no_fault)}: the fault is {where} (section with "
            f"{_names(buses)}).",
            {"breaker": b, "zone_buses": ", ".join(buses), "indicators": len(indicators),
             "mismatches": loc.mismatches, "candidates": loc.candidates})]
        inc.opened = isolation(self.sections, loc.zone, closed)
        for sw in inc.opened:
            decisions.append(self._switch(t_s, sw, "open_switch",
                                          f"isolates the faulted section ({_names(buses)}) "
                                          f"on its boundary", inc))
        self.phase = "isolating"
        return self._advance_if_advisory(t_s, decisions, net)

    def _switch(self, t_s: float, sw: int, action: str, why: str, inc: Incident,
                inputs: dict | None = None) -> Decision:
        name = self.name("switch", sw)
        verb = "Open" if action == "open_switch" else "Close"
        d = Decision(t_s, "flisr", action, f"switch:{name}", None, self._mode(sw),
                     f"{verb} {name}: {why}.", {"breaker": self.name("switch", inc.breaker),
                                                **(inputs or {})})
        if d.mode != "advisory":
            inc.waiting[sw] = d
        return d

    def _restore(self, t_s: float, net: pp.pandapowerNet) -> list[Decision]:
        inc = self.incident
        assert inc is not None and inc.location is not None
        closed = switch_states(net)
        for sw in inc.opened:
            closed[sw] = False
        closed[inc.breaker] = False
        net.switch["closed"] = [closed[int(i)] for i in net.switch.index]
        res = inc.restoration = restoration(
            net, self.sections, inc.location, inc.opened, vm_min_pu=self.settings.vm_min_pu,
            vm_max_pu=self.settings.vm_max_pu,
            max_loading_percent=self.settings.max_loading_percent, check=self.check)
        decisions = []
        for sw in res.close:
            group = [self.name("bus", b) for b in res.restores.get(sw, ())]
            if res.reasons[sw] == "upstream":
                why = (f"the faulted section is isolated; restores {_names(group)} upstream "
                       f"of it")
                inputs = {}
            else:
                f = res.checks[sw]
                why = (f"restores {_names(group)} from the neighbouring feeder (max loading "
                       f"{f['max_loading_percent']:.0f} %, voltages "
                       f"{f['vm_min_pu']:.3f}–{f['vm_max_pu']:.3f} p.u."
                       f"{', switchgear within its short-circuit ratings' if self.check else ''})")
                inputs = {"max_loading_percent": round(f["max_loading_percent"], 3),
                          "vm_min_pu": round(f["vm_min_pu"], 5)}
            decisions.append(self._switch(t_s, sw, "close_switch", why, inc, inputs))
        refused = {sw: f for sw, f in res.checks.items() if not f.get("ok")}
        if res.unrestored_buses and refused:
            names = [self.name("bus", b) for b in res.unrestored_buses]
            detail = "; ".join(f"{self.name('switch', sw)}: {_refusal(f, self.settings)}"
                               for sw, f in sorted(refused.items()))
            b = self.name("switch", inc.breaker)
            decisions.append(Decision(t_s, "flisr", "none", f"switch:{b}", None, "advisory",
                                      f"{_names(names)} stay off until "
                                      f"the repair: no tie can carry them ({detail}).",
                                      {"unrestored": len(names)}))
        self.phase = "restoring"
        if self._repairs_due():
            # the section is isolated: its repair need not wait for the ties
            inc.patrol = patrol_order(self.sections, inc.location.lines, inc.normal)
            inc.patrol_plan = tuple(inc.patrol)
            decisions += self._patrol_next(t_s)
        return self._advance_if_advisory(t_s, decisions, net)

    def _repairs_due(self) -> bool:
        return self.settings.repair and self.settings.mode != "advisory"

    def _patrol_next(self, t_s: float) -> list[Decision]:
        """One crew job: the next line of the isolated section to patrol and repair."""
        inc = self.incident
        assert inc is not None and inc.location is not None
        line = inc.patrol.pop(0)
        name = self.name("line", line)
        section = [self.name("line", x) for x in inc.patrol_plan]
        rest = f"; then {_names(section[section.index(name) + 1:])}" \
            if section.index(name) + 1 < len(section) else ""
        d = Decision(t_s, "flisr", "repair_line", f"line:{name}", None, "manual",
                     f"Send a crew to patrol the isolated section ({_names(section)}) and "
                     f"repair the fault: {name} first{rest}.",
                     {"breaker": self.name("switch", inc.breaker),
                      "section_lines": len(section)})
        inc.waiting[-1 - line] = d  # lines keyed apart from switches
        return [d]

    def _normalise(self, t_s: float, net: pp.pandapowerNet) -> list[Decision]:
        inc = self.incident
        assert inc is not None
        now = switch_states(net)
        for sw in inc.opened:
            now[sw] = False
        if inc.restoration is not None:
            for sw in inc.restoration.close:
                now[sw] = True
        self._stages = switching_sequence(self.sections, inc.normal, now)
        self.phase = "normalising"
        return self._next_stage(t_s)

    def _next_stage(self, t_s: float) -> list[Decision]:
        inc = self.incident
        assert inc is not None
        if not self._stages:
            return []
        why = {"open": "the fault is repaired; back to the normal configuration: this tie "
                       "opens first, so that closing the normal switch makes no loop",
               "close": "the fault is repaired; back to the normal configuration"}
        return [self._switch(t_s, sw, f"{action}_switch", why[action], inc)
                for sw, action in self._stages.pop(0)]

    def _advance_if_advisory(self, t_s, decisions, net) -> list[Decision]:
        if self.settings.mode != "advisory":
            return decisions
        # Nobody acts on advice: show the whole plan at once, then wait for the next trip.
        if self.phase == "isolating":
            return decisions + self._restore(t_s, net)
        self.phase, self.incident = "idle", None
        return decisions

    # ---------------------------------------------------------------- outcomes
    def _key(self, decision: Decision) -> int:
        table, name = split_ref(decision.target)
        return self.by_name["switch"][name] if table == "switch" \
            else -1 - self.by_name["line"][name]

    def _on_outcome(self, decision: Decision, outcome: dict) -> None:
        inc = self.incident
        if inc is None:
            return
        key = self._key(decision)
        if inc.waiting.get(key) is not decision:
            return
        del inc.waiting[key]
        if outcome.get("status") == "success":
            return
        tries = inc.retries.get(decision.target, 0)
        if tries < 1:
            inc.retries[decision.target] = tries + 1
            self._resend.append(decision)
        else:
            self.phase = "stopped"  # a human has to take over; said in the records
            why = outcome.get("reason") or "no reason given"
            self._stop_reason = (f"{decision.target} did not switch twice "
                                 f"({outcome.get('status')}: {why})")


def _names(items) -> str:
    items = list(items)
    if not items:
        return "none"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def _between(loc: FaultLocation) -> str:
    if loc.saw_fault and loc.no_fault:
        return f"between {loc.saw_fault[-1]} and {loc.no_fault[0]}"
    if loc.saw_fault:
        return f"beyond {loc.saw_fault[-1]}"
    return "behind the breaker"


def _refusal(f: dict, s: FlisrSettings) -> str:
    if not f.get("converged"):
        return "power flow failed"
    return "; ".join(f.get("violations", []) + f.get("new_violations", [])[:3])
