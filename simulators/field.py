"""mosaik adapter for the field: RTUs and their links (:mod:`twin.models.comms`), field crews
(:mod:`twin.models.crews`) and the devices commands reach.

One SimPy environment holds the communication network and the crews; this simulator moves
it along mosaik time. Hybrid: it schedules itself at scan times (and, while commands are
under way, at every event of the network); ``commands`` is a trigger input.

Entities: ``field`` (inputs ``snapshot`` — the grid's state, one tick late — and
``commands``; outputs ``measurements``, ``command_outcomes``, ``records``) and one child
per controllable device (``dev:switch:S1``…): an ``Actuator`` (switch, tap, capacitor)
outputs ``closed``/``tap_pos``/``step`` when a command arrives; a ``Setpoint`` (PV, wind,
battery, EV) holds ``p_limit_mw``/``q_setpoint_mvar``/``p_setpoint_mw``.

With a ``gateway`` (:class:`twin.protocols.gateway.Gateway`, the RTUs' Modbus and IEC 104
endpoints), every delivered scan is published at the step that collects it, the links'
outage windows take the endpoints off the air, and the commands clients wrote are taken at
each step onto the same command path as the DMS's, their outcomes reported back. In live
mode (``poll_ticks``) the field also steps every ``poll_ticks`` to take them.
"""

from __future__ import annotations

import math
from typing import Any

import mosaik_api_v3
import simpy

from twin.models.comms import CommNetwork
from twin.models.crews import CrewDispatcher
from twin.models.field import ACTIONS, FieldPlan
from twin.recording.schema import comm_record, command_record, crew_record, telemetry_record
from twin.rng import component_rng
from twin.timebase import ticks_at_or_after, ticks_nearest

ACTUATOR_KINDS = ("switch", "trafo", "shunt", "line")
ACTUATOR_ATTRS = ["closed", "tap_pos", "step", "repaired"]
SETPOINT_ATTRS = ["p_limit_mw", "q_setpoint_mvar", "p_setpoint_mw"]
FIELD_OUTPUTS = ["measurements", "command_outcomes", "records"]

META: mosaik_api_v3.Meta = {
    "api_version": "3.0",
    "type": "hybrid",
    "models": {
        "Field": {
            "public": True,
            "params": ["plan", "seed", "time_resolution_s", "record_every_ticks", "grid_step_ticks",
                       "handover_ticks", "gateway", "poll_ticks",
                       "until_ticks", "deliver_exact", "scheduled_commands"],
            "attrs": ["snapshot", "solved_at", "commands", "wake", "ev_snapshot",
                      *FIELD_OUTPUTS],
            # wake: a SCADA front end wrote commands to the endpoints: take them now
            "trigger": ["commands", "solved_at", "wake"],
            "non-persistent": FIELD_OUTPUTS,
        },
        # Switches, taps, capacitor steps: an output only when a command arrives, which
        # triggers the grid (the grid holds the state itself).
        "Actuator": {"public": False, "params": [], "attrs": ACTUATOR_ATTRS, "trigger": [],
                     "non-persistent": ACTUATOR_ATTRS},
        # DER, battery and EV set-points: held and output at every step of the field, so
        # the plants read the last commanded value on their own steps.
        "Setpoint": {"public": False, "params": [], "attrs": SETPOINT_ATTRS, "trigger": [],
                     "non-persistent": []},
    },
}


def _finite(value: Any) -> bool:
    """A command value a device can take: a finite number (not a flag, not NaN)."""
    if value is None or isinstance(value, (bool, str)):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _telemetry_row(m) -> dict[str, Any]:
    """A DMS telemetry row (twin.dms.controller.TelemetryRow) of a delivered measurement: the
    grid element was resolved when the field was built, so the receiver never parses the
    point name."""
    return {"element": m.element, "quantity": m.quantity, "value": float(m.value),
            "source_t_s": m.source_t_s, "delivery_t_s": m.delivery_t_s, "sigma": m.sigma,
            "rtu": m.rtu, "point": m.point}


def _number_or_none(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class FieldSim(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.plan: FieldPlan | None = None
        self.res_s = 1.0
        self.env = simpy.Environment()
        self.net: CommNetwork | None = None
        self.crews: CrewDispatcher | None = None
        self.snapshot: dict | None = None
        self.snapshot_tick: int | None = None  # when the grid solved the held snapshot
        self.ev_part: dict = {}  # {"ev": {attr: per charging point}} from the EV fleet
        self.next_scan: dict[str, int] = {}
        self.period_ticks: dict[str, int] = {}
        self.in_flight = 0
        self.reports_due: list[float] = []  # delivery times of reports by exception [s]
        self.n_commands = 0
        self.now = 0
        self.deliver_exact = False
        self.handover: tuple[int, int] | None = None
        self.record_every = 0
        self.grid_step = 1
        self.next_record = 0
        self.until = math.inf
        self.out_devices: dict[str, dict[str, Any]] = {}  # actuator outputs of this step
        self.setpoints: dict[str, dict[str, Any]] = {}    # held set-points per device
        # delivered telemetry (comms Measurements) since the last get_data; turned into rows
        # only there, and dropped when nobody is connected to "measurements"
        self.out_measurements: list = []
        self.out_outcomes: list[dict] = []
        self.records: list[dict] = []
        self._crew_jobs: dict[str, tuple] = {}  # job id -> (target, action, value, sent_t_s)
        self.gateway = None  # twin.protocols.gateway.Gateway, or None
        self.poll_ticks: int | None = None
        self._scans: dict[str, dict[str, tuple]] = {}  # rtu -> point -> (value, source_t_s)
        self._sources: dict[str, str] = {}  # command id -> who sent it

    def init(self, sid, time_resolution=1.0, **sim_params):
        self.res_s = float(time_resolution)
        return self.meta

    # ------------------------------------------------------------------ setup
    def create(self, num, model, plan=None, seed=0, time_resolution_s=None,
               record_every_ticks=60, grid_step_ticks=60, until_ticks=None, deliver_exact=False,
               scheduled_commands=(), handover_ticks=None, gateway=None, poll_ticks=None):
        if model != "Field" or num != 1 or self.plan is not None:
            raise ValueError("FieldSim holds exactly one Field")
        if plan is None:
            raise ValueError("Field needs plan=<twin.models.field.FieldPlan>")
        self.plan = plan
        rngs = {r.name: component_rng(seed, f"rtu/{r.name}") for r in plan.rtus}
        self.net = CommNetwork(self.env, plan.rtus, rngs,
                               command_timeout_s=plan.command_timeout_s)
        if plan.crew is not None:
            self.crews = CrewDispatcher(self.env, plan.crew)
        for rtu in plan.rtus:
            self.period_ticks[rtu.name] = max(1, ticks_nearest(rtu.scan_period_s, self.res_s))
            self.next_scan[rtu.name] = self._ticks(rtu.scan_offset_s)
        self.record_every = int(record_every_ticks)
        self.grid_step = int(grid_step_ticks)
        self.until = until_ticks if until_ticks is not None else math.inf
        self.deliver_exact = bool(deliver_exact)
        # (offset, period) [ticks]: also step then, so a consumer (the DMS) gets everything
        # delivered up to its own cycle
        self.handover = handover_ticks
        # (tick, command) sent by the field itself at their ticks: an operator's timetable
        self.scheduled = sorted(scheduled_commands, key=lambda tc: tc[0], reverse=True)
        self.gateway = gateway
        self.poll_ticks = int(poll_ticks) if gateway is not None and poll_ticks else None
        children = [{"eid": d.eid, "rel": [],
                     "type": "Actuator" if d.kind in ACTUATOR_KINDS else "Setpoint"}
                    for d in plan.devices.values()]
        return [{"eid": "field", "type": "Field", "rel": [], "children": children}]

    def _ticks(self, seconds: float) -> int:
        # An event inside a tick is handled at the end of that tick (never early).
        return ticks_at_or_after(seconds, self.res_s)

    # ------------------------------------------------------------------ step
    def step(self, time, inputs, max_advance):
        assert self.net is not None and self.plan is not None
        self.now = time
        t_s = time * self.res_s
        f_in = inputs.get("field", {})
        snapshot = next(iter(f_in.get("snapshot", {}).values()), None)
        solved_at = next(iter(f_in.get("solved_at", {}).values()), None)
        ev = next(iter(f_in.get("ev_snapshot", {}).values()), None)
        if ev:
            self.ev_part = ev  # the EV operator's values, valid with the next grid state
        if snapshot is not None and self.ev_part:
            snapshot = {**snapshot, **self.ev_part}
        if snapshot is not None and solved_at != self.snapshot_tick:
            # Scans are taken lazily, each at its own time and against the grid state valid
            # then: those before the new solve read the state before it.
            self._scan_until(solved_at - 1)
            before = self.snapshot
            self.snapshot, self.snapshot_tick = snapshot, solved_at
            if before is not None:
                self._report_changes(before, solved_at * self.res_s)
        self._scan_until(time)
        if self.gateway is not None:
            self.gateway.at(t_s)  # outages and stale values before what arrives now
        self._collect(t_s)  # everything due up to now, before new traffic starts
        while self.scheduled and self.scheduled[-1][0] <= time:
            self._submit(self.scheduled.pop()[1], t_s)
        for commands in f_in.get("commands", {}).values():
            for command in commands or ():
                self._submit(command, t_s, source="dms")
        if self.gateway is not None:
            for command in self.gateway.drain():  # written by protocol clients
                self._submit(command, t_s)
        self._collect(t_s)  # what the new traffic caused at once (zero latency)
        return self._next_step(time)

    def _collect(self, t_s: float) -> None:
        measurements, outcomes = self.net.advance_to(t_s)
        crew_outcomes = self.crews.advance_to(t_s) if self.crews is not None else []
        for m in measurements:
            self._on_measurement(m)
        for o in outcomes:
            self._on_outcome(o)
        for c in crew_outcomes:
            self._on_crew(c)
        if self._scans:
            for rtu, held in self._scans.items():
                self.gateway.deliver(rtu, {p: v for p, (v, _) in held.items()},
                                     max(t for _, t in held.values()))
            self._scans = {}

    def _scan_until(self, last_tick: int) -> None:
        """Take every scan due at or before ``last_tick``, in time order."""
        if self.snapshot is None or not self.next_scan:
            return  # no grid state yet: the scans wait for the first one
        while True:
            rtu, tick = min(self.next_scan.items(), key=lambda kv: kv[1])
            if tick > last_tick:
                return
            self.net.scan(rtu, self._truth(rtu), t_s=tick * self.res_s)
            self.next_scan[rtu] = tick + self.period_ticks[rtu]

    def _report_changes(self, before: dict, t_s: float) -> None:
        """RTUs whose status points changed report at once (by exception)."""
        plan = self.plan
        for rtu, names in plan.status_points.items():
            refs = plan.truth[rtu]
            if any(before[refs[n].table][refs[n].attr][refs[n].position]
                   != self.snapshot[refs[n].table][refs[n].attr][refs[n].position] for n in names):
                delivery = self.net.scan(rtu, self._truth(rtu), t_s=max(t_s, self.env.now))
                if delivery is not None:
                    self.reports_due.append(delivery)

    def _truth(self, rtu: str) -> dict[str, float | bool]:
        snap = self.snapshot
        assert snap is not None and self.plan is not None
        return {name: snap[ref.table][ref.attr][ref.position]
                for name, ref in self.plan.truth[rtu].items()}

    def _next_step(self, time: int) -> int | None:
        # Every new grid state triggers a step (and its scans); scans need their own steps
        # only when someone waits for each delivery at its exact time.
        candidates = [min(self.next_scan.values())] if self.deliver_exact and self.next_scan \
            else []
        # Ask for a step when the next grid state is due anyway (one tick after the grid's
        # next regular step): mosaik 3.6 leaves one cancelled wait behind each time a
        # trigger comes before the step a simulator asked for, and a far-off request
        # would pile them up for the whole run. The last such step takes the run's last scans.
        candidates.append((time // self.grid_step + 1) * self.grid_step + 1)
        if self.until < math.inf and time < self.until - 1:
            candidates.append(int(self.until) - 1)
        if self.scheduled:
            candidates.append(self.scheduled[-1][0])
        if self.poll_ticks:  # live: take protocol clients' commands as they come
            candidates.append(time + self.poll_ticks)
        if self.handover is not None:
            offset, period = self.handover
            k = max(0, (time - offset) // period + 1)
            candidates.append(offset + k * period)
        t_s = time * self.res_s
        self.reports_due = [d for d in self.reports_due if d > t_s]
        if self.reports_due:  # forward a report by exception as soon as it arrives
            candidates.append(max(time + 1, self._ticks(min(self.reports_due))))
        if self.in_flight or self.deliver_exact:
            nxt = self.net.next_event_s()  # the shared environment: crews' events too
            if math.isfinite(nxt):
                candidates.append(max(time + 1, self._ticks(nxt)))
        # (scans wait while the grid's first state has not arrived: never step in place)
        nxt_tick = min(max(c, time + 1) for c in candidates) if candidates else None
        if nxt_tick is None or nxt_tick >= self.until:
            # Nothing regular is left before the end: still deliver what is on its way.
            pending_s = self.net.next_event_s()
            if not math.isfinite(pending_s):
                return None
            pending = max(time + 1, self._ticks(pending_s))
            return pending if pending < self.until else None
        return nxt_tick

    # ------------------------------------------------------------------ commands
    def _submit(self, command: dict, t_s: float, source: str | None = None) -> None:
        """Send ``command`` on its way; ``source`` (recorded) overrides its own: the DMS's
        commands name the DMS function that decided them, which its decisions record."""
        plan = self.plan
        assert plan is not None and self.net is not None
        self.n_commands += 1
        cid = str(command.get("id") or f"cmd-{self.n_commands}")
        self._sources[cid] = source or str(command.get("source") or "")
        target, action, value = command["target"], command["action"], command.get("value")
        device = plan.devices.get(target)
        problem = None
        if action not in ACTIONS:
            problem = f"unknown action {action!r}"
        elif device is None:
            problem = f"{target} is not a device reachable by command (no RTU lists it)"
        elif device.kind not in ACTIONS[action][0]:
            problem = f"{action} does not apply to a {device.kind}"
        elif action not in ("open", "close", "repair") and not _finite(value):
            problem = f"{action} needs a finite number; found {value!r}"
        if problem is not None:
            self._on_outcome_dict(cid, target, action, value, t_s, None, t_s, "failed", problem)
            return
        attr = "q_setpoint_mvar" if action == "set_q" else ACTIONS[action][1]
        out_value = {"open": False, "close": True, "repair": True}.get(action, value)
        self.in_flight += 1

        def apply(at_s: float) -> bool:
            if device.kind in ACTUATOR_KINDS:
                self.out_devices.setdefault(device.eid, {})[attr] = out_value
            else:
                self.setpoints.setdefault(device.eid, {})[attr] = out_value
            return True

        if device.manual:
            if self.crews is None or device.location_xy_km is None and plan.crew.fixed_travel_s is None:
                self.in_flight -= 1
                self._on_outcome_dict(cid, target, action, value, t_s, None, t_s, "failed",
                                      "no field crew can reach this switch")
                return
            self.crews.dispatch(cid, device.location_xy_km or (0.0, 0.0), apply, t_s=t_s,
                                work_time_s=plan.work_time_s.get(target))
            self._crew_jobs[cid] = (target, action, value, t_s)
        else:
            self.net.send_command(cid, device.rtu, target, action, value, apply, t_s=t_s)

    def _on_outcome(self, o) -> None:
        self._on_outcome_dict(o.command_id, o.target, o.action, o.value, o.sent_t_s,
                              o.applied_t_s, o.result_t_s, o.status, o.reason, rtu=o.rtu)
        self.in_flight -= 1

    def _on_crew(self, c) -> None:
        target, action, value, sent = self._crew_jobs.pop(c.job_id)
        self._on_outcome_dict(c.job_id, target, action, value, sent, c.completed_t_s,
                              c.completed_t_s, c.status, f"field crew {c.crew}: waited "
                              f"{c.started_t_s - c.requested_t_s:.0f} s, travelled "
                              f"{c.arrived_t_s - c.started_t_s:.0f} s, worked "
                              f"{c.completed_t_s - c.arrived_t_s:.0f} s", rtu="crew")
        self.records.append(crew_record(target, c.crew, c.requested_t_s, c.started_t_s,
                                        c.arrived_t_s, c.completed_t_s))
        self.in_flight -= 1

    def _on_outcome_dict(self, cid, target, action, value, sent_s, applied_s, result_s, status,
                         reason, rtu="") -> None:
        outcome = {"id": cid, "target": target, "action": action, "value": value,
                   "sent_t_s": sent_s, "applied_t_s": applied_s, "result_t_s": result_s,
                   "status": status, "reason": reason, "via": rtu or ""}
        self.out_outcomes.append(outcome)
        if not isinstance(value, (int, float)) and value is not None:  # e.g. a string
            value = _number_or_none(value)
        self.records.append(command_record(target, action, status, rtu or "", cid, value,
                                           reason, sent_s, applied_s, result_s,
                                           self._sources.pop(cid, "")))
        if self.gateway is not None:
            self.gateway.done(cid, status)

    # ------------------------------------------------------------------ telemetry
    def _on_measurement(self, m) -> None:
        self.out_measurements.append(m)
        if self.gateway is not None and m.rtu in self.gateway:
            held = self._scans.setdefault(m.rtu, {})
            if m.point not in held or held[m.point][1] <= m.source_t_s:  # newest scan wins
                held[m.point] = (m.value, m.source_t_s)
        self.records.append(telemetry_record(m.rtu, m.point, float(m.value), m.source_t_s,
                                             m.delivery_t_s))

    def _comm_records(self, t_s: float) -> list[dict]:
        assert self.net is not None
        return [comm_record(t_s, rtu, counts) for rtu, counts in self.net.stats().items()]

    # ------------------------------------------------------------------ outputs
    def get_data(self, outputs):
        data: dict[str, dict[str, Any]] = {}
        t_s = self.now * self.res_s
        for eid, attrs in outputs.items():
            if eid == "field":
                out: dict[str, Any] = {}
                if "measurements" in attrs and self.out_measurements:
                    out["measurements"] = [_telemetry_row(m) for m in self.out_measurements]
                # mosaik asks for the same attributes at every step: without a consumer of
                # "measurements" (no DMS) they would pile up for the whole run
                self.out_measurements = []
                if "command_outcomes" in attrs and self.out_outcomes:
                    out["command_outcomes"] = self.out_outcomes
                    self.out_outcomes = []
                if "records" in attrs and self._record_due():
                    out["records"] = self.records + self._comm_records(t_s)
                    self.records = []
                    self.next_record = (self.now // max(self.record_every, 1) + 1) * max(
                        self.record_every, 1)
                data[eid] = out
            elif eid in self.setpoints:
                held = self.setpoints[eid]
                data[eid] = {a: held[a] for a in attrs if a in held}
            else:
                values = self.out_devices.pop(eid, {})
                data[eid] = {a: v for a, v in values.items() if a in attrs}
        return data

    def _record_due(self) -> bool:
        if not self.record_every:
            return bool(self.records)
        last_chance = self._next_step(self.now) is None
        return self.now >= self.next_record or last_chance
