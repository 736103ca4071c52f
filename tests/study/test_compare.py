"""The comparison's logic on synthetic rows: statistics, judgement, verdict, divergence."""

from __future__ import annotations

import math

import pytest

from twin.evaluation.kpi_meta import DEFAULT_CRITICAL, KPI_TABLE, kpi_meta
from twin.study.compare import (
    Comparison,
    Decision,
    ScenarioPlan,
    Side,
    combine,
    compare_results,
    first_divergence,
    flatten_kpis,
    judge,
    kpi_comparison,
    kpi_values,
    paired_stats,
    seed_list,
    tolerance,
    unique_labels,
    verdict_line,
)

#: The keys of a kpis.json of volt_var_high_pv (direct, --until 1h), as the runner writes it.
KPIS_JSON_KEYS = (
    "voltage_band_pu", "warmup_s", "voltage_violation_minutes", "voltage_violation_bus_minutes",
    "vm_min_pu", "vm_max_pu", "max_line_loading_percent", "max_line_loading_element",
    "max_trafo_loading_percent", "max_trafo_loading_element", "overload_minutes",
    "overload_element_minutes", "energy_losses_mwh", "load_energy_mwh", "ext_grid_energy_mwh",
    "pv_energy_mwh", "pv_curtailed_mwh", "wind_energy_mwh", "wind_curtailed_mwh", "grid_solves",
    "non_converged_steps", "ev_energy_mwh", "ev_energy_short_mwh", "battery_charge_mwh",
    "battery_discharge_mwh", "telemetry_values_delivered", "commands_success", "commands_failed",
    "commands_timeout", "crew_jobs", "switching_operations", "protection_trips",
    "protection_recloses", "tap_operations", "capacitor_operations", "dms_cycles",
    "dms_cycles_failed", "bad_data_detected", "dms_decisions_total", "dms_decisions",
    "se_error_mean_pu", "se_error_max_pu", "frequency_nadir_hz", "frequency_max_hz",
    "rocof_max_hz_s", "frequency_response_mwh", "tie_line_deviation_mw",
    "curtailed_mwh_by_reason", "customers_served", "customers_interrupted",
    "customer_minutes_interrupted", "saifi", "saidi_min", "caidi_min", "momentary_interruptions",
    "maifi", "energy_not_supplied_mwh", "interruptions", "interruptions_momentary", "dms",
)


# --------------------------------------------------------------------------- the table


def test_every_kpi_has_a_row_and_the_critical_ones_are_the_issues():
    assert [row.key for row in KPI_TABLE] == list(KPIS_JSON_KEYS)
    assert DEFAULT_CRITICAL == ("voltage_violation_minutes", "saidi_min",
                                "energy_not_supplied_mwh", "overload_minutes")
    assert set(DEFAULT_CRITICAL) == {row.key for row in KPI_TABLE if row.critical}
    for row in KPI_TABLE:
        assert row.direction in (None, "lower", "higher")
        if row.critical:
            assert row.direction is not None
    # information only: counters without a good direction, names, unknown keys
    for key in ("telemetry_values_delivered", "grid_solves", "warmup_s",
                "max_line_loading_element", "dms_decisions.volt_var.set_tap", "no_such_kpi"):
        assert kpi_meta(key).direction is None
    assert kpi_meta("pv_energy_mwh").direction == "higher"
    assert kpi_meta("voltage_violation_minutes").unit == "min"


# --------------------------------------------------------------------------- statistics


def test_flatten_and_missing_nested_counts_are_zero():
    assert flatten_kpis({"a": 1, "d": {"volt_var.set_tap": 2, "x": {"y": 3}}}) == {
        "a": 1, "d.volt_var.set_tap": 2, "d.x.y": 3}
    rows = [{"kpis": {"a": 1, "d": {"f.g": 2}}}, {"kpis": {"a": 2, "d": {}}},
            {"kpis": {"a": 3}}, None]
    # the second run has the dict without the key (0); the third has no dict (None)
    assert kpi_values(rows) == {"a": [1, 2, 3, None], "d.f.g": [2, 0, None, None]}


def test_paired_stats_student_t_interval():
    stats = paired_stats([60.0, 59.0, 61.0], [1.0, 1.0, 2.0])
    assert stats.n == 3
    assert stats.mean_delta == pytest.approx(-176.0 / 3)
    assert stats.baseline_mean == pytest.approx(60.0)
    assert stats.relative_delta == pytest.approx(-176.0 / 3 / 60.0)
    # deltas -59, -58, -59: s_d = sqrt(1/3); t(0.975, 2) = 4.303 (any Student t table)
    half = 4.302653 * math.sqrt(1.0 / 3.0) / math.sqrt(3.0)
    assert stats.ci_low == pytest.approx(stats.mean_delta - half, rel=1e-6)
    assert stats.ci_high == pytest.approx(stats.mean_delta + half, rel=1e-6)


def test_one_seed_or_equal_deltas_give_a_point_interval():
    one = paired_stats([5.0], [3.0])
    assert (one.ci_low, one.ci_high) == (-2.0, -2.0)
    same = paired_stats([5.0, 6.0], [4.0, 5.0])
    assert same.ci_low == pytest.approx(-1.0) and same.ci_high == pytest.approx(-1.0)
    assert paired_stats([0.0], [1.0]).relative_delta is None
    with pytest.raises(ValueError, match="same length"):
        paired_stats([1.0], [])


def test_judgement_by_tolerance_interval_and_direction():
    better = paired_stats([10.0, 12.0], [2.0, 3.0])
    assert judge("lower", better, 0.1) == ("better", "lower is better")
    assert judge("higher", better, 0.1)[0] == "worse"
    assert judge(None, better, 0.1) == (None, "")
    assert judge("lower", paired_stats([10.0], [10.05]), 0.1) == ("same", "within tolerance")
    # the seeds disagree on the sign: the interval contains 0
    assert judge("lower", paired_stats([10.0, 10.0], [5.0, 16.0]), 0.1) == (
        "same", "interval contains 0")
    # tolerance: the KPI's atol + rtol·|baseline mean|; voltages have their own rtol (0)
    assert tolerance("voltage_violation_minutes", 100.0, 0.01) == pytest.approx(0.1 + 1.0)
    assert tolerance("vm_max_pu", 1.05, 0.01) == pytest.approx(1e-3)
    assert tolerance("no_such_kpi", 0.0, 0.01) == pytest.approx(1e-9)


def test_combine():
    assert combine([]) == "same"
    assert combine(["same", None, "same"]) == "same"
    assert combine(["better", "same"]) == "better"
    assert combine(["worse", "same", None]) == "worse"
    assert combine(["better", "worse"]) == "mixed"
    assert combine(["mixed", "same"]) == "mixed"


def test_kpi_comparison_information_and_missing_values():
    info = kpi_comparison("max_line_loading_element", ["Line 1", "Line 1"], ["Line 2", "Line 1"],
                          [1, 2])
    assert info["judgement"] is None and info["baseline"] == "Line 1"
    assert info["deltas"] == [None, None]
    counter = kpi_comparison("grid_solves", [60, 60], [62, 61], [1, 2])
    assert counter["judgement"] is None and counter["delta"] == pytest.approx(1.5)
    # a seed where one side has no value is left out of the pairs
    partial = kpi_comparison("caidi_min", [50.0, None], [40.0, 30.0], [1, 2])
    assert partial["n"] == 1 and partial["judgement"] == "better"
    # same by the interval, yet one seed alone worse (volt_var_high_pv off → direct, 10 h:
    # overload minutes 0, 0, 0 → 0, 0, 29)
    overload = kpi_comparison("overload_minutes", [0.0, 0.0, 0.0], [0.0, 0.0, 29.0], [11, 12, 13])
    assert overload["judgement"] == "same" and overload["why"] == "interval contains 0"
    assert overload["seeds_worse"] == [13] and overload["seeds_better"] == []
    none = kpi_comparison("caidi_min", [None], [None], [1])
    assert none["judgement"] is None and none["why"] == "no value to compare"


# --------------------------------------------------------------------------- the verdict


def _kpis(violation: float, saidi: float = 0.0, taps: int = 0) -> dict:
    return {"voltage_band_pu": [0.95, 1.05], "voltage_violation_minutes": violation,
            "saidi_min": saidi, "energy_not_supplied_mwh": 0.0, "overload_minutes": 0.0,
            "grid_solves": 60, "max_line_loading_element": "Line 3-8",
            "dms_decisions": {"volt_var.set_tap": taps} if taps else {}}


def _comparison(tmp_path, seeds=(11, 12), labels=("vv",)) -> Comparison:
    return Comparison(
        scenarios=tuple(ScenarioPlan(label, f"/s/{label}.yaml", label, tuple(seeds))
                        for label in labels),
        baseline=Side("baseline", ("dms.volt_var.mode=off",)),
        candidate=Side("candidate", ("dms.volt_var.mode=direct",)),
        out_dir=str(tmp_path), until="1h")


def _rows(comparison: Comparison, kpis: dict) -> list[dict]:
    """One completed row per job; ``kpis[(label, side, seed)]``."""
    rows = []
    for job in comparison.jobs():
        label, side, seed = job.key.split("/")
        rows.append({"key": job.key, "scenario": job.scenario, "seed": job.seed,
                     "overrides": list(job.overrides), "status": "completed", "error": "",
                     "wall_time_s": 1.0, "run_dir": job.run_dir,
                     "kpis": kpis[(label, side, int(seed.split("-")[1]))],
                     "expectations": [{"name": "band", "kind": "kpi", "passed": side ==
                                       "candidate", "expected": "<= 5", "actual": 1}]})
    return rows


def _no_decisions(run_dir: str) -> list[Decision]:
    return []


def test_jobs_of_a_comparison(tmp_path):
    comparison = _comparison(tmp_path)
    jobs = comparison.jobs()
    assert [j.key for j in jobs] == ["vv/baseline/seed-11", "vv/candidate/seed-11",
                                     "vv/baseline/seed-12", "vv/candidate/seed-12"]
    assert jobs[1].run_dir == str(tmp_path / "runs" / "vv" / "candidate" / "seed-11")
    assert jobs[1].overrides == ("dms.volt_var.mode=direct",) and jobs[1].seed == 11
    assert jobs[0].until == "1h"
    assert Side("c", ("a=1",), "my.mod:Dms").all_overrides() == (
        "a=1", "dms.enabled=true", "dms.class=my.mod:Dms")
    assert seed_list(11, 3) == (11, 12, 13)
    with pytest.raises(ValueError):
        seed_list(11, 0)
    assert unique_labels(["a", "b", "a"]) == ["a", "b", "a-2"]


def test_better_and_swapped_worse(tmp_path):
    comparison = _comparison(tmp_path)
    kpis = {("vv", "baseline", 11): _kpis(59.0), ("vv", "baseline", 12): _kpis(58.0),
            ("vv", "candidate", 11): _kpis(1.0, taps=2), ("vv", "candidate", 12): _kpis(1.0)}
    result = compare_results(comparison, _rows(comparison, kpis), _no_decisions)
    assert result["verdict"] == "better" and result["exit_code"] == 0
    assert result["critical_judgements"] == {
        "voltage_violation_minutes": "better", "saidi_min": "same",
        "energy_not_supplied_mwh": "same", "overload_minutes": "same"}
    scenario = result["scenarios"][0]
    v = scenario["kpis"]["voltage_violation_minutes"]
    assert v["baseline_values"] == [59.0, 58.0] and v["candidate_values"] == [1.0, 1.0]
    assert v["delta"] == pytest.approx(-57.5) and v["critical"] is True
    assert v["ci95"][0] < v["delta"] < v["ci95"][1] < 0
    assert v["direction"] == "lower" and v["unit"] == "min"
    # the nested count the baseline's (empty) dict lacks is 0; no direction: information
    taps = scenario["kpis"]["dms_decisions.volt_var.set_tap"]
    assert taps["baseline_values"] == [0, 0] and taps["candidate_values"] == [2, 0]
    assert taps["judgement"] is None
    assert scenario["expectations"]["candidate"][0]["results"][0]["passed"] is True
    assert result["summary"].startswith(
        "verdict: better (candidate vs baseline over 1 scenario × 2 seeds; critical: "
        "voltage_violation_minutes better, saidi_min same")
    assert "\n" not in result["summary"]

    swapped = {(label, "candidate" if side == "baseline" else "baseline", seed): value
               for (label, side, seed), value in kpis.items()}
    worse = compare_results(comparison, _rows(comparison, swapped), _no_decisions)
    assert worse["verdict"] == "worse" and worse["exit_code"] == 1


def test_mixed_same_and_a_failed_run(tmp_path):
    comparison = _comparison(tmp_path, seeds=(1,), labels=("a", "b"))
    kpis = {("a", "baseline", 1): _kpis(10.0), ("a", "candidate", 1): _kpis(2.0),
            ("b", "baseline", 1): _kpis(0.0, saidi=1.0), ("b", "candidate", 1): _kpis(0.0, 2.0)}
    result = compare_results(comparison, _rows(comparison, kpis), _no_decisions)
    assert [s["verdict"] for s in result["scenarios"]] == ["better", "worse"]
    assert result["verdict"] == "mixed" and result["exit_code"] == 1

    same = {key: _kpis(3.0) for key in kpis}
    assert compare_results(comparison, _rows(comparison, same), _no_decisions)["verdict"] == \
        "same"

    rows = _rows(comparison, same)
    rows[1].update(status="failed", error="RunFailed: boom", kpis={})
    failed = compare_results(comparison, rows, _no_decisions)
    assert failed["exit_code"] == 1 and not failed["complete"]
    assert failed["runs_not_completed"] == [
        {"key": "a/candidate/seed-1", "status": "failed", "error": "RunFailed: boom"}]
    assert failed["scenarios"][0]["kpis"]["voltage_violation_minutes"]["n"] == 0
    assert "1 run(s) not completed" in verdict_line(failed)


def test_custom_critical_kpis(tmp_path):
    comparison = Comparison(**{**_comparison(tmp_path).__dict__,
                               "critical": ("grid_solves", "voltage_violation_minutes")})
    kpis = {key: _kpis(5.0) for key in
            [("vv", s, n) for s in ("baseline", "candidate") for n in (11, 12)]}
    result = compare_results(comparison, _rows(comparison, kpis), _no_decisions)
    assert result["critical_judgements"] == {"grid_solves": "same",
                                             "voltage_violation_minutes": "same"}
    assert result["verdict"] == "same" and result["exit_code"] == 0


# --------------------------------------------------------------------------- divergence


def _d(t_s: float, action: str = "set_tap", value=1.0, target: str = "trafo:T1") -> Decision:
    return Decision(t_s, "volt_var", action, target, value, "direct", "because")


def test_first_divergence():
    log = [_d(60.0), _d(120.0, value=2.0)]
    assert first_divergence(log, list(log)) is None
    assert first_divergence([], []) is None
    other = [_d(60.0), _d(120.0, value=3.0)]
    div = first_divergence(log, other)
    assert div["index"] == 1 and div["t_s"] == 120.0
    assert div["baseline"]["value"] == 2.0 and div["candidate"]["value"] == 3.0
    longer = first_divergence(log, [*log, _d(180.0)])
    assert longer["index"] == 2 and longer["baseline"] is None
    assert longer["candidate"]["t_s"] == 180.0
    # time decides too; a NaN value equals a NaN value
    assert first_divergence([_d(60.0)], [_d(61.0)])["t_s"] == 60.0
    assert first_divergence([_d(60.0, value=math.nan)], [_d(60.0, value=math.nan)]) is None


def test_divergence_per_seed_in_the_result(tmp_path):
    comparison = _comparison(tmp_path)
    kpis = {(label, side, seed): _kpis(1.0) for label in ("vv",)
            for side in ("baseline", "candidate") for seed in (11, 12)}
    logs = {"baseline": [_d(60.0)], "candidate": [_d(60.0), _d(90.0, "set_der_q", -0.5)]}

    def decisions(run_dir: str) -> list[Decision]:
        return logs["candidate" if "/candidate/" in run_dir else "baseline"]

    result = compare_results(comparison, _rows(comparison, kpis), decisions)
    scenario = result["scenarios"][0]
    assert [d["seed"] for d in scenario["divergences"]] == [11, 12]
    assert scenario["first_divergence"] == scenario["divergences"][0]["divergence"]
    assert scenario["first_divergence"]["index"] == 1
    assert scenario["first_divergence"]["candidate"]["action"] == "set_der_q"


def test_the_every_seed_gate_fails_a_critical_kpi_one_seed_made_worse(tmp_path):
    """Seeds 11–13: the candidate is far better on violation minutes in two seeds and worse
    in the third; the mean interval contains 0 (same), so only the strict gate fails it."""
    from dataclasses import replace

    comparison = _comparison(tmp_path, seeds=(11, 12, 13))
    kpis = {("vv", "baseline", 11): _kpis(50.0), ("vv", "candidate", 11): _kpis(1.0),
            ("vv", "baseline", 12): _kpis(40.0), ("vv", "candidate", 12): _kpis(2.0),
            ("vv", "baseline", 13): _kpis(1.0), ("vv", "candidate", 13): _kpis(30.0)}
    mean = compare_results(comparison, _rows(comparison, kpis), _no_decisions)
    vm = mean["scenarios"][0]["kpis"]["voltage_violation_minutes"]
    assert vm["judgement"] == "same" and vm["seeds_worse"] == [13]
    assert mean["exit_code"] == 0 and mean["gate"] == "mean"
    assert mean["critical_worse_in_a_seed"] == ["vv: voltage_violation_minutes in seed 13"]
    strict = compare_results(replace(comparison, gate="every-seed"),
                             _rows(comparison, kpis), _no_decisions)
    assert strict["exit_code"] == 1 and strict["verdict"] == mean["verdict"]
