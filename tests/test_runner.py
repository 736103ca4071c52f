"""The default day with every field simulator: it runs, records everything, and the same
seed gives the same results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twin.recording.files import list_measurements, read_measurement, read_points
from twin.runner import run_scenario

pytestmark = pytest.mark.slow
DEFAULT = Path(__file__).resolve().parents[1] / "scenarios" / "cigre_mv_day.yaml"


@pytest.fixture(scope="module")
def two_runs(default_day, tmp_path_factory):
    """The shared default day and a second run of it (same seed)."""
    return default_day, run_scenario(DEFAULT, out=tmp_path_factory.mktemp("day") / "b")


def _hour(times) -> np.ndarray:
    return pd.DatetimeIndex(times).hour.to_numpy()


def test_everything_is_recorded(two_runs):
    a, _ = two_runs
    assert a.run_info["status"] == "completed" and a.run_info["reason"] == "" and not a.exit_code
    assert json.loads((a.run_dir / "run.json").read_text())["status"] == "completed"
    store = a.run_dir / "store"
    assert {"bus", "line", "trafo", "load", "sgen", "storage", "switch", "shunt", "grid", "pv",
            "wind", "weather", "ev", "battery", "telemetry", "command", "comm",
            "crew"} <= set(list_measurements(store))
    k = a.outcome.kpis
    assert k["non_converged_steps"] == 0
    # the operator's day: four capacitor commands through the links, S3 twice by a crew;
    # the DMS's Volt/Var (direct): one command per decision, all carried out
    commands = read_measurement(store, "command")
    operator = commands[commands["id"].str.startswith("op-")]
    dms = commands[commands["id"].str.startswith("dms-")]
    assert len(operator) == 6 and (operator["status"] == "success").all()
    assert k["crew_jobs"] == 2
    decisions = read_measurement(store, "dms_decision")
    assert len(dms) == len(decisions) >= 3 and (dms["status"] == "success").all()
    assert k["commands_success"] == len(operator) + len(dms) == len(commands)
    assert k["telemetry_values_delivered"] > 100_000
    # 300 EVs drive ~8 kWh (home) / ~6 kWh (work) a day, all charged back at ~92 %
    assert 1.5 < k["ev_energy_mwh"] < 3.5
    assert k["ev_energy_short_mwh"] >= 0


def test_batteries_follow_the_prices(two_runs):
    a, _ = two_runs
    bat = read_measurement(a.run_dir / "store", "battery")
    hours = _hour(bat.time)
    # cheapest hours (02–05 h) charge, dearest (18–20 h) discharge — once empty, a battery
    # draws the few watts that hold its floor against self-discharge — SOC in its window
    assert (bat.p_mw[(hours >= 2) & (hours < 5)] >= 0).all()
    assert (bat.p_mw[(hours >= 18) & (hours < 21)] <= 1e-4).all()
    assert bat.p_mw.max() > 0.1 and bat.p_mw.min() < -0.1
    assert bat.soc.between(0.1 - 1e-9, 0.9 + 1e-9).all()
    # what the batteries did is what the grid's storage elements drew
    storage = read_measurement(a.run_dir / "store", "storage")
    merged = bat.merge(storage, on=["time", "element"], suffixes=("_bat", "_grid"))
    assert np.allclose(merged.p_mw_bat, merged.p_mw_grid, atol=1e-12)


def test_crew_closes_and_opens_s3(two_runs):
    a, _ = two_runs
    sw = read_measurement(a.run_dir / "store", "switch").query("element == 'S3'")
    closed = sw[sw.closed.astype(bool)]
    t0 = pd.Timestamp("2026-06-21T00:00:00Z")
    first = (closed.time.min() - t0).total_seconds()
    crew = read_measurement(a.run_dir / "store", "crew").sort_values("time")
    job = crew.iloc[0]
    assert first == pytest.approx(13 * 3600 + job.wait_s + job.travel_s + job.work_s, abs=0.02)
    assert job.work_s == 900.0 and job.travel_s > 600  # depot to S3: ~8 km by road


def test_same_seed_same_day(two_runs):
    a, b = two_runs
    assert (a.run_dir / "kpis.json").read_bytes() == (b.run_dir / "kpis.json").read_bytes()

    def key(points):
        return sorted((p.measurement, p.time_ns,
                       tuple(sorted((k, v) for k, v in p.tags.items() if k != "run")),
                       tuple(sorted(p.fields.items()))) for p in points)

    pa, pb = read_points(a.run_dir / "store"), read_points(b.run_dir / "store")
    assert len(pa) == a.outcome.points_recorded > 300_000
    assert key(pa) == key(pb)
