"""Expected against actual (twin.evaluation.expectations): the pure checks, and the event log
that collects element events and decisions from recorded points."""

from __future__ import annotations

import json

import pytest

from twin.evaluation.expectations import (
    DecisionEvent,
    ElementEvent,
    EventLog,
    evaluate,
    expectations_report,
    failure_line,
    read_expectations,
)
from twin.recording.schema import (
    Point,
    dms_decision_record,
    protection_record,
    record_point,
)
from twin.scenario.expectations import ExpectationsSpec

START_NS = 1_768_384_800_000_000_000  # 2026-01-14T10:00:00Z


def _spec(**data) -> ExpectationsSpec:
    return ExpectationsSpec.model_validate(data)


def _one(spec: ExpectationsSpec, kpis=None, events=(), decisions=(), end_s=18000.0,
         fault_s=1800.0):
    (result,) = evaluate(spec, kpis or {}, list(events), list(decisions), end_s, fault_s)
    return result


# ------------------------------------------------------------------------------- KPIs


@pytest.mark.parametrize("check, passed", [
    ("saidi_min < 60", True), ("saidi_min < 44.07", False), ("saidi_min <= 44.08", True),
    ("saidi_min > 44.08", False), ("saidi_min >= 44.08", True), ("saidi_min == 44.08", True),
    ("saidi_min != 44.08", False), ("saidi_min == 44.0800000001", True),  # within 1e-9
    ("saidi_min == 44.1", False),
])
def test_kpi_comparisons(check, passed):
    r = _one(_spec(kpis=[check]), kpis={"saidi_min": 44.08})
    assert (r.kind, r.passed, r.name, r.actual) == ("kpi", passed, check, "saidi_min = 44.08")


def test_kpi_missing_or_not_computed_fails_saying_so():
    spec = _spec(kpis=[{"name": "SE good", "check": "se_error_max_pu <= 0.01"}, "x_mwh < 1"])
    kept, missing = evaluate(spec, {"se_error_max_pu": None}, [], [], 100.0)
    assert (kept.name, kept.passed, kept.expected) == ("SE good", False, "se_error_max_pu <= 0.01")
    assert kept.actual == "se_error_max_pu = n/a (not computed in this run)"
    assert (missing.passed, missing.actual) == (False, "no KPI x_mwh in the run")


# ------------------------------------------------------------------------------ events
RESTORED = [ElementEvent(1800.0, "load:Load R3", "interrupted"),
            ElementEvent(1805.7, "load:Load R3", "restored"),
            ElementEvent(9386.8, "load:Load R3", "interrupted"),
            ElementEvent(9387.2, "load:Load R3", "restored")]


def test_event_within_after_the_fault():
    spec = _spec(events=[{"name": "Load 3 back", "element": "load:Load R3",
                          "event": "restored", "after": "fault", "within": "5min"}])
    r = _one(spec, events=RESTORED)
    assert (r.name, r.kind, r.passed) == ("Load 3 back", "event", True)
    assert r.expected == "load:Load R3 restored within 5 min after the fault (00:30:00)"
    assert r.actual == "restored at 00:30:05.7 (5.7 s after the fault)"
    # a fault later than the restoration: the first one in the window is the second
    late = _one(spec, events=RESTORED, fault_s=9100.0)
    assert late.passed and late.actual == "restored at 02:36:27.2 (4 min 47.2 s after the fault)"
    # not within 5 s of the fault
    tight = _one(_spec(events=[{"element": "load:Load R3", "event": "restored",
                                "after": "fault", "within": "5s"}]), events=RESTORED)
    assert not tight.passed
    assert tight.actual == ("restored only at 00:30:05.7, 02:36:27.2 (5.7 s after the "
                            "fault)")


def test_event_window_bounds_are_inclusive_and_the_window_is_per_element_and_kind():
    at = [ElementEvent(2400.0, "switch:Breaker 3", "opened")]
    assert _one(_spec(events=[{"element": "switch:Breaker 3", "event": "opened",
                               "before": "40min"}]), events=at).passed
    assert _one(_spec(events=[{"element": "switch:Breaker 3", "event": "opened",
                               "after": "40min"}]), events=at).passed
    missed = _one(_spec(events=[{"element": "switch:Breaker 3", "event": "opened",
                                 "before": "39min"}]), events=at)
    assert not missed.passed
    assert missed.expected == "switch:Breaker 3 opened before 00:39:00"
    assert missed.actual == "opened only at 00:40:00"
    # another element, another kind: not this event
    other = [ElementEvent(60.0, "switch:Breaker 4", "opened"),
             ElementEvent(60.0, "switch:Breaker 3", "closed")]
    r = _one(_spec(events=[{"element": "switch:Breaker 3", "event": "opened"}]), events=other)
    assert (r.passed, r.expected, r.actual) == (False, "switch:Breaker 3 opened during the run",
                                                "never opened")


def test_event_that_never_happened_before_the_run_ended():
    r = _one(_spec(events=[{"element": "line:Line L1-L2", "event": "repaired",
                            "after": "fault", "within": "3h"}]), end_s=3600.0)
    assert not r.passed
    assert r.expected == "line:Line L1-L2 repaired within 3 h after the fault (00:30:00)"
    assert r.actual == "never repaired (the run ended at 01:00:00)"
    no_fault = _one(_spec(events=[{"element": "line:Line L1-L2", "event": "repaired",
                                   "after": "fault"}]), fault_s=None)
    assert not no_fault.passed and no_fault.actual == "no fault in the scenario to count from"


def test_never():
    spec = _spec(events=[{"name": "Load 2 off until the repair", "element": "load:Load R3",
                          "event": "restored", "after": "fault", "within": "2h",
                          "never": True}])
    r = _one(spec, events=RESTORED[2:])  # restored only after 2 h 6 min
    assert r.passed
    assert r.expected == "load:Load R3 not restored within 2 h after the fault (00:30:00)"
    assert r.actual == ("not in the window; restored at 02:36:27.2 (2 h 6 min 27.2 s after "
                        "the fault)")
    broken = _one(spec, events=RESTORED)
    assert not broken.passed and broken.actual == "restored at 00:30:05.7 (5.7 s after the fault)"
    whole_run = _one(_spec(events=[{"element": "load:Load R1", "event": "interrupted",
                                    "never": True}]))
    assert (whole_run.passed, whole_run.expected, whole_run.actual) == (
        True, "load:Load R1 never interrupted", "never interrupted")


# --------------------------------------------------------------------------- decisions
def _d(t_s, action, target, function="flisr"):
    return DecisionEvent(t_s, function, action, target, "direct")


PAPER = [_d(1805.0, "locate_fault", "switch:Breaker 2"),
         _d(1805.0, "open_switch", "switch:Breaker 3"),
         _d(1805.5, "close_switch", "switch:Breaker 4"),
         _d(1805.5, "repair_line", "line:Line L1-L2"),
         _d(9385.9, "close_switch", "switch:Breaker 2"),
         _d(9386.3, "open_switch", "switch:Breaker 4"),
         _d(9386.9, "close_switch", "switch:Breaker 3")]
SEQUENCE = [{"action": "open_switch", "target": "switch:Breaker 3"},
            {"action": "close_switch", "target": "switch:Breaker 4"},
            {"action": "repair_line"},
            {"action": "open_switch", "target": "switch:Breaker 4"},
            {"action": "close_switch", "target": "switch:Breaker 3"}]


def test_a_decision_sequence_is_an_ordered_subsequence():
    spec = _spec(decisions=[{"name": "paper", "function": "flisr", "sequence": SEQUENCE}])
    r = _one(spec, decisions=PAPER)
    assert (r.kind, r.passed) == ("decisions", True)
    assert r.expected == ("flisr decisions in this order: open_switch switch:Breaker 3 → "
                          "close_switch switch:Breaker 4 → repair_line → open_switch "
                          "switch:Breaker 4 → close_switch switch:Breaker 3")
    assert r.actual == "in order at 00:30:05, 00:30:05.5, 00:30:05.5, 02:36:26.3, 02:36:26.9"
    # the order is by time, not by the order the decisions are handed over (decisions at
    # the same time keep theirs: the order the DMS made them in)
    assert _one(spec, decisions=PAPER[4:] + PAPER[:4]).passed
    assert not _one(spec, decisions=PAPER[::-1]).passed  # repair_line before close Breaker 4


def test_a_decision_sequence_out_of_order_fails_naming_what_came():
    # restoring before isolating: close Breaker 4 first, then open Breaker 3
    swapped = [_d(1805.0, "close_switch", "switch:Breaker 4"),
               _d(1805.5, "open_switch", "switch:Breaker 3")]
    spec = _spec(decisions=[{"function": "flisr", "sequence": SEQUENCE[:2]}])
    r = _one(spec, decisions=swapped)
    assert not r.passed and r.name == ("flisr: open_switch switch:Breaker 3 → close_switch "
                                       "switch:Breaker 4")
    assert r.actual == ("open_switch switch:Breaker 3 at 00:30:05.5, then no close_switch "
                        "switch:Breaker 4; the flisr decisions were: close_switch "
                        "switch:Breaker 4 (00:30:05), open_switch switch:Breaker 3 "
                        "(00:30:05.5)")
    # the same step twice needs two decisions
    twice = _spec(decisions=[{"sequence": [SEQUENCE[0], SEQUENCE[0]]}])
    assert not _one(twice, decisions=PAPER).passed
    assert _one(twice, decisions=PAPER + [_d(9999.0, "open_switch", "switch:Breaker 3")]).passed


def test_a_decision_sequence_only_counts_its_function():
    other = [_d(t, a, e, "load_management") for t, a, e in
             [(60.0, "open_switch", "switch:Breaker 3"), (61.0, "close_switch", "switch:Breaker 4")]]
    spec = _spec(decisions=[{"function": "flisr", "sequence": SEQUENCE[:2]}])
    r = _one(spec, decisions=other)
    assert not r.passed
    assert r.actual == "no open_switch switch:Breaker 3; no flisr decisions at all"
    anyone = _spec(decisions=[{"sequence": SEQUENCE[:2]}])
    assert _one(anyone, decisions=other).passed


# -------------------------------------------------------------------- the event log
def _point(measurement, t_s, element, **fields):
    return Point(measurement, START_NS + round(t_s * 1e9), {"run": "r", "element": element},
                 fields)


def test_event_log_turns_recorded_points_into_events_and_decisions():
    log = EventLog(START_NS, watch=["switch:Breaker 3", "load:Load R3"])
    steps = [  # (t_s, Breaker 3 closed, Load R3 supplied, Load R2 supplied)
        (0.0, True, True, True), (1800.0, True, False, False), (1805.3, False, False, False),
        (1805.7, False, True, False), (1860.0, False, True, False)]
    for t, closed, r3, r2 in steps:
        log.add([_point("switch", t, "Breaker 3", closed=closed, tripped=False),
                 _point("switch", t, "Breaker 2", closed=t < 1800),  # not watched
                 _point("load", t, "Load R3", supplied=r3, p_mw=1.0),
                 _point("load", t, "Load R2", supplied=r2)])
    log.add([record_point(protection_record(1800.0, "Breaker 2", "trip", {}), "r",
                          START_NS + 1_800_000_000_000),
             record_point(protection_record(1800.0, "Line L1-L2", "fault", {}), "r",
                          START_NS + 1_800_000_000_000),
             record_point(dms_decision_record(1805.0, "switch:Breaker 3", "flisr",
                                              "open_switch", "direct", "isolate", None, {}),
                          "r", START_NS + 1_805_000_000_000),
             _point("load", 1900.0, "Load R3")])  # no supplied field: no event
    assert [(e.t_s, e.element, e.kind) for e in log.events] == [
        (1800.0, "load:Load R3", "interrupted"), (1805.3, "switch:Breaker 3", "opened"),
        (1805.7, "load:Load R3", "restored"), (1800.0, "switch:Breaker 2", "tripped"),
        (1800.0, "line:Line L1-L2", "faulted")]
    assert log.decisions == [DecisionEvent(1805.0, "flisr", "open_switch", "switch:Breaker 3",
                                           "direct")]
    every = EventLog(START_NS)  # no watch list: every switch and load
    for t, closed, r3, r2 in steps:
        every.add([_point("switch", t, "Breaker 2", closed=t < 1800),
                   _point("load", t, "Load R2", supplied=r2)])
    assert [(e.t_s, e.element, e.kind) for e in every.events] == [
        (1800.0, "switch:Breaker 2", "opened"), (1800.0, "load:Load R2", "interrupted")]
    # and evaluated: the log's times are what the checks see
    spec = _spec(events=[{"element": "load:Load R3", "event": "restored", "after": "fault",
                          "within": "5min"}],
                 decisions=[{"sequence": [{"action": "open_switch"}]}])
    results = evaluate(spec, {}, log.events, log.decisions, 3600.0, 1800.0)
    assert [r.passed for r in results] == [True, True]


# -------------------------------------------------------------------------------- file
def test_report_file_and_failure_line(tmp_path):
    spec = _spec(kpis=["saidi_min < 60", "crew_jobs == 2"],
                 events=[{"element": "switch:Breaker 3", "event": "opened"}])
    results = evaluate(spec, {"saidi_min": 44.08, "crew_jobs": 1},
                       [ElementEvent(1805.3, "switch:Breaker 3", "opened")], [], 3600.0)
    report = expectations_report(results)
    assert report == {"passed": False, "n_passed": 2, "n_failed": 1, "results": [
        {"name": "saidi_min < 60", "kind": "kpi", "passed": True, "expected": "saidi_min < 60",
         "actual": "saidi_min = 44.08"},
        {"name": "crew_jobs == 2", "kind": "kpi", "passed": False, "expected": "crew_jobs == 2",
         "actual": "crew_jobs = 1"},
        {"name": "Breaker 3 opened", "kind": "event", "passed": True,
         "expected": "switch:Breaker 3 opened during the run",
         "actual": "opened at 00:30:05.3"}]}
    assert failure_line(report) == ("1 of 3 expectations failed: crew_jobs == 2: expected "
                                    "crew_jobs == 2; found crew_jobs = 1")
    assert failure_line(expectations_report(results[:1])) is None
    assert read_expectations(tmp_path) is None  # a run without expectations
    (tmp_path / "expectations.json").write_text(json.dumps(report))
    assert read_expectations(tmp_path) == report
    (tmp_path / "expectations.json").write_text("{broken")
    assert read_expectations(tmp_path) is None
