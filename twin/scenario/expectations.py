"""Scenario section ``expectations``: what a run is expected to show, checked after it.

Three kinds of check, each with a ``name`` (generated from the check when not given):

* ``kpis`` — ``"<kpi> <op> <number>"`` over the run's KPIs (``kpis.json``), ``op`` one of
  ``<= < >= > == !=``; e.g. ``voltage_violation_minutes <= 5``.
* ``events`` — something happened to an element (or never did) in a time window: a switch
  ``opened``, ``closed``, ``tripped``, ``reclosed`` or ``locked_out``; a load
  ``interrupted`` or ``restored``; a line ``faulted``, ``cleared`` or ``repaired``. The
  window starts ``after`` (``fault``: the first fault of the scenario, or a duration since
  the start; default the start) and ends ``within`` a duration after that, or ``before`` a
  duration since the start (default the run's end).
* ``decisions`` — DMS decisions in a given order: the ``sequence`` of (action, target) must
  appear in the decisions (of one ``function`` if given) in that order, other decisions
  between them allowed.

For example::

    expectations:
      kpis:
        - voltage_violation_minutes <= 5
        - {name: SAIDI below an hour, check: saidi_min < 60}
      events:
        - {element: "load:Load R3", event: restored, after: fault, within: 5min}
        - {element: "switch:Breaker 3", event: opened, before: 40min}
        - {element: "load:Load R1", event: interrupted, never: true}
      decisions:
        - name: paper sequence
          function: flisr
          sequence:
            - {action: open_switch, target: "switch:Breaker 3"}
            - {action: close_switch, target: "switch:Breaker 4"}

KPI names, element names and ``after: fault`` are checked against the run when it is
prepared (:func:`twin.build.checks.check_expectations`); the evaluation is
:mod:`twin.evaluation.expectations`.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from twin.grid.names import split_ref
from twin.scenario.base import Name, Seconds, Strict
from twin.timebase import format_duration, parse_duration_s, short_repr

#: Comparison operators of a KPI check.
KPI_OPERATORS = ("<=", ">=", "==", "!=", "<", ">")

_KPI_CHECK = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|!=|<|>)\s*"
    r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")

#: Event kinds per element kind: what the recorded points tell about an element.
EVENT_KINDS: dict[str, tuple[str, ...]] = {
    "switch": ("opened", "closed", "tripped", "reclosed", "locked_out"),
    "load": ("interrupted", "restored"),
    "line": ("faulted", "cleared", "repaired"),
}
EventKind = Literal["opened", "closed", "tripped", "reclosed", "locked_out", "interrupted",
                    "restored", "faulted", "cleared", "repaired"]


def parse_kpi_check(text: str) -> tuple[str, str, float]:
    """``"saidi_min < 60"`` → ``("saidi_min", "<", 60.0)``.

    Raises
    ------
    ValueError
        Completing "expected …": ``"'<kpi> <op> <number>' with op in <= >= == != < >,
        e.g. 'voltage_violation_minutes <= 5'; found '…'"``.
    """
    match = _KPI_CHECK.match(text) if isinstance(text, str) else None
    if match is None or not math.isfinite(float(match.group(3))):
        raise ValueError(f"'<kpi> <op> <number>' with op in {' '.join(KPI_OPERATORS)}, e.g. "
                         f"'voltage_violation_minutes <= 5'; found {short_repr(text)}")
    return match.group(1), match.group(2), float(match.group(3))


class KpiCheck(Strict):
    """A KPI compared with a number: ``check: "saidi_min < 60"``."""

    name: Name | None = Field(None, description="Default: the check itself.")
    check: str = Field(..., description="'<kpi> <op> <number>', op in <= < >= > == !=.")

    @field_validator("check")
    @classmethod
    def _parsed(cls, text: str) -> str:
        parse_kpi_check(text)
        return text.strip()

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: object) -> object:
        if isinstance(data, str):
            return {"check": data}
        if not isinstance(data, dict):  # a ValueError: pydantic reports it with the key path
            raise ValueError(f"'<kpi> <op> <number>' or {{name, check}}; found "  # noqa: TRY004
                             f"{short_repr(data)}")
        return data

    @property
    def kpi(self) -> str:
        return parse_kpi_check(self.check)[0]

    @property
    def op(self) -> str:
        return parse_kpi_check(self.check)[1]

    @property
    def value(self) -> float:
        return parse_kpi_check(self.check)[2]

    @property
    def title(self) -> str:
        return self.name or self.check


class EventCheck(Strict):
    """An event on an element in a time window (or, with ``never``, not in it)."""

    name: Name | None = Field(None, description="Default: generated from the check.")
    element: str = Field(..., description="'switch:<name>', 'load:<name>' or 'line:<name>'.")
    event: EventKind = Field(..., description="switch: opened, closed, tripped, reclosed, "
                             "locked_out; load: interrupted, restored; line: faulted, cleared, "
                             "repaired.")
    after: Literal["fault"] | float = Field(
        0.0, description="Start of the window: 'fault' (the scenario's first fault) or a "
        "duration since the start, e.g. '30min'.")
    within: Seconds | None = Field(None, description="The window ends this long after "
                                   "'after'.")
    before: Seconds | None = Field(None, description="The window ends at this duration since "
                                   "the start (default: the run's end).")
    never: bool = Field(False, description="Expect no such event in the window.")

    @field_validator("after", mode="before")
    @classmethod
    def _after(cls, value: object) -> object:
        if value == "fault":
            return value
        try:
            return parse_duration_s(value, allow_zero=True)  # type: ignore[arg-type]
        except ValueError as exc:
            raise ValueError(f"'fault' (the scenario's first fault) or a duration since the "
                             f"start; {exc}") from None

    @field_validator("element")
    @classmethod
    def _ref(cls, ref: str) -> str:
        kind, name = split_ref(ref, tuple(EVENT_KINDS), strip=True)
        return f"{kind}:{name}"

    @model_validator(mode="after")
    def _consistent(self) -> EventCheck:
        kind = self.element.partition(":")[0]
        if self.event not in EVENT_KINDS[kind]:
            raise ValueError(f"an event of a {kind} ({', '.join(EVENT_KINDS[kind])}); found "
                             f"{self.event!r}")
        if self.within is not None and self.before is not None:
            raise ValueError("at most one of 'within' (after 'after') and 'before' (since the "
                             "start); found both")
        if self.before is not None and isinstance(self.after, float) \
                and self.before <= self.after:
            raise ValueError(f"'before' later than 'after'; found after "
                             f"{format_duration(self.after)}, before "
                             f"{format_duration(self.before)}")
        return self

    @property
    def title(self) -> str:
        if self.name:
            return self.name
        return f"{self.element.partition(':')[2]} {'never ' if self.never else ''}{self.event}"


class DecisionStep(Strict):
    """One decision of a sequence: its action and, optionally, its target."""

    action: Name = Field(..., description="e.g. open_switch, close_switch, repair_line.")
    target: str | None = Field(None, description="e.g. 'switch:Breaker 3'; any if not given.")

    @field_validator("target")
    @classmethod
    def _ref(cls, ref: str | None) -> str | None:
        if ref is None:
            return None
        kind, name = split_ref(ref, strip=True)
        return f"{kind}:{name}"

    @property
    def text(self) -> str:
        return f"{self.action} {self.target}" if self.target else self.action


class DecisionCheck(Strict):
    """DMS decisions that must appear in this order (others may come between them)."""

    name: Name | None = Field(None, description="Default: generated from the sequence.")
    function: Name | None = Field(None, description="Only decisions of this DMS function "
                                  "(flisr, load_management, volt_var, …).")
    sequence: list[DecisionStep] = Field(..., min_length=1)

    @property
    def title(self) -> str:
        if self.name:
            return self.name
        return (f"{self.function}: " if self.function else "") + \
            " → ".join(s.text for s in self.sequence)


def _text_or_mapping(schema: dict) -> None:
    """A KPI check is text or a mapping: say so in ``twin schema`` (editor completion)."""
    schema["items"] = {"anyOf": [{"type": "string"}, schema["items"]]}


class ExpectationsSpec(Strict):
    """What the run is expected to show; checked after it (``expectations.json``)."""

    kpis: list[KpiCheck] = Field(
        [], description="'<kpi> <op> <number>', e.g. 'voltage_violation_minutes <= 5', or "
        "{name, check}.", json_schema_extra=_text_or_mapping)
    events: list[EventCheck] = Field([], description="Events on elements in time windows.")
    decisions: list[DecisionCheck] = Field(
        [], description="Ordered sequences of DMS decisions (action, target).")

    @property
    def count(self) -> int:
        return len(self.kpis) + len(self.events) + len(self.decisions)
