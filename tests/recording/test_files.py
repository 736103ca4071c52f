"""FileStore: Parquet layout and exact round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd
import pyarrow.parquet as pq
import pytest

from twin.recording.files import FileStore, list_measurements, read_measurement, read_points
from twin.recording.schema import Point

PointsFactory = Callable[..., list[Point]]
Sorter = Callable[[list[Point]], list[Point]]
Typed = Callable[[list[Point]], list[tuple[object, ...]]]


def test_round_trip_is_exact_across_parts(
    tmp_path: Path, make_points: PointsFactory, sort_points: Sorter, typed: Typed
) -> None:
    points = make_points(steps=30)
    store = FileStore(tmp_path, flush_points=40)
    for start in range(0, len(points), 17):  # batches that do not line up with parts
        store.write(points[start : start + 17])
    store.close()

    assert len(list((tmp_path / "bus").glob("part-*.parquet"))) > 2
    assert list_measurements(tmp_path) == sorted({p.measurement for p in points})

    back = read_points(tmp_path)
    assert len(back) == len(points)
    assert typed(sort_points(back)) == typed(sort_points(points))


def test_part_columns_and_types(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.write(
        [
            Point("m", 2, {"run": "r", "element": "b"}, {"x": 1.5, "n": 1}),
            Point("m", 1, {"run": "r", "element": "a", "kind": "k"}, {"flag": True, "s": "t"}),
        ]
    )
    store.close()
    table = pq.read_table(tmp_path / "m" / "part-00000.parquet")
    assert table.column_names == ["time", "element", "kind", "run", "x", "n", "flag", "s"]
    assert [str(t) for t in table.schema.types] == [
        "timestamp[ns, tz=UTC]", "string", "string", "string", "double", "int64", "bool", "string",
    ]
    assert table.column("kind").to_pylist() == [None, "k"]


def test_read_measurement_sorted_with_nullable_dtypes(tmp_path: Path) -> None:
    store = FileStore(tmp_path, flush_points=2)
    store.write(
        [
            Point("m", 3, {"element": "b"}, {"x": 1.0}),
            Point("m", 1, {"element": "b"}, {"n": 7}),
            Point("m", 1, {"element": "a"}, {"flag": False}),
            Point("m", 2, {"element": "a", "extra": "e"}, {"x": 2.0}),
        ]
    )
    store.close()
    frame = read_measurement(tmp_path, "m")
    assert list(frame.columns) == ["time", "element", "extra", "x", "n", "flag"]
    assert frame["time"].tolist() == [pd.Timestamp(t, unit="ns", tz="UTC") for t in (1, 1, 2, 3)]
    assert frame["element"].tolist() == ["a", "b", "a", "b"]
    assert str(frame["n"].dtype) == "Int64"
    assert str(frame["flag"].dtype) == "boolean"
    assert frame["n"].isna().tolist() == [True, False, True, True]


def test_reopening_appends_new_parts(tmp_path: Path) -> None:
    first = [Point("m", 1, {"element": "a"}, {"x": 1.0})]
    second = [Point("m", 2, {"element": "a"}, {"x": 2.0})]
    for batch in (first, second):
        store = FileStore(tmp_path)
        store.write(batch)
        store.close()
    parts = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert parts == ["part-00000.parquet", "part-00001.parquet"]
    assert read_points(tmp_path) == first + second
    with pytest.raises(TypeError, match="was float before"):
        FileStore(tmp_path).write([Point("m", 3, {"element": "a"}, {"x": 3})])


def test_type_conflict_rejects_whole_batch(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.write([Point("m", 1, {}, {"x": 1.0})])
    with pytest.raises(TypeError, match=r"m\.x was float before, now int"):
        store.write([Point("m", 2, {}, {"x": 2.0}), Point("m", 3, {}, {"x": 3})])
    store.close()
    assert read_points(tmp_path) == [Point("m", 1, {}, {"x": 1.0})]


@pytest.mark.parametrize(
    ("point", "error"),
    [
        (Point("m", 1, {"x": "t"}, {"x": 1.0}), ValueError),
        (Point("m", 1, {"time": "t"}, {"y": 1.0}), ValueError),
        (Point("m", 1, {}, {"time": 1.0}), ValueError),
        (Point("../escape", 1, {}, {"y": 1.0}), ValueError),
        (Point("m", 1, {}, {"y": 2**64}), ValueError),
        (Point("m", 1, {}, {"y": [1]}), TypeError),  # type: ignore[dict-item]
        (Point("m", 1, {"t": 5}, {"y": 1.0}), TypeError),  # type: ignore[dict-item]
    ],
)
def test_invalid_points_raise(tmp_path: Path, point: Point, error: type[Exception]) -> None:
    with pytest.raises(error):
        FileStore(tmp_path).write([point])


def test_write_after_close_raises(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.close()
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.write([Point("m", 1, {}, {"x": 1.0})])


def test_points_without_fields_are_skipped(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.write([Point("m", 1, {"e": "a"}, {}), Point("m", 2, {"e": "a"}, {"x": 1.0})])
    store.close()
    assert read_points(tmp_path) == [Point("m", 2, {"e": "a"}, {"x": 1.0})]


def test_buffers_are_written_every_few_wall_seconds(tmp_path: Path) -> None:
    """What a killed process had recorded up to the last flush reads back."""
    now = [0.0]
    store = FileStore(tmp_path, flush_every_s=5.0, clock=lambda: now[0])
    store.write([Point("m", 1, {}, {"x": 1.0}), Point("n", 1, {}, {"y": 1.0})])
    assert list_measurements(tmp_path) == []  # buffered
    now[0] = 5.0
    store.write([Point("m", 2, {}, {"x": 2.0})])  # due: every buffer is written
    assert list_measurements(tmp_path) == ["m", "n"]
    assert read_points(tmp_path) == [Point("m", 1, {}, {"x": 1.0}), Point("m", 2, {}, {"x": 2.0}),
                                     Point("n", 1, {}, {"y": 1.0})]
    now[0] = 9.0
    store.write([Point("m", 3, {}, {"x": 3.0})])  # 4 s after that flush: buffered
    assert len(read_points(tmp_path)) == 3
    store.close()
    assert len(read_points(tmp_path)) == 4
    with pytest.raises(ValueError, match="flush_every_s"):
        FileStore(tmp_path, flush_every_s=0)


def test_parts_read_in_write_order_past_five_digits(tmp_path: Path) -> None:
    store = FileStore(tmp_path, flush_every_s=None)
    store._next_part["m"] = 99_999  # as after a very long run
    store._load_existing("m")
    store._next_part["m"] = 99_999
    store.write([Point("m", 1, {}, {"x": 1.0})])
    store.flush()
    store.write([Point("m", 1, {}, {"x": 2.0})])  # same time: write order decides
    store.close()
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "part-100000.parquet", "part-99999.parquet"]
    assert [p.fields["x"] for p in read_points(tmp_path)] == [1.0, 2.0]
    assert FileStore(tmp_path)._load_existing("m") == {"x": float}
    reopened = FileStore(tmp_path)
    reopened.write([Point("m", 2, {}, {"x": 3.0})])
    reopened.close()
    assert (tmp_path / "m" / "part-100001.parquet").is_file()


def test_a_failed_part_leaves_no_file_and_keeps_the_points(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileStore(tmp_path)
    store.write([Point("m", 1, {}, {"x": 1.0})])

    def full(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    with pytest.raises(OSError, match="No space"):
        store.flush()
    assert list((tmp_path / "m").iterdir()) == []  # no part, no temporary file
    monkeypatch.undo()
    store.close()  # the points were kept: written now
    assert read_points(tmp_path) == [Point("m", 1, {}, {"x": 1.0})]
