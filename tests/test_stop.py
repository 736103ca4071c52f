"""Stopping a run: Ctrl-C / SIGTERM keep what was simulated, SIGKILL keeps what was flushed,
a run directory holding a run is not overwritten by accident, a failure and a full disk end
cleanly with run.json saying so."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from twin.recording.files import FileStore, list_measurements, read_measurement
from twin.runner import RunFailed, run_scenario
from twin.scenario import ScenarioError

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "scenarios" / "cigre_mv_day.yaml"
START = pd.Timestamp("2026-06-21T00:00:00Z")
NOISE = ("Traceback", "Task was destroyed", "never retrieved", "never shut down")


def _twin(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "500"}  # rich wraps at 80 columns without a terminal
    return subprocess.Popen([sys.executable, "-m", "twin.cli", "run", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def _wait_for_first_flush(proc: subprocess.Popen, run_dir: Path, timeout_s: float = 60) -> None:
    """Until the store has written its first part of bus results (a few seconds into the
    world: the file store flushes every few wall-clock seconds)."""
    deadline = time.monotonic() + timeout_s
    while not list((run_dir / "store" / "bus").glob("part-*.parquet")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no part written in time"
        time.sleep(0.1)


def _tmp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_and_keeps_what_was_simulated(tmp_path, sig, code):
    run_dir = tmp_path / "run"
    proc = _twin(str(DEFAULT), "--out", str(run_dir), "--no-progress")
    try:
        _wait_for_first_flush(proc, run_dir)
        running = _run_json(run_dir)  # while it runs, run.json says so
        assert running["status"] == "running" and running["pid"] == proc.pid
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert not any(n in err for n in NOISE), err
    last = err.strip().splitlines()[-1]
    assert f"interrupted by {sig.name} at simulated" in last, err
    info = _run_json(run_dir)
    assert info["status"] == "interrupted"
    assert info["reason"].startswith(f"interrupted by {sig.name} at simulated ")
    simulated_s = info["simulated_s"]
    assert 0 < simulated_s < 86400 and info["grid_steps"] == simulated_s // 60
    # the store holds every step up to the end of what was simulated, none after
    bus = read_measurement(run_dir / "store", "bus")
    assert bus.time.max() == START + pd.Timedelta(seconds=simulated_s - 60)
    on_step = (bus.time - START) % pd.Timedelta(minutes=1) == pd.Timedelta(0)
    assert bus.time[on_step].nunique() == info["grid_steps"]
    # any other time is an event-triggered solve (the crew closing S3 at 13:31:xx): the
    # faster the twin, the likelier the signal comes after one
    assert bus.time[~on_step].nunique() <= info["grid_solves"] - info["grid_steps"]
    kpis = json.loads((run_dir / "kpis.json").read_text())
    assert kpis["grid_solves"] == info["grid_solves"] >= info["grid_steps"]
    assert (run_dir / "report.html").is_file() and "interrupted by" in (
        run_dir / "report.html").read_text()
    assert "results in" in out and not _tmp_files(run_dir)


def test_a_killed_run_stays_readable_and_is_not_overwritten_by_accident(tmp_path):
    run_dir = tmp_path / "run"
    proc = _twin(str(DEFAULT), "--out", str(run_dir), "--no-progress")
    try:
        _wait_for_first_flush(proc, run_dir)
        proc.kill()  # SIGKILL: nothing of the run's own winds down
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    # what was flushed reads; run.json says the run never ended
    assert _run_json(run_dir)["status"] == "running"
    assert len(read_measurement(run_dir / "store", "bus")) > 0
    # every part reads (a part being written at the kill is a temporary file no reader sees)
    assert all(len(read_measurement(run_dir / "store", m))
               for m in list_measurements(run_dir / "store"))

    again = _twin(str(DEFAULT), "--out", str(run_dir), "--until", "10min", "--no-progress")
    _, err = again.communicate(timeout=60)
    assert again.returncode == 2 and "already holds a run" in err and "--overwrite" in err
    assert "Traceback" not in err

    again = _twin(str(DEFAULT), "--out", str(run_dir), "--until", "10min", "--no-progress",
                  "--overwrite")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert _run_json(run_dir)["status"] == "completed"
    bus = read_measurement(run_dir / "store", "bus")  # only the new run's points
    assert bus.time.max() == START + pd.Timedelta(minutes=9)
    assert "results in" in out and "report.html, kpis.json, run.json, store/" in out


def test_a_second_run_into_a_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    run_scenario(DEFAULT, out=run_dir, until="5min")
    (run_dir / "kpis.json").unlink()  # a store alone is a run too
    (run_dir / "run.json").unlink()
    with pytest.raises(ScenarioError, match="already holds a run .store/."):
        run_scenario(DEFAULT, out=run_dir, until="5min")
    summary = run_scenario(DEFAULT, out=run_dir, until="3min", overwrite=True)
    assert summary.run_info["status"] == "completed" and summary.exit_code == 0
    assert read_measurement(run_dir / "store", "bus").time.nunique() == 3


def test_a_failure_in_the_world_is_one_line_in_run_json(tmp_path, monkeypatch):
    original = FileStore.write

    def write(self, points):
        if any(p.time_ns >= START.value + 120 * 10**9 for p in points):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(self, points)

    monkeypatch.setattr(FileStore, "write", write)
    run_dir = tmp_path / "run"
    with pytest.raises(RunFailed) as failed:
        run_scenario(DEFAULT, out=run_dir, until="10min")
    info = _run_json(run_dir)
    assert info["status"] == "failed" and info["reason"] == failed.value.reason
    assert info["reason"] == f"OSError: [Errno {errno.ENOSPC}] {os.strerror(errno.ENOSPC)}"
    assert failed.value.run_dir == run_dir
    # an unexpected error (a bug) goes on as it is, after run.json says "failed"
    monkeypatch.setattr(FileStore, "write", lambda self, points: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        run_scenario(DEFAULT, out=run_dir, until="10min", overwrite=True)
    assert _run_json(run_dir)["reason"] == "ZeroDivisionError: division by zero"


@pytest.fixture()
def small_disk(tmp_path):
    """A tmpfs of a given size (needs the right to mount: root); unmounted afterwards."""
    mounted: list[Path] = []

    def make(size: str) -> Path:
        point = tmp_path / f"disk-{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(point)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield make
    for point in mounted:
        subprocess.run(["umount", str(point)], check=False)


def test_a_full_disk_during_the_run_is_a_clean_error(small_disk):
    disk = small_disk("256k")
    run_dir = disk / "run"
    proc = _twin(str(DEFAULT), "--out", str(run_dir), "--until", "4h", "--no-progress")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    assert "run failed: OSError" in err and "No space left on device" in err
    assert not any(n in err for n in NOISE), err
    assert "results in" not in out
    assert not _tmp_files(disk)
    # run.json says how the run ended where it could be written, else that it never ended
    assert _run_json(run_dir)["status"] in ("failed", "running")


def test_a_report_that_does_not_fit_is_not_listed(small_disk):
    disk = small_disk("1m")  # the store fits, the report (plotly inside, ~5 MB) does not
    run_dir = disk / "run"
    proc = _twin(str(DEFAULT), "--out", str(run_dir), "--until", "30min", "--no-progress")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (out, err)
    assert _run_json(run_dir)["status"] == "completed"
    assert not (run_dir / "report.html").exists() and not _tmp_files(disk)
    assert "(kpis.json, run.json, store/)" in out
