"""``recording.elements`` refs and ``recording.every`` are checked against the grid before a
run (``twin validate`` and ``twin run``): one line naming the file, the key path, what was
expected and what was found; exit 2, nothing simulated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.build.checks import check_recording
from twin.build.prepare import prepare
from twin.cli import app
from twin.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "flisr_three_loads.yaml"  # buses HV Grid, Load 1, …; step 1 min

CASES = {
    "unknown bus": ('recording.elements=["bus:Load 1", "bus:Bus 99"]', "recording.elements[1]",
                    "expected a bus of the grid", "found 'bus:Bus 99'"),
    "not a grid table": ('recording.elements=["feeder:F1"]', "recording.elements[0]",
                         "expected '<table>:<name>'", "found 'feeder:F1'"),
    "no table at all": ('recording.elements=["Load 1"]', "recording.elements[0]",
                        "expected '<table>:<name>'", "found 'Load 1'"),
    "every not a multiple of the step": ("recording.every=90s", "recording.every",
                                         "expected a whole multiple of step (60 s)",
                                         "found 90 s"),
}


def _invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.mark.parametrize("case", list(CASES))
def test_validate_rejects_a_bad_recording_policy(case):
    override, key, expected, found = CASES[case]
    load_scenario(SCENARIO, [override])  # the schema alone accepts it
    result = _invoke("validate", str(SCENARIO), "--set", override)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output  # one line, no traceback
    assert lines[0].startswith(f"invalid: {SCENARIO}: {key}: "), lines[0]
    assert expected in lines[0] and found in lines[0], lines[0]


def test_run_refuses_a_bad_ref_before_simulating(tmp_path):
    out = tmp_path / "run"
    result = _invoke("run", str(SCENARIO), "--out", str(out), "--until", "5min",
                     "--set", 'recording.elements=["line:No Such Line"]')
    assert result.exit_code == 2, result.output
    assert "recording.elements[0]: expected a line of the grid" in result.output
    assert "Traceback" not in result.output
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "failed" and "recording.elements[0]" in info["reason"]
    assert not (out / "store").exists()  # refused before the store was opened


def test_valid_policy_resolved_as_run_json_keeps_it():
    sc = load_scenario(SCENARIO, ['recording.elements=["bus:Load 1"]', "recording.every=10min"])
    names = prepare(sc, SCENARIO, check_only=True).names
    assert check_recording(sc, names) == {"elements": ["bus:Load 1"],
                                          "requested": ["bus:Load 1"], "every_s": 600.0}
    auto = load_scenario(SCENARIO)
    assert check_recording(auto, names) == {"elements": "all", "requested": "auto",
                                            "every_s": None}  # 6 buses: auto is all
    step = load_scenario(SCENARIO, ["recording.every=1min", "recording.elements=summary"])
    # snapshots at every step are no thinning: every solve
    assert check_recording(step, names)["every_s"] is None
    result = _invoke("validate", str(SCENARIO), "--set", "recording.elements=summary")
    assert result.exit_code == 0, result.output
    assert "checked recording: elements summary, tables every solve" in result.output
