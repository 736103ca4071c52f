"""One run as a job: the row it returns for a completed run, for a scenario the overrides
break (before the run) and for a run that fails while building its world."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twin.scenario import load_scenario
from twin.study.jobs import Job, one_line, run_job

ROOT = Path(__file__).resolve().parents[2]
#: A small scenario (three loads, one fault at 30 min); a few minutes of it run in seconds.
SMALL = str(ROOT / "scenarios" / "flisr_three_loads.yaml")
ROW_KEYS = {"key", "scenario", "seed", "overrides", "status", "error", "wall_time_s",
            "run_dir", "kpis", "expectations"}


def test_the_seed_goes_last():
    job = Job(key="k", scenario=SMALL, overrides=("seed=5", "dms.cycle=2min"), seed=7)
    assert job.all_overrides() == ["seed=5", "dms.cycle=2min", "seed=7"]
    assert Job(key="k", scenario=SMALL, overrides=("a=1",)).all_overrides() == ["a=1"]


def test_a_scenario_the_overrides_break_is_a_failed_row(tmp_path):
    job = Job(key="bad", scenario=SMALL, overrides=("no_such_section.x=1",), seed=2,
              until="5min", run_dir=str(tmp_path / "bad"))
    row = run_job(job)
    assert set(row) == ROW_KEYS
    assert row["status"] == "failed"
    assert "no_such_section" in row["error"] and "\n" not in row["error"]
    assert row["seed"] == 2 and row["overrides"] == ["no_such_section.x=1"]
    assert row["kpis"] == {} and row["expectations"] == []


def test_one_line_redacts_and_cuts():
    text = one_line(RuntimeError("http://user:secret@host/x failed\nsecond line"))
    assert text.startswith("RuntimeError: ") and "secret" not in text and "second" not in text
    assert len(one_line(ValueError("x" * 1000))) <= 300


@pytest.mark.slow
def test_a_completed_run_is_a_row_with_its_kpis_and_expectations(tmp_path):
    run_dir = tmp_path / "runs" / "k1"
    row = run_job(Job(key="k1", scenario=SMALL, overrides=("rtus[1].scan_period=1min",),
                      until="5min", run_dir=str(run_dir)))
    assert row["status"] == "completed" and row["error"] == ""
    # no seed given: the scenario's own
    assert row["seed"] == load_scenario(SMALL).seed
    assert row["kpis"] == json.loads((run_dir / "kpis.json").read_text())
    assert row["kpis"]["grid_solves"] > 0
    expectations = run_dir / "expectations.json"
    if expectations.exists():  # written by the runner when the scenario states some
        assert row["expectations"] == json.loads(expectations.read_text())["results"]
    assert row["wall_time_s"] > 0
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["overrides"] == ["rtus[1].scan_period=1min"]


@pytest.mark.slow
def test_a_run_that_fails_at_run_time_is_a_failed_row_and_the_directory_is_reused(tmp_path):
    # the schema accepts any bus name; building the world finds the grid lacks it
    load_scenario(SMALL, ["crews.depot_bus=Nowhere"])
    run_dir = tmp_path / "k"
    row = run_job(Job(key="k", scenario=SMALL, overrides=("crews.depot_bus=Nowhere",),
                      seed=4, until="5min", run_dir=str(run_dir)))
    assert row["status"] == "failed" and "Nowhere" in row["error"]
    assert "\n" not in row["error"] and "Traceback" not in row["error"]
    assert row["seed"] == 4 and row["kpis"] == {}
    # the same directory again (a retry): replaced, not refused
    row = run_job(Job(key="k", scenario=SMALL, seed=4, until="5min", run_dir=str(run_dir)))
    assert row["status"] == "completed" and row["kpis"]
