"""``twin run --check`` end to end (issue 14 item 3): the paper's FLISR sequence, as
flisr_three_loads.yaml expects it, passes; a wrong expectation fails with exit 1 and says
what was expected and what was found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli import app

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FLISR = ROOT / "scenarios" / "flisr_three_loads.yaml"


def _run(*args: str):
    result = CliRunner().invoke(app, ["run", str(FLISR), "--no-progress", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_the_paper_sequence_passes(tmp_path):
    # the fault at 30 min, the repair done at 2 h 36 min: 2 h 40 min covers the sequence
    result = _run("--out", str(tmp_path / "run"), "--until", "2h40min", "--check")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "run" / "expectations.json").read_text())
    assert (report["passed"], report["n_passed"], report["n_failed"]) == (True, 15, 0)
    by_name = {r["name"]: r for r in report["results"]}
    assert [r["kind"] for r in report["results"]] == ["kpi"] * 4 + ["event"] * 9 + \
        ["decisions"] * 2
    # what happened, in the run's own numbers: Breaker 2 trips at the fault (30 min), the
    # DMS isolates and restores Load 3 within seconds, the crew repairs after 2 h 6 min
    assert by_name["protection trips Breaker 2"]["actual"] == \
        "tripped at 00:30:00 (0 s after the fault)"
    assert by_name["Load 3 back from Substation 2"]["actual"].startswith("restored at 00:30:0")
    assert by_name["crew repairs Line L1-L2"]["actual"].startswith("repaired at 02:36:")
    assert by_name["paper sequence: locate, isolate, restore, repair, return to normal"][
        "actual"].startswith("in order at 00:30:05, 00:30:05")
    run_info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_info["expectations"] == {"passed": True, "n_passed": 15, "n_failed": 0}
    assert "Expectations — 15 of 15 passed" in result.output
    page = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert ">Expectations</h2>" in page and "All 15 expectations passed." in page


def test_a_wrong_expectation_fails_with_exit_1(tmp_path):
    out = tmp_path / "run"
    result = _run("--out", str(out), "--until", "40min", "--check",
                  "--set", "expectations.kpis[0]=protection_trips == 2")
    assert result.exit_code == 1, result.output
    report = json.loads((out / "expectations.json").read_text())
    first = report["results"][0]
    assert (first["passed"], first["expected"], first["actual"]) == (
        False, "protection_trips == 2", "protection_trips = 1")
    # 40 min: the repair (2 h 36 min) and what follows it are not reached either
    failed = [r["name"] for r in report["results"] if not r["passed"]]
    assert failed == ["protection_trips == 2", "one crew job (the repair)",
                      "crew repairs Line L1-L2", "Load 2 back after the repair",
                      "paper sequence: locate, isolate, restore, repair, return to normal",
                      "Breaker 2 closes after the repair"]
    line = " ".join(result.output.split())  # (the console may wrap a long line)
    assert (f"check failed: {len(failed)} of 15 expectations failed: protection_trips == 2: "
            "expected protection_trips == 2; found protection_trips = 1") in line
    page = (out / "report.html").read_text(encoding="utf-8")
    assert f"{len(failed)} of 15 expectations failed." in page
    # without --check the run still succeeds, and says so
    again = _run("--out", str(out), "--overwrite", "--until", "40min",
                 "--set", "expectations.kpis[0]=protection_trips == 2")
    assert again.exit_code == 0, again.output
    assert "warning: 6 of 15 expectations failed" in " ".join(again.output.split())


def test_a_run_recorded_to_influxdb_is_checked_alike(tmp_path, influx_url, fresh_database):
    # the events and decisions are collected as the points stream, not read back from a store
    out = tmp_path / "run"
    result = _run("--out", str(out), "--until", "2h40min", "--check", "--set",
                  f"recording={{store: influx, influx: {{url: '{influx_url}', api: v1, "
                  f"database: {fresh_database}}}}}")
    assert result.exit_code == 0, result.output
    assert not (out / "store" / "dms_decision").exists()  # nothing spilled: all in InfluxDB
    report = json.loads((out / "expectations.json").read_text())
    assert (report["passed"], report["n_passed"]) == (True, 15)
