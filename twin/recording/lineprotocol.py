"""Serialise :class:`~twin.recording.schema.Point` to InfluxDB line protocol (ns precision).

One line per point::

    measurement,tag1=v1,tag2=v2 field1=1.5,field2=3i,field3="text",field4=true 1700000000000000000

Rules (identical for InfluxDB 1.x and 2.x):

* measurement: ``,`` and space are escaped with ``\\``;
* tag keys, tag values and field keys: ``,``, ``=`` and space are escaped;
* string field values are quoted with ``"``; ``"`` and ``\\`` inside are escaped;
* ``int`` -> ``123i``, ``float`` -> ``repr`` (shortest round-trip form, ``1.0`` stays a float),
  ``bool`` -> ``true``/``false``;
* tags are sorted by key (what InfluxDB does internally; sorted input is cheaper to index);
* tags with an empty value are left out (line protocol cannot express them), as the
  official client libraries do; points without fields are skipped (InfluxDB rejects them).

Some characters cannot be written as they are, so names are *sanitised* for the line (the
point itself, and what the file store keeps, are unchanged): in a measurement, tag key, tag
value or field key

* a line break ends the line: ``\n`` becomes ``␊`` (U+240A) and ``\r`` becomes ``␍`` (U+240D);
* backslashes right before a special character (``,``, ``=``, space) or at the end would be
  read by the server as an escape (InfluxDB 1.x rejects the whole request with "invalid tag
  format"): each of them becomes ``＼`` (U+FF3C, fullwidth reverse solidus), so
  ``C:\\grid\\`` is stored as ``C:\\grid＼``. Other backslashes are kept as they are.

So one awkward element name never makes InfluxDB refuse a batch (and the run spill). Names
that remain impossible raise :class:`ValueError`: an empty measurement or key, and a
measurement starting with ``#``. Non-finite floats also raise: producers drop NaN before
this point (see ``clean_fields``), so one arriving here is a bug upstream.
"""

from __future__ import annotations

import math
import re
from itertools import repeat
from typing import Iterable, Iterator

import numpy as np

from twin.recording.columns import ColumnBatch
from twin.recording.schema import FieldValue, Point

_MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ "})
_KEY_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# Names repeat on every step (same elements, same fields), so escaping results are cached.
# The caches are cleared when they grow past this many entries to bound memory.
_CACHE_LIMIT = 200_000
_prefix_cache: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
_field_key_cache: dict[str, str] = {}
# A table's escaped ``measurement,element=…,run=…`` per element, by the identity of its names
# list (kept in the entry, so the id cannot be reused while cached).
_TABLE_CACHE_LIMIT = 64
_table_prefix_cache: dict[tuple[str, str, int], tuple[object, list[str]]] = {}


_LINE_BREAKS = str.maketrans({"\n": "\u240a", "\r": "\u240d"})
# a run of backslashes the server would read as (part of) an escape
_BAD_BACKSLASHES = {
    specials: re.compile(r"\\+(?=[" + re.escape(specials) + r"]|\Z)")
    for specials in (", ", ",= ")
}


def _fullwidth(match: re.Match[str]) -> str:
    return "\uff3c" * len(match.group())


def sanitise_name(text: str, specials: str = ",= ") -> str:
    """``text`` with what line protocol cannot carry replaced (see the module docstring).

    ``specials`` are the characters escaped in this position (``", "`` for a measurement).
    """
    if "\n" in text or "\r" in text:
        text = text.translate(_LINE_BREAKS)
    if "\\" in text:
        text = _BAD_BACKSLASHES[specials].sub(_fullwidth, text)
    return text


def _escape_measurement(name: str) -> str:
    if not name:
        raise ValueError("measurement name is empty")
    if name.startswith("#"):
        raise ValueError(f"measurement {name!r} starts with '#', which marks a comment line")
    return sanitise_name(name, ", ").translate(_MEASUREMENT_ESCAPES)


def _escape_key(text: str, what: str) -> str:
    return sanitise_name(text, ",= ").translate(_KEY_ESCAPES)


def _prefix(measurement: str, tags: dict[str, str]) -> str:
    """``measurement,tag=value,...`` for one series, cached by the series identity."""
    cache_key = (measurement, tuple(tags.items()))
    prefix = _prefix_cache.get(cache_key)
    if prefix is None:
        parts = [_escape_measurement(measurement)]
        for key in sorted(tags):
            value = tags[key]
            if not isinstance(value, str) or not isinstance(key, str):
                raise TypeError(f"tag {key!r}={value!r} of {measurement!r}: tags must be str")
            if value == "":
                continue
            if not key:
                raise ValueError(f"empty tag key in measurement {measurement!r}")
            parts.append(f"{_escape_key(key, 'tag key')}={_escape_key(value, 'tag value')}")
        prefix = ",".join(parts)
        if len(_prefix_cache) >= _CACHE_LIMIT:
            _prefix_cache.clear()
        _prefix_cache[cache_key] = prefix
    return prefix


def _field_key(key: str) -> str:
    """Escaped field key followed by ``=``, cached."""
    escaped = _field_key_cache.get(key)
    if escaped is None:
        if not key:
            raise ValueError("empty field key")
        escaped = _escape_key(key, "field key") + "="
        if len(_field_key_cache) >= _CACHE_LIMIT:
            _field_key_cache.clear()
        _field_key_cache[key] = escaped
    return escaped


def _field_value(key: str, value: FieldValue) -> str:
    # Exact type checks first: they are the common case and much cheaper than isinstance.
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise ValueError(f"field {key!r} is {value!r}; InfluxDB cannot store non-finite floats")
        return repr(value)
    if kind is int:
        if not _INT64_MIN <= value <= _INT64_MAX:  # type: ignore[operator]
            raise ValueError(f"field {key!r} = {value} does not fit a 64-bit integer")
        return f"{value}i"
    if kind is bool:
        return "true" if value else "false"
    if kind is str:
        return '"' + value.translate(_STRING_ESCAPES) + '"'  # type: ignore[union-attr]
    # Subclasses (e.g. IntEnum) and numpy scalars that skipped clean_fields.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return _field_value(key, int(value))
    if isinstance(value, float):
        return _field_value(key, float(value))
    if isinstance(value, str):
        return _field_value(key, str(value))
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        # numpy scalar (np.int64, np.bool_) -> its Python equivalent.
        item = value.item()
        if type(item) in (float, int, bool, str):
            return _field_value(key, item)
    raise TypeError(f"field {key!r} has unsupported type {type(value).__name__}: {value!r}")


def to_line(point: Point) -> str:
    """Format one point as a line of line protocol (no trailing newline).

    Parameters
    ----------
    point : Point
        The point; ``time_ns`` is written as-is (nanosecond precision).

    Returns
    -------
    str
        The line, or ``""`` when the point has no fields (InfluxDB would reject it).

    Raises
    ------
    ValueError
        A name or value that line protocol cannot represent (see the module docstring).
    TypeError
        A field value that is not float, int, bool or str.
    """
    if not point.fields:
        return ""
    parts = []
    for key, value in point.fields.items():
        escaped_key = _field_key_cache.get(key) or _field_key(key)
        # Inline fast path for finite floats, the bulk of all values (x - x is NaN for inf/NaN).
        if type(value) is float and value - value == 0.0:
            parts.append(escaped_key + repr(value))
        else:
            parts.append(escaped_key + _field_value(key, value))
    prefix = _prefix_cache.get((point.measurement, tuple(point.tags.items())))
    if prefix is None:
        prefix = _prefix(point.measurement, point.tags)
    return f"{prefix} {','.join(parts)} {int(point.time_ns)}"


def to_lines(points: Iterable[Point]) -> str:
    """Format many points, one line each, joined by ``\\n`` (no trailing newline).

    Points without fields are skipped.

    Parameters
    ----------
    points : iterable of Point
        The points, written in the given order.

    Returns
    -------
    str
        The request body for a ``/write`` (1.x) or ``/api/v2/write`` (2.x) call.
    """
    lines = [to_line(point) for point in points]
    return "\n".join([line for line in lines if line])


def _table_prefixes(batch: ColumnBatch) -> list[str]:
    """The series prefix of every element of the batch's table (not only of its rows)."""
    key = (batch.measurement, batch.run_id, id(batch.names))
    entry = _table_prefix_cache.get(key)
    if entry is None or entry[0] is not batch.names:
        prefixes = [_prefix(batch.measurement, {"run": batch.run_id, "element": name})
                    for name in batch.names]
        if len(_table_prefix_cache) >= _TABLE_CACHE_LIMIT:
            _table_prefix_cache.clear()
        entry = _table_prefix_cache[key] = (batch.names, prefixes)
    return entry[1]


def _column_values(key: str, column: np.ndarray) -> list[str]:
    """Every row's value, formatted as :func:`to_line` formats the Python value."""
    kind = column.dtype.kind
    if kind == "f":
        # repr of the Python float: the shortest round-trip form, as for a point
        return list(map(float.__repr__, column.tolist()))
    if kind == "b":
        return ["true" if v else "false" for v in column.tolist()]
    if kind in "iu":
        values = column.tolist()
        if kind == "u" and values and max(values) > _INT64_MAX:
            raise ValueError(f"field {key!r} = {max(values)} does not fit a 64-bit integer")
        return [f"{v}i" for v in values]
    raise TypeError(f"field {key!r} has unsupported dtype {column.dtype}")


def batch_lines(batch: ColumnBatch) -> list[str]:
    """Format a column batch, one line per row; the same lines :func:`to_line` makes of
    ``batch.to_points()`` (values left out of a row where not finite).

    Parameters
    ----------
    batch : ColumnBatch
        The rows; every row has at least one field (:func:`~twin.recording.columns.column_batch`).

    Returns
    -------
    list of str
        The lines, without newlines.

    Notes
    -----
    Each line is one ``str.join`` over the row's pieces (series prefix, ``,key=`` and value
    per field, time), taken column-wise: no per-value string concatenation.
    """
    if not batch.n_rows or not batch.fields:
        return []
    prefixes = _table_prefixes(batch)
    if batch.rows is not None:
        prefixes = [prefixes[i] for i in batch.rows.tolist()]
    pieces: list[Iterable[str]] = [prefixes]
    gaps = False
    for key, column in batch.fields.items():
        escaped = "," + (_field_key_cache.get(key) or _field_key(key))
        values = _column_values(key, column)
        mask = batch.valid[key]
        if mask is None:
            pieces += [repeat(escaped), values]
            continue
        gaps = True
        keys = [escaped] * len(values)
        for i in np.flatnonzero(~mask).tolist():
            keys[i] = values[i] = ""  # left out of this row
        pieces += [keys, values]
    pieces.append(repeat(f" {int(batch.time_ns)}"))
    if not gaps:
        # the first field's "," becomes the space after the prefix
        pieces[1] = repeat(" " + next(iter(pieces[1]))[1:])  # type: ignore[call-overload]
        return list(map("".join, zip(*pieces)))
    # the first field of a row may be any: join ",k=v,…" and make its "," the space
    lines = list(map("".join, zip(*pieces[1:])))
    return [f"{prefix} {line[1:]}" for prefix, line in zip(prefixes, lines)]


def batch_bodies(batches: Iterable[ColumnBatch], batch_size: int) -> Iterator[str]:
    """Request bodies of at most ``batch_size`` lines for column batches (the stores' one
    way to send them)."""
    lines: list[str] = []
    for batch in batches:
        lines.extend(batch_lines(batch))
    for start in range(0, len(lines), batch_size):
        yield "\n".join(lines[start : start + batch_size])
