"""The scenario's ``expectations`` section (twin.scenario.expectations): what it accepts, and
one clear error with the key path for what it does not; names checked against the grid and
the KPIs at validation (twin.build.checks.check_expectations)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from twin.cli import app
from twin.scenario import ScenarioError, parse_scenario
from twin.scenario.expectations import parse_kpi_check

ROOT = Path(__file__).resolve().parents[2]
FLISR = ROOT / "scenarios" / "flisr_three_loads.yaml"


def _base(**expectations) -> dict:
    data = yaml.safe_load(FLISR.read_text(encoding="utf-8"))
    data["expectations"] = expectations
    return data


def _error(**expectations) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(_base(**expectations), "s.yaml")
    return str(info.value)


def test_the_suggested_syntax_parses():
    sc = parse_scenario(_base(
        kpis=["voltage_violation_minutes <= 5", {"name": "SAIDI", "check": "saidi_min<60"},
              "x >= -1.5e3"],
        events=[{"name": "Load 3 back", "element": "load: Load R3", "event": "restored",
                 "within": "5min", "after": "fault"},
                {"element": "switch:Breaker 3", "event": "opened", "before": "40min"},
                {"element": "load:Load R1", "event": "interrupted", "never": True}],
        decisions=[{"name": "paper", "function": "flisr", "sequence": [
            {"action": "open_switch", "target": "switch:Breaker 3"},
            {"action": "close_switch"}]}]), "s.yaml")
    e = sc.expectations
    assert e.count == 7
    assert [(k.kpi, k.op, k.value, k.title) for k in e.kpis] == [
        ("voltage_violation_minutes", "<=", 5.0, "voltage_violation_minutes <= 5"),
        ("saidi_min", "<", 60.0, "SAIDI"), ("x", ">=", -1500.0, "x >= -1.5e3")]
    restored, opened, never = e.events
    # the name is stripped of the hand-written space; durations in seconds
    assert (restored.element, restored.after, restored.within) == ("load:Load R3", "fault", 300.0)
    assert (opened.after, opened.before, opened.title) == (0.0, 2400.0, "Breaker 3 opened")
    assert never.never and never.title == "Load R1 never interrupted"
    assert [s.text for s in e.decisions[0].sequence] == ["open_switch switch:Breaker 3",
                                                        "close_switch"]
    # no section: no checks (and run.json / expectations.json say nothing of them)
    assert parse_scenario(yaml.safe_load(FLISR.read_text()) | {"expectations": {}},
                          "s").expectations.count == 0


@pytest.mark.parametrize("text", ["saidi_min", "saidi_min =< 5", "saidi_min < five",
                                  "< 5", "saidi min < 5", "saidi_min < nan", "a < 1e999"])
def test_a_kpi_check_that_is_not_kpi_op_number(text):
    message = _error(kpis=["saidi_min < 60", text])
    assert message.startswith("s.yaml: expectations.kpis[1]"), message
    assert "expected '<kpi> <op> <number>'" in message and f"found {text!r}" in message
    with pytest.raises(ValueError):
        parse_kpi_check(text)


@pytest.mark.parametrize("event, message", [
    ({"element": "switch:Breaker 3", "event": "restored"},
     ("expectations.events[0]: expected an event of a switch (opened, closed, tripped, "
      "reclosed, locked_out); found 'restored'")),
    ({"element": "Breaker 3", "event": "opened"},
     ("expectations.events[0].element: expected an element reference '<kind>:<name>' with "
      "kind in switch, load, line; found 'Breaker 3'")),
    ({"element": "bus:Load 1", "event": "opened"}, "with kind in switch, load, line"),
    ({"element": "switch:Breaker 3", "event": "opend"}, "expectations.events[0].event"),
    ({"element": "switch:Breaker 3", "event": "opened", "within": "5min", "before": "1h"},
     "at most one of 'within' (after 'after') and 'before'"),
    ({"element": "switch:Breaker 3", "event": "opened", "after": "1h", "before": "30min"},
     "expected 'before' later than 'after'; found after 01:00:00, before 00:30:00"),
    ({"element": "switch:Breaker 3", "event": "opened", "after": "the fault"},
     ("expectations.events[0].after: expected 'fault' (the scenario's first fault) or a "
      "duration since the start;")),
    ({"element": "switch:Breaker 3", "event": "opened", "within": "0s"},
     "expectations.events[0].within"),
    ({"element": "switch:Breaker 3", "event": "opened", "when": "1h"},
     "expectations.events[0].when: unknown key"),
])
def test_bad_event_checks(event, message):
    assert message in _error(events=[event])


def test_bad_decision_checks():
    assert "expectations.decisions[0].sequence: expected: list should have at least 1 item" \
        in _error(decisions=[{"sequence": []}])
    assert "expectations.decisions[0].sequence[1].action: required key is missing" in _error(
        decisions=[{"sequence": [{"action": "open_switch"}, {"target": "switch:Breaker 3"}]}])
    assert "expectations.decisions[0].sequence[0].target: expected '<table>:<name>'" in _error(
        decisions=[{"sequence": [{"action": "open_switch", "target": "Breaker 3"}]}])
    assert "expectations.decisions: expected: input should be a valid list" in _error(
        decisions={"sequence": []})


def _validate(tmp_path: Path, expectations: dict, faults: bool = True) -> tuple[int, str]:
    data = _base(**expectations)
    if not faults:
        data["faults"] = []
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(path)])
    return result.exit_code, result.output


def test_validate_checks_kpi_and_element_names(tmp_path):
    code, out = _validate(tmp_path, {"kpis": ["saidi_min < 60", "saidi < 60"]})
    assert code == 2
    assert "expectations.kpis[1]: expected a KPI of the run (close names: saidi_min, saifi," \
        in out and "found 'saidi' in 'saidi < 60'" in out
    code, out = _validate(tmp_path, {"events": [{"element": "load:Load 3",
                                                  "event": "restored"}]})
    assert code == 2
    assert "expectations.events[0].element: expected a load of the grid (Load R3" in out
    assert "found 'load:Load 3'" in out
    code, out = _validate(tmp_path, {"decisions": [{"sequence": [
        {"action": "open_switch", "target": "switch:Breaker 9"}]}]})
    assert code == 2
    assert "expectations.decisions[0].sequence[0].target: expected a switch of the grid" in out
    code, out = _validate(tmp_path, {"events": [{"element": "load:Load R3", "event": "restored",
                                                  "after": "fault", "within": "5min"}]},
                          faults=False)
    assert code == 2
    assert "expectations.events[0].after: expected a fault in the scenario's 'faults'" in out
    # a KPI that is not a number (the band, an element name) cannot be compared either
    code, out = _validate(tmp_path, {"kpis": ["max_line_loading_element == 1"]})
    assert code == 2 and "expectations.kpis[0]: expected a KPI of the run" in out


def test_validate_accepts_the_shipped_expectations():
    result = CliRunner().invoke(app, ["validate", str(FLISR),
                                      str(ROOT / "scenarios" / "load_management_three_grids.yaml")])
    assert result.exit_code == 0, result.output
    assert "checked expectations: 15 checks" in result.output
    assert "checked expectations: 10 checks" in result.output


def test_a_kpi_check_is_text_or_a_mapping():
    assert "expectations.kpis[0]: expected '<kpi> <op> <number>' or {name, check}; found 5" \
        in _error(kpis=[5])
    assert "expectations.kpis[0].check: required key is missing" in _error(kpis=[{"name": "x"}])
    assert "expectations.kpis[0].name: expected a non-blank name" in _error(
        kpis=[{"name": " ", "check": "saidi_min < 60"}])
