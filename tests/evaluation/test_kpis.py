"""KPI accumulation: time weighting with event-triggered extra samples."""

from __future__ import annotations

import math

import pytest

from twin.evaluation.kpis import KpiAccumulator, kpi_point
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


def _line(name, loading):
    return Point("line", 0, {"run": "r", "element": name}, {"loading_percent": loading})


def _trafo(name, loading):
    return Point("trafo", 0, {"run": "r", "element": name}, {"loading_percent": loading})


def test_the_warmup_excludes_the_opening_state_and_counts_what_follows():
    """The state before the warmup is not charged; the one after it is; a state set before
    the warmup and still valid after it counts for its part after it."""
    def run(warmup_s):
        k = KpiAccumulator(band_pu=(0.95, 1.05), warmup_s=warmup_s)
        # 0–60 s: bus a at 1.08, line L1 at 130 % (the opening state)
        k.add(0.0, [_grid(0.6), _bus("a", 1.08), _bus("b", 1.0), _line("L1", 130.0)])
        # 60–150 s: bus b at 1.06, L1 at 90 %
        k.add(60.0, [_grid(0.6), _bus("a", 1.0), _bus("b", 1.06), _line("L1", 90.0)])
        # 150–240 s: in band, L1 at 105 %
        k.add(150.0, [_grid(0.6), _bus("a", 1.0), _bus("b", 1.0), _line("L1", 105.0)])
        return k.finish(240.0)

    whole, warm, mid = run(0.0), run(60.0), run(120.0)
    # whole run: 60 s (a) + 90 s (b) out of band = 2.5 min; overloaded 60 s + 90 s = 2.5 min
    assert whole["voltage_violation_minutes"] == pytest.approx(2.5)
    assert whole["vm_max_pu"] == 1.08
    assert whole["max_line_loading_percent"] == 130.0
    assert whole["overload_minutes"] == pytest.approx(2.5)
    # from 60 s: bus a's 1.08 and L1's 130 % are gone; b's 90 s and L1's 105 % stay
    assert warm["warmup_s"] == 60.0
    assert warm["voltage_violation_minutes"] == pytest.approx(1.5)
    assert warm["voltage_violation_bus_minutes"] == pytest.approx(1.5)
    assert warm["vm_max_pu"] == 1.06 and warm["vm_min_pu"] == 1.0
    assert (warm["max_line_loading_percent"], warm["max_line_loading_element"]) == (105.0, "L1")
    assert warm["overload_minutes"] == pytest.approx(1.5)
    # from 120 s: the state set at 60 s still holds 120–150 s: 30 s of b's violation count,
    # and its voltage is still the highest seen after the warmup
    assert mid["voltage_violation_minutes"] == pytest.approx(0.5)
    assert mid["vm_max_pu"] == 1.06
    # balances stay whole-run: 0.6 MW over 240 s
    for out in (whole, warm, mid):
        assert out["energy_losses_mwh"] == pytest.approx(0.6 * 240 / 3600)
        assert out["grid_solves"] == 3


def test_a_warmup_past_the_end_judges_nothing():
    k = KpiAccumulator(warmup_s=600.0)
    k.add(0.0, [_grid(0.1), _bus("a", 1.2), _line("L1", 150.0)])
    out = k.finish(300.0)
    assert out["voltage_violation_minutes"] == 0.0 and out["overload_minutes"] == 0.0
    assert out["vm_max_pu"] is None and out["max_line_loading_percent"] is None
    assert out["energy_losses_mwh"] == pytest.approx(0.1 * 300 / 3600)


def test_a_negative_warmup_is_refused():
    with pytest.raises(ValueError, match="warmup_s"):
        KpiAccumulator(warmup_s=-1.0)


def test_overload_minutes_integrate_lines_and_transformers_above_100_percent():
    k = KpiAccumulator()
    # 0–120 s: L1 and T1 overloaded (2 elements); 100 % exactly is not above the limit
    k.add(0.0, [_grid(0.1), _line("L1", 120.0), _line("L2", 100.0), _trafo("T1", 101.0)])
    # 120–150 s (an event-triggered solve): only T1
    k.add(120.0, [_grid(0.1), _line("L1", 99.0), _line("L2", 100.0), _trafo("T1", 110.0)])
    # 150–300 s: none; a failed solve at 240 s (no loadings) counts as not overloaded
    k.add(150.0, [_grid(0.1), _line("L1", 80.0), _line("L2", 80.0), _trafo("T1", 90.0)])
    k.add(240.0, [_grid(0.0, converged=0), _line("L1", math.nan), _trafo("T1", math.nan)])
    out = k.finish(300.0)
    assert out["overload_minutes"] == pytest.approx((120 + 30) / 60)
    assert out["overload_element_minutes"] == pytest.approx((2 * 120 + 30) / 60)
    assert (out["max_trafo_loading_percent"], out["max_trafo_loading_element"]) == (110.0, "T1")
    assert (out["max_line_loading_percent"], out["max_line_loading_element"]) == (120.0, "L1")


def test_dms_decisions_are_counted_by_function_and_action_over_every_mode():
    from twin.recording import schema

    def decision(t_s, function, action, mode):
        record = schema.dms_decision_record(t_s, "trafo:T1", function, action, mode,
                                            "Voltage high.", 1.0, {"vm_max_pu": 1.06})
        return schema.record_point(record, "r", 0)

    k = KpiAccumulator(warmup_s=600.0)  # counts are whole-run: the warmup does not apply
    k.add(5.0, [decision(5.0, "volt_var", "set_tap", "direct"),
                decision(5.0, "volt_var", "set_q", "advisory")])
    k.add(65.0, [decision(65.0, "volt_var", "set_tap", "remote"),
                 decision(65.0, "flisr", "open_switch", "manual")])
    out = k.finish(120.0)
    assert out["dms_decisions"] == {"flisr.open_switch": 1, "volt_var.set_q": 1,
                                    "volt_var.set_tap": 2}
    assert list(out["dms_decisions"]) == sorted(out["dms_decisions"])
    assert out["dms_decisions_total"] == 4
    assert KpiAccumulator().finish(0.0)["dms_decisions"] == {}


def test_the_kpi_point_keeps_the_numbers_and_leaves_the_decision_dict_out():
    k = KpiAccumulator()
    k.add(0.0, [_grid(0.1)])
    point = kpi_point("r", k.finish(60.0), 0)
    assert point.fields["dms_decisions_total"] == 0.0 and "dms_decisions" not in point.fields
    assert point.fields["warmup_s"] == 0.0 and point.fields["overload_minutes"] == 0.0
