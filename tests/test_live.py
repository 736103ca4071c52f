"""Live mode: paced at --speed × real time, lag measured, data in InfluxDB while the run
goes on (what Grafana follows), every point there at the end."""

from __future__ import annotations

import threading
import time

import pytest

from twin.live import LagMeter, live_progress
from twin.recording.influx_v1 import InfluxV1Store
from twin.runner import run_scenario


def test_lag_meter_against_a_hand_clock():
    now = [100.0]
    meter = LagMeter(speed=60.0, clock=lambda: now[0])
    assert meter.observe(0.0) == 0.0          # sets the clock
    now[0] = 101.0
    assert meter.observe(60.0) == 0.0         # due at 101 s: on time
    now[0] = 102.5
    assert meter.observe(120.0) == pytest.approx(0.5)   # due at 102 s
    now[0] = 102.6
    assert meter.observe(180.0) == 0.0        # early (mosaik would have waited)
    s = meter.stats()
    assert s["steps"] == 4 and s["lag_max_s"] == pytest.approx(0.5)
    assert s["lag_mean_s"] == pytest.approx(0.125)
    with pytest.raises(ValueError, match="--speed"):
        LagMeter(0.0)


def test_live_progress_flushes_about_once_a_second():
    now = [0.0]
    meter = LagMeter(speed=1.0, clock=lambda: now[0])
    flushes, ticks = [], []
    progress = live_progress(meter, float, lambda: flushes.append(now[0]), then=ticks.append)
    for t in range(6):
        now[0] = t * 0.5
        progress(t)
    assert flushes == [1.0, 2.0] and ticks == list(range(6))


@pytest.mark.influx
def test_live_run_streams_into_influx_at_speed_60(make_scenario, tmp_path, influx_url,
                                                  fresh_database):
    path = make_scenario("live", start="2026-06-21T11:00:00Z", duration="4min",
                         recording={"store": "influx", "influx": {
                             "url": influx_url, "api": "v1", "database": fresh_database,
                             "batch_size": 50000}})
    db = InfluxV1Store(influx_url, fresh_database)
    seen: list[tuple[float, int]] = []
    done = threading.Event()

    def watch() -> None:  # what a Grafana panel refreshing every 0.3 s would see
        t0 = time.perf_counter()
        while not done.is_set():
            rows = db.query('SELECT COUNT("p_loss_mw") FROM "grid"')
            seen.append((time.perf_counter() - t0, int(rows[0]["count"]) if rows else 0))
            time.sleep(0.3)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        t0 = time.perf_counter()
        run = run_scenario(path, out=tmp_path / "r", speed=60.0)
        wall = time.perf_counter() - t0
    finally:
        done.set()
        watcher.join()
    assert wall >= 3.0  # 4 simulated minutes at 60×, paced (the twin alone is ~1000× faster)
    live = run.run_info["live"]
    assert live["speed"] == 60.0 and live["steps"] >= 4
    assert 0.0 <= live["lag_p99_s"] <= live["lag_max_s"] < 1.0
    # every point arrived (the run's kpi and live points included)
    assert run.recording["points_written"] == run.outcome.points_recorded
    assert not run.recording["spilled"]
    final = int(db.query('SELECT COUNT("p_loss_mw") FROM "grid"')[0]["count"])
    assert final == run.run_info["grid_solves"]
    # …and they arrived while the run went on, not only at its end: a batch of 50,000 points
    # would hold everything until the close without the live flushes
    assert any(0 < n < final for _, n in seen), seen
    lag = db.query('SELECT "lag_p99_s" FROM "live"')
    assert lag and lag[0]["lag_p99_s"] == pytest.approx(live["lag_p99_s"])
    db.close()
