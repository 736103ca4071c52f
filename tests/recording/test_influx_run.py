"""A short scenario recorded into the real InfluxDB (v1 API), read back by InfluxQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twin.recording.files import list_measurements, read_points
from twin.recording.influx_v1 import InfluxV1Store
from twin.runner import run_scenario

pytestmark = pytest.mark.influx


def _comparable(points):
    # The run tag names the run directory, which differs between the two runs.
    return sorted(
        (p.measurement, p.time_ns, tuple(sorted((k, v) for k, v in p.tags.items() if k != "run")),
         tuple(sorted((k, type(v).__name__, v) for k, v in p.fields.items())))
        for p in points
    )


def test_influx_run_matches_file_store_point_for_point(make_scenario, tmp_path, influx_url,
                                                       fresh_database):
    # without the DMS: its commands are solved when they happen, and the step-sampled
    # InfluxQL sum below equals the time-weighted KPI only when every solve is a step
    path = make_scenario("influx_run", start="2026-06-21T11:00:00Z", duration="30min",
                         dms={"enabled": False},
                         recording={"store": "influx", "influx": {
                             "url": influx_url, "api": "v1", "database": fresh_database}})
    via_influx = run_scenario(path, out=tmp_path / "influx")
    via_files = run_scenario(path, out=tmp_path / "files", record="files")
    assert via_influx.recording["points_written"] == via_influx.outcome.points_recorded
    assert via_influx.recording["points_spilled"] == 0 and not via_influx.recording["spilled"]
    assert not (via_influx.run_dir / "store").exists()  # nothing spilled, nothing written

    files_store = via_files.run_dir / "store"
    db = InfluxV1Store(influx_url, fresh_database)
    measurements = list_measurements(files_store)
    assert {"bus", "line", "trafo", "load", "sgen", "switch", "grid", "pv", "wind",
            "weather"} <= set(measurements)
    total = 0
    for m in measurements:
        from_influx = db.read_points(m, where=f"\"run\" = '{via_influx.run_id}'")
        from_files = [p for p in read_points(files_store) if p.measurement == m]
        assert _comparable(from_influx) == _comparable(from_files), m
        total += len(from_influx)
    assert total == via_files.outcome.points_recorded == via_influx.outcome.points_recorded
    # an aggregate by InfluxQL agrees with the KPI computed from the stream
    rows = db.query(f"SELECT SUM(\"p_loss_mw\") FROM \"grid\" WHERE \"run\" = '{via_influx.run_id}'")
    assert rows[0]["sum"] / 60 == pytest.approx(via_influx.outcome.kpis["energy_losses_mwh"], abs=1e-9)
    assert json.loads((via_influx.run_dir / "kpis.json").read_text()) == via_files.outcome.kpis
    db.close()


def test_unreachable_influx_spills_to_files_and_says_so(make_scenario, tmp_path):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = make_scenario("spill", duration="20min", recording={"store": "influx", "influx": {
        "url": f"http://127.0.0.1:{port}", "api": "v1", "database": "nowhere"}})
    run = run_scenario(path, out=tmp_path / "r")
    rec = run.recording
    assert rec["spilled"] and rec["points_spilled"] == run.outcome.points_recorded
    assert rec["points_written"] == 0
    assert "spilled" in rec["summary"]
    spilled = read_points(run.run_dir / "store")
    assert len(spilled) == run.outcome.points_recorded
    info = json.loads((run.run_dir / "run.json").read_text())
    assert info["recording"]["spilled"] is True


def test_influx_dying_mid_run_loses_nothing(make_scenario, tmp_path):
    """A real influxd stopped halfway: earlier batches are in it, the rest spilled to files."""
    import shutil
    import subprocess

    from twin.scenario import load_scenario

    if shutil.which("influxd") is None:
        pytest.skip("influxd not installed")
    script = Path(__file__).resolve().parents[2] / "scripts" / "influxd.sh"
    data_dir = tmp_path / "influxd"
    data_dir.mkdir()

    def start() -> str:
        out = subprocess.run(["bash", str(script), "start", str(data_dir)], check=True,
                             capture_output=True, text=True)
        return out.stdout.strip().splitlines()[-1]

    url = start()
    try:
        path = make_scenario("dying", duration="40min", recording={"store": "influx", "influx": {
            "url": url, "api": "v1", "database": "dying", "batch_size": 500, "retries": 2,
            "backoff_s": 0.05}})
        ticks_per_step = load_scenario(path).step_ticks

        def progress_factory(scenario, until_ticks):
            def update(tick):
                if tick == 20 * ticks_per_step:  # halfway: the server goes away
                    subprocess.run(["bash", str(script), "stop", str(data_dir)], check=True)
            return update

        run = run_scenario(path, out=tmp_path / "r", progress_factory=progress_factory)
    finally:
        subprocess.run(["bash", str(script), "stop", str(data_dir)], check=False)
    rec = run.recording
    assert rec["spilled"] and 0 < rec["points_written"] < run.outcome.points_recorded
    assert rec["points_written"] + rec["points_spilled"] == run.outcome.points_recorded
    assert "spilled" in rec["summary"]
    spilled = read_points(run.run_dir / "store")
    assert len(spilled) == rec["points_spilled"]

    reference = run_scenario(path.with_name(path.name), out=tmp_path / "ref", record="files")
    url = start()  # same data directory: what was written before the stop is still there
    try:
        db = InfluxV1Store(url, "dying")
        # every measurement the run makes (the grid's positions, written at the start, went
        # to the server only)
        written = [p for m in list_measurements(reference.run_dir / "store")
                   for p in db.read_points(m)]
        db.close()
    finally:
        subprocess.run(["bash", str(script), "stop", str(data_dir)], check=False)
    assert len(written) == rec["points_written"]
    # together they are exactly what the recorder produced, each point once
    assert _comparable(written + spilled) == _comparable(read_points(reference.run_dir / "store"))
