"""Acceptance (issue 14 item 2): a DMS in another process is the candidate. The example
rule-book DMS served by ``python -m twin.dms.serve`` as a separate process and the same
class in process, same scenario and seed, give byte-identical KPIs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from twin.runner import run_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "volt_var_high_pv.yaml"
DMS_CLASS = "examples/rule_based_dms.py:RuleBasedDMS"
UNTIL = "1h"


def _start_server(cls: str) -> tuple[subprocess.Popen, int]:
    """``python -m twin.dms.serve CLS --port 0`` as a process; the port it listens on."""
    proc = subprocess.Popen([sys.executable, "-m", "twin.dms.serve", cls, "--port", "0"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = proc.stdout.readline()  # blocks until it listens (or dies: empty)
    if not line.startswith("dms-serve: listening on "):
        proc.kill()
        raise AssertionError(f"the server did not start: {line!r} {proc.stderr.read()}")
    return proc, int(line.rsplit(":", 1)[1])


@pytest.mark.slow
def test_a_dms_in_another_process_runs_as_it_does_in_process(tmp_path):
    t0 = time.perf_counter()
    server, port = _start_server(DMS_CLASS)
    assert time.perf_counter() - t0 < 10.0
    common = ["dms.enabled=true", f"dms.class={DMS_CLASS}"]
    try:
        remote = run_scenario(SCENARIO, out=tmp_path / "remote", until=UNTIL,
                              overrides=[*common, f"dms.remote=127.0.0.1:{port}"])
    finally:
        server.send_signal(signal.SIGTERM)  # stops cleanly
        _, err = server.communicate(timeout=10)
    assert server.returncode == 0, err
    assert "dms-serve: stopped" in err
    local = run_scenario(SCENARIO, out=tmp_path / "local", until=UNTIL, overrides=common)
    assert remote.status == local.status == "completed"

    kpis = {name: (tmp_path / name / "kpis.json").read_bytes() for name in ("remote", "local")}
    assert kpis["remote"] == kpis["local"]
    runs = {name: json.loads((tmp_path / name / "run.json").read_text())
            for name in ("remote", "local")}
    assert _transport(runs["remote"]) == f"tcp://127.0.0.1:{port}"
    assert _transport(runs["local"]) == "in-process"
    # the rule book acted, and the same way: the comparison is not of two idle DMSs
    decisions = [_count(tmp_path / name) for name in ("remote", "local")]
    assert decisions[0] == decisions[1] > 0


def _transport(run: dict) -> str:
    """The DMS's transport as run.json names it."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "transport" in node:
                found.append(node["transport"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(run)
    assert found, "run.json names no DMS transport"
    return found[0]


def _count(run_dir: Path) -> int:
    """How many DMS decisions the run recorded."""
    from twin.recording.files import list_measurements, read_measurement

    store = run_dir / "store"
    if "dms_decision" not in list_measurements(store):
        return 0
    return len(read_measurement(store, "dms_decision"))
