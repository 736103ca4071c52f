"""``twin sweep``: a bad study file or option is one line and exit 2, before any run; a
whole (small) sweep on two local workers records a failing run, writes the table and the
page, and a second invocation skips every run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from twin.cli import app

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "scenarios" / "flisr_three_loads.yaml"


def _sweep(*args: str):
    result = CliRunner().invoke(app, ["sweep", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(f"scenario: {SMALL}\n{body}", encoding="utf-8")
    return path


@pytest.mark.parametrize("body, message", [
    ("parameters: {dms.cycle: [1min]}\ncolour: red\n", "colour: expected one of the keys"),
    ("design: list\nparameters: {dms.cycle: [1min, 2min], seed: [1]}\n",
     "expected lists of equal length"),
    ("parameters: {dms.nope: [1]}\n", "expected values the scenario accepts"),
    ("parameters: [1, 2]\n", "parameters: expected a mapping"),
    ("parameters: {dms.cycle: [1min]\n", "expected valid YAML"),
])
def test_a_bad_study_file_exits_2_before_any_run(tmp_path, body, message):
    out = tmp_path / "out"
    result = _sweep(str(_write(tmp_path, body)), "--out", str(out), "--no-progress")
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (out / "runs").exists()


def test_a_missing_study_file_exits_2(tmp_path):
    result = _sweep(str(tmp_path / "none.yaml"))
    assert result.exit_code == 2 and "cannot read the file" in result.output


@pytest.mark.parametrize("args, message", [
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], "found both"),
    (["--workers", "0"], "--workers: expected at least 1"),
    (["--scheduler", "127.0.0.1:8786"], "--scheduler: expected an address"),
])
def test_bad_options_exit_2(tmp_path, args, message):
    result = _sweep(str(_write(tmp_path, "parameters: {dms.cycle: [1min]}\n")), *args)
    assert result.exit_code == 2 and message in result.output


@pytest.mark.slow
def test_a_small_sweep_on_two_workers_records_a_failure_and_resumes(tmp_path):
    # three runs; the last names a depot bus the grid lacks: the schema accepts it, the
    # run fails while building its world
    study = _write(tmp_path, """\
until: 3min
seeds: [5]
design: list
parameters:
  rtus[1].scan_period: [30s, 2min, 30s]
  crews.depot_bus: [Substation 1, Substation 1, Nowhere]
kpis: [grid_solves, telemetry_values_delivered]
""")
    out = tmp_path / "out"
    result = _sweep(str(study), "--workers", "2", "--out", str(out), "--no-progress")
    assert result.exit_code == 1, result.output  # a run failed; the others ran
    assert "3 runs: 2 completed, 1 failed, 0 skipped" in result.output
    frame = pd.read_parquet(out / "results.parquet")
    assert list(frame.columns) == [
        "key", "rtus[1].scan_period", "crews.depot_bus", "seed", "status", "grid_solves",
        "telemetry_values_delivered", "expectations_passed", "expectations_failed", "error",
        "wall_time_s", "run_dir"]
    assert frame["status"].tolist() == ["completed", "completed", "failed"]
    assert "Nowhere" in frame["error"].iloc[2] and frame["error"].iloc[0] == ""
    assert (frame["seed"] == 5).all()
    assert frame["grid_solves"].iloc[0] == 3.0  # 3 min of 1-min steps
    # the slower scan delivers fewer values
    assert frame["telemetry_values_delivered"].iloc[1] < \
        frame["telemetry_values_delivered"].iloc[0]
    for run_dir in frame["run_dir"].iloc[:2]:
        assert (out / run_dir / "kpis.json").exists()
    assert (out / "sweep.html").exists()

    again = _sweep(str(study), "--workers", "2", "--out", str(out), "--no-progress")
    assert again.exit_code == 1
    assert "3 runs: 2 completed, 1 failed, 3 skipped" in again.output
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), frame)
