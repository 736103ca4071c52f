"""Opening the store a scenario asks for (twin.recording.factory): the file store, InfluxDB,
and InfluxDB falling back to the file store."""

from __future__ import annotations

import pytest

from twin.recording.factory import STORE_DIR, open_recording
from twin.recording.files import read_points
from twin.recording.resilient import ResilientWriter
from twin.scenario import InfluxSpec, ScenarioError


def influx_spec(url: str, **kw) -> InfluxSpec:
    return InfluxSpec(url=url, api="v1", database="twin", **({"backoff_s": 0.0} | kw))


def test_files_without_influx(tmp_path, make_points, sort_points):
    points = make_points(steps=3)
    rec = open_recording("files", None, tmp_path)
    assert (rec.kind, rec.description) == ("files", f"file store {tmp_path / STORE_DIR}")
    rec.store.write(points)
    assert rec.close() is None
    assert rec.store.points == len(points)  # counted like an InfluxDB recording
    assert sort_points(read_points(tmp_path / STORE_DIR)) == sort_points(points)


def test_influx_without_its_section_is_a_scenario_error(tmp_path):
    with pytest.raises(ScenarioError, match="recording.influx: expected an 'influx:' section"):
        open_recording("influx", None, tmp_path)


def test_missing_secret_names_the_key(tmp_path):
    spec = influx_spec("http://127.0.0.1:9", password_env="TWIN_TEST_NO_SUCH_VARIABLE")
    with pytest.raises(ScenarioError, match=r"recording\.influx\.password_env: .*"
                                            r"TWIN_TEST_NO_SUCH_VARIABLE"):
        open_recording("influx", spec, tmp_path, env={})


def test_reachable_influx_takes_every_point(tmp_path, fake_server, make_points):
    server = fake_server()
    points = make_points(steps=3)
    rec = open_recording("influx", influx_spec(server.url), tmp_path, env={})
    assert isinstance(rec.store, ResilientWriter)
    assert rec.kind == "influx" and server.url in rec.description
    rec.store.write(points)
    report = rec.close()
    assert (report.points_written, report.points_spilled, report.spilled) == (len(points), 0,
                                                                               False)
    assert server.writes()
    assert not (tmp_path / STORE_DIR).exists()  # the spill store is made only when needed


def test_unreachable_influx_falls_back_to_the_file_store(tmp_path, fake_server, make_points,
                                                         sort_points):
    server = fake_server()
    server.stop()  # connections are refused from now on
    points = make_points(steps=3)
    rec = open_recording("influx", influx_spec(server.url), tmp_path, env={})
    rec.store.write(points)
    report = rec.close()
    assert report.failed_at_start
    assert (report.points_written, report.points_spilled, report.points_lost) == (
        0, len(points), 0)
    assert "unavailable" in report.summary()
    assert sort_points(read_points(tmp_path / STORE_DIR)) == sort_points(points)


def test_failing_writes_spill_after_the_retries(tmp_path, fake_server, make_points,
                                                sort_points):
    def refuse_writes(request):
        if request.path == "/write":
            return 503, b'{"error":"overloaded"}'
        return 200, b'{"results":[{"statement_id":0}]}'

    server = fake_server(refuse_writes)
    points = make_points(steps=3)
    rec = open_recording("influx", influx_spec(server.url, retries=2), tmp_path, env={})
    rec.store.write(points)
    report = rec.close()
    # One batch, tried once and retried twice, then everything goes to the file store.
    assert len(server.writes()) == 3
    assert (report.points_written, report.points_spilled, report.retries) == (0, len(points), 2)
    assert not report.failed_at_start
    assert sort_points(read_points(tmp_path / STORE_DIR)) == sort_points(points)
