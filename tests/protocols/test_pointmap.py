"""The point map of a field plan (twin.protocols.pointmap.point_map) on the default scenario,
scenarios/cigre_mv_day.yaml: one row per RTU point and per command of the devices each RTU
lists, addresses laid out densely by the module's conventions, ranges from the grid, the
CSV a run writes, and ``twin points``."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from twin.build import field as build_field
from twin.build.prepare import prepare
from twin.cli import app
from twin.models import comms
from twin.models.field import Device, FieldPlan
from twin.protocols.pointmap import (
    IEC104_MEASURAND_IOA,
    IEC104_SETPOINT_IOA,
    IEC104_STATUS_IOA,
    IEC104_SWITCH_IOA,
    INT16_RANGE,
    MODBUS_STATUS_OFFSET,
    POINTS_FILE,
    STATUS_QUANTITIES,
    UNRATED_MW,
    PointMap,
    point_map,
    quantity_unit,
    write_csv,
    write_point_map,
)
from twin.scenario import ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "cigre_mv_day.yaml"
#: Remote commands per device kind (twin.models.field.ACTIONS; open/close are one switch).
COMMANDS = {"switch": ["switch"], "trafo": ["set_tap"], "shunt": ["set_step"],
            "wind": ["set_p_limit", "set_q"], "pv": ["set_p_limit", "set_q"],
            "battery": ["set_p"], "ev": ["set_ev_limit"]}


def _prepared():
    return prepare(load_scenario(SCENARIO), SCENARIO, check_only=True)


@pytest.fixture(scope="module")
def prep():
    return _prepared()


@pytest.fixture(scope="module")
def pm(prep) -> PointMap:
    return point_map(prep.field, prep.net)


@pytest.fixture(scope="module")
def rtus() -> list[dict]:
    return yaml.safe_load(SCENARIO.read_text(encoding="utf-8"))["rtus"]


def _commands(rtu: dict) -> list[str]:
    return [f"{ref}/{c}" for ref in rtu["devices"] for c in COMMANDS[ref.split(":")[0]]]


def test_rows_match_the_scenarios_points_and_devices_one_to_one(pm, rtus):
    assert pm.rtus() == [r["name"] for r in rtus]
    for ca, rtu in enumerate(rtus, start=1):
        rows = pm.for_rtu(rtu["name"])
        assert {p.iec104_ca for p in rows} == {ca}
        telemetry = [p for p in rows if p.direction == "telemetry"]
        # the scenario's points, then the scan time (every RTU of this scenario has points)
        assert [p.name for p in telemetry] == [f"{q['element']}/{q['quantity']}"
                                                for q in rtu["points"]] + [
            f"rtu:{rtu['name']}/scan_t_s"]
        assert [p.quantity for p in telemetry] == [q["quantity"] for q in rtu["points"]] + [
            "scan_t_s"]
        assert (telemetry[-1].unit, telemetry[-1].value_type, telemetry[-1].high) == \
            ("s", "float", 2.0**24)
        commands = [p for p in rows if p.direction == "command"]
        assert sorted(p.name for p in commands) == sorted(_commands(rtu))
        status = [p for p in rows if p.direction == "status"]
        assert [p.name for p in status] == [f"{p.name}/status" for p in commands]
    # counted from the YAML: 26 points and 8 scan times; 4 + 1 + 1 + 1 + 1 + 2 (wind P limit
    # and Q) + 1 + 1 commands, each with its status register
    assert Counter(p.direction for p in pm.points) == {"telemetry": 26 + 8, "command": 12,
                                                       "status": 12}
    assert Counter(p.rtu for p in pm.points)["RTU Substation"] == 12 + 1 + 4 + 4


def _registers(points) -> list[int]:
    return [a for p in points for a in range(p.modbus_address, p.modbus_address + p.modbus_count)]


def test_addresses_are_dense_and_unique_per_rtu_table_and_ioa_block(pm):
    for rtu in pm.rtus():
        rows = pm.for_rtu(rtu)
        by_table = {t: [p for p in rows if p.modbus_table == t]
                    for t in ("input_register", "discrete_input", "coil", "holding_register")}
        for table, points in by_table.items():  # no register twice in a table
            regs = _registers(points)
            assert len(regs) == len(set(regs)), (rtu, table)
        measurands = [p for p in rows if p.direction == "telemetry" and p.value_type == "float"]
        singles = [p for p in rows if p.direction == "telemetry" and p.value_type == "bool"]
        switches = [p for p in rows if p.quantity == "switch"]
        setpoints = [p for p in rows if p.direction == "command" and p.quantity != "switch"]
        assert sorted(_registers(by_table["input_register"])) == list(range(2 * len(measurands)))
        assert sorted(_registers(by_table["discrete_input"])) == list(range(len(singles)))
        assert sorted(_registers(by_table["coil"])) == list(range(len(switches)))
        # the set-points follow the switches in one command sequence, below the status block
        n = len(switches)
        m = sum(p.modbus_count for p in setpoints)
        assert sorted(_registers(setpoints)) == list(range(n, n + m))
        assert n + m <= MODBUS_STATUS_OFFSET
        commands = {p.name: p for p in switches + setpoints}
        for status in (p for p in rows if p.direction == "status"):
            command = commands[status.name.removesuffix("/status")]
            assert status.modbus_table == "holding_register" and status.modbus_count == 1
            assert status.modbus_address == command.modbus_address + MODBUS_STATUS_OFFSET
            assert (status.iec104_ioa, status.iec104_type) == (0, "")
        ioas = [p.iec104_ioa for p in rows if p.direction != "status"]
        assert len(ioas) == len(set(ioas))
        for block, first in ((singles, IEC104_STATUS_IOA), (measurands, IEC104_MEASURAND_IOA),
                             (switches, IEC104_SWITCH_IOA), (setpoints, IEC104_SETPOINT_IOA)):
            assert [p.iec104_ioa for p in block] == list(range(first, first + len(block)))


def test_substation_rtu_addresses(pm):
    rows = {p.name: p for p in pm.for_rtu("RTU Substation")}
    # ten measurands before it in the scenario: IR 0-1 … 18-19; the two switch states DI 0, 1
    line = rows["line:Line 12-13/i_ka"]
    assert (line.modbus_table, line.modbus_address, line.iec104_ioa) == ("input_register", 18,
                                                                          1010)
    assert rows["switch:switch_7/closed"].modbus_address == 1
    assert rows["switch:switch_7/closed"].iec104_ioa == 2
    # two switches (coils 0, 1), then the taps in holding registers 2 and 3
    tap = rows["trafo:Trafo 0-12/set_tap"]
    assert (tap.modbus_table, tap.modbus_address, tap.iec104_ioa) == ("holding_register", 3, 3002)
    assert rows["trafo:Trafo 0-12/set_tap/status"].modbus_address == 103
    assert rows["switch:switch_7/switch/status"].modbus_address == 101


def test_types_float32_two_registers_switches_coils_with_sbo(pm, rtus):
    for p in pm.points:
        if p.value_type == "float":
            assert p.modbus_count == 2
            assert p.iec104_type == ("M_ME_NC_1" if p.direction == "telemetry" else "C_SE_NC_1")
        else:
            assert p.modbus_count == 1
        assert p.select_before_operate == (p.quantity == "switch")
    switches = [p for p in pm.points if p.quantity == "switch"]
    listed = [ref for r in rtus for ref in r["devices"] if ref.startswith("switch:")]
    assert sorted(p.element for p in switches) == sorted(listed)  # not S3: a crew's
    for p in switches:
        assert (p.modbus_table, p.iec104_type, p.value_type) == ("coil", "C_DC_NA_1", "bool")
        assert (p.low, p.high) == (0.0, 1.0)
    closed = [p for p in pm.points if p.quantity == "closed"]
    assert len(closed) == 4
    assert all((p.modbus_table, p.iec104_type) == ("discrete_input", "M_SP_NA_1")
               for p in closed)
    taps = [p for p in pm.points if p.quantity in ("set_tap", "set_step")]
    assert len(taps) == 4
    assert all((p.modbus_table, p.value_type, p.iec104_type)
               == ("holding_register", "int", "C_SE_NB_1") for p in taps)
    # tap_pos and step are measurands (float32), like P and Q
    assert {p.modbus_table for p in pm.points if p.quantity in ("tap_pos", "step")} \
        == {"input_register"}


def test_units(pm):
    units = {(p.quantity, p.unit) for p in pm.points if p.direction == "telemetry"}
    assert units == {("vm_pu", "p.u."), ("i_ka", "kA"), ("p_mw", "MW"), ("q_mvar", "Mvar"),
                     ("tap_pos", "-"), ("step", "-"), ("closed", "-"), ("scan_t_s", "s")}
    assert quantity_unit("loading_percent") == "%"
    assert quantity_unit("fcr_inject_mw") == "MW"
    assert quantity_unit("n_connected") == "-"
    commands = {p.quantity: p.unit for p in pm.points if p.direction == "command"}
    assert commands == {"switch": "-", "set_tap": "-", "set_step": "-", "set_p_limit": "MW",
                        "set_q": "Mvar", "set_p": "MW", "set_ev_limit": "MW"}


def test_command_ranges_come_from_the_grid(pm, prep):
    rows = {p.name: p for p in pm.points}
    net = prep.net
    for pos, name in enumerate(net.trafo["name"]):
        tap = rows[f"trafo:{name}/set_tap"]
        idx = net.trafo.index[pos]
        assert (tap.low, tap.high) == (net.trafo.at[idx, "tap_min"], net.trafo.at[idx, "tap_max"])
        assert (tap.low, tap.high) == (-9, 9)  # CIGRE MV's OLTCs
        telemetry = rows[f"trafo:{name}/tap_pos"]
        assert (telemetry.low, telemetry.high) == (-9, 9)
    assert (rows["shunt:Cap 6/set_step"].low, rows["shunt:Cap 6/set_step"].high) == (0, 3)
    # WKA 7: sn_mva 1.5; Battery 1: max_p_mw 0.6 (positive charging); the EV point: no rating
    assert (rows["wind:WKA 7/set_p_limit"].low, rows["wind:WKA 7/set_p_limit"].high) == (0, 1.5)
    assert (rows["wind:WKA 7/set_q"].low, rows["wind:WKA 7/set_q"].high) == (-1.5, 1.5)
    assert (rows["battery:Battery 1/set_p"].low,
            rows["battery:Battery 1/set_p"].high) == (-0.6, 0.6)
    assert (rows["ev:Bus 10/set_ev_limit"].low,
            rows["ev:Bus 10/set_ev_limit"].high) == (0, UNRATED_MW)
    assert (rows["bus:Bus 1/vm_pu"].low, rows["bus:Bus 1/vm_pu"].high) == (0.8, 1.2)


def test_without_the_net_same_addresses_default_ranges(pm, prep):
    bare = point_map(prep.field)
    strip = [(p.rtu, p.name, p.modbus_table, p.modbus_address, p.iec104_ioa) for p in pm.points]
    assert [(p.rtu, p.name, p.modbus_table, p.modbus_address, p.iec104_ioa)
            for p in bare.points] == strip
    rows = {p.name: p for p in bare.points}
    assert (rows["trafo:Trafo 0-1/set_tap"].low, rows["trafo:Trafo 0-1/set_tap"].high) \
        == INT16_RANGE
    assert rows["battery:Battery 1/set_p"].high == UNRATED_MW


def test_csv_round_trips_through_from_rows(pm, prep, tmp_path):
    path = write_point_map(prep.field, tmp_path, prep.net)
    assert path == tmp_path / POINTS_FILE
    with path.open(newline="", encoding="utf-8") as f:
        back = PointMap.from_rows(csv.DictReader(f))
    assert back == pm
    buffer = io.StringIO()
    write_csv(pm, buffer, lineterminator="\n")
    assert PointMap.from_rows(csv.DictReader(io.StringIO(buffer.getvalue()))) == pm


def test_no_rtus_no_file(tmp_path):
    empty = FieldPlan(rtus=[], truth={}, devices={}, crew=None)
    assert write_point_map(empty, tmp_path) is None
    assert write_point_map(None, tmp_path) is None
    assert not (tmp_path / POINTS_FILE).exists()


def test_same_scenario_same_map(pm):
    again = _prepared()  # a new net, a new plan
    assert point_map(again.field, again.net) == pm


def _batteries(n: int) -> FieldPlan:
    rtu = comms.RTUSpec(name="R", points=(), scan_period_s=10.0, link=comms.LinkSpec.fibre())
    devices = {f"battery:B{i}": Device(ref=f"battery:B{i}", kind="battery", eid=f"dev:B{i}",
                                       attr="p_setpoint_mw", rtu="R") for i in range(n)}
    return FieldPlan(rtus=[rtu], truth={}, devices=devices, crew=None)


def test_an_rtu_holds_at_most_100_command_registers():
    # 50 float32 set-points fill holding registers 0 … 99; their status registers 100 … 198
    full = point_map(_batteries(50))
    assert max(p.modbus_address for p in full.points if p.direction == "command") == 98
    assert max(p.modbus_address for p in full.points) == 198
    with pytest.raises(ScenarioError, match=r"rtus\[0\].devices: expected at most 100"):
        point_map(_batteries(51))


def test_status_quantities_are_the_field_and_comms_booleans():
    # single points: what the comm model delivers as bool and the field reports by exception
    assert STATUS_QUANTITIES == comms.BOOLEAN_QUANTITIES | build_field._STATUS


def _invoke(*args: str):
    result = CliRunner().invoke(app, ["points", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_twin_points_prints_the_map(pm):
    result = _invoke(str(SCENARIO))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for ca, rtu in enumerate(pm.rtus(), start=1):
        assert f"{rtu} (IEC 104 common address {ca}, Modbus unit 1)" in lines
    # one line per point, a header per RTU, a blank line between RTUs
    assert len(lines) == len(pm.points) + 2 * len(pm.rtus()) + len(pm.rtus()) - 1
    tap = next(ln for ln in lines if "trafo:Trafo 0-12/set_tap " in ln)
    assert tap.split("set_tap", 1)[1].split() == ["command", "int", "-", "HR", "3", "C_SE_NB_1",
                                                  "3002", "-9", "…", "9"]
    assert any("switch:S1/switch" in ln and "C_DC_NA_1 2001 SBO" in ln for ln in lines)


def test_twin_points_csv_is_the_map(pm):
    result = _invoke(str(SCENARIO), "--format", "csv")
    assert result.exit_code == 0, result.output
    assert PointMap.from_rows(csv.DictReader(io.StringIO(result.stdout))) == pm


def test_twin_points_set_overrides_the_scenario():
    result = _invoke(str(SCENARIO), "--set", "rtus[1].devices=[]", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["name"] for r in rows if r["rtu"] == "RTU Bus 6"] == [
        "bus:Bus 6/vm_pu", "line:Line 5-6/i_ka", "shunt:Cap 6/step", "rtu:RTU Bus 6/scan_t_s"]


def test_twin_points_bad_scenario_is_one_line_exit_2(tmp_path):
    data = yaml.safe_load(SCENARIO.read_text(encoding="utf-8"))
    data["rtus"][0]["points"][0]["element"] = "bus:No Such Bus"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    result = _invoke(str(path))
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error:") and str(path) in lines[0]
    assert "rtus[0].points[0].element" in lines[0] and "No Such Bus" in lines[0]


def test_a_run_writes_its_point_map_next_to_its_store(tmp_path):
    from twin.runner import run_scenario

    scenario = ROOT / "scenarios" / "cigre_mv_day.yaml"
    run = run_scenario(scenario, out=tmp_path / "run", until="2min")
    with (run.run_dir / "points.csv").open(encoding="utf-8", newline="") as f:
        written = PointMap.from_rows(csv.DictReader(f))
    prep = prepare(load_scenario(scenario), check_only=True)
    assert written == point_map(prep.field, prep.net)
