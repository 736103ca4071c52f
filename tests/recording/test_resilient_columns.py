"""ResilientWriter with column batches: nothing lost, nothing written twice, one request per
batch, points and columns side by side."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from twin.recording.columns import ColumnBatch, column_batch
from twin.recording.files import FileStore, read_points
from twin.recording.influx_v1 import InfluxV1Store
from twin.recording.lineprotocol import batch_lines, to_line
from twin.recording.resilient import ResilientWriter
from twin.recording.schema import BUS, GRID, Point

T0_NS = 1_704_067_200_000_000_000
BATCH = 50
NAMES = [f"Bus {k}" for k in range(37)]  # not a divisor of BATCH: batches get split


def step_data(step: int) -> tuple[list[Point], list[ColumnBatch]]:
    """One recorder step: a summary point and a bus table with some NaN."""
    t = T0_NS + step * 60 * 10**9
    vm = 1.0 + 0.001 * np.arange(len(NAMES)) + 1e-5 * step
    vm[step % len(NAMES)] = np.nan
    batch = column_batch(BUS, NAMES, {"vm_pu": vm, "va_degree": -0.1 * vm}, "r", t)
    assert batch is not None
    return [Point(GRID, t, {"run": "r", "element": "grid"}, {"p_loss_mw": 0.1 * step})], [batch]


def feed(writer: ResilientWriter, steps: int) -> tuple[list[str], list[Point]]:
    """Write like the recorder; returns the expected lines and points."""
    lines: list[str] = []
    points: list[Point] = []
    for step in range(steps):
        step_points, batches = step_data(step)
        writer.write(step_points)
        writer.write_columns(batches)
        lines += [to_line(p) for p in step_points]
        lines += [line for b in batches for line in batch_lines(b)]
        points += step_points + [p for b in batches for p in b.to_points()]
    return lines, points


def flaky(fake_server: Callable[..., Any], fail: Callable[[int], int | None]) -> Any:
    state = {"writes": 0}
    lock = threading.Lock()

    def respond(request: Any) -> tuple[int, bytes]:
        if request.path == "/query" or not request.body:
            return (200, b'{"results":[{"statement_id":0}]}') if request.path == "/query" \
                else (204, b"")
        with lock:
            number = state["writes"]
            state["writes"] += 1
        status = fail(number)
        if status is not None:
            return status, b'{"error":"simulated failure"}'
        server.accepted.append(request.body.decode())
        return 204, b""

    server = fake_server(respond)
    server.accepted = []
    return server


def _key(p: Point) -> tuple:
    return (p.measurement, p.time_ns, sorted(p.tags.items()))


@pytest.mark.parametrize("workers", [1, 2])
def test_every_row_reaches_the_server_once_in_requests_of_batch_size(
        fake_server: Callable[..., Any], tmp_path: Path, workers: int) -> None:
    server = flaky(fake_server, lambda n: 503 if n in (2, 5) else None)  # retried, then fine
    writer = ResilientWriter(InfluxV1Store(server.url, "db", batch_size=BATCH),
                             lambda: FileStore(tmp_path), batch_size=BATCH, retries=2,
                             sleep=lambda s: None, workers=workers)
    lines, _ = feed(writer, steps=20)
    report = writer.close()
    got = [line for body in server.accepted for line in body.split("\n")]
    assert Counter(got) == Counter(lines)  # nothing lost, nothing twice
    assert all(len(body.split("\n")) <= BATCH for body in server.accepted)
    assert report.points_written == len(lines) and not report.spilled


@pytest.mark.parametrize("workers", [1, 2])
def test_failure_mid_run_splits_rows_between_primary_and_spill(
        fake_server: Callable[..., Any], tmp_path: Path, workers: int) -> None:
    good = 4
    server = flaky(fake_server, lambda n: 503 if n >= good else None)
    writer = ResilientWriter(InfluxV1Store(server.url, "db", batch_size=BATCH),
                             lambda: FileStore(tmp_path), batch_size=BATCH, retries=1,
                             sleep=lambda s: None, workers=workers)
    lines, points = feed(writer, steps=20)
    report = writer.close()
    sent = [line for body in server.accepted for line in body.split("\n")]
    spilled = read_points(tmp_path)
    assert report.points_written == len(sent) and report.points_spilled == len(spilled)
    assert report.points_written + report.points_spilled == len(points)
    assert report.points_lost == 0 and "HTTP 503" in report.errors[0]
    # each point in exactly one of the two stores
    sent_set = Counter(sent)
    spilled_lines = Counter(to_line(p) for p in spilled)
    assert not set(sent_set) & set(spilled_lines)
    assert sorted(read_points(tmp_path), key=_key) == sorted(
        [p for p in points if to_line(p) not in sent_set], key=_key)


def test_unreachable_primary_spills_columns_as_the_same_points(
        closed_port_url: str, tmp_path: Path) -> None:
    from twin.recording.resilient import open_with_fallback

    writer = open_with_fallback(lambda: InfluxV1Store(closed_port_url, "db", timeout_s=2),
                                lambda: FileStore(tmp_path), batch_size=BATCH,
                                sleep=lambda s: None)
    _, points = feed(writer, steps=6)
    report = writer.close()
    assert report.failed_at_start and report.points_spilled == len(points)
    assert sorted(read_points(tmp_path), key=_key) == sorted(points, key=_key)
