"""The one schema for everything the twin records.

A record is a :class:`Point`, shaped like an InfluxDB point:

* ``measurement`` — what kind of thing: ``bus``, ``line``, ``trafo``, ``load``, ``sgen``,
  ``storage``, ``switch``, ``ext_grid``, ``grid`` (whole-network summary), ``pv``, ``wind``,
  ``weather``, ``event`` (power-flow failures, recorder notices), later ``dms_decision``.
* ``tags`` — always ``run`` (the run id) and ``element`` (the element's stable name, e.g.
  ``Bus 3`` or ``line_12`` when the grid has no usable name); some measurements add more
  (``event`` has ``kind``).
* ``fields`` — numbers (float, int, bool) or short strings; names carry units (``vm_pu``,
  ``p_mw``). A value that is NaN is left out (InfluxDB cannot hold NaN), so "missing" means
  the same thing in every store.
* ``time_ns`` — scenario time (not wall time) as integer nanoseconds since the Unix epoch, UTC.

Stores take batches of points (``write(points)``) and are closed once (``close()``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

FieldValue = float | int | bool | str

#: Tag keys every point carries.
BASE_TAGS = ("run", "element")


@dataclass(slots=True)
class Point:
    measurement: str
    time_ns: int
    tags: dict[str, str]
    fields: dict[str, FieldValue] = field(default_factory=dict)


def clean_fields(fields: dict[str, object]) -> dict[str, FieldValue]:
    """Drop NaN/None values and turn numpy scalars into Python ones."""
    out: dict[str, FieldValue] = {}
    for key, value in fields.items():
        kind = type(value)
        if kind is float:  # the common case first: one type check, NaN/inf test by arithmetic
            if value - value == 0.0:
                out[key] = value
            continue
        if value is None:
            continue
        if isinstance(value, (bool, str)):
            out[key] = value
            continue
        if hasattr(value, "item"):  # numpy scalar
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            continue
        out[key] = value  # type: ignore[assignment]
    return out


def table_points(measurement: str, names: Sequence[str], columns: dict[str, Sequence[object]],
                 run_id: str, time_ns: int) -> list[Point]:
    """One point per element from column lists (``columns[attr][i]`` belongs to ``names[i]``)."""
    attrs = list(columns)
    if not attrs:
        return []
    cols = [columns[a] for a in attrs]
    # The recorder's hot path: when every value is a finite number (the usual case), rows
    # need no per-value cleaning.
    if all(_all_finite(c) for c in cols):
        return [Point(measurement, time_ns, {"run": run_id, "element": name},
                      dict(zip(attrs, row)))
                for name, row in zip(names, zip(*cols))]
    return [Point(measurement, time_ns, {"run": run_id, "element": name},
                  clean_fields(dict(zip(attrs, row))))
            for name, row in zip(names, zip(*cols))]


def _all_finite(column: Sequence[object]) -> bool:
    if len(column) == 0:
        return True
    first = column[0]
    if not isinstance(first, (float, int)) or hasattr(first, "item"):
        return False  # strings, None, numpy scalars: clean value by value
    try:
        return bool(np.isfinite(np.asarray(column, dtype=float)).all())
    except (TypeError, ValueError):
        return False


class Store(Protocol):
    """What every store offers."""

    def write(self, points: Sequence[Point]) -> None: ...

    def close(self) -> None: ...
