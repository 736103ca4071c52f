"""KPI accumulation: time weighting with event-triggered extra samples."""

from __future__ import annotations

import pytest

from twin.evaluation.kpis import KpiAccumulator
from twin.recording.schema import Point


def _grid(loss_mw, converged=1):
    return Point("grid", 0, {"run": "r", "element": "grid"},
                 {"converged": converged, "p_loss_mw": loss_mw, "p_load_mw": 10.0,
                  "p_ext_grid_mw": 10.0 + loss_mw})


def _bus(name, vm):
    return Point("bus", 0, {"run": "r", "element": name}, {"vm_pu": vm})


def test_time_weighted_energy_and_violations():
    k = KpiAccumulator(band_pu=(0.95, 1.05))
    # 0–60 s: 0.6 MW losses, one bus at 1.06 (violation)
    k.add(0.0, [_grid(0.6), _bus("a", 1.06), _bus("b", 1.0)])
    # an event-triggered solve at 30 s replaces the state: no violation, 1.2 MW losses
    k.add(30.0, [_grid(1.2), _bus("a", 1.02), _bus("b", 0.94)])
    k.add(60.0, [_grid(0.0, converged=0)])
    out = k.finish(120.0)
    # losses: 0.6 MW·30 s + 1.2 MW·30 s + NaN (failed solve contributes nothing) → 0.015 MWh
    assert out["energy_losses_mwh"] == pytest.approx((0.6 * 30 + 1.2 * 30) / 3600)
    # 0–30 s bus a out of band, 30–60 s bus b out of band, 60–120 s unknown → 1 minute
    assert out["voltage_violation_minutes"] == pytest.approx(1.0)
    assert out["voltage_violation_bus_minutes"] == pytest.approx(1.0)
    assert out["vm_min_pu"] == 0.94 and out["vm_max_pu"] == 1.06
    assert out["grid_solves"] == 3 and out["non_converged_steps"] == 1


def test_pv_energy_and_max_loading():
    k = KpiAccumulator()
    for t, p in ((0.0, 1.0), (3600.0, 2.0)):
        k.add(t, [Point("pv", 0, {"element": "p1"}, {"p_mw": p, "curtailed_mw": 0.5}),
                  Point("line", 0, {"element": "L1"}, {"loading_percent": 40 + p}),
                  Point("line", 0, {"element": "L2"}, {"loading_percent": 30.0})])
    out = k.finish(7200.0)
    assert out["pv_energy_mwh"] == pytest.approx(3.0)
    assert out["pv_curtailed_mwh"] == pytest.approx(1.0)
    assert out["max_line_loading_percent"] == 42.0
    assert out["max_line_loading_element"] == "L1"


def test_ev_battery_and_field_counts():
    k = KpiAccumulator()
    for t in (0.0, 1800.0):
        k.add(t, [Point("ev", 0, {"element": "Bus 1"}, {"p_mw": 0.2, "energy_short_mwh": 0.01}),
                  Point("battery", 0, {"element": "B1"}, {"p_mw": -0.4}),
                  Point("battery", 0, {"element": "B2"}, {"p_mw": 0.1}),
                  Point("telemetry", 0, {"element": "RTU"}, {"value": 1.0}),
                  Point("command", 0, {"element": "switch:S1", "status": "timeout"}, {})])
    out = k.finish(3600.0)
    assert out["ev_energy_mwh"] == pytest.approx(0.2)
    assert out["ev_energy_short_mwh"] == pytest.approx(0.02)
    assert out["battery_discharge_mwh"] == pytest.approx(0.4)
    assert out["battery_charge_mwh"] == pytest.approx(0.1)
    assert out["telemetry_values_delivered"] == 2 and out["commands_timeout"] == 2


def test_a_misspelt_measurement_fails_loudly():
    """A point under a name the schema does not know would silently count nothing."""
    k = KpiAccumulator()
    k.add(0.0, [_grid(0.1), Point("switch", 0, {"run": "r", "element": "S1"}, {"closed": True})])
    with pytest.raises(ValueError, match=r"'telemetri'.*'telemetry'"):
        k.add(60.0, [Point("telemetri", 0, {"run": "r", "element": "RTU 1"}, {"value": 1.0})])


def test_dispatch_uses_the_schema_builders():
    """Records made by the schema's builders reach the KPIs they feed."""
    from twin.recording import schema

    k = KpiAccumulator()
    records = [schema.telemetry_record("RTU 1", "p", 1.0, 0.0, 0.5),
               schema.command_record("switch:S1", "open", "success", "RTU 1", "c1", None, "ok",
                                     0.0, 1.0, 2.0),
               schema.protection_record(1.0, "S1", "trip", {"fault": "F1"}),
               schema.dms_estimation_record(1.0, False, True, 3, 2, None, 1, 0, "")]
    k.add(0.0, [schema.record_point(r, "r", 0) for r in records])
    out = k.finish(60.0)
    assert (out["telemetry_values_delivered"], out["commands_success"],
            out["switching_operations"], out["protection_trips"], out["dms_cycles"],
            out["dms_cycles_failed"], out["bad_data_detected"]) == (1, 1, 1, 1, 1, 1, 1)
