"""The area's frequency in a run (scenarios/frequency_event.yaml): stepped around the trip,
recorded, at rest afterwards, and the KPIs from it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.report import test_page as page_check
from twin.evaluation.kpis import KpiAccumulator
from twin.models.frequency import AreaSpec, AreaState, advance
from twin.recording.files import read_measurement
from twin.report import write_report
from twin.runner import run_scenario
from twin.scenario import ScenarioError, load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "frequency_event.yaml"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The area alone: the twin's units do not answer."""
    return run_scenario(SCENARIO, out=tmp_path_factory.mktemp("freq") / "run", until="30min",
                        overrides=["frequency.response=null"])


@pytest.fixture(scope="module")
def answered(tmp_path_factory):
    """The scenario as it stands: batteries, V2G, synthetic inertia and P(f) answer."""
    return run_scenario(SCENARIO, out=tmp_path_factory.mktemp("freq") / "answered",
                        until="40min")


def _records(run, measurement: str) -> pd.DataFrame:
    return read_measurement(run.run_dir / "store", measurement).sort_values("time")


def test_the_twins_units_raise_the_nadir_and_lower_the_rocof(run, answered):
    alone, helped = run.outcome.kpis, answered.outcome.kpis
    assert helped["frequency_nadir_hz"] > alone["frequency_nadir_hz"] + 0.1  # 49.63 -> 49.86
    assert helped["rocof_max_hz_s"] < alone["rocof_max_hz_s"] * 0.995  # 0.0500 -> 0.0494
    # synthetic inertia at once: RoCoF = ΔP / (2 H S / f0 + K), K the units' Σ 2 H_em S / f0
    # times the scale (the wind turbine turns at noon; the batteries have room)
    sc = load_scenario(SCENARIO)
    r = sc.frequency.response
    prep_k = 2.0 * (r.wind_inertia_h_s * _rated(answered, "wind")
                    + r.storage_inertia_h_s * _rated(answered, "battery")) / 50.0 * r.scale
    m = 2.0 * 5.0 * 300_000.0 / 50.0
    assert helped["rocof_max_hz_s"] == pytest.approx(3_000.0 / (m + prep_k), rel=1e-6)
    assert helped["ev_energy_short_mwh"] == 0.0  # FCR never leaves an EV short


def _rated(run, kind: str) -> float:
    from twin.build.prepare import prepare
    prep = prepare(load_scenario(SCENARIO))
    if kind == "wind":
        return float(np.sum(prep.wind.params["p_rated_mw"]))
    return float(np.sum(np.broadcast_to(prep.batteries.spec.p_discharge_max_mw,
                                         (len(prep.batteries.names),))))


def test_the_grid_sees_the_response_as_it_stood_before_each_step(answered):
    freq = _records(answered, "frequency").set_index("time")
    start = pd.Timestamp(load_scenario(SCENARIO).start)
    before = freq.loc[start + pd.Timedelta("10min 59s")]  # the last exchange before 12:11
    bat = _records(answered, "battery")
    at = bat[bat["time"] == start + pd.Timedelta("11min")]
    # load convention: FCR discharges; the tiny synthetic-inertia share rides on top
    assert -at["p_mw"].sum() == pytest.approx(before["twin_fcr_battery_mw"], abs=2e-3)
    assert before["twin_fcr_battery_mw"] > 0.1 and before["twin_fcr_ev_mw"] > 0.1
    ev = _records(answered, "ev").groupby("time")["p_mw"].sum()
    # the V2G EVs (full at noon) discharge what the droop asked
    assert ev[start + pd.Timedelta("10min")] == pytest.approx(0.0, abs=1e-9)
    assert ev[start + pd.Timedelta("11min")] == pytest.approx(-before["twin_fcr_ev_mw"],
                                                              rel=1e-6)


def test_kpis_integrate_each_sources_response(answered):
    freq = _records(answered, "frequency")
    k = answered.outcome.kpis["frequency_response_mwh"]
    for source, field in (("fcr_battery", "twin_fcr_battery_mw"), ("fcr_ev", "twin_fcr_ev_mw"),
                          ("synthetic_inertia", "twin_inertia_mw"), ("pf", "twin_pf_mw")):
        energy = float((freq[field].fillna(0.0) * freq["dt_s"]).sum()) / 3600.0
        assert k[source] == pytest.approx(energy, abs=1e-9)
    assert k["fcr_battery"] > 0.01 and k["fcr_ev"] > 0.01 and k["pf"] == 0.0
    # the batteries' discharge in the grid (sampled each minute) is the same order
    assert answered.outcome.kpis["battery_discharge_mwh"] == pytest.approx(
        k["fcr_battery"], rel=0.25)


def test_pf_withholds_pv_and_wind_above_50_2_hz(tmp_path):
    """A load loss lifts the frequency past 50.2 Hz: P(f) takes power off PV and wind, the
    KPI counts it, and the peak is lower than without P(f)."""
    # (no synthetic inertia: the wind's output is then its P(f) cap alone)
    lost = ["frequency.disturbances=[{after: 10min, p_mw: 6000}]",
            "frequency.response.wind_inertia_h_s=0"]
    peaks = {}
    for pf in (True, False):
        r = run_scenario(SCENARIO, out=tmp_path / str(pf), until="15min",
                         overrides=[*lost, f"frequency.response.pf={str(pf).lower()}"])
        peaks[pf] = r.outcome.kpis["frequency_max_hz"]
        if pf:
            freq = _records(r, "frequency").set_index("time")
            start = pd.Timestamp(load_scenario(SCENARIO).start)
            f_before = freq.loc[start + pd.Timedelta("10min 59s"), "f_hz"]
            assert f_before > 50.2
            wind = _records(r, "wind").set_index("time")
            at = wind.loc[start + pd.Timedelta("11min")]
            # the characteristic: 40 % of the power it had at 50.2 Hz (the 12:10 availability,
            # held until 12:11) per Hz above it, at the frequency that started the last step
            # before the grid's
            p_m = wind.loc[start + pd.Timedelta("10min"), "p_available_mw"]
            f_cap = freq.loc[start + pd.Timedelta("10min 58.9s"), "f_hz"]
            cap = p_m * (1.0 - 0.4 * (f_cap - 50.2))
            assert at["p_mw"] == pytest.approx(min(at["p_available_mw"], cap), rel=1e-9)
            assert at["pf_reduction_mw"] == pytest.approx(at["p_available_mw"] - at["p_mw"])
            assert at["pf_reduction_mw"] > 0.01
            withheld = r.outcome.kpis["curtailed_mwh_by_reason"]["pf"]
            assert withheld > 0.0 and r.outcome.kpis["frequency_response_mwh"]["pf"] < 0.0
    assert peaks[True] < peaks[False] - 0.02  # 50.79 -> 50.75 Hz


def test_the_simulator_is_the_pure_model_stepped_every_100_ms(run):
    sc = load_scenario(SCENARIO)
    spec = AreaSpec(**sc.frequency.area.model_dump())
    rec = read_measurement(run.run_dir / "store", "frequency").sort_values("time")
    t_s = (rec["time"] - pd.Timestamp(sc.start)).dt.total_seconds().to_numpy()
    # from the trip at 10 min, every 0.1 s, until the area rests (then no more steps)
    assert t_s[0] == pytest.approx(600.0) and rec["f_hz"].iloc[0] == 50.0
    assert np.diff(t_s) == pytest.approx(np.full(len(t_s) - 1, 0.1), abs=1e-6)
    assert t_s[-1] < 1800.0 - 60.0 and abs(rec["f_hz"].iloc[-1] - 50.0) < 0.001
    state, f = AreaState(), [50.0]
    for _ in range(len(t_s) - 1):
        state = advance(spec, state, 0.1, -3_000.0).state
        f.append(50.0 + state.df_hz)
    assert rec["f_hz"].to_numpy() == pytest.approx(np.array(f), abs=1e-12)
    assert rec["p_afrr_mw"].iloc[-1] == pytest.approx(3_000.0, rel=1e-3)


def test_kpis_nadir_and_rocof(run):
    k = run.outcome.kpis
    rec = read_measurement(run.run_dir / "store", "frequency")
    # RoCoF right after the trip: ΔP · f0 / (2 H S)
    assert k["rocof_max_hz_s"] == pytest.approx(3_000.0 * 50.0 / (2 * 5.0 * 300_000.0),
                                                rel=1e-9)
    assert k["frequency_nadir_hz"] == pytest.approx(rec["f_min_hz"].min(), abs=1e-9)
    assert k["frequency_nadir_hz"] < rec["f_hz"].min() + 1e-9 < 49.8  # FCR's offset is ~170 mHz
    assert k["frequency_max_hz"] == 50.0
    assert KpiAccumulator().finish(0.0)["frequency_nadir_hz"] is None  # no frequency, no KPI


def test_a_bad_area_is_one_clear_error():
    with pytest.raises(ScenarioError, match=r"frequency\.area.*fcr_deadband_hz below"):
        load_scenario(SCENARIO, ["frequency.area.fcr_deadband_hz=0.5"])


chromium = page_check.chromium  # the fixture: Debian's chromium, skipped if missing


def test_the_report_has_a_frequency_section_drawn_in_headless_chromium(chromium, answered,
                                                                        tmp_path):
    report = write_report(answered.run_dir)
    page = report.read_text(encoding="utf-8")
    section = page[page.index('<section id="frequency">'):]
    section = section[:section.index("</section>")]
    k = answered.outcome.kpis
    assert f"<td>{k['frequency_nadir_hz']:.4f} Hz</td>" in section
    assert f"<td>{k['rocof_max_hz_s']:.4f} Hz/s</td>" in section
    ev_kwh = k["frequency_response_mwh"]["fcr_ev"] * 1000.0
    assert f"<td>V2G FCR</td><td>{ev_kwh:.2f} kWh</td>" in section
    figures = re.findall(r'id="(fig-\d+)"', section)
    assert len(figures) == 3  # frequency and RoCoF; the reserves; the twin's units
    drawn = page_check.render(chromium, report, tmp_path / "frequency.png")
    assert drawn["errors"] == []
    mine = {**drawn, "plots": [b for b in drawn["plots"] if b["id"] in figures]}
    assert len(mine["plots"]) == 3 and page_check.check_plots_drawn(mine) == []
