"""Columnar records: one element table at one time as numpy columns, without a Point per row.

The grid's tables (``bus``, ``line``, …) are most of what a run records: one row per element
and solve. A :class:`ColumnBatch` carries such a table as it comes out of the power flow —
element names and one numpy array per field — through the recorder to the stores, the KPIs
and the expectations' event log. It means exactly the same as the points
:func:`~twin.recording.schema.table_points` would make of it (:meth:`ColumnBatch.to_points`
makes them), with the schema's rules:

* tags are ``run`` and ``element``;
* a value that is not finite (NaN, ±inf) is left out of its row;
* a row left without any field is not recorded at all (:func:`column_batch` drops it).

Field types follow the array's dtype: ``float64`` → float, ``bool`` → bool, integers → int,
as the Python values of today's points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from twin.recording.schema import MEASUREMENTS, Point, check_measurement, table_points

#: numpy dtype kinds a column may have: float, bool, signed and unsigned integers.
_NUMERIC_KINDS = "fbiu"
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True, eq=False)
class ColumnBatch:
    """The rows of one table at one time.

    Attributes
    ----------
    measurement : str
        The table's measurement (a name of :mod:`twin.recording.schema`).
    time_ns : int
        Scenario time of every row [ns since the epoch, UTC].
    run_id : str
        The ``run`` tag of every row.
    names : sequence of str
        Every element name of the table (the recorder's stable list: line protocol caches
        escaped prefixes by its identity).
    fields : dict of str to numpy.ndarray
        One 1-D array per field, a value per row.
    valid : dict of str to numpy.ndarray or None
        Per field, which rows hold a finite value (None: all of them).
    rows : numpy.ndarray or None
        Positions in ``names`` of the rows (None: every element, in order).
    """

    measurement: str
    time_ns: int
    run_id: str
    names: Sequence[str]
    fields: dict[str, np.ndarray]
    valid: dict[str, np.ndarray | None]
    rows: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return len(self.names) if self.rows is None else len(self.rows)

    def __len__(self) -> int:
        return self.n_rows

    @property
    def elements(self) -> list[str]:
        """The element name of each row."""
        names = self.names
        if self.rows is None:
            return list(names)
        return [names[i] for i in self.rows.tolist()]

    def take(self, positions: np.ndarray) -> ColumnBatch:
        """The rows at ``positions`` (indices into this batch's rows, ascending)."""
        positions = np.asarray(positions, dtype=np.intp)
        rows = positions if self.rows is None else self.rows[positions]
        return ColumnBatch(
            self.measurement, self.time_ns, self.run_id, self.names,
            {key: column[positions] for key, column in self.fields.items()},
            {key: None if mask is None else mask[positions] for key, mask in self.valid.items()},
            rows)

    def slice(self, start: int, stop: int) -> ColumnBatch:
        """Rows ``start`` to ``stop`` (exclusive)."""
        return self.take(np.arange(start, min(stop, self.n_rows)))

    def to_points(self) -> list[Point]:
        """The points these rows mean (as :func:`table_points` makes them)."""
        if not self.fields:
            return []
        columns: dict[str, list] = {}
        for key, column in self.fields.items():
            values = column.tolist()  # Python float, bool, int
            mask = self.valid[key]
            if mask is not None:
                for i in np.flatnonzero(~mask).tolist():
                    values[i] = None  # left out of the point, as clean_fields does
            columns[key] = values
        points = table_points(self.measurement, self.elements, columns, self.run_id, self.time_ns)
        return [p for p in points if p.fields]


def _as_column(values: object) -> np.ndarray | None:
    """``values`` as a numeric 1-D array, or None where the points would keep other types
    (strings, None, mixed int/float lists)."""
    if isinstance(values, np.ndarray):
        if values.ndim != 1 or values.dtype.kind not in _NUMERIC_KINDS:
            return None
        if values.dtype.kind == "u" and len(values) and values.max() > _INT64_MAX:
            return None  # the point path says which value does not fit 64 bits
        return values
    if not isinstance(values, (list, tuple)):
        return None
    if not values:
        return np.zeros(0)
    first = type(values[0])
    if first not in (float, int, bool):
        return None
    array = np.asarray(values)
    # [1, 2.5] would be int and float points: keep the point path for it
    expected = {float: "f", int: "iu", bool: "b"}[first]
    return array if array.ndim == 1 and array.dtype.kind in expected else None


def _finite_sum(column: np.ndarray) -> bool:
    # math.isfinite on the numpy scalar: a ufunc call on one value costs ten times more
    return math.isfinite(np.add.reduce(column)) if len(column) else True


def column_batch(measurement: str, names: Sequence[str], columns: Mapping[str, object],
                 run_id: str, time_ns: int) -> ColumnBatch | None:
    """The batch of a table snapshot (``columns[attr][i]`` belongs to ``names[i]``).

    Arrays are kept as they are: hand over arrays nobody changes afterwards.

    Returns
    -------
    ColumnBatch or None
        None when a column is not numeric (then the table goes the point path).

    Raises
    ------
    ValueError
        An unknown measurement, or a column whose length differs from ``names``.
    """
    if measurement not in MEASUREMENTS:
        check_measurement(measurement, "a table of a recorder source")
    fields: dict[str, np.ndarray] = {}
    valid: dict[str, np.ndarray | None] = {}
    n = len(names)
    keep: np.ndarray | None = None  # rows with at least one value, when some have none
    all_kept = False
    for key, values in columns.items():
        column = _as_column(values)
        if column is None:
            return None
        if len(column) != n:
            raise ValueError(f"{measurement}.{key}: {len(column)} values for {n} elements")
        mask = None
        # one sum tells whether every value is finite (NaN and ±inf propagate; an overflow
        # to inf only sends the column the long way), cheaper than a mask for small tables
        if column.dtype.kind == "f" and not _finite_sum(column):
            mask = np.isfinite(column)
            n_valid = np.count_nonzero(mask)
            if not n_valid:
                continue  # no row has it: the points would not name it at all
            if n_valid == n:
                mask = None
        fields[key], valid[key] = column, mask
        if not all_kept:
            if mask is None:
                all_kept = True
            else:
                keep = mask.copy() if keep is None else keep | mask
    batch = ColumnBatch(measurement, int(time_ns), run_id, names, fields, valid)
    if not fields:
        return batch.take(np.zeros(0, np.intp))  # no field, no point
    if all_kept:
        return batch
    assert keep is not None
    return batch if keep.all() else batch.take(np.flatnonzero(keep))


def n_rows(items: Iterable[Point | ColumnBatch]) -> int:
    """How many points ``items`` stand for."""
    return sum(item.n_rows if isinstance(item, ColumnBatch) else 1 for item in items)
