"""The one schema for everything the twin records.

A record is a :class:`Point`, shaped like an InfluxDB point:

* ``measurement`` — what kind of thing; every name the twin writes is a constant here and
  in :data:`MEASUREMENTS`: the grid's element tables (:data:`GRID_TABLES`: ``bus``,
  ``line``, …), ``grid`` (whole-network summary), ``weather``, the devices (``pv``, ``wind``,
  ``ev``, ``battery``), the field (``telemetry``, ``command``, ``comm``, ``crew``),
  ``protection``, the DMS (``dms_cycle``, ``dms_estimate``, ``dms_short_circuit``,
  ``dms_decision``), ``event`` (power-flow failures), ``grid_geo``, ``kpi`` and ``live``.
* ``tags`` — always ``run`` (the run id) and ``element`` (the element's stable name, e.g.
  ``Bus 3`` or ``line_12`` when the grid has no usable name); some measurements add more
  (``event`` has ``kind``).
* ``fields`` — numbers (float, int, bool) or short strings; names carry units (``vm_pu``,
  ``p_mw``). A value that is NaN is left out (InfluxDB cannot hold NaN), so "missing" means
  the same thing in every store.
* ``time_ns`` — scenario time (not wall time) as integer nanoseconds since the Unix epoch, UTC.

Simulators do not know the run id or the clock's start: they hand the recorder a
:class:`Record` (scenario seconds, tags without ``run``) made by one of the ``*_record``
builders below, and the recorder turns it into a :class:`Point`. Points made outside a
simulator come from the ``*_point`` builders. Each builder is the one place its
measurement's tags and fields are named, so a record cannot drift from what the KPIs,
report and dashboards read; :func:`check_measurement` makes a misspelt name fail loudly.

Stores take batches of points (``write(points)``) and are closed once (``close()``). The
grid's element tables travel as columns instead (:mod:`twin.recording.columns`): every store
of the twin also takes ``write_columns(batches)``, which means the same points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence, TypedDict

import numpy as np

FieldValue = float | int | bool | str

#: Tag keys every point carries.
BASE_TAGS = ("run", "element")

# The grid simulator's element tables, one point per element and solve (the table names of
# twin.grid.model's snapshot).
BUS = "bus"
LINE = "line"
TRAFO = "trafo"
LOAD = "load"
SGEN = "sgen"
STORAGE = "storage"
SWITCH = "switch"
EXT_GRID = "ext_grid"
SHUNT = "shunt"
#: Measurements named after a table of the grid.
GRID_TABLES = (BUS, LINE, TRAFO, LOAD, SGEN, STORAGE, SWITCH, EXT_GRID, SHUNT)

#: Whole-network power-flow summary, one point per solve.
GRID = "grid"
#: A power-flow failure (tag ``kind``).
EVENT = "event"
WEATHER = "weather"
# Device simulators' snapshots, one point per device and step.
PV = "pv"
WIND = "wind"
EV = "ev"
BATTERY = "battery"
# The field: telemetry delivered, commands' outcomes, link statistics, crew jobs.
TELEMETRY = "telemetry"
COMMAND = "command"
COMM = "comm"
CREW = "crew"
#: Protection events (trip, reclose, lockout, …; tag ``kind``).
PROTECTION = "protection"
# The DMS: one point per cycle and function, estimated voltages, breaker duty, decisions.
DMS_CYCLE = "dms_cycle"
DMS_ESTIMATE = "dms_estimate"
DMS_SHORT_CIRCUIT = "dms_short_circuit"
DMS_DECISION = "dms_decision"
#: The DMS's supervisory functions (twin.dms.supervisory), once per cycle: each cell's
#: export, deviation, inertia and storage; each battery as the DMS sees it; the TSO–DSO
#: interface's powers, request and reactive capability.
DMS_CELL = "dms_cell"
DMS_STORAGE = "dms_storage"
DMS_INTERFACE = "dms_interface"
#: Where the elements are, once per run (the dashboards' network map).
# The synchronous area's frequency (twin.models.frequency), at each of its steps.
FREQUENCY = "frequency"
GRID_GEO = "grid_geo"
#: The run's KPIs, once at its end.
KPI = "kpi"
#: Live mode's pacing statistics, once at the run's end.
LIVE = "live"
# Per-element extremes over the run, once at its end, when the element tables are not
# recorded at every solve (recording.elements 'summary', or recording.every): buses'
# ``vm_min_pu``/``vm_max_pu``, lines' and transformers' ``loading_max_percent``.
BUS_EXTREMES = "bus_extremes"
LINE_EXTREMES = "line_extremes"
TRAFO_EXTREMES = "trafo_extremes"
EXTREMES = (BUS_EXTREMES, LINE_EXTREMES, TRAFO_EXTREMES)

#: Every measurement the twin records.
MEASUREMENTS = frozenset({
    *GRID_TABLES, GRID, EVENT, WEATHER, PV, WIND, EV, BATTERY, TELEMETRY, COMMAND, COMM, CREW,
    PROTECTION, DMS_CYCLE, DMS_ESTIMATE, DMS_SHORT_CIRCUIT, DMS_DECISION, DMS_CELL, DMS_STORAGE,
    DMS_INTERFACE, GRID_GEO, KPI, LIVE,
    FREQUENCY, *EXTREMES,
})

# Recorder sources that send only records (each record names its own measurement): their
# registry entry names the source, never a point's measurement.
FIELD_SOURCE = "field"
DMS_SOURCE = "dms"
#: Registry names of sources that make no point of their own.
RECORDS_ONLY_SOURCES = frozenset({FIELD_SOURCE, DMS_SOURCE})


def check_measurement(measurement: str, where: str = "record") -> str:
    """``measurement`` if the schema has it.

    Raises
    ------
    ValueError
        Naming the measurement and the known ones: a misspelt name must not silently
        drop a KPI or a dashboard panel.
    """
    if measurement not in MEASUREMENTS:
        raise ValueError(f"{where}: unknown measurement {measurement!r}; expected one of "
                         f"{sorted(MEASUREMENTS)} (twin.recording.schema)")
    return measurement


@dataclass(slots=True)
class Point:
    measurement: str
    time_ns: int
    tags: dict[str, str]
    fields: dict[str, FieldValue] = field(default_factory=dict)


def clean_fields(fields: dict[str, object]) -> dict[str, FieldValue]:
    """Drop NaN/None values and turn numpy scalars into Python ones."""
    out: dict[str, FieldValue] = {}
    for key, value in fields.items():
        kind = type(value)
        if kind is float:  # the common case first: one type check, NaN/inf test by arithmetic
            if value - value == 0.0:
                out[key] = value
            continue
        if value is None:
            continue
        if isinstance(value, (bool, str)):
            out[key] = value
            continue
        if hasattr(value, "item"):  # numpy scalar
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            continue
        out[key] = value  # type: ignore[assignment]
    return out


def table_points(measurement: str, names: Sequence[str], columns: dict[str, Sequence[object]],
                 run_id: str, time_ns: int) -> list[Point]:
    """One point per element from column lists (``columns[attr][i]`` belongs to ``names[i]``)."""
    if measurement not in MEASUREMENTS:
        check_measurement(measurement, "a table of a recorder source")
    attrs = list(columns)
    if not attrs:
        return []
    cols = [columns[a] for a in attrs]
    # The recorder's hot path: when every value is a finite number (the usual case), rows
    # need no per-value cleaning.
    if all(_all_finite(c) for c in cols):
        return [Point(measurement, time_ns, {"run": run_id, "element": name},
                      dict(zip(attrs, row)))
                for name, row in zip(names, zip(*cols))]
    return [Point(measurement, time_ns, {"run": run_id, "element": name},
                  clean_fields(dict(zip(attrs, row))))
            for name, row in zip(names, zip(*cols))]


def _all_finite(column: Sequence[object]) -> bool:
    if len(column) == 0:
        return True
    first = column[0]
    if not isinstance(first, (float, int)) or hasattr(first, "item"):
        return False  # strings, None, numpy scalars: clean value by value
    try:
        return bool(np.isfinite(np.asarray(column, dtype=float)).all())
    except (TypeError, ValueError):
        return False


class Record(TypedDict):
    """What a simulator hands the recorder: a point without run id, at scenario seconds."""

    measurement: str
    t_s: float  # scenario seconds since start
    tags: dict[str, str]  # without ``run``
    fields: dict[str, object]  # NaN/None are dropped when it becomes a point


def record_point(record: Record, run_id: str, time_ns: int) -> Point:
    """The point of ``record`` (``time_ns`` is its ``t_s`` on the run's clock)."""
    measurement = record["measurement"]
    if measurement not in MEASUREMENTS:
        check_measurement(measurement, "a simulator's record")
    return Point(measurement, time_ns, {"run": run_id, **record["tags"]},
                 clean_fields(record["fields"]))


def element_point(measurement: str, run_id: str, time_ns: int, element: str,
                  fields: dict[str, object]) -> Point:
    """One point for one element of a recorder source (``grid`` summary, ``weather``)."""
    return Point(measurement, time_ns, {"run": run_id, "element": element},
                 clean_fields(fields))


# ------------------------------------------------------------------ records (simulators)
def telemetry_record(rtu: str, point: str, value: float, source_t_s: float,
                     delivery_t_s: float) -> Record:
    """A telemetry value as delivered to the DMS, at its delivery time."""
    return {"measurement": TELEMETRY, "t_s": delivery_t_s,
            "tags": {"element": rtu, "point": point},
            "fields": {"value": value, "latency_s": delivery_t_s - source_t_s}}


def command_record(element: str, action: str, status: str, via: str, command_id: str,
                   value: float | None, reason: str, sent_t_s: float,
                   applied_t_s: float | None, result_t_s: float, source: str = "") -> Record:
    """A command's outcome, at the time its result was known (``via``: the RTU, ``crew``
    or empty; ``source``: who sent it — ``dms``, ``operator``, or a protocol client such as
    ``modbus 127.0.0.1:50312``)."""
    return {"measurement": COMMAND, "t_s": result_t_s,
            "tags": {"element": element, "action": action, "status": status, "via": via},
            "fields": {"id": command_id,
                       "value": float(value) if value is not None else math.nan,
                       "result_delay_s": result_t_s - sent_t_s,
                       "applied_delay_s": (applied_t_s - sent_t_s) if applied_t_s is not None
                       else math.nan,
                       "reason": reason, "source": source}}


def comm_record(t_s: float, rtu: str, counts: Mapping[str, int]) -> Record:
    """One RTU link's message counters (sent, delivered, dropped, …) so far."""
    return {"measurement": COMM, "t_s": t_s, "tags": {"element": rtu},
            "fields": {k: int(v) for k, v in counts.items()}}


def crew_record(element: str, crew: object, requested_t_s: float, started_t_s: float,
                arrived_t_s: float, completed_t_s: float) -> Record:
    """A field crew's job at ``element``, at its completion."""
    return {"measurement": CREW, "t_s": completed_t_s,
            "tags": {"element": element, "crew": str(crew)},
            "fields": {"wait_s": started_t_s - requested_t_s,
                       "travel_s": arrived_t_s - started_t_s,
                       "work_s": completed_t_s - arrived_t_s}}


def protection_record(t_s: float, element: str, kind: str,
                      fields: Mapping[str, object]) -> Record:
    """A protection event (``trip``, ``reclose``, ``lockout``, …) with the protection
    model's fields, or ``count`` = 1 when it has none."""
    return {"measurement": PROTECTION, "t_s": t_s, "tags": {"element": element, "kind": kind},
            "fields": dict(fields) or {"count": 1}}


#: The twin's own responses in a ``frequency`` record [MW, unscaled, positive = more
#: injection], each held (synthetic inertia: averaged) over the step of ``dt_s`` it ends.
TWIN_RESPONSE_FIELDS = ("twin_pf_mw", "twin_fcr_battery_mw", "twin_fcr_ev_mw",
                        "twin_inertia_mw")


def frequency_record(t_s: float, f0_hz: float, step, p_disturbance_mw: float,
                     dt_s: float = 0.0, twin: dict[str, float] | None = None) -> Record:
    """The area's frequency at the end of a step (:class:`twin.models.frequency.AreaStep`)
    of ``dt_s`` seconds, with the step's extremes and the powers acting on it; ``twin``: the
    twin's units' responses (:data:`TWIN_RESPONSE_FIELDS`, and ``p_twin_area_mw``, all of
    them scaled to the area)."""
    state = step.state
    fields = {"f_hz": f0_hz + state.df_hz, "rocof_hz_s": state.rocof_hz_s,
              "f_min_hz": step.f_min_hz, "f_max_hz": step.f_max_hz,
              "rocof_max_hz_s": step.rocof_max_hz_s, "p_fcr_mw": state.p_fcr_mw,
              "p_afrr_mw": state.p_afrr_mw, "p_disturbance_mw": p_disturbance_mw,
              "dt_s": float(dt_s)}
    if twin:
        fields.update(twin)
    return {"measurement": FREQUENCY, "t_s": t_s, "tags": {"element": "area"},
            "fields": fields}


def dms_cell_record(t_s: float, cell: str, export_mw: float, schedule_mw: float,
                    **fields: float) -> Record:
    """One cell as the DMS sees it in a cycle: its export over the tie branches (+ = out),
    schedule and deviation; the controller's ``correction_mw`` and ``residual_mw``; with
    monitoring, inertia (``rotating_mws``, ``synthetic_mws``, ``deliverable_mws``,
    ``receivable_mws``) and storage (``storage_e_mwh``, ``storage_up_mw``, …)."""
    values = {"export_mw": export_mw, "schedule_mw": schedule_mw,
              "deviation_mw": export_mw - schedule_mw, **fields}
    return {"measurement": DMS_CELL, "t_s": t_s, "tags": {"element": cell},
            "fields": {k: float(v) for k, v in values.items()}}


def dms_storage_record(t_s: float, name: str, cell: str, soc: float, e_mwh: float,
                       p_mw: float, price_eur_mwh: float, up_mw: float,
                       down_mw: float, p_schedule_mw: float = math.nan) -> Record:
    """One battery as the DMS's storage monitoring sees it (SOC counted from metered power;
    ``up_mw``/``down_mw``: more / less injection it can hold for 15 minutes; the owner's
    timetable from now, + charging)."""
    return {"measurement": DMS_STORAGE, "t_s": t_s, "tags": {"element": name, "cell": cell},
            "fields": {"soc": float(soc), "e_mwh": float(e_mwh), "p_mw": float(p_mw),
                       "price_eur_mwh": float(price_eur_mwh), "up_mw": float(up_mw),
                       "down_mw": float(down_mw), "p_schedule_mw": float(p_schedule_mw)}}


def dms_interface_record(t_s: float, trafo: str, p_mw: float, q_mvar: float,
                         q_min_mvar: float, q_max_mvar: float, q_request_mvar: float | None,
                         p_max_import_mw: float | None = None,
                         p_max_export_mw: float | None = None) -> Record:
    """The TSO–DSO interface in a cycle: metered P and Q (HV side, + = import), the range
    of Q the DSO can realise there, and the TSO's requests (NaN: none)."""
    def value(v: float | None) -> float:
        return math.nan if v is None else float(v)

    return {"measurement": DMS_INTERFACE, "t_s": t_s, "tags": {"element": trafo},
            "fields": {"p_mw": float(p_mw), "q_mvar": float(q_mvar),
                       "q_min_mvar": float(q_min_mvar), "q_max_mvar": float(q_max_mvar),
                       "q_request_mvar": value(q_request_mvar),
                       "p_max_import_mw": value(p_max_import_mw),
                       "p_max_export_mw": value(p_max_export_mw)}}


def event_record(t_s: float, element: str, kind: str, message: str) -> Record:
    """An event the run survived, raised by a simulator (``command_rejected``,
    ``command_limited``, …); the recorder also lists it in ``run.json``."""
    return {"measurement": EVENT, "t_s": t_s, "tags": {"element": element, "kind": kind},
            "fields": {"message": message}}


def dms_estimation_record(t_s: float, success: bool, observable: bool, n_measurements: int,
                          n_states: int, chi2: float | None, bad_data: int, stale: int,
                          message: str) -> Record:
    """One DMS cycle's state estimation (``dms_cycle``, function ``state_estimation``)."""
    return {"measurement": DMS_CYCLE, "t_s": t_s,
            "tags": {"element": "dms", "function": "state_estimation"},
            "fields": {"success": int(success), "observable": int(observable),
                       "n_measurements": int(n_measurements), "n_states": int(n_states),
                       "chi2": float(chi2) if chi2 is not None else math.nan,
                       "bad_data": int(bad_data), "stale": int(stale), "message": message}}


def dms_cycle_note_record(t_s: float, function: str, message: str) -> Record:
    """A note of one DMS function in a cycle (``dms_cycle``), e.g. why it did nothing."""
    return {"measurement": DMS_CYCLE, "t_s": t_s,
            "tags": {"element": "dms", "function": function},
            "fields": {"message": message}}


def dms_estimate_record(t_s: float, bus: str, vm_pu: float) -> Record:
    """The estimated voltage of one bus."""
    return {"measurement": DMS_ESTIMATE, "t_s": t_s, "tags": {"element": bus},
            "fields": {"vm_pu": float(vm_pu)}}


def dms_short_circuit_record(t_s: float, element: str, ikss_max_ka: float, ip_max_ka: float,
                             breaking_ka: float | None, making_ka: float | None,
                             ok: bool) -> Record:
    """A breaker's duty in the present topology against its ratings (None: not rated)."""
    return {"measurement": DMS_SHORT_CIRCUIT, "t_s": t_s, "tags": {"element": element},
            "fields": {"ikss_max_ka": ikss_max_ka, "ip_max_ka": ip_max_ka,
                       "breaking_ka": math.nan if breaking_ka is None else breaking_ka,
                       "making_ka": math.nan if making_ka is None else making_ka,
                       "ok": int(ok)}}


def dms_decision_record(t_s: float, element: str, function: str, action: str, mode: str,
                        reason: str, value: float | None,
                        inputs: Mapping[str, object]) -> Record:
    """A DMS decision; each input becomes a field ``in_<name>`` (numbers as floats, so a
    field keeps one type across decisions; anything else as text)."""
    fields: dict[str, object] = {
        "reason": reason,
        "value": math.nan if value is None else float(value),
    }
    for key, v in inputs.items():
        if isinstance(v, (int, float, bool)):
            fields[f"in_{key}"] = float(v)
        else:
            fields[f"in_{key}"] = str(v)
    return {"measurement": DMS_DECISION, "t_s": t_s,
            "tags": {"element": element, "function": function, "action": action,
                     "mode": mode},
            "fields": fields}


# ------------------------------------------------------------------ points (run level)
def event_point(run_id: str, time_ns: int, element: str, kind: str, message: str) -> Point:
    """An event the run survived, e.g. ``kind`` = ``powerflow_failed``."""
    return Point(EVENT, time_ns, {"run": run_id, "element": element, "kind": kind},
                 {"message": message})


def grid_geo_bus_point(run_id: str, time_ns: int, bus: str, x_km: float,
                       y_km: float) -> Point:
    """Where a bus is."""
    return Point(GRID_GEO, time_ns, {"run": run_id, "element": bus, "kind": "bus"},
                 {"x_km": x_km, "y_km": y_km})


def grid_geo_dot_point(run_id: str, time_ns: int, element: str, table: str, dot: int,
                       x_km: float, y_km: float) -> Point:
    """Dot number ``dot`` along a branch (``table`` ``line`` or ``trafo``)."""
    return Point(GRID_GEO, time_ns,
                 {"run": run_id, "element": element, "kind": table, "dot": str(dot)},
                 {"x_km": x_km, "y_km": y_km})


def kpi_point(run_id: str, kpis: Mapping[str, object], time_ns: int) -> Point:
    """The run's numeric KPIs as one ``kpi`` point at the run's end (all floats, so a KPI
    that is an integer in one run and fractional in another keeps one InfluxDB field type),
    tags ``run`` and ``element`` = ``run``: what dashboards read for indices that InfluxQL
    cannot compute (SAIDI needs the customers per load)."""
    fields = {k: float(v) for k, v in kpis.items()
              if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    return Point(KPI, time_ns, {"run": run_id, "element": "run"}, fields)


def live_point(run_id: str, time_ns: int, speed: float, steps: int, lag_mean_s: float,
               lag_p99_s: float, lag_max_s: float) -> Point:
    """Live mode's pacing: the speed asked for and how late the steps were."""
    return Point(LIVE, time_ns, {"run": run_id, "element": "run"},
                 {"speed": speed, "steps": steps, "lag_mean_s": lag_mean_s,
                  "lag_p99_s": lag_p99_s, "lag_max_s": lag_max_s})


class Store(Protocol):
    """What every store offers."""

    def write(self, points: Sequence[Point]) -> None: ...

    def close(self) -> None: ...
