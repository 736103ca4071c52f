"""Jobs on Dask: a LocalCluster of two worker processes, and an existing cluster made of
``dask scheduler`` and ``dask worker`` processes on loopback. Rows come back in the order of
the jobs, progress is reported once per job, a failing job is a row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from twin.study.executor import ClusterError, run_jobs
from twin.study.jobs import Job

ROOT = Path(__file__).resolve().parents[2]
SMALL = str(ROOT / "scenarios" / "flisr_three_loads.yaml")
DASK = Path(sys.executable).with_name("dask")


def _jobs(tmp_path: Path) -> list[Job]:
    return [
        Job(key="a", scenario=SMALL, seed=1, until="3min", run_dir=str(tmp_path / "a")),
        Job(key="bad", scenario=SMALL, overrides=("crews.depot_bus=Nowhere",), seed=1,
            until="3min", run_dir=str(tmp_path / "bad")),
        Job(key="b", scenario=SMALL, seed=2, until="3min", run_dir=str(tmp_path / "b")),
    ]


def _check(rows: list[dict], calls: list[tuple], tmp_path: Path) -> None:
    assert [r["key"] for r in rows] == ["a", "bad", "b"]
    assert [r["status"] for r in rows] == ["completed", "failed", "completed"]
    assert "Nowhere" in rows[1]["error"]
    assert [r["seed"] for r in rows] == [1, 1, 2]
    # each run wrote its own directory, in a worker
    for key in ("a", "b"):
        assert json.loads((tmp_path / key / "run.json").read_text())["status"] == "completed"
    assert [c[:2] for c in calls] == [(1, 3), (2, 3), (3, 3)]
    assert sorted(c[2] for c in calls) == ["a", "b", "bad"]


def test_no_jobs_no_cluster():
    assert run_jobs([]) == []


def test_keys_must_be_unique():
    job = Job(key="same", scenario=SMALL)
    with pytest.raises(ValueError, match="unique"):
        run_jobs([job, job])


@pytest.mark.slow
def test_a_local_cluster_of_two_workers(tmp_path):
    calls: list[tuple] = []
    rows = run_jobs(_jobs(tmp_path), workers=2,
                    progress=lambda done, total, row: calls.append((done, total, row["key"])))
    _check(rows, calls, tmp_path)


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(DASK), *args], stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the worker's nanny too
            proc.wait()


@pytest.mark.slow
def test_an_existing_cluster_by_its_scheduler_address(tmp_path):
    info = tmp_path / "scheduler.json"
    scheduler = _start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                        "--scheduler-file", str(info)], tmp_path / "scheduler.log")
    procs = [scheduler]
    try:
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            assert scheduler.poll() is None, (tmp_path / "scheduler.log").read_text()
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(_start(["worker", address, "--nthreads", "1", "--nworkers", "1",
                             "--no-dashboard", "--host", "127.0.0.1"],
                            tmp_path / "worker.log"))
        from distributed import Client

        with Client(address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(1, timeout=60)
        calls: list[tuple] = []
        rows = run_jobs(_jobs(tmp_path), scheduler=address,
                        progress=lambda done, total, row: calls.append((done, total,
                                                                        row["key"])))
        _check(rows, calls, tmp_path)
    finally:
        for proc in reversed(procs):
            _stop(proc)


@pytest.mark.slow
def test_an_unreachable_scheduler_is_one_error(tmp_path, monkeypatch):
    monkeypatch.setattr("twin.study.executor.CONNECT_TIMEOUT_S", 2)
    with pytest.raises(ClusterError, match="tcp://127.0.0.1:9"):
        run_jobs(_jobs(tmp_path), scheduler="tcp://127.0.0.1:9")
