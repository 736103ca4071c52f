"""Fuzz: seeded mutations of the shipped scenarios through ``twin validate``.

Every case must end in exit 0 (valid) or exit 2 with one short message, never a
traceback and never a hang. Time-bounded for the suite (about 45 s); ``bench/fuzz.py``
runs more cases and also runs every case ``validate`` accepts.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from twin.cli import app
from twin.scenario.mutate import mutate

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
# the suite samples for 30 s (CI keeps it under 15 min); bench/fuzz.py fuzzes for as long as asked
BUDGET_S = 30.0
MIN_CASES = 20
CASE_TIMEOUT_S = 30
MAX_MESSAGE_CHARS = 4000


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def validate(path: Path) -> tuple[int, str]:
    """Exit code and output of ``twin validate path``, in process, with a time limit."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_TIMEOUT_S)
    try:
        result = CliRunner().invoke(app, ["validate", str(path)])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        output += f"\n{type(result.exception).__name__}: {result.exception}"
        return -1, output
    return result.exit_code, output


def test_mutated_scenarios_get_a_clear_answer(tmp_path):
    rng = np.random.default_rng(20261129)
    t0, n, problems = time.monotonic(), 0, []
    while n < MIN_CASES or time.monotonic() - t0 < BUDGET_S:
        source = SCENARIOS[n % len(SCENARIOS)]
        case = mutate(source.read_text(encoding="utf-8"), rng)
        path = tmp_path / f"case{n}.yaml"
        path.write_bytes(case.data)
        try:
            code, output = validate(path)
        except Hang:
            problems.append(f"{source.name} {case.kind} at {case.where}: hangs")
            n += 1
            continue
        label = f"{source.name} {case.kind} at {case.where}"
        if code not in (0, 2):
            problems.append(f"{label}: exit {code}: {output[-300:]}")
        elif "Traceback" in output:
            problems.append(f"{label}: traceback")
        elif len(output) > MAX_MESSAGE_CHARS:
            problems.append(f"{label}: {len(output)} characters of output")
        n += 1
        if n > 400:
            break
    assert not problems, f"{len(problems)} of {n} cases:\n" + "\n".join(problems[:20])


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenarios_stay_valid(scenario):
    assert validate(scenario)[0] == 0
