"""Scenario file validation: one clear message naming file, key path, expected and found."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from twin.scenario import ScenarioError, load_scenario, parse_scenario
from twin.timebase import parse_duration_s

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "scenarios" / "cigre_mv_day.yaml"


def _base() -> dict:
    return yaml.safe_load(DEFAULT.read_text())


def _error(data: dict) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "s.yaml")
    return str(info.value)


def test_default_scenario_is_valid():
    sc = load_scenario(DEFAULT)
    assert sc.duration == 86400.0 and sc.step == 60.0
    assert sc.n_steps == 1440 and sc.step_ticks == 6000  # 10 ms ticks
    assert sc.start.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    "text, seconds",
    [("1d", 86400), ("24h", 86400), ("90min", 5400), ("30s", 30), ("250ms", 0.25),
     ("1h30min", 5400), ("1d 2h", 93600),
     ("PT1H30M", 5400), ("P1D", 86400), (15, 15)],
)
def test_durations(text, seconds):
    assert parse_duration_s(text) == pytest.approx(seconds)


def test_wrong_literal_names_path_expected_and_found():
    data = _base()
    data["grid"] = {"builtin": "cigre_lv"}
    msg = _error(data)
    assert msg.startswith("s.yaml: grid.builtin: expected")
    assert "'cigre_mv'" in msg and "found 'cigre_lv'" in msg


def test_unknown_key_is_an_error():
    data = _base()
    data["weather"]["clouds"] = 0.5
    assert _error(data) == "s.yaml: weather.clouds: unknown key (found 0.5)"


def test_missing_key():
    data = _base()
    del data["seed"]
    assert _error(data) == "s.yaml: seed: required key is missing"


def test_bad_duration():
    data = _base()
    data["duration"] = "one day"
    msg = _error(data)
    assert msg.startswith("s.yaml: duration: expected a duration like '1d'")
    assert "found 'one day'" in msg


def test_step_must_divide_duration_and_ticks():
    data = _base()
    data["step"] = "7min"
    assert "not a whole number of steps" in _error(data)
    data = _base()
    data["time_resolution"] = 7
    assert "not a whole number of ticks" in _error(data)


def test_secrets_are_refused():
    data = _base()
    data["recording"] = {"store": "influx",
                         "influx": {"url": "http://127.0.0.1:1", "database": "x", "password": "p"}}
    msg = _error(data)
    assert "recording.influx" in msg and "password_env" in msg


def test_influx_needs_section():
    data = _base()
    data["recording"] = {"store": "influx"}
    assert "needs an 'influx:' section" in _error(data)


def test_list_index_in_path():
    data = _base()
    data["pv"]["plants"] = [{"name": "A", "bus": "Bus 3"}]
    msg = _error(data)
    assert msg.startswith("s.yaml: pv.plants[0]: expected a new plant (with 'bus') needs 'p_peak_kw'")


def test_yaml_syntax_error(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("name: x\nstart: [unclosed\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(f)
    assert str(info.value).startswith(f"{f}: line ") and "expected valid YAML" in str(info.value)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twin.cli", *args], capture_output=True,
                          text=True, cwd=ROOT)


def test_cli_validate_exit_codes(tmp_path):
    ok = _cli("validate", str(DEFAULT))
    assert ok.returncode == 0 and "valid" in ok.stdout
    data = _base()
    data["step"] = "seven"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    res = _cli("validate", str(bad))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "step: expected a duration" in res.stderr


def test_cli_run_bad_file_exits_2_without_traceback(tmp_path):
    res = _cli("run", str(tmp_path / "missing.yaml"), "--no-progress")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "cannot read the file" in res.stderr


def test_cli_schema_is_json_schema():
    res = _cli("schema")
    schema = json.loads(res.stdout)
    assert schema["title"] == "Scenario"
    assert {"name", "start", "duration", "seed", "grid"} <= set(schema["required"])


def test_set_overrides(tmp_path):
    sc = load_scenario(DEFAULT, ["dms.volt_var.mode=direct", "seed=7", "kpis.voltage_band_pu=[0.9, 1.1]"])
    assert sc.dms.volt_var.mode == "direct" and sc.seed == 7
    assert sc.kpis.voltage_band_pu == (0.9, 1.1)
    with pytest.raises(ScenarioError, match=r"dms\.volt_var\.mode: expected"):
        load_scenario(DEFAULT, ["dms.volt_var.mode=sometimes"])
    with pytest.raises(ScenarioError, match="--set: expected KEY.PATH=VALUE"):
        load_scenario(DEFAULT, ["seed"])
