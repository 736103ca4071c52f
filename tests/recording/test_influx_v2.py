"""InfluxV2Store against a loopback server implementing ``POST /api/v2/write``.

No real 2.x server runs here; the fake checks what a 2.x server checks (token, org, bucket,
precision) and keeps the bodies, which must be exactly our line protocol.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

from twin.recording.errors import InfluxWriteError
from twin.recording.influx_v2 import InfluxV2Store
from twin.recording.lineprotocol import to_lines
from twin.recording.schema import Point

PointsFactory = Callable[..., list[Point]]
TOKEN, ORG, BUCKET = "secret-token", "my org", "twin"


def influx2(request: Any) -> tuple[int, bytes]:
    """Answer like InfluxDB 2.x: 401/400 on bad requests, 204 on a good write."""
    if request.path != "/api/v2/write" or request.method != "POST":
        return 404, b'{"code":"not found","message":"path not found"}'
    if request.headers.get("authorization") != f"Token {TOKEN}":
        return 401, b'{"code":"unauthorized","message":"unauthorized access"}'
    if request.query.get("org") != ORG or request.query.get("bucket") != BUCKET:
        return 404, b'{"code":"not found","message":"bucket not found"}'
    if request.query.get("precision") != "ns":
        return 400, b'{"code":"invalid","message":"precision must be ns in this test"}'
    return 204, b""


def test_body_is_our_line_protocol(
    fake_server: Callable[..., Any], make_points: PointsFactory
) -> None:
    server = fake_server(influx2)
    points = make_points(steps=20)
    store = InfluxV2Store(server.url, BUCKET, ORG, TOKEN, batch_size=100)
    store.write(points)
    store.close()
    writes = server.writes()
    assert len(writes) == -(-len(points) // 100)  # one request per batch
    assert all(w.headers.get("content-encoding", "identity") == "identity" for w in writes)
    assert [w.body.decode() for w in writes] == [
        to_lines(points[start : start + 100]) for start in range(0, len(points), 100)
    ]


def test_rejection_raises_with_server_message(fake_server: Callable[..., Any]) -> None:
    server = fake_server(influx2)
    store = InfluxV2Store(server.url, BUCKET, ORG, "wrong-token")
    with pytest.raises(InfluxWriteError, match="HTTP 401.*unauthorized access") as info:
        store.write([Point("m", 1, {}, {"x": 1.0})])
    assert info.value.status_code == 401 and not info.value.retryable
    store.close()


def test_unreachable_server_raises_retryable_error(closed_port_url: str) -> None:
    store = InfluxV2Store(closed_port_url, BUCKET, ORG, TOKEN, timeout_s=2)
    with pytest.raises(InfluxWriteError, match="cannot reach InfluxDB") as info:
        store.write([Point("m", 1, {}, {"x": 1.0})])
    assert info.value.status_code is None and info.value.retryable
    assert not store.ping()
    store.close()
