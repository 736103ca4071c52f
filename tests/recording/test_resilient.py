"""ResilientWriter: retries, spilling, exact accounting — against loopback HTTP servers."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import pytest

from twin.recording.files import FileStore, read_points
from twin.recording.influx_v1 import InfluxV1Store
from twin.recording.lineprotocol import to_line
from twin.recording.resilient import ResilientWriter, WriteReport, open_with_fallback
from twin.recording.schema import Point

PointsFactory = Callable[..., list[Point]]
Sorter = Callable[[list[Point]], list[Point]]
BATCH = 50


class FakeSleep:
    """Records the backoff waits instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def feed(writer: ResilientWriter, points: list[Point], step: int = 23) -> WriteReport:
    """Write like the recorder does (small batches per step), then close."""
    for start in range(0, len(points), step):
        writer.write(points[start : start + step])
    return writer.close()


def received_lines(server: Any) -> list[str]:
    """Lines of every write the server accepted (answered 204)."""
    return [line for request in server.accepted for line in request.body.decode().split("\n")]


def flaky_influx(fake_server: Callable[..., Any], fail: Callable[[int], int | None]) -> Any:
    """Fake InfluxDB 1.x: write number ``n`` (0-based) gets status ``fail(n)`` or 204."""
    state = {"writes": 0}
    lock = threading.Lock()

    def respond(request: Any) -> tuple[int, bytes]:
        if request.path == "/query":
            return 200, b'{"results":[{"statement_id":0}]}'
        if not request.body:  # the empty write that checks the database exists
            return 204, b""
        with lock:
            number = state["writes"]
            state["writes"] += 1
        status = fail(number)
        if status is not None:
            return status, b'{"error":"simulated failure"}'
        server.accepted.append(request)
        return 204, b""

    server = fake_server(respond)
    server.accepted = []
    return server


def test_unreachable_server_spills_everything(
    tmp_path: Path, closed_port_url: str, make_points: PointsFactory, sort_points: Sorter
) -> None:
    points = make_points(steps=10)
    writer = open_with_fallback(
        lambda: InfluxV1Store(closed_port_url, "db", timeout_s=2),
        lambda: FileStore(tmp_path / "spill"),
        batch_size=BATCH,
        sleep=FakeSleep(),
    )
    report = feed(writer, points)
    assert report.spilled and report.failed_at_start
    assert report.points_spilled == len(points)
    assert report.points_written == 0 and report.points_lost == 0
    assert "cannot reach InfluxDB" in report.errors[0]
    summary = report.summary()
    assert f"{len(points):,} points spilled to {tmp_path / 'spill'}" in summary
    assert "unavailable" in summary
    assert sort_points(read_points(tmp_path / "spill")) == sort_points(points)


def test_server_dying_after_open_is_retried_with_backoff_then_spilled(
    tmp_path: Path, fake_server: Callable[..., Any], make_points: PointsFactory, sort_points: Sorter
) -> None:
    server = fake_server()
    store = InfluxV1Store(server.url, "db", timeout_s=2)
    server.stop()  # connections are refused from now on
    points = make_points(steps=5)
    sleep = FakeSleep()
    writer = ResilientWriter(
        store,
        lambda: FileStore(tmp_path),
        batch_size=BATCH,
        retries=5,
        backoff_s=0.5,
        max_backoff_s=4.0,
        sleep=sleep,
    )
    report = feed(writer, points)
    # Doubling and capped; only for the first batch: later ones go straight to the spill store.
    assert sleep.calls == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert report.batches_retried == 1
    assert report.points_spilled == len(points) and report.points_written == 0
    assert "failed after 5 retries (InfluxWriteError: cannot reach InfluxDB" in report.summary()
    assert sort_points(read_points(tmp_path)) == sort_points(points)


def test_transient_500s_are_retried_without_duplicates(
    tmp_path: Path, fake_server: Callable[..., Any], make_points: PointsFactory
) -> None:
    server = flaky_influx(fake_server, lambda n: 500 if n < 2 else None)
    points = make_points(steps=10)
    sleep = FakeSleep()
    store = InfluxV1Store(server.url, "db", batch_size=BATCH)
    writer = ResilientWriter(store, lambda: FileStore(tmp_path), batch_size=BATCH, sleep=sleep)
    report = feed(writer, points)
    assert not report.spilled and report.errors == []
    assert report.points_written == len(points) and report.points_spilled == 0
    assert report.batches_retried == 1 and sleep.calls == [0.5, 1.0]
    lines = received_lines(server)
    assert Counter(lines) == Counter(to_line(p) for p in points)  # each point exactly once
    assert not (tmp_path / "bus").exists()
    assert report.summary() == (
        f"{len(points):,} points written to {store.description} (1 batches needed retries)"
    )


def test_failure_mid_run_splits_between_primary_and_spill(
    tmp_path: Path, fake_server: Callable[..., Any], make_points: PointsFactory, sort_points: Sorter
) -> None:
    good_writes = 3
    server = flaky_influx(fake_server, lambda n: 503 if n >= good_writes else None)
    points = make_points(steps=12)
    writer = ResilientWriter(
        InfluxV1Store(server.url, "db", batch_size=BATCH),
        lambda: FileStore(tmp_path),
        batch_size=BATCH,
        retries=2,
        sleep=FakeSleep(),
    )
    report = feed(writer, points)
    written = good_writes * BATCH
    assert report.points_written == written
    assert report.points_spilled == len(points) - written
    assert report.spilled
    assert "HTTP 503" in report.errors[0] and "simulated failure" in report.errors[0]
    # Batches keep their order: the first `written` points went to InfluxDB, the rest spilled.
    assert Counter(received_lines(server)) == Counter(to_line(p) for p in points[:written])
    assert sort_points(read_points(tmp_path)) == sort_points(points[written:])


def test_client_errors_are_not_retried(
    tmp_path: Path, fake_server: Callable[..., Any], make_points: PointsFactory
) -> None:
    server = flaky_influx(fake_server, lambda n: 400)
    points = make_points(steps=3)
    sleep = FakeSleep()
    writer = ResilientWriter(
        InfluxV1Store(server.url, "db"), lambda: FileStore(tmp_path), batch_size=BATCH, sleep=sleep
    )
    report = feed(writer, points)
    assert sleep.calls == [] and report.batches_retried == 0
    assert report.points_spilled == len(points)
    assert "failed (InfluxWriteError: InfluxDB rejected the write (HTTP 400)" in report.summary()


class GatedStore:
    """A primary that blocks every write until released; counts what it got."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.points = 0
        self.closed = False

    def write(self, points: Sequence[Point]) -> None:
        self.release.wait(timeout=10)
        self.points += len(points)

    def close(self) -> None:
        self.closed = True


def test_write_does_not_wait_for_the_primary(tmp_path: Path, make_points: PointsFactory) -> None:
    primary = GatedStore()
    points = make_points(steps=10)
    writer = ResilientWriter(primary, lambda: FileStore(tmp_path), batch_size=BATCH)
    for start in range(0, len(points), 23):
        writer.write(points[start : start + 23])  # would hang if it waited for the gated primary
    assert primary.points == 0
    primary.release.set()
    report = writer.close()
    assert primary.points == len(points) == report.points_written
    assert primary.closed and not report.spilled
    assert writer.close() is report
    with pytest.raises(RuntimeError, match="closed"):
        writer.write(points[:1])


class BrokenStore:
    def write(self, points: Sequence[Point]) -> None:
        raise OSError("disk full")

    def close(self) -> None:
        pass


def test_spill_failure_is_reported_as_lost(make_points: PointsFactory) -> None:
    def refuse() -> InfluxV1Store:
        raise ConnectionRefusedError("refused")

    points = make_points(steps=2)
    report = feed(open_with_fallback(refuse, BrokenStore, batch_size=BATCH), points)
    assert report.points_lost == len(points) and report.points_spilled == 0
    assert "POINTS LOST" in report.summary()
    assert any("disk full" in error for error in report.errors)
