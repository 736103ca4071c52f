"""Column batches mean exactly the points of today's path: same line protocol byte for byte,
same file-store content, same points read back from the real InfluxDB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.recording.columns import ColumnBatch, column_batch
from twin.recording.files import FileStore, read_measurement, read_points
from twin.recording.lineprotocol import batch_lines, to_lines
from twin.recording.schema import BUS, LINE, SWITCH, table_points

T0_NS = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z
STEP_NS = 60 * 10**9
# names that need escaping or sanitising in line protocol, and an empty one
NAMES = ["Bus 0", "Bus,1", "Bus=2", 'Bus "3"', "Umspannwerk Süd", "C:\\grid\\", "a b,c=d",
         "line\nbreak", ""]


def tables(step: int, seed: int = 0) -> list[tuple[str, list[str], dict[str, np.ndarray]]]:
    """Grid-like tables at one step: floats with NaN and ±inf (a value left out), a row
    without any finite field, bools, ints, awkward floats (-0.0, 1e-300, integral)."""
    rng = np.random.default_rng(seed + step)
    n = len(NAMES)
    vm = 1.0 + rng.normal(0, 0.03, n)
    vm[1] = np.nan
    vm[2] = np.inf if step % 2 else 1.0  # integral float stays a float: "1.0"
    p_mw = rng.normal(0, 1, n)
    p_mw[3] = -0.0
    p_mw[4] = 1e-300
    p_mw[1] = -np.inf
    bus = {"vm_pu": vm, "p_mw": p_mw, "va_degree": np.full(n, np.nan)}
    loading = rng.uniform(0, 130, n)
    loading[0] = np.nan
    line = {"loading_percent": loading, "in_service": rng.random(n) > 0.2,
            "steps": rng.integers(-5, 5, n)}
    empty = {"vm_pu": np.full(n, np.nan)}  # a failed solve: no row is recorded
    switch = {"closed": rng.random(n) > 0.5}
    return [(BUS, NAMES, bus), (LINE, NAMES, line), ("shunt", NAMES, empty),
            (SWITCH, NAMES, switch)]


def batches(steps: int = 5, run: str = "run 1") -> list[ColumnBatch]:
    out = []
    for step in range(steps):
        for measurement, names, columns in tables(step):
            batch = column_batch(measurement, names, columns, run, T0_NS + step * STEP_NS)
            assert batch is not None
            out.append(batch)
    return out


def points_of(step_batches: list[ColumnBatch]) -> list:
    """Today's points of the same tables (lists of Python values, as the grid sent them)."""
    points = []
    for batch in step_batches:
        full = {k: v for k, v in _full_columns(batch).items()}
        made = table_points(batch.measurement, list(batch.names), full, batch.run_id,
                            batch.time_ns)
        points.extend(p for p in made if p.fields)
    return points


def _full_columns(batch: ColumnBatch) -> dict[str, list]:
    step = (batch.time_ns - T0_NS) // STEP_NS
    for measurement, _names, columns in tables(step):
        if measurement == batch.measurement:
            return {k: v.tolist() for k, v in columns.items()}
    raise AssertionError(batch.measurement)


@pytest.mark.parametrize("run", ["run 1", "", "r,=1"])
def test_line_protocol_is_byte_identical_to_the_point_path(run: str) -> None:
    made = batches(run=run)
    columnar = "\n".join(line for b in made for line in batch_lines(b))
    assert columnar == to_lines(points_of(made))
    assert columnar  # not trivially equal


def test_a_row_without_any_finite_field_is_left_out() -> None:
    made = batches(steps=1)
    shunt = next(b for b in made if b.measurement == "shunt")
    assert shunt.n_rows == 0 and batch_lines(shunt) == []
    bus = next(b for b in made if b.measurement == BUS)
    # "Bus,1" has NaN, -inf and NaN: no field, no row
    assert bus.n_rows == len(NAMES) - 1 and "Bus,1" not in bus.elements


def test_to_points_equals_table_points() -> None:
    made = batches()
    assert [p for b in made for p in b.to_points()] == points_of(made)


def test_subsets_keep_names_and_format_the_same() -> None:
    batch = batches(steps=1)[1]  # the lines: every row kept
    assert batch.measurement == LINE and batch.rows is None
    part = batch.take(np.array([0, 3, 6]))
    assert part.elements == [NAMES[0], NAMES[3], NAMES[6]]
    assert batch_lines(part) == to_lines(part.to_points()).split("\n")
    assert batch_lines(part.take(np.array([1]))) == [batch_lines(batch)[3]]


def test_non_numeric_columns_go_the_point_path() -> None:
    assert column_batch(BUS, ["a"], {"note": ["text"]}, "r", T0_NS) is None
    assert column_batch(BUS, ["a", "b"], {"x": [1, 2.5]}, "r", T0_NS) is None  # int and float
    lists = column_batch(BUS, ["a", "b"], {"x": [1.5, float("nan")], "ok": [True, False]},
                         "r", T0_NS)
    assert lists is not None and lists.to_points() == table_points(
        BUS, ["a", "b"], {"x": [1.5, float("nan")], "ok": [True, False]}, "r", T0_NS)


def test_file_store_round_trip_equals_the_point_path(tmp_path: Path) -> None:
    made = batches()
    with_columns, with_points = FileStore(tmp_path / "c"), FileStore(tmp_path / "p")
    for k in range(0, len(made), 4):  # one step's tables per call, as the recorder does
        with_columns.write_columns(made[k:k + 4])
        with_points.write(points_of(made[k:k + 4]))
    with_columns.close()
    with_points.close()
    typed = [(p.measurement, p.time_ns, p.tags, {k: (type(v), v) for k, v in p.fields.items()})
             for p in read_points(tmp_path / "c")]
    expected = [(p.measurement, p.time_ns, p.tags,
                 {k: (type(v), v) for k, v in p.fields.items()})
                for p in read_points(tmp_path / "p")]
    assert typed == expected
    for measurement in (BUS, LINE, SWITCH):
        a = read_measurement(tmp_path / "c", measurement)
        b = read_measurement(tmp_path / "p", measurement)
        assert list(a.columns) == list(b.columns) and list(a.dtypes) == list(b.dtypes)


def test_file_store_mixes_points_and_columns_in_one_part(tmp_path: Path) -> None:
    made = [b for b in batches(steps=4) if b.measurement == BUS]
    store = FileStore(tmp_path, flush_points=10_000, flush_every_s=None)
    store.write(points_of(made[:2]))
    store.write_columns(made[2:])
    store.close()
    assert len(list((tmp_path / BUS).glob("*.parquet"))) == 1
    def key(p):
        return (p.time_ns, p.tags["element"])

    assert sorted(read_points(tmp_path), key=key) == sorted(points_of(made), key=key)


def test_file_store_refuses_a_field_changing_type(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.write_columns([column_batch(BUS, ["a"], {"x": np.array([1.5])}, "r", T0_NS)])
    with pytest.raises(TypeError, match="one type per measurement"):
        store.write_columns([column_batch(BUS, ["a"], {"x": np.array([2])}, "r", T0_NS + 1)])


@pytest.mark.influx
def test_influx_round_trip_equals_the_point_path(influx_url: str, fresh_database: str) -> None:
    import requests

    from twin.recording.influx_v1 import InfluxV1Store

    made = batches(steps=3)
    columnar = InfluxV1Store(influx_url, fresh_database, batch_size=7)  # several requests
    by_points = InfluxV1Store(influx_url, fresh_database + "_p", batch_size=7)
    try:
        columnar.write_columns(made)
        by_points.write(points_of(made))

        def typed(store: InfluxV1Store) -> list:
            rows = [p for m in (BUS, LINE, SWITCH) for p in store.read_points(m)]
            return sorted((p.measurement, p.time_ns, sorted(p.tags.items()),
                           sorted((k, type(v).__name__, v) for k, v in p.fields.items()))
                          for p in rows)

        got = typed(columnar)
        assert got == typed(by_points)
        assert len(got) == len(points_of(made))
    finally:
        columnar.close()
        by_points.close()
        requests.post(f"{influx_url}/query", timeout=10,
                      params={"q": f'DROP DATABASE "{fresh_database}_p"'})
