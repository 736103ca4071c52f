"""InfluxV1Store against a real InfluxDB 1.x server (``INFLUX_URL``), plus request details."""

from __future__ import annotations

import base64
from typing import Any, Callable

import pytest

from twin.recording.errors import InfluxQueryError, InfluxWriteError
from twin.recording.influx_v1 import InfluxV1Store
from twin.recording.lineprotocol import to_lines
from twin.recording.schema import Point

PointsFactory = Callable[..., list[Point]]
Sorter = Callable[[list[Point]], list[Point]]
Typed = Callable[[list[Point]], list[tuple[object, ...]]]


@pytest.mark.influx
def test_points_read_back_equal(
    influx_url: str,
    fresh_database: str,
    make_points: PointsFactory,
    sort_points: Sorter,
    typed: Typed,
) -> None:
    points = make_points(steps=150)  # a few thousand points, escaping-heavy names included
    note = 'line1\nline2 "q" \\'
    points.append(Point("bus", 1, {"element": "tab\there"}, {"note": note, "vm_pu": 1.0}))
    assert len(points) > 3000
    store = InfluxV1Store(influx_url, fresh_database, batch_size=700)
    try:
        store.write(points)
        back: list[Point] = []
        for measurement in sorted({p.measurement for p in points}):
            back.extend(store.read_points(measurement))
    finally:
        store.close()
    assert len(back) == len(points)
    assert typed(sort_points(back)) == typed(sort_points(points))


@pytest.mark.influx
def test_query_rows(influx_url: str, fresh_database: str) -> None:
    store = InfluxV1Store(influx_url, fresh_database)
    try:
        store.write(
            [
                Point("m", 10, {"element": "a"}, {"x": 1.5, "n": 2}),
                Point("m", 20, {"element": "b"}, {"x": 2.5, "s": "t"}),
            ]
        )
        rows = store.query('SELECT * FROM "m" GROUP BY *')
        assert rows == [
            {"name": "m", "tags": {"element": "a"}, "time": 10, "n": 2, "s": None, "x": 1.5},
            {"name": "m", "tags": {"element": "b"}, "time": 20, "n": None, "s": "t", "x": 2.5},
        ]
        assert store.field_types("m") == {"n": "integer", "s": "string", "x": "float"}
        assert store.ping()
        with pytest.raises(InfluxQueryError, match="error parsing query"):
            store.query("SELEKT nonsense")
    finally:
        store.close()


@pytest.mark.influx
def test_field_type_conflict_raises_with_server_message(
    influx_url: str, fresh_database: str
) -> None:
    store = InfluxV1Store(influx_url, fresh_database)
    try:
        store.write([Point("m", 1, {"element": "a"}, {"x": 1.0})])
        with pytest.raises(InfluxWriteError, match="field type conflict") as info:
            store.write([Point("m", 2, {"element": "a"}, {"x": "text"})])
        assert info.value.status_code == 400
        assert not info.value.retryable
    finally:
        store.close()


def test_credentials_sent_only_when_given(fake_server: Callable[..., Any]) -> None:
    server = fake_server()
    point = Point("m", 1, {"element": "a"}, {"x": 1.0})
    anonymous = InfluxV1Store(server.url, "db")
    anonymous.write([point])
    anonymous.close()
    named = InfluxV1Store(server.url, "db", username="user", password="secret")
    named.write([point])
    named.close()
    check_a, write_a, check_n, write_n = server.requests
    # the database is checked with an empty write (no CREATE DATABASE: it exists)
    assert (check_a.path, check_a.query, check_a.body) == ("/write", {"db": "db"}, b"")
    assert write_a.query == {"db": "db", "precision": "ns"}
    assert write_a.body.decode() == to_lines([point])
    assert "authorization" not in check_a.headers and "authorization" not in write_a.headers
    # credentials travel in the Authorization header (Basic), never in the URL
    basic = "Basic " + base64.b64encode(b"user:secret").decode()
    for request in (check_n, write_n):
        assert request.headers["authorization"] == basic
        assert "u" not in request.query and "p" not in request.query
    assert write_n.query == {"db": "db", "precision": "ns"}


def test_missing_database_is_created(fake_server: Callable[..., Any]) -> None:
    created: list[str] = []

    def respond(request: Any) -> tuple[int, bytes]:
        if request.path == "/write" and not created:
            return 404, b'{"error":"database not found: \\"db\\""}'
        if request.path == "/query":
            created.append(request.query["q"])
            return 200, b'{"results":[{"statement_id":0}]}'
        return 204, b""

    server = fake_server(respond)
    InfluxV1Store(server.url, "db").close()
    assert created == ['CREATE DATABASE "db"']


def test_errors_never_carry_the_password(fake_server: Callable[..., Any],
                                         closed_port_url: str) -> None:
    def respond(request: Any) -> tuple[int, bytes]:
        # a server that echoes what it got, credentials included
        return 401, ('{"error":"bad credentials %s"}' % request.headers.get("authorization"))\
            .encode()

    server = fake_server(respond)
    with pytest.raises(InfluxWriteError) as info:
        InfluxV1Store(server.url, "db", username="user", password="pa ss@word")
    assert info.value.status_code == 401
    assert "pa ss@word" not in str(info.value)
    assert base64.b64encode(b"user:pa ss@word").decode() not in str(info.value)
    with pytest.raises(InfluxWriteError) as info:
        InfluxV1Store(closed_port_url, "db", username="user", password="pa ss@word", timeout_s=2)
    assert "pa ss@word" not in str(info.value) and "pa%20ss" not in str(info.value)


def test_write_error_carries_server_text(fake_server: Callable[..., Any]) -> None:
    def respond(request: Any) -> tuple[int, bytes]:
        if request.path == "/write":
            return 404, b'{"error":"database not found: \\"db\\""}'
        return 200, b'{"results":[{"statement_id":0}]}'

    server = fake_server(respond)
    store = InfluxV1Store(server.url, "db")
    with pytest.raises(InfluxWriteError, match='HTTP 404.*database not found: "db"') as info:
        store.write([Point("m", 1, {}, {"x": 1.0})])
    assert info.value.status_code == 404
    store.close()


def test_unreachable_server_raises_on_construction(closed_port_url: str) -> None:
    with pytest.raises(InfluxWriteError, match="cannot reach InfluxDB") as info:
        InfluxV1Store(closed_port_url, "db", timeout_s=2)
    assert info.value.status_code is None and info.value.retryable
