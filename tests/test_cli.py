"""``twin validate`` rejects whatever ``twin run`` would: each case below passed the schema
check alone (the old ``validate``) but names something the grid lacks or cannot be run.
Every error is one line and exit 2; events after the end are a warning (exit 0)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pandapower as pp
import pytest
import yaml
from typer.testing import CliRunner

from twin.cli import app
from twin.grid import paper
from twin.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "scenarios" / "flisr_three_loads.yaml"


def _base() -> dict:
    return yaml.safe_load(BASE.read_text(encoding="utf-8"))


def _write(tmp_path: Path, data: dict, name: str = "case.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _validate(path: Path):
    result = CliRunner().invoke(app, ["validate", str(path)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def _with(**changes) -> dict:
    data = copy.deepcopy(_base())
    data.update(changes)
    return data


def _rtus_plus(point: dict | None = None, device: str | None = None) -> list[dict]:
    rtus = copy.deepcopy(_base()["rtus"])
    if point is not None:
        rtus[0]["points"].append(point)
    if device is not None:
        rtus[0]["devices"].append(device)
    return rtus



CASES = {
    "unknown PV bus": (
        {"pv": {"plants": [{"name": "PV X", "bus": "No Such Bus", "p_peak_kw": 100}]}},
        "pv.plants[0].bus"),
    "RTU point on an unknown element": (
        {"rtus": _rtus_plus(point={"element": "line:Line X-Y", "quantity": "i_ka"})},
        "rtus[0].points[6].element"),
    "RTU device unknown": (
        {"rtus": _rtus_plus(device="switch:Breaker 9")}, "rtus[0].devices[1]"),
    "manual switch that does not exist": (
        {"devices": {"manual_switches": ["Breaker 9"]}}, "devices.manual_switches[0]"),
    "fault on an unknown line": (
        {"faults": [{"after": "30min", "line": "Line L9-L9"}]}, "faults[0].line"),
    "command to an unknown device": (
        {"commands": [{"after": "1h", "target": "switch:Breaker 9", "action": "open"}]},
        "commands[0].target"),
    "command action for another kind": (
        {"commands": [{"after": "1h", "target": "switch:Breaker 1", "action": "set_tap",
                       "value": 1}]}, "commands[0].action"),
    "command with a NaN value": (
        {"rtus": _rtus_plus(device="trafo:Trafo Substation 1"),
         "commands": [{"after": "1h", "target": "trafo:Trafo Substation 1",
                       "action": "set_tap", "value": math.nan}]}, "commands[0].value"),
    "tap beyond the tap range": (
        {"rtus": _rtus_plus(device="trafo:Trafo Substation 1"),
         "commands": [{"after": "1h", "target": "trafo:Trafo Substation 1",
                       "action": "set_tap", "value": 12}]}, "commands[0].value"),
    "fault with an infinite impedance": (
        {"faults": [{"after": "30min", "line": "Line L1-L2", "r_ohm": math.inf}]},
        "faults[0].r_ohm"),
    "bad SimBench code": (
        {"grid": {"simbench": "9-XX-nowhere--0-sw"}}, "grid.simbench"),
    "grid file that does not exist": (
        {"grid": {"file": "no_such_grid.json"}}, "grid.file"),
    "unknown load in reliability.customers": (
        {"reliability": {"customers": {"Load R9": 10}}}, "reliability.customers"),
}


# non-finite numbers: the schema rejects them too; prepare checks again for callers that
# build a Scenario without it
SCHEMA_CATCHES = {"command with a NaN value", "fault with an infinite impedance"}


@pytest.mark.parametrize("case", list(CASES))
def test_validate_rejects_what_run_would(tmp_path, case):
    changes, key = CASES[case]
    path = _write(tmp_path, _with(**changes))
    if case not in SCHEMA_CATCHES:
        load_scenario(path)  # the schema alone accepts it
    result = _validate(path)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output  # one line, no traceback
    assert lines[0].startswith("invalid:") and str(path) in lines[0] and key in lines[0], lines


def test_validate_checks_weather_file_coverage(tmp_path):
    # an hour of weather for a five-hour run: the first step is covered, the last is not
    rows = ["time,ghi_w_m2,temp_air_c,wind_speed_m_s"]
    rows += [f"2026-01-14T{h:02d}:00:00Z,100,5,4" for h in (9, 10, 11)]
    (tmp_path / "weather.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    path = _write(tmp_path, _with(weather={"source": "csv", "csv": "weather.csv"}))
    result = _validate(path)
    assert result.exit_code == 2, result.output
    assert "weather" in result.output
    rows += [f"2026-01-14T{h:02d}:00:00Z,100,5,4" for h in range(12, 16)]
    (tmp_path / "weather.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    ok = _validate(path)
    assert ok.exit_code == 0, ok.output
    assert "weather: file weather.csv covers the run" in ok.output


@pytest.mark.parametrize("defect", ["zero-length line", "NaN voltage level", "no convergence"])
def test_validate_rejects_a_grid_file_the_power_flow_cannot_use(tmp_path, defect):
    net = paper.create_paper_flisr_net()
    if defect == "zero-length line":
        net.line.loc[net.line.index[1], "length_km"] = 0.0
        key = "Line L1-L2"
    elif defect == "NaN voltage level":
        net.bus.loc[net.bus.index[3], "vn_kv"] = math.nan
        key = "Load 1"
    else:
        net.load["p_mw"] = net.load["p_mw"] * 1000  # far beyond what the cables carry
        key = "converges"
    pp.to_json(net, str(tmp_path / "grid.json"))
    path = _write(tmp_path, _with(grid={"file": "grid.json"}))
    result = _validate(path)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "grid" in lines[0] and key in lines[0], lines


def test_validate_grid_file_that_loads(tmp_path):
    pp.to_json(paper.create_paper_flisr_net(), str(tmp_path / "grid.json"))
    result = _validate(_write(tmp_path, _with(grid={"file": "grid.json"})))
    assert result.exit_code == 0, result.output
    assert "power flow: converges" in result.output


def test_validate_warns_of_a_fault_after_the_end(tmp_path):
    data = _with(faults=[{"after": "7h", "line": "Line L1-L2"}],
                 commands=[{"after": "6h", "target": "switch:Breaker 4", "action": "close"}])
    result = _validate(_write(tmp_path, data))
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "faults[0].after" in result.output
    assert "commands[0].after" in result.output


def test_validate_warns_of_a_command_no_path_reaches(tmp_path):
    # an element of the grid, but no RTU lists it: the run records the command as failed
    data = _with(commands=[{"after": "1h", "target": "trafo:Trafo Substation 1",
                            "action": "set_tap", "value": 1}])
    result = _validate(_write(tmp_path, data))
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "commands[0].target" in result.output
    assert "records the command as failed" in result.output


def test_validate_prints_the_checks_it_ran():
    result = _validate(BASE)
    assert result.exit_code == 0, result.output
    for check in ("schema", "grid:", "names resolved", "weather:", "profiles:", "power flow:",
                  "events and commands: within the run"):
        assert check in result.output, check


def test_validate_rejects_a_repeated_rtu_point_and_an_impossible_fleet(tmp_path):
    rtus = _rtus_plus(point={"element": "bus:Substation 1", "quantity": "vm_pu"})
    result = _validate(_write(tmp_path, _with(rtus=rtus)))
    assert result.exit_code == 2 and "rtus[0].points[6]: expected each point once" in \
        result.output, result.output
    result = _validate(_write(tmp_path, _with(ev_fleet={"n_ev": 2**40})))
    assert result.exit_code == 2 and "ev_fleet.n_ev: expected at most" in result.output, \
        result.output
