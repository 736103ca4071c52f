"""Expected against actual: a scenario's ``expectations`` checked after its run.

What a check looks at is collected from the recorded points as they stream, like the KPIs
(:class:`EventLog`, fed by the recorder simulator whatever the store: files or InfluxDB):

* element events, from the grid's truth — a switch ``opened`` / ``closed`` when its
  ``closed`` field changes, a load ``interrupted`` / ``restored`` when its ``supplied``
  field changes (the first sample of an element is its initial state, no event) — and from
  the protection's records: ``tripped``, ``reclosed``, ``locked_out`` (switches),
  ``faulted``, ``cleared``, ``repaired`` (lines);
* the DMS's decisions (time, function, action, target, mode).

:func:`evaluate` is a pure function of the spec, the KPIs and what was collected; it returns
one :class:`ExpectationResult` per check, saying what was expected and what happened, in
words an operator reads (times since the scenario's start, ``hh:mm:ss``).
:func:`expectations_report` is ``<run_dir>/expectations.json``::

    {"passed": bool, "n_passed": int, "n_failed": int,
     "results": [{"name", "kind", "passed", "expected", "actual"}, ...]}
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from twin.recording.columns import ColumnBatch
from twin.recording.schema import DMS_DECISION, LOAD, PROTECTION, SWITCH, Point
from twin.scenario.expectations import (
    DecisionCheck,
    EventCheck,
    ExpectationsSpec,
    KpiCheck,
    parse_kpi_check,
)

#: The file a run writes its results to, beside kpis.json.
EXPECTATIONS_FILE = "expectations.json"

#: Protection record kinds → (element table, event kind).
_PROTECTION_EVENTS = {"trip": ("switch", "tripped"), "reclose": ("switch", "reclosed"),
                      "lockout": ("switch", "locked_out"), "fault": ("line", "faulted"),
                      "cleared": ("line", "cleared"), "repaired": ("line", "repaired")}
#: State fields of the grid's tables → (event when it becomes false, when it becomes true).
_STATE_EVENTS = {SWITCH: ("closed", "opened", "closed"),
                 LOAD: ("supplied", "interrupted", "restored")}

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt,
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9),
    "!=": lambda a, b: not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9),
}


@dataclass(frozen=True)
class ElementEvent:
    """Something that happened to a grid element at ``t_s`` [s since start]."""

    t_s: float
    element: str  # "switch:Breaker 3"
    kind: str  # "opened", "restored", "tripped", …


@dataclass(frozen=True)
class DecisionEvent:
    """A recorded DMS decision at ``t_s`` [s since start]."""

    t_s: float
    function: str
    action: str
    target: str
    mode: str = ""

    @property
    def text(self) -> str:
        return f"{self.action} {self.target}"


@dataclass(frozen=True)
class ExpectationResult:
    """One check's outcome; ``expected`` and ``actual`` are plain sentences."""

    name: str
    kind: Literal["kpi", "event", "decisions"]
    passed: bool
    expected: str
    actual: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class EventLog:
    """Element events and DMS decisions collected from recorded points.

    Parameters
    ----------
    start_ns : int
        The scenario's start [ns since the epoch]: a point's time becomes seconds since it.
    watch : iterable of str, optional
        Only these elements' state changes (``"switch:Breaker 3"``, ``"load:Load R3"``);
        None: every switch and load (a large grid has thousands: pass what is checked).
        Protection events and decisions are always kept (there are few).
    """

    start_ns: int = 0
    watch: Iterable[str] | None = None
    events: list[ElementEvent] = field(default_factory=list)
    decisions: list[DecisionEvent] = field(default_factory=list)
    _names: dict[str, set[str]] | None = field(default=None, repr=False)
    _state: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)
    # from column batches, per table: (names, watched positions, state: -1 unknown, 0, 1)
    _tables: dict[str, tuple[Sequence[str], np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.watch is not None:
            self._names = {SWITCH: set(), LOAD: set()}
            for ref in self.watch:
                table, _, name = ref.partition(":")
                if table in self._names:
                    self._names[table].add(name)

    def add(self, points: Iterable[Point | ColumnBatch]) -> None:
        """Points as recorded (any order within a batch; each element's in time order), and
        the column batches of table snapshots (state changes found vectorised)."""
        start, names = self.start_ns, self._names
        for p in points:
            if type(p) is ColumnBatch:
                if p.measurement in _STATE_EVENTS:
                    self._add_batch(p)
                continue
            m = p.measurement
            if m in _STATE_EVENTS:
                element = p.tags.get("element", "")
                if names is not None and element not in names[m]:
                    continue
                key, when_false, when_true = _STATE_EVENTS[m]
                value = p.fields.get(key)
                if value is None:
                    continue
                state = bool(value)
                last = self._state.get((m, element))
                self._state[(m, element)] = state
                if last is not None and last != state:
                    self.events.append(ElementEvent((p.time_ns - start) / 1e9, f"{m}:{element}",
                                                    when_true if state else when_false))
            elif m == PROTECTION:
                table_kind = _PROTECTION_EVENTS.get(p.tags.get("kind", ""))
                if table_kind is not None:
                    self.events.append(ElementEvent(
                        (p.time_ns - start) / 1e9, f"{table_kind[0]}:{p.tags.get('element', '')}",
                        table_kind[1]))
            elif m == DMS_DECISION:
                tags = p.tags
                self.decisions.append(DecisionEvent(
                    (p.time_ns - start) / 1e9, tags.get("function", ""), tags.get("action", ""),
                    tags.get("element", ""), tags.get("mode", "")))


    def _add_batch(self, batch: ColumnBatch) -> None:
        m = batch.measurement
        key, when_false, when_true = _STATE_EVENTS[m]
        column = batch.fields.get(key)
        if column is None:
            return
        names = batch.names
        table = self._tables.get(m)
        if table is None or table[0] is not names:
            watched = np.ones(len(names), bool) if self._names is None else np.fromiter(
                (n in self._names[m] for n in names), bool, len(names))
            table = self._tables[m] = (names, watched, np.full(len(names), -1, np.int8))
        _, watched, state = table
        rows = np.arange(len(names)) if batch.rows is None else batch.rows
        take = watched[rows]
        mask = batch.valid[key]
        if mask is not None:
            take &= mask
        if not take.any():
            return
        rows = rows[take]
        now = (column[take] != 0).astype(np.int8)
        before = state[rows]
        state[rows] = now
        changed = np.flatnonzero((before >= 0) & (before != now))
        if not len(changed):
            return
        t_s = (batch.time_ns - self.start_ns) / 1e9
        for position, value in zip(rows[changed].tolist(), now[changed].tolist()):
            self.events.append(ElementEvent(t_s, f"{m}:{names[position]}",
                                            when_true if value else when_false))


# ----------------------------------------------------------------------------- evaluation
def evaluate(spec: ExpectationsSpec, kpis: Mapping[str, object],
             events: Sequence[ElementEvent], decisions: Sequence[DecisionEvent],
             end_s: float, fault_s: float | None = None) -> list[ExpectationResult]:
    """Every check of ``spec``, in the order kpis, events, decisions.

    Parameters
    ----------
    spec : ExpectationsSpec
        The scenario's ``expectations``.
    kpis : mapping
        The run's KPIs (``kpis.json``).
    events, decisions : sequences
        What happened (:class:`EventLog`), in any order: sorted by time here (stable).
    end_s : float
        The end of the run [s since start]: a window without an end ends there.
    fault_s : float, optional
        The scenario's first fault [s since start], for ``after: fault``.

    Returns
    -------
    list of ExpectationResult
    """
    events = sorted(events, key=lambda e: e.t_s)
    decisions = sorted(decisions, key=lambda d: d.t_s)
    return ([check_kpi(c, kpis) for c in spec.kpis]
            + [check_event(c, events, end_s, fault_s) for c in spec.events]
            + [check_decisions(c, decisions) for c in spec.decisions])


def check_kpi(check: KpiCheck, kpis: Mapping[str, object]) -> ExpectationResult:
    """``kpis[name] <op> value``; a KPI that is missing or not a number fails."""
    name, op, value = parse_kpi_check(check.check)
    expected = f"{name} {op} {value:g}"
    actual = kpis.get(name)
    if name not in kpis:
        return ExpectationResult(check.title, "kpi", False, expected, f"no KPI {name} in the run")
    if isinstance(actual, bool) or not isinstance(actual, (int, float)) \
            or not math.isfinite(actual):
        return ExpectationResult(check.title, "kpi", False, expected,
                                 f"{name} = n/a (not computed in this run)")
    return ExpectationResult(check.title, "kpi", _OPS[op](float(actual), value), expected,
                             f"{name} = {_number(actual)}")


def check_event(check: EventCheck, events: Sequence[ElementEvent], end_s: float,
                fault_s: float | None = None) -> ExpectationResult:
    """An event of ``check.event`` on ``check.element`` in the window (``never``: none).

    The window is closed at both ends: from ``after`` (the fault's time for ``after:
    fault``) to ``after + within``, to ``before``, or to ``end_s``."""
    if check.after == "fault":
        if fault_s is None:
            return ExpectationResult(check.title, "event", False, _window_text(check, None),
                                     "no fault in the scenario to count from")
        lo = fault_s
    else:
        lo = float(check.after)
    hi = lo + check.within if check.within is not None else \
        check.before if check.before is not None else end_s
    expected = f"{check.element} {_window_text(check, lo)}"
    times = [e.t_s for e in events if e.element == check.element and e.kind == check.event]
    inside = [t for t in times if lo <= t <= hi]
    what = check.event.replace("_", " ")
    if check.never:
        if inside:
            actual = f"{what} at {_clock(inside[0])}" + _since(inside[0], check, lo)
        elif times:
            actual = f"not in the window; {what} {_times_outside(times)}" + \
                _since(times[0], check, lo)
        else:
            actual = f"never {what}"
        return ExpectationResult(check.title, "event", not inside, expected, actual)
    if inside:
        return ExpectationResult(check.title, "event", True, expected,
                                 f"{what} at {_clock(inside[0])}" + _since(inside[0], check, lo))
    if times:
        actual = f"{what} only {_times_outside(times)}" + _since(times[0], check, lo)
    else:
        actual = f"never {what}"
    if hi > end_s:
        actual += f" (the run ended at {_clock(end_s)})"
    return ExpectationResult(check.title, "event", False, expected, actual)


def check_decisions(check: DecisionCheck, decisions: Sequence[DecisionEvent]
                    ) -> ExpectationResult:
    """``check.sequence`` as an ordered subsequence of the decisions (of its function)."""
    pool = [d for d in decisions if check.function is None or d.function == check.function]
    steps = " → ".join(s.text for s in check.sequence)
    expected = (f"{check.function} decisions" if check.function else "decisions") + \
        f" in this order: {steps}"
    matched: list[DecisionEvent] = []
    pos = 0
    for step in check.sequence:  # greedy: the earliest match leaves the most for the rest
        while pos < len(pool) and not (pool[pos].action == step.action and (
                step.target is None or pool[pos].target == step.target)):
            pos += 1
        if pos == len(pool):
            break
        matched.append(pool[pos])
        pos += 1
    if len(matched) == len(check.sequence):
        return ExpectationResult(check.title, "decisions", True, expected,
                                 "in order at " + ", ".join(_clock(d.t_s) for d in matched))
    missing = check.sequence[len(matched)]
    so_far = ", ".join(f"{d.text} at {_clock(d.t_s)}" for d in matched)
    actual = (f"{so_far}, then no {missing.text}" if matched else f"no {missing.text}")
    if pool:
        listed = ", ".join(f"{d.text} ({_clock(d.t_s)})" for d in pool[:8])
        actual += (f"; the {check.function} decisions were: " if check.function
                   else "; the decisions were: ") + listed + \
            (f" … ({len(pool)} in all)" if len(pool) > 8 else "")
    else:
        actual += f"; no {check.function + ' ' if check.function else ''}decisions at all"
    return ExpectationResult(check.title, "decisions", False, expected, actual)


# ----------------------------------------------------------------------------- files
def expectations_report(results: Sequence[ExpectationResult]) -> dict[str, object]:
    """The content of ``expectations.json``."""
    n_failed = sum(not r.passed for r in results)
    return {"passed": n_failed == 0, "n_passed": len(results) - n_failed, "n_failed": n_failed,
            "results": [r.as_dict() for r in results]}


def read_expectations(run_dir: str | Path) -> dict | None:
    """``<run_dir>/expectations.json``, or None when the run wrote none (a scenario without
    expectations) or it cannot be read."""
    path = Path(run_dir) / EXPECTATIONS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("results"), list) else None


def failure_line(report: Mapping[str, object]) -> str | None:
    """``"2 of 5 expectations failed: <name>: expected …; found …"`` (the first failure),
    None when every check passed."""
    results = report.get("results") or []
    failed = [r for r in results if not r.get("passed")]  # type: ignore[union-attr]
    if not failed:
        return None
    first = failed[0]
    return (f"{len(failed)} of {len(results)} expectations failed: {first['name']}: "  # type: ignore[arg-type]
            f"expected {first['expected']}; found {first['actual']}")


# ----------------------------------------------------------------------------- text
def _number(x: float) -> str:
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def _clock(t_s: float) -> str:
    """Scenario time since the start: ``00:30:05``, ``00:30:05.7``, ``1d 02:00:00``."""
    t_s = round(t_s, 3)
    days, rest = divmod(t_s, 86400.0)
    h, rest = divmod(rest, 3600.0)
    m, s = divmod(rest, 60.0)
    whole = int(s)
    frac = f"{s - whole:.3f}".rstrip("0").rstrip(".")[1:] if s != whole else ""
    text = f"{int(h):02d}:{int(m):02d}:{whole:02d}{frac}"
    return f"{int(days)}d {text}" if days else text


def _span(seconds: float) -> str:
    """A duration in words: ``5.7 s``, ``5 min``, ``2 h 6 min 27 s``."""
    seconds = round(seconds, 3)
    if seconds < 60:
        return f"{seconds:g} s"
    h, rest = divmod(seconds, 3600.0)
    m, s = divmod(rest, 60.0)
    parts = ([f"{int(h)} h"] if h else []) + ([f"{int(m)} min"] if m else []) + \
        ([f"{round(s, 3):g} s"] if s else [])
    return " ".join(parts)


def _window_text(check: EventCheck, lo: float | None) -> str:
    what = check.event.replace("_", " ")
    what = f"not {what}" if check.never else what
    if check.after == "fault":
        anchor = "the fault" + (f" ({_clock(lo)})" if lo is not None else "")
        if check.within is not None:
            return f"{what} within {_span(check.within)} after {anchor}"
        if check.before is not None:
            return f"{what} after {anchor} and before {_clock(check.before)}"
        return f"{what} after {anchor}"
    after = float(check.after)
    if check.within is not None:
        return f"{what} between {_clock(after)} and {_clock(after + check.within)}"
    if check.before is not None:
        return (f"{what} between {_clock(after)} and {_clock(check.before)}" if after
                else f"{what} before {_clock(check.before)}")
    return f"{what} after {_clock(after)}" if after else ("never " + check.event.replace(
        "_", " ") if check.never else f"{what} during the run")


def _since(t_s: float, check: EventCheck, lo: float) -> str:
    return f" ({_span(t_s - lo)} after the fault)" if check.after == "fault" and t_s >= lo else ""


def _times_outside(times: Sequence[float]) -> str:
    shown = ", ".join(_clock(t) for t in times[:5])
    return f"at {shown}" + (f" … ({len(times)} times)" if len(times) > 5 else "")
