"""The one record schema: builders, measurement names, and a misspelt name failing loudly."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from twin.dms.decisions import Decision
from twin.grid.model import RESULT_SPEC
from twin.recording import schema
from twin.recording.files import list_measurements
from twin.recording.schema import (
    GRID_TABLES,
    MEASUREMENTS,
    Point,
    check_measurement,
    record_point,
    table_points,
)

ROOT = Path(__file__).resolve().parents[2]


def test_record_builders_name_tags_and_fields():
    r = schema.telemetry_record("RTU 1", "Bus 3/vm_pu", 1.01, source_t_s=60.0,
                                delivery_t_s=60.25)
    assert r == {"measurement": "telemetry", "t_s": 60.25,
                 "tags": {"element": "RTU 1", "point": "Bus 3/vm_pu"},
                 "fields": {"value": 1.01, "latency_s": 0.25}}
    r = schema.command_record("switch:S1", "open", "success", "RTU 1", "c-1", None, "done",
                              sent_t_s=10.0, applied_t_s=None, result_t_s=12.5)
    assert r["measurement"] == "command" and r["t_s"] == 12.5
    assert r["tags"] == {"element": "switch:S1", "action": "open", "status": "success",
                         "via": "RTU 1"}
    assert list(r["fields"]) == ["id", "value", "result_delay_s", "applied_delay_s", "reason",
                                 "source"]
    assert r["fields"]["source"] == ""  # not given
    assert schema.command_record("switch:S1", "open", "success", "RTU 1", "c-1", None, "done",
                                 10.0, None, 12.5, source="modbus 127.0.0.1:5020"
                                 )["fields"]["source"] == "modbus 127.0.0.1:5020"
    assert math.isnan(r["fields"]["value"]) and math.isnan(r["fields"]["applied_delay_s"])
    assert r["fields"]["result_delay_s"] == 2.5
    r = schema.crew_record("switch:S1", 2, requested_t_s=0.0, started_t_s=10.0,
                           arrived_t_s=100.0, completed_t_s=400.0)
    assert r == {"measurement": "crew", "t_s": 400.0, "tags": {"element": "switch:S1", "crew": "2"},
                 "fields": {"wait_s": 10.0, "travel_s": 90.0, "work_s": 300.0}}
    assert schema.comm_record(5.0, "RTU 1", {"sent": 3, "dropped": 1})["fields"] == {
        "sent": 3, "dropped": 1}
    assert schema.protection_record(1.0, "Breaker 2", "lockout", {})["fields"] == {"count": 1}
    r = schema.dms_estimation_record(60.0, True, True, 12, 7, None, 0, 2, "")
    assert r["tags"] == {"element": "dms", "function": "state_estimation"}
    assert list(r["fields"]) == ["success", "observable", "n_measurements", "n_states", "chi2",
                                 "bad_data", "stale", "message"]
    assert r["fields"]["success"] == 1 and type(r["fields"]["success"]) is int
    assert math.isnan(r["fields"]["chi2"])
    assert schema.dms_cycle_note_record(60.0, "flisr", "nothing to do") == {
        "measurement": "dms_cycle", "t_s": 60.0,
        "tags": {"element": "dms", "function": "flisr"}, "fields": {"message": "nothing to do"}}
    r = schema.dms_short_circuit_record(0.0, "switch:B1", 5.0, 12.0, None, 40.0, True)
    assert r["fields"]["ok"] == 1 and math.isnan(r["fields"]["breaking_ka"])


def test_decision_record():
    d = Decision(90.0, "volt_var", "set_tap", "trafo:T1", 2.0, "direct", "Voltage high.",
                 {"vm_max_pu": 1.061, "bus": "Bus 14", "stale_data": True})
    assert d.record() == {
        "measurement": "dms_decision", "t_s": 90.0,
        "tags": {"element": "trafo:T1", "function": "volt_var", "action": "set_tap",
                 "mode": "direct"},
        "fields": {"reason": "Voltage high.", "value": 2.0, "in_vm_max_pu": 1.061,
                   "in_bus": "Bus 14", "in_stale_data": 1.0}}


def test_points_carry_run_and_element():
    p = record_point(schema.dms_estimate_record(1.0, "Bus 1", 1.02), "r1", 7)
    assert p == Point("dms_estimate", 7, {"run": "r1", "element": "Bus 1"}, {"vm_pu": 1.02})
    p = schema.event_point("r1", 7, "grid", "powerflow_failed", "diverged")
    assert (p.measurement, p.tags["kind"], p.fields) == ("event", "powerflow_failed",
                                                         {"message": "diverged"})
    p = schema.live_point("r1", 7, speed=60.0, steps=3, lag_mean_s=0.0, lag_p99_s=0.1,
                          lag_max_s=0.2)
    assert p.measurement == "live" and list(p.fields) == [
        "speed", "steps", "lag_mean_s", "lag_p99_s", "lag_max_s"]
    p = schema.kpi_point("r1", {"saidi_min": 1.5, "n": 2, "ok": True, "band": [1, 2]}, 7)
    assert p.fields == {"saidi_min": 1.5, "n": 2.0}
    p = schema.grid_geo_dot_point("r1", 7, "Line 1", "line", 3, 1.0, 2.0)
    assert p.tags == {"run": "r1", "element": "Line 1", "kind": "line", "dot": "3"}


def test_grid_tables_are_in_the_schema():
    assert set(RESULT_SPEC) | {"switch"} <= set(GRID_TABLES)
    assert set(GRID_TABLES) <= MEASUREMENTS


def test_misspelt_measurement_fails_loudly():
    with pytest.raises(ValueError, match=r"'dms_decisions'.*dms_decision"):
        check_measurement("dms_decisions")
    bad = {"measurement": "telemetri", "t_s": 0.0, "tags": {"element": "x"},
           "fields": {"value": 1.0}}
    with pytest.raises(ValueError, match="telemetri"):
        record_point(bad, "r", 0)
    with pytest.raises(ValueError, match="buss"):
        table_points("buss", ["a"], {"vm_pu": [1.0]}, "r", 0)


def test_every_measurement_of_a_real_run_is_in_the_schema(tmp_path):
    """A fault, protection, FLISR, commands through the field, the DMS: what a short run
    records is all in the schema."""
    from twin.runner import run_scenario

    run = run_scenario(ROOT / "scenarios" / "flisr_three_loads.yaml", out=tmp_path / "run",
                       until="1h")
    recorded = set(list_measurements(Path(run.run_dir) / "store"))
    assert recorded <= MEASUREMENTS, recorded - MEASUREMENTS
    assert {"bus", "grid", "protection", "telemetry", "command", "dms_cycle", "dms_decision",
            "grid_geo", "kpi"} <= recorded
