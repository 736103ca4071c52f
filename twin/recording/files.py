"""Embedded file store: points as Parquet files, one folder per measurement.

Layout::

    <directory>/
        bus/
            part-00000.parquet
            part-00001.parquet
            ...
        line/
            part-00000.parquet
        ...

Each part holds the points of one measurement that were buffered in memory until the buffer
reached ``flush_points`` points, until ``flush_every_s`` wall-clock seconds had passed since
the last flush (then every buffer is written: a process killed outright loses at most those
seconds), or until the store was closed. Columns of a part:

* ``time`` — ``timestamp[ns, tz=UTC]``, the point's ``time_ns``;
* one ``string`` column per tag key seen in the part (sorted by key), null where a point
  lacks the tag;
* one column per field key seen in the part (first-seen order), typed from the Python values:
  ``float`` -> ``double``, ``int`` -> ``int64``, ``bool`` -> ``bool``, ``str`` -> ``string``;
  null where a point lacks the field.

Which columns are tags and which are fields is recorded in the Parquet schema metadata
(``dms_twin.tags`` / ``dms_twin.fields``, JSON lists), so a tag and a field column are never
confused. Parts are written to a temporary name and renamed, so a crash never leaves a
half-written part behind (and a write that fails, e.g. on a full disk, removes its temporary
file and keeps the points buffered); an existing directory is appended to (numbering
continues).

Like InfluxDB, a field keeps one type per measurement: writing ``1`` (int) where ``1.5``
(float) was written before raises :class:`TypeError` at ``write`` time. That is what makes
a point read back with the same Python types it was written with.
"""

from __future__ import annotations

import json
import os
import time as wallclock
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from twin.recording.columns import ColumnBatch
from twin.recording.schema import FieldValue, Point

_TIME = "time"
_META_TAGS = b"dms_twin.tags"
_META_FIELDS = b"dms_twin.fields"
_PART_GLOB = "part-*.parquet"
_TIMESTAMP = pa.timestamp("ns", tz="UTC")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_ARROW_TYPES: dict[type, pa.DataType] = {
    float: pa.float64(),
    int: pa.int64(),
    bool: pa.bool_(),
    str: pa.string(),
}
_PYTHON_TYPES = {str(arrow): python for python, arrow in _ARROW_TYPES.items()}
#: A column's numpy dtype kind -> the Python type its values have in a point.
_KIND_TYPES = {"f": float, "b": bool, "i": int, "u": int}
#: A buffered point: time [ns], tags, fields.
_Row = tuple[int, dict[str, str], dict[str, FieldValue]]


def _check_measurement(name: str) -> None:
    """Measurement names become folder names; refuse ones that would escape or collide."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"measurement name {name!r} cannot be used as a folder name")


def _part_number(path: Path) -> int:
    try:
        return int(path.stem.split("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def _part_paths(folder: Path) -> list[Path]:
    """The parts in write order (by number: part-100000 comes after part-99999)."""
    return sorted(folder.glob(_PART_GLOB), key=lambda p: (_part_number(p), p.name))


class FileStore:
    """Buffer points per measurement and write them as Parquet parts.

    Parameters
    ----------
    directory : str or os.PathLike
        Root folder; created if missing. Existing parts are kept and new ones numbered after.
    flush_points : int
        A measurement's buffer is written as one part when it holds this many points.
    flush_every_s : float or None
        Every buffer is written when a write comes this many wall-clock seconds after the
        last flush (None: only by size and at close).
    clock : callable
        Wall-clock seconds (monotonic); for tests.

    Notes
    -----
    A point's tags and fields are kept by reference until their part is written: do not
    change a point's dicts after handing it to :meth:`write`.

    Not thread-safe: one writer (e.g. the recorder, or the background thread of
    :class:`~twin.recording.resilient.ResilientWriter`) per store.
    """

    def __init__(self, directory: str | os.PathLike[str], flush_points: int = 50_000,
                 flush_every_s: float | None = 5.0,
                 clock: Callable[[], float] = wallclock.monotonic) -> None:
        if flush_points < 1:
            raise ValueError(f"flush_points must be >= 1, got {flush_points}")
        if flush_every_s is not None and not flush_every_s > 0:
            raise ValueError(f"flush_every_s must be > 0 or None, got {flush_every_s}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.flush_points = flush_points
        self.flush_every_s = flush_every_s
        self._clock = clock
        self._last_flush = clock()
        # Per measurement, in write order: runs of point rows and of column batches (made
        # into Arrow columns only when the part is written: a step costs a list append).
        self._buffers: dict[str, list[list[_Row] | list[ColumnBatch]]] = {}
        self._buffered: dict[str, int] = {}  # rows per measurement's buffer
        # Per measurement: the one type of each field, and every tag key seen (incl. on disk).
        self._field_types: dict[str, dict[str, type]] = {}
        self._tag_keys: dict[str, set[str]] = {}
        self._next_part: dict[str, int] = {}
        self._closed = False

    @property
    def description(self) -> str:
        """Human-readable location, used in summaries."""
        return str(self.directory)

    def write(self, points: Sequence[Point]) -> None:
        """Buffer points; write a part for every measurement whose buffer is full.

        Raises
        ------
        TypeError
            A field value of an unsupported type, or of a different type than earlier values
            of the same field in the same measurement. Nothing of the batch is buffered then.
        ValueError
            A measurement name unusable as a folder, a tag or field named ``time``, a key used
            both as tag and field, or an int outside 64 bits.
        RuntimeError
            The store is closed.
        """
        if self._closed:
            raise RuntimeError(f"FileStore at {self.directory} is closed")
        # Validate the whole batch before buffering any of it, so a bad point cannot leave
        # the batch half-recorded; new field types are only committed once all passed.
        new_types: dict[str, dict[str, type]] = {}
        for point in points:
            self._validate(point, new_types)
        for measurement, types in new_types.items():
            self._field_types.setdefault(measurement, {}).update(types)
        touched: set[str] = set()
        for point in points:
            if point.fields:
                chunks = self._buffers.setdefault(point.measurement, [])
                if not chunks or isinstance(chunks[-1][0], ColumnBatch):
                    chunks.append([])
                # a row, not the Point: a tuple of an int and two dicts of plain values is
                # no work for the garbage collector, a Point is (until the part is written)
                chunks[-1].append((point.time_ns, point.tags, point.fields))  # type: ignore[arg-type]
                self._buffered[point.measurement] = self._buffered.get(point.measurement, 0) + 1
                touched.add(point.measurement)
        self._flush_due(touched)

    def write_columns(self, batches: Sequence[ColumnBatch]) -> None:
        """Buffer column batches as Arrow tables (no points); write parts as :meth:`write`.

        Raises as :meth:`write`; a batch's field types are its arrays' (float64 -> float,
        bool -> bool, integers -> int).
        """
        if self._closed:
            raise RuntimeError(f"FileStore at {self.directory} is closed")
        new_types: dict[str, dict[str, type]] = {}
        for batch in batches:
            self._validate_batch(batch, new_types)
        for measurement, types in new_types.items():
            self._field_types.setdefault(measurement, {}).update(types)
        touched: set[str] = set()
        for batch in batches:
            if batch.n_rows and batch.fields:
                measurement = batch.measurement
                chunks = self._buffers.setdefault(measurement, [])
                if not chunks or not isinstance(chunks[-1][0], ColumnBatch):
                    chunks.append([])
                chunks[-1].append(batch)  # type: ignore[arg-type]
                self._buffered[measurement] = self._buffered.get(measurement, 0) + batch.n_rows
                touched.add(measurement)
        self._flush_due(touched)

    def _flush_due(self, touched: set[str]) -> None:
        every = self.flush_every_s
        if every is not None and self._clock() - self._last_flush >= every:
            self.flush()
            return
        for measurement in touched:
            if self._buffered[measurement] >= self.flush_points:
                self._flush(measurement)

    def _validate_batch(self, batch: ColumnBatch, new_types: dict[str, dict[str, type]]) -> None:
        """As :meth:`_validate` for every row of ``batch`` at once (tags ``element``, ``run``)."""
        measurement = batch.measurement
        known = self._field_types.get(measurement)
        if known is None:
            _check_measurement(measurement)
            known = self._load_existing(measurement)
        tag_keys = self._tag_keys[measurement]
        pending = new_types.get(measurement, {})
        for key in ("element", "run"):
            if key not in tag_keys:
                if key in known or key in pending:
                    raise ValueError(f"{measurement}: tag {key!r} clashes with a field or 'time'")
                tag_keys.add(key)
        for key, column in batch.fields.items():
            kind = _KIND_TYPES.get(column.dtype.kind)
            if kind is None:
                raise TypeError(f"{measurement}.{key} has unsupported dtype {column.dtype}")
            if known.get(key) is not kind:
                sample: FieldValue = kind(column[0]) if len(column) else kind()
                self._check_new_field(measurement, key, sample,
                                      new_types.setdefault(measurement, {}))
            if column.dtype.kind == "u" and len(column) and column.max() > _INT64_MAX:
                raise ValueError(f"{measurement}.{key} = {column.max()} does not fit a 64-bit "
                                 "integer")

    def _validate(self, point: Point, new_types: dict[str, dict[str, type]]) -> None:
        measurement = point.measurement
        known = self._field_types.get(measurement)
        if known is None:
            _check_measurement(measurement)
            known = self._load_existing(measurement)
        tag_keys = self._tag_keys[measurement]
        for key, value in point.tags.items():
            if type(value) is not str:
                raise TypeError(f"{measurement}: tag {key!r} must be a str, got {value!r}")
            if key not in tag_keys:
                pending = new_types.get(measurement, {})
                if key == _TIME or key in known or key in pending:
                    raise ValueError(f"{measurement}: tag {key!r} clashes with a field or 'time'")
                # Tag keys carry no type, so they can be committed right away.
                tag_keys.add(key)
        for key, value in point.fields.items():
            kind = type(value)
            # Fast path: a field already known with this type (nearly every value).
            if known.get(key) is not kind:
                pending = new_types.setdefault(measurement, {})
                self._check_new_field(measurement, key, value, pending)
            elif kind is int and not _INT64_MIN <= value <= _INT64_MAX:  # type: ignore[operator]
                raise ValueError(f"{measurement}.{key} = {value} does not fit a 64-bit integer")

    def _check_new_field(
        self, measurement: str, key: str, value: FieldValue, pending: dict[str, type]
    ) -> None:
        """Check a field not yet committed for this measurement (or of a different type)."""
        kind = type(value)
        if kind not in _ARROW_TYPES:
            raise TypeError(f"{measurement}.{key} has unsupported type {kind.__name__}: {value!r}")
        expected = self._field_types[measurement].get(key) or pending.get(key)
        if expected is None:
            if key == _TIME or key in self._tag_keys[measurement]:
                raise ValueError(f"{measurement}: field {key!r} clashes with a tag or 'time'")
            pending[key] = kind
        elif expected is not kind:
            raise TypeError(
                f"{measurement}.{key} was {expected.__name__} before, now {kind.__name__} "
                f"({value!r}); a field keeps one type per measurement"
            )
        if kind is int and not _INT64_MIN <= value <= _INT64_MAX:  # type: ignore[operator]
            raise ValueError(f"{measurement}.{key} = {value} does not fit a 64-bit integer")

    def _load_existing(self, measurement: str) -> dict[str, type]:
        """Field types, tag keys and next part number from parts already on disk."""
        types: dict[str, type] = {}
        tag_keys: set[str] = set()
        parts = _part_paths(self.directory / measurement)
        for path in parts:
            schema = pq.read_schema(path)
            tag_keys.update(_schema_names(schema, _META_TAGS))
            for name in _schema_names(schema, _META_FIELDS):
                types[name] = _PYTHON_TYPES[str(schema.field(name).type)]
        self._next_part[measurement] = int(parts[-1].stem.split("-")[1]) + 1 if parts else 0
        self._field_types[measurement] = types
        self._tag_keys[measurement] = tag_keys
        return types

    def _flush(self, measurement: str) -> None:
        chunks = self._buffers.get(measurement)
        if not chunks:
            return
        types = self._field_types[measurement]
        table = _concat([_batches_table(c) if isinstance(c[0], ColumnBatch)  # type: ignore[arg-type]
                         else _to_table(c, types) for c in chunks])  # type: ignore[arg-type]
        folder = self.directory / measurement
        folder.mkdir(exist_ok=True)
        index = self._next_part[measurement]
        path = folder / f"part-{index:05d}.parquet"
        temporary = path.with_suffix(".parquet.tmp")
        try:
            # dictionary-encode the names only: tried on float columns it costs 3x the write
            # time and saves nothing (measured: 160 -> 45 ms for 500k rows)
            strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
            pq.write_table(table, temporary, use_dictionary=strings)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)  # e.g. a full disk: no half-written file stays
            raise
        # Dropped only now: if writing failed, the points stay buffered for a later flush.
        del self._buffers[measurement]
        self._buffered[measurement] = 0
        self._next_part[measurement] = index + 1

    def flush(self) -> None:
        """Write every non-empty buffer as a part now."""
        for measurement in list(self._buffers):
            self._flush(measurement)
        self._last_flush = self._clock()

    def close(self) -> None:
        """Write what is buffered; further writes raise. Closing twice is harmless."""
        if self._closed:
            return
        self.flush()
        self._closed = True


def _to_table(rows: list[_Row], field_types: dict[str, type]) -> pa.Table:
    """Build one Arrow table column-wise from buffered point rows (one pass per column)."""
    times, tag_dicts, field_dicts = ([row[k] for row in rows] for k in range(3))
    # the keys in first-seen order from the distinct key sets (points of one measurement
    # mostly share one): a dict per set, not per point
    tag_keys = dict.fromkeys(k for keys in dict.fromkeys(map(tuple, tag_dicts)) for k in keys)
    field_keys = dict.fromkeys(k for keys in dict.fromkeys(map(tuple, field_dicts))
                               for k in keys)
    tags = sorted(tag_keys)
    fields = list(field_keys)
    columns = [pa.array(times, type=pa.int64()).cast(_TIMESTAMP)]
    names = [_TIME]
    for key in tags:
        columns.append(pa.array([d.get(key) for d in tag_dicts], type=pa.string()))
        names.append(key)
    for key in fields:
        arrow_type = _ARROW_TYPES[field_types[key]]
        columns.append(pa.array([d.get(key) for d in field_dicts], type=arrow_type))
        names.append(key)
    metadata = {_META_TAGS: json.dumps(tags).encode(), _META_FIELDS: json.dumps(fields).encode()}
    return pa.table(columns, names=names).replace_schema_metadata(metadata)


def _batches_table(batches: list[ColumnBatch]) -> pa.Table:
    """The Arrow table of column batches of one measurement, shaped as :func:`_to_table`
    shapes the same points (tags ``element`` and ``run``; a value that is not finite, or a
    field a batch lacks, is null)."""
    counts = [batch.n_rows for batch in batches]
    times = np.repeat(np.array([batch.time_ns for batch in batches], dtype=np.int64), counts)
    # names as Arrow once per names list, then taken per batch: no Python string per row
    name_arrays: dict[int, pa.Array] = {}
    elements = []
    for batch in batches:
        names = name_arrays.get(id(batch.names))
        if names is None:
            names = name_arrays[id(batch.names)] = pa.array(list(batch.names), type=pa.string())
        elements.append(names if batch.rows is None else pc.take(names, batch.rows))
    run_ids = list(dict.fromkeys(batch.run_id for batch in batches))
    if len(run_ids) == 1:  # one run (always, from the recorder): one take for every row
        runs = [pc.take(pa.array(run_ids, type=pa.string()),
                        np.zeros(int(sum(counts)), dtype=np.int32))]
    else:
        runs = [pc.take(pa.array([batch.run_id], type=pa.string()),
                        np.zeros(n, dtype=np.int32)) for batch, n in zip(batches, counts)]
    columns = [pa.array(times).cast(_TIMESTAMP),
               pa.concat_arrays(elements) if elements else pa.array([], type=pa.string()),
               pa.concat_arrays(runs) if runs else pa.array([], type=pa.string())]
    names = [_TIME, "element", "run"]
    fields: dict[str, np.dtype] = {}
    for batch in batches:
        if fields.keys() >= batch.fields.keys():
            continue  # nothing new: the order is settled by earlier batches
        # first-seen order, as the points' would be: by the first row holding the field
        first = {key: 0 if mask is None else int(np.argmax(mask))
                 for key, mask in batch.valid.items()}
        for key in sorted(batch.fields, key=first.__getitem__):  # stable: then field order
            fields.setdefault(key, batch.fields[key].dtype)
    for key, dtype in fields.items():
        if all(key in batch.fields and batch.valid[key] is None for batch in batches):
            # every row holds the field (the usual case): no validity masks to build
            columns.append(pa.array(np.concatenate([batch.fields[key] for batch in batches]),
                                    type=_batch_arrow_type(dtype)))
            names.append(key)
            continue
        parts, valid = [], []
        for batch, n in zip(batches, counts):
            column = batch.fields.get(key)
            if column is None:
                parts.append(np.zeros(n, dtype=dtype))
                valid.append(np.zeros(n, dtype=bool))
            else:
                mask = batch.valid[key]
                parts.append(column)
                valid.append(np.ones(n, dtype=bool) if mask is None else mask)
        values, present = np.concatenate(parts), np.concatenate(valid)
        columns.append(pa.array(values, type=_batch_arrow_type(dtype),
                                mask=None if present.all() else ~present))
        names.append(key)
    metadata = {_META_TAGS: json.dumps(["element", "run"]).encode(),
                _META_FIELDS: json.dumps(list(fields)).encode()}
    return pa.table(columns, names=names).replace_schema_metadata(metadata)


def _batch_arrow_type(dtype: np.dtype) -> pa.DataType:
    kind = dtype.kind
    return pa.float64() if kind == "f" else pa.bool_() if kind == "b" else pa.int64()


def _concat(tables: list[pa.Table]) -> pa.Table:
    """One part from buffered tables: columns ``time``, the tags (sorted), the fields
    (first-seen order), nulls where a table lacks a column."""
    if len(tables) == 1:
        return tables[0]
    tag_keys: dict[str, None] = {}
    field_keys: dict[str, None] = {}
    for table in tables:
        tag_keys.update(dict.fromkeys(_schema_names(table.schema, _META_TAGS)))
        field_keys.update(dict.fromkeys(_schema_names(table.schema, _META_FIELDS)))
    tags, fields = sorted(tag_keys), list(field_keys)
    table = pa.concat_tables(tables, promote_options="default").select([_TIME, *tags, *fields])
    metadata = {_META_TAGS: json.dumps(tags).encode(), _META_FIELDS: json.dumps(fields).encode()}
    return table.replace_schema_metadata(metadata)


def _schema_names(schema: pa.Schema, key: bytes) -> list[str]:
    metadata = schema.metadata or {}
    if key not in metadata:
        raise ValueError(f"Parquet part without {key.decode()} metadata; not written by FileStore")
    return list(json.loads(metadata[key]))


def list_measurements(directory: str | os.PathLike[str]) -> list[str]:
    """Measurements (folder names) in ``directory`` that hold at least one part, sorted."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"no FileStore directory at {root}")
    return sorted(entry.name for entry in root.iterdir() if entry.is_dir() and _part_paths(entry))


def _read_table(
    directory: str | os.PathLike[str], measurement: str
) -> tuple[pa.Table, list[str], list[str]]:
    """All parts of one measurement as one table (union of columns), sorted by time then tags.

    Returns the table, the tag column names (sorted) and the field column names (first-seen).
    """
    _check_measurement(measurement)
    parts = _part_paths(Path(directory) / measurement)
    if not parts:
        raise FileNotFoundError(f"no parts for measurement {measurement!r} in {directory}")
    tables = [pq.read_table(path) for path in parts]
    tag_keys: dict[str, None] = {}
    field_keys: dict[str, None] = {}
    for table in tables:
        tag_keys.update(dict.fromkeys(_schema_names(table.schema, _META_TAGS)))
        field_keys.update(dict.fromkeys(_schema_names(table.schema, _META_FIELDS)))
    tags = sorted(tag_keys)
    fields = list(field_keys)
    # "default" promotion only fills columns missing from a part with nulls; differing
    # types for one column (impossible for parts written by one FileStore) raise.
    table = pa.concat_tables(tables, promote_options="default")
    table = table.select([_TIME, *tags, *fields])
    # Arrow's sort is stable, so points equal in time and tags keep their write order.
    order = pc.sort_indices(table, sort_keys=[(name, "ascending") for name in (_TIME, *tags)])
    return table.take(order).replace_schema_metadata(None), tags, fields


def read_measurement(directory: str | os.PathLike[str], measurement: str) -> pd.DataFrame:
    """Read one measurement into a DataFrame.

    Parameters
    ----------
    directory : str or os.PathLike
        The FileStore's root folder.
    measurement : str
        Measurement (folder) name.

    Returns
    -------
    pandas.DataFrame
        Columns ``time`` (``datetime64[ns, UTC]``), the tag columns (sorted), then the field
        columns; rows sorted by time, then tags (stable). Missing values are ``NaN`` in float
        columns and ``<NA>`` elsewhere: ints and bools use pandas' nullable ``Int64`` and
        ``boolean`` dtypes so a missing value does not turn them into floats.
    """
    table, _, _ = _read_table(directory, measurement)
    nullable = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    return table.to_pandas(types_mapper=nullable.get)


def read_points(directory: str | os.PathLike[str]) -> list[Point]:
    """Read every measurement back as points.

    Measurements come in name order, each sorted as in :func:`read_measurement`. Null tags
    and fields are left out of the point, and values keep their Python types.
    """
    points: list[Point] = []
    for measurement in list_measurements(directory):
        table, tags, fields = _read_table(directory, measurement)
        times: list[int] = table.column(_TIME).cast(pa.int64()).to_pylist()
        tag_columns = [(key, table.column(key).to_pylist()) for key in tags]
        field_columns = [(key, table.column(key).to_pylist()) for key in fields]
        for row, time_ns in enumerate(times):
            point_tags = {
                key: column[row] for key, column in tag_columns if column[row] is not None
            }
            point_fields: dict[str, FieldValue] = {
                key: column[row] for key, column in field_columns if column[row] is not None
            }
            points.append(Point(measurement, time_ns, point_tags, point_fields))
    return points
