"""Malformed scenario files (issue 13): every one gets one clear error naming the file, the
key path (or line), what was expected and what was found; the CLI exits 2 without a
traceback and never hangs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from twin.cli import app
from twin.scenario import ScenarioError, load_scenario, parse_scenario
from twin.scenario.model import MAX_PROBLEMS
from twin.timebase import parse_duration_s

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "scenarios" / "cigre_mv_day.yaml"
TEXT = DEFAULT.read_text(encoding="utf-8")


def _base() -> dict:
    return yaml.safe_load(TEXT)


def _error(data: dict) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "s.yaml")
    return str(info.value)


def _file_error(path: Path, overrides: list[str] | None = None) -> str:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides)
    message = str(info.value)
    assert message.startswith(str(path)), message
    return message


def _with(text: str, key: str, value: str) -> str:
    """The scenario text with the top-level ``key`` set to the YAML ``value``."""
    new, n = re.subn(rf"(?m)^{key}:.*$", f"{key}: {value}", text)
    assert n == 1
    return new


def _write(tmp_path: Path, content: str | bytes, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(result.exception,
                                                                     SystemExit), result.exception
    return result


# --------------------------------------------------------------------------- encoding
def test_latin1_bytes(tmp_path):
    path = _write(tmp_path, TEXT.encode() + "# café\n".encode("latin-1"))
    msg = _file_error(path)
    assert "expected UTF-8 text; found byte 0xe9" in msg and re.search(r": byte \d+:", msg)


def test_utf16_file_exits_2_through_the_cli(tmp_path):
    path = _write(tmp_path, TEXT.encode("utf-16"))
    assert "found a UTF-16 file" in _file_error(path)
    result = _cli("validate", str(path))
    assert result.exit_code == 2
    assert "expected UTF-8 text" in result.output and "Traceback" not in result.output


def test_empty_file_and_a_list(tmp_path):
    assert _file_error(_write(tmp_path, "")).endswith(
        "(top level): expected a mapping of keys (name, start, …); found NoneType")
    assert _file_error(_write(tmp_path, "- 1\n- 2\n", "l.yaml")).endswith("found list")


def test_control_characters(tmp_path):
    msg = _file_error(_write(tmp_path, TEXT + "description: a\x00b\n"))
    assert "expected printable text; found '\\x00'" in msg


# --------------------------------------------------------------------------- durations
@pytest.mark.parametrize("value, expected", [
    ([1, 2], "found list [1, 2]"),
    ({"h": 1}, "found dict {'h': 1}"),
    (float("inf"), "at most 10 years; found inf"),
    (float("nan"), "positive duration; found nan"),
    (1e308, "at most 10 years; found 1e+308"),
    (10 ** 400, "at most 10 years"),
    ("1000000000d", "at most 10 years; found '1000000000d'"),
    ("1" * 400 + "d", "at most 10 years"),
    (0, "positive duration; found 0"),
])
def test_bad_durations(value, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        parse_duration_s(value)
    data = _base()
    data["duration"] = value
    msg = _error(data)
    assert msg.startswith("s.yaml: duration: expected") and expected in msg
    assert len(msg) < 250  # 400 digits are not echoed


@pytest.mark.parametrize("value, expected", [
    ("[1, 2]", "found list [1, 2]"), (".inf", "at most 10 years; found inf"),
    ("1.0e+308", "at most 10 years"), ("1e308", "found '1e308'"),
    ("1000000000d", "at most 10 years"), ("0", "positive duration"),
])
def test_bad_durations_in_a_file(tmp_path, value, expected):
    msg = _file_error(_write(tmp_path, _with(TEXT, "duration", value)))
    assert ": duration: expected" in msg and expected in msg


def test_step_count_is_bounded():
    data = _base()
    data.update(duration="3650d", step="1s", time_resolution=1)
    msg = _error(data)
    assert "expected at most 10,000,000 steps (duration / step); found 315,360,000" in msg


def test_time_resolution_is_bounded():
    data = _base()
    data["time_resolution"] = 1e-300
    assert "s.yaml: time_resolution: expected" in _error(data)


# --------------------------------------------------------------------------- start, seed
@pytest.mark.parametrize("value, expected", [
    ("1600-01-01", "in the years 1900 to 2200; found 1600-01-01"),
    ("9999-12-31", "in the years 1900 to 2200; found 9999-12-31"),
    ("12345", "ISO 8601 date and time like '2026-06-21T00:00:00Z'; found 12345"),
    ("'12345'", "ISO 8601 date and time like '2026-06-21T00:00:00Z'; found '12345'"),
    ("[2026, 6, 21]", "found [2026, 6, 21]"),
    ("2026-13-01", "line 7: expected a valid timestamp; found '2026-13-01'"),
])
def test_bad_start(tmp_path, value, expected):
    msg = _file_error(_write(tmp_path, _with(TEXT, "start", value)))
    assert expected in msg
    if "line" not in expected:
        assert ": start: expected" in msg


def test_start_as_yaml_date_is_midnight_utc(tmp_path):
    sc = load_scenario(_write(tmp_path, _with(TEXT, "start", "2026-06-21")))
    assert sc.start.isoformat() == "2026-06-21T00:00:00+00:00"


@pytest.mark.parametrize("value", ["true", "'7'", "7.5"])
def test_seed_is_a_strict_int(tmp_path, value):
    msg = _file_error(_write(tmp_path, _with(TEXT, "seed", value)))
    assert ": seed: expected: input should be a valid integer" in msg


# --------------------------------------------------------------------------- cross-field rules
def test_temperature_band():
    data = _base()
    data["weather"].update(temp_min_c=20, temp_max_c=10)
    assert _error(data) == ("s.yaml: weather: expected temp_min_c ≤ temp_max_c; found "
                            "temp_min_c 20, temp_max_c 10")


def test_battery_soc_band():
    data = _base()
    data["batteries"] = {"soc_min": 0.5, "soc_max": 0.5}
    assert _error(data) == ("s.yaml: batteries: expected soc_min < soc_max; found soc_min 0.5, "
                            "soc_max 0.5")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_inf_anywhere(value):
    data = _base()
    data["profiles"] = {"load_scaling": value}
    data["weather"]["altitude_m"] = value
    msg = _error(data)
    assert "s.yaml: profiles.load_scaling: expected: input should be a finite number" in msg
    assert "s.yaml: weather.altitude_m: expected: input should be a finite number" in msg


def test_nan_in_a_list_and_a_tuple():
    data = _base()
    data["kpis"] = {"voltage_band_pu": [0.9, float("nan")]}
    assert "s.yaml: kpis.voltage_band_pu[1]: expected: input should be a finite number" \
        in _error(data)


def test_negative_customers():
    data = _base()
    data["reliability"] = {"customers": {"Load R1": -5}}
    msg = _error(data)
    assert msg.startswith("s.yaml: reliability.customers.Load R1: expected")
    assert "greater than or equal to 0; found -5" in msg


@pytest.mark.parametrize("section, item", [
    ("pv", {"plants": [{"name": " ", "bus": "Bus 3", "p_peak_kw": 100}]}),
    ("devices", {"capacitors": [{"name": "", "bus": "Bus 3", "q_step_mvar": 0.1}]}),
])
def test_empty_names(section, item):
    data = _base()
    data[section] = item
    msg = _error(data)
    assert re.match(rf"s\.yaml: {section}\.\w+\[0\]\.name: expected a non-blank name; found",
                    msg), msg


def test_empty_rtu_name():
    data = _base()
    data["rtus"][0]["name"] = ""
    assert _error(data) == "s.yaml: rtus[0].name: expected a non-blank name; found ''"


def test_empty_point_range():
    data = _base()
    data["rtus"][0]["points"][0]["range"] = [1, 1]
    assert _error(data) == ("s.yaml: rtus[0].points[0].range: expected two numbers, low < high, "
                            "e.g. [0.9, 1.1]; found [1.0, 1.0]")


def test_dms_cycle_lower_bound():
    data = _base()
    data["dms"] = {"cycle": 0.1}
    assert _error(data) == ("s.yaml: dms.cycle: expected: input should be greater than or "
                            "equal to 1; found 0.1")


# --------------------------------------------------------------------------- YAML structure
def test_duplicate_key_names_both_lines(tmp_path):
    path = _write(tmp_path, TEXT.replace("\nseed: 42\n", "\nseed: 42\nseed: 7\n"))
    line = TEXT.splitlines().index("seed: 42") + 1
    msg = _file_error(path)
    assert msg == (f"{path}: line {line + 1}: expected each key once in a mapping; found 'seed' "
                   f"on lines {line} and {line + 1}")


#: The default scenario without its ``dms`` section, for tests that write one of their own.
TEXT_NO_DMS = re.sub(r"(?m)^dms:\n(?:[ #].*\n|\n)*?(?=^\S)", "", TEXT)


def test_duplicate_key_in_a_nested_mapping(tmp_path):
    assert "\ndms:" not in TEXT_NO_DMS and "\ndms:" in TEXT
    path = _write(tmp_path, TEXT_NO_DMS + "dms:\n  cycle: 1min\n  enabled: true\n  cycle: 2min\n")
    lines = len(TEXT_NO_DMS.splitlines())
    assert _file_error(path).endswith(f"found 'cycle' on lines {lines + 2} and {lines + 4}")


def test_merge_keys_may_be_overridden(tmp_path):
    text = TEXT_NO_DMS + "dms:\n  <<: &defaults {cycle: 1min, enabled: true}\n  cycle: 2min\n"
    dms = load_scenario(_write(tmp_path, text)).dms
    assert dms.cycle == 120 and dms.enabled


def test_deep_nesting(tmp_path):
    deep = _write(tmp_path, TEXT + "description: " + "[" * 5000 + "]" * 5000 + "\n")
    assert _file_error(deep).endswith("expected at most 100 levels of nesting; found deeper")
    less = _write(tmp_path, TEXT + "description: " + "[" * 150 + "]" * 150 + "\n", "b.yaml")
    assert _file_error(less).endswith("expected at most 100 levels of nesting; found 151")


def test_billion_laughs_is_refused_without_echo(tmp_path):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    path = _write(tmp_path, TEXT + "\n".join(lines) + "\n")
    msg = _file_error(path)
    assert "expected at most 100,000 values after expanding anchors and aliases; found" in msg
    assert len(msg) < 300
    result = _cli("validate", str(path))
    assert result.exit_code == 2 and len(result.output) < 400


def test_recursive_alias(tmp_path):
    msg = _file_error(_write(tmp_path, TEXT + "description: &r [*r]\n"))
    assert "expected no recursive aliases" in msg


def test_problems_and_values_are_capped():
    data = _base()
    data["rtus"] = [{"name": "x" * 10_000, "scan_period": "y" * 10_000, "bogus": i}
                    for i in range(30)]
    msg = _error(data)
    lines = msg.splitlines()
    assert len(lines) == MAX_PROBLEMS + 1
    assert lines[-1] == "s.yaml: … and 40 more problems"
    assert max(len(line) for line in lines) <= 400


def test_huge_unknown_key_is_cut():
    data = _base()
    data["k" * 5000] = 1
    msg = _error(data)
    assert msg.startswith("s.yaml: kkk") and len(msg) < 200


# --------------------------------------------------------------------------- --set
def test_set_goes_through_the_same_checks():
    assert "found list [1, 2]" in _file_error(DEFAULT, ["duration=[1, 2]"])
    assert "expected each key once" in _file_error(DEFAULT, ["kpis={a: 1, a: 2}"])
    assert "ISO 8601" in _file_error(DEFAULT, ["start=12345"])
    assert "valid integer" in _file_error(DEFAULT, ["seed=true"])
    assert "finite number" in _file_error(DEFAULT, ["profiles.noise=.nan"])
    with pytest.raises(ScenarioError, match=r"cigre_mv_day.yaml: --set description: line 1, column \d+: expected "
                                            r"valid YAML.*\(expected a YAML value; found '\[1'\)"):
        load_scenario(DEFAULT, ["description=[1"])


def test_set_bad_value_exits_2_through_the_cli(tmp_path):
    result = _cli("run", str(DEFAULT), "--set", "dms.cycle=0.1", "--no-progress",
                  "--out", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert "dms.cycle: expected: input should be greater than or equal to 1; found 0.1" \
        in result.output


# --------------------------------------------------------------------------- --until
def test_until_bounds_preparation(tmp_path, monkeypatch):
    """A 10-year scenario stopped after 10 min prepares 10 min, not 10 years."""
    import twin.runner

    seen = []

    class Prepared(Exception):
        pass

    def fake_prepare(scenario, *args, **kwargs):
        seen.append(scenario)
        raise Prepared

    monkeypatch.setattr(twin.runner, "prepare", fake_prepare)
    path = _write(tmp_path, _with(TEXT, "duration", "3650d"))
    with pytest.raises(Prepared):
        twin.runner.run_scenario(path, out=tmp_path / "r", until="10min")
    assert seen[0].duration == 600 and seen[0].n_steps == 10
    with pytest.raises(Prepared):
        twin.runner.run_scenario(path, out=tmp_path / "r2", until="90s")
    assert seen[1].duration == 120  # whole steps covering --until


# --------------------------------------------------------------------------- weather CSV
def _csv_scenario(tmp_path: Path, csv_text: str | bytes | None, name: str = "w.csv") -> Path:
    data = _base()
    data["weather"] = {"source": "csv", "csv": name}
    data["duration"] = "1h"
    if csv_text is not None:
        _write(tmp_path, csv_text, name)
    return _write(tmp_path, yaml.safe_dump(data), "csv.yaml")


def test_weather_csv_error_names_weather_csv(tmp_path):
    from twin.build.prepare import prepare

    path = _csv_scenario(tmp_path, "time,ghi_w_m2,temp_air_c,wind_speed_m_s\n"
                                   "2025-06-21T00:00:00Z,0,10,3\n2025-06-22T00:00:00Z,0,10,3\n")
    with pytest.raises(ScenarioError) as info:
        prepare(load_scenario(path), path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: weather.csv: weather file ") and "w.csv" in msg
    assert "covers 2025-06-21T00:00:00+00:00 to 2025-06-22T00:00:00+00:00" in msg


def test_weather_csv_missing_exits_2_through_the_cli(tmp_path):
    path = _csv_scenario(tmp_path, None)
    result = _cli("validate", str(path))
    assert result.exit_code == 2
    assert "weather.csv: weather file" in result.output and "cannot read the file" in result.output
