"""mosaik adapter that turns everything connected to it into records for the store.

Event-based with ``any_inputs``: it steps whenever a connected simulator produced data, so
event-triggered power flows between regular steps are recorded too. The registry given at
``create`` maps each source entity (full id) to its measurement and element name — the
schema lives in :mod:`twin.recording.schema`, not here.

Table snapshots (the grid's element tables, the device parks) travel as column batches
(:mod:`twin.recording.columns`), never one :class:`Point` per element: the KPIs and the event
log read every row of them, the store gets the rows the recording policy
(:mod:`twin.recording.policy`) keeps. Everything else (records, the grid summary, events) is
a point.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable

import mosaik_api_v3

from twin.evaluation.expectations import EventLog
from twin.evaluation.kpis import KpiAccumulator
from twin.recording.columns import ColumnBatch, column_batch
from twin.recording.policy import RecordingPolicy
from twin.recording.schema import (
    EVENT,
    GRID,
    MEASUREMENTS,
    RECORDS_ONLY_SOURCES,
    Point,
    Store,
    check_measurement,
    element_point,
    event_point,
    record_point,
    table_points,
)
from twin.recording.tally import Tally
from twin.timebase import Clock

META: mosaik_api_v3.Meta = {
    "api_version": "3.0",
    "type": "event-based",
    "models": {
        "Recorder": {
            "public": True,
            "any_inputs": True,
            "params": ["registry", "tables", "periods", "store", "clock", "run_id", "kpis",
                       "progress", "tally", "step_ticks", "event_log", "policy"],
            "attrs": [],
        },
    },
}


class RecorderSim(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.registry: dict[str, tuple[str, str]] = {}
        # source full id -> {table: element names} for sources sending a "snapshot"
        self.tables: dict[str, dict[str, list[str]]] = {}
        # source full id -> period in ticks, for sources that step periodically
        self.periods: dict[str, int] = {}
        self.store: Store | None = None
        self.clock: Clock | None = None
        self.run_id = ""
        self.kpis: KpiAccumulator | None = None
        # element events and decisions for the scenario's expectations (None: none checked)
        self.event_log: EventLog | None = None
        self.progress: Callable[[int], None] | None = None
        self.tally = Tally()
        self._checked = False  # the registry's measurements, at the first step
        self.policy = RecordingPolicy()  # default: every row of every table

    def init(self, sid, time_resolution=1.0, **sim_params):
        return self.meta

    def create(self, num, model, registry=None, tables=None, periods=None, store=None,
               clock=None, run_id="",
               kpis=None, progress=None, tally=None, step_ticks=None, event_log=None,
               policy=None):
        if num != 1 or self.store is not None:
            raise ValueError("RecorderSim holds exactly one Recorder")
        if store is None or clock is None or registry is None:
            raise ValueError("Recorder needs registry=, store= and clock=")
        self.registry, self.store, self.clock = registry, store, clock
        self.tables = tables or {}
        self.periods = periods if periods is not None else {}
        self.run_id, self.kpis, self.progress = run_id, kpis, progress
        self.event_log = event_log
        self.tally = tally if tally is not None else Tally()
        self.step_ticks = int(step_ticks) if step_ticks else None
        if policy is not None:
            self.policy = policy
        return [{"eid": "recorder", "type": "Recorder", "rel": []}]

    def step(self, time, inputs, max_advance):
        assert self.clock is not None and self.store is not None
        time_ns = self.clock.time_ns(time)
        if not self._checked:  # complete only once the world is wired
            self._check_registry()
        by_source: dict[str, dict[str, Any]] = defaultdict(dict)
        for attrs in inputs.values():
            for attr, sources in attrs.items():
                for src, value in sources.items():
                    by_source[src][attr] = value
        # Everything of this step in source order (KPIs and events read it in that order);
        # the store gets the points and the column batches the policy keeps.
        items: list[Point | ColumnBatch] = []
        stored: list[ColumnBatch] = []
        policy = self.policy
        for src in sorted(by_source):
            measurement, element = self.registry[src]
            fields = by_source[src]
            # mosaik hands persistent values on at every step of the recorder; record a
            # source only when it produced them now (a periodic source on its period, the
            # grid when it solved), so an event at 90 s does not repeat the 60 s values.
            period = self.periods.get(src)
            if period and time % period:
                continue
            if "solved_at" in fields and fields.pop("solved_at") != time:
                continue
            records = fields.pop("records", None)
            if records:
                # Points a simulator made itself, each with its own time (e.g. a telemetry
                # message's delivery time): twin.recording.schema.Record.
                for r in records:
                    point = record_point(r, self.run_id, self.clock.time_ns_at(r["t_s"]))
                    items.append(point)
                    if point.measurement == EVENT:  # what the run survived: run.json lists it
                        self.tally.events.append(point)
            snapshot = fields.pop("snapshot", None)
            if snapshot is not None:
                names = self.tables[src]
                for table, columns in snapshot.items():
                    batch = column_batch(table, names[table], columns, self.run_id, time_ns)
                    if batch is None:  # not numbers only: points, all of them stored
                        items.extend(table_points(table, names[table], columns, self.run_id,
                                                  time_ns))
                        continue
                    items.append(batch)
                    kept = policy.select(time, batch)
                    if kept is not None and kept.n_rows:
                        stored.append(kept)
            if measurement == GRID:
                self.tally.grid_solves += 1
                message = fields.pop("pf_message", "")
                if not fields.get("converged", 1):
                    event = event_point(self.run_id, time_ns, element, "powerflow_failed",
                                        message or "power flow failed")
                    items.append(event)
                    self.tally.events.append(event)
            if fields:
                items.append(element_point(measurement, self.run_id, time_ns, element, fields))
        # a point without fields (e.g. a failed solve's results) is not recorded at all
        items = [i for i in items if not isinstance(i, Point) or i.fields]
        points = [i for i in items if isinstance(i, Point)]
        self._write(points, stored)
        if self.kpis is not None:
            self.kpis.add(self.clock.seconds(time), items)
        if self.event_log is not None:
            self.event_log.add(items)
        if self.progress is not None:
            self.progress(time)
        # Ask for the next regular step although inputs would trigger it anyway: mosaik 3.6
        # keeps a cancelled wait per loop for an event-based simulator without a next step,
        # which makes each step slower than the last (quadratic over a run).
        if self.step_ticks:
            return (time // self.step_ticks + 1) * self.step_ticks
        return None

    def _write(self, points: list[Point], batches: list[ColumnBatch]) -> None:
        assert self.store is not None
        self.store.write(points)  # also when empty: a store may flush by wall time there
        if batches:
            if hasattr(self.store, "write_columns"):
                self.store.write_columns(batches)
            else:  # a store that only takes points (e.g. a test's)
                self.store.write([p for b in batches for p in b.to_points()])
        self.tally.points += len(points) + sum(b.n_rows for b in batches)

    def finalize(self) -> None:
        """The per-element extremes, when the tables were not stored whole at every solve."""
        if self.store is not None and not self.policy.keeps_everything:
            self._write([], self.policy.extremes(self.run_id))

    def _check_registry(self) -> None:
        """Every source's measurement is in the schema (or names a records-only source)."""
        for src, (measurement, _element) in sorted(self.registry.items()):
            if measurement not in MEASUREMENTS and measurement not in RECORDS_ONLY_SOURCES:
                check_measurement(measurement, f"recorder source {src}")
        for src, tables in sorted(self.tables.items()):
            for measurement in tables:
                check_measurement(measurement, f"recorder source {src}")
        self._checked = True

    def get_data(self, outputs):
        return {}
