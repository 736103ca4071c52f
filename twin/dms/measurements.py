"""Telemetry as the DMS receives it, turned into pandapower measurements and topology.

The field delivers rows ``(element, quantity, value, source_t_s, delivery_t_s, sigma)``;
``element`` is ``"<table>:<name>"`` with the names of :func:`twin.grid.build.element_names`.
This module

* collects such rows into one table (:func:`telemetry_frame`),
* maps the analogue ones onto pandapower measurement rows for the state estimator, keeping
  the newest value per point and dropping or down-weighting stale ones
  (:func:`to_pandapower_measurements`),
* applies the reported switch states and tap/step positions to the DMS's own copy of the
  net (:func:`set_switch_states`, :func:`set_tap_positions`): these are topology and
  parameters, not measurements, so the estimator never weighs them.

Sign conventions are pandapower's: a bus ``p_mw``/``q_mvar`` is the bus's net demand
(``res_bus``: positive when the bus consumes), line flows are at the from side and
trafo flows at the hv side, positive into the branch.

References
----------
.. [1] A. Abur, A. G. Expósito, "Power System State Estimation: Theory and
   Implementation", Marcel Dekker, 2004, ch. 2 (measurement model) and ch. 4
   (observability).
"""

from __future__ import annotations

import copy
import math
from typing import Iterable, Mapping

import numpy as np
import pandapower as pp
import pandas as pd

from twin.dms.object_cache import ObjectCache
from twin.grid.names import element_names, split_ref

#: Columns of a telemetry table, in order. ``value`` is in the quantity's unit (p.u., MW,
#: Mvar, kA; 1.0/0.0 for ``closed``); ``source_t_s`` is the scan time and
#: ``delivery_t_s`` the arrival time at the DMS [s, simulation clock]; ``sigma`` is the
#: meter's standard deviation in the quantity's unit (NaN for states such as ``closed``).
TELEMETRY_COLUMNS: tuple[str, ...] = (
    "element", "quantity", "value", "source_t_s", "delivery_t_s", "sigma",
)
_REQUIRED_TELEMETRY = ("element", "quantity", "value", "source_t_s")

#: The columns pandapower's ``net.measurement`` reads.
PP_MEASUREMENT_COLUMNS: tuple[str, ...] = (
    "name", "measurement_type", "element_type", "element", "value", "std_dev", "side",
)

#: Columns of the measurement tables this package passes around: pandapower's, then
#: ``ref`` (``"<table>:<name>"``), ``quantity`` (the telemetry quantity), ``source``
#: (``"telemetry"``, ``"pseudo"``, ``"zero_injection"``, ``"slack_voltage"``),
#: ``source_t_s`` [s] (NaN for pseudo-measurements) and ``stale`` (down-weighted as old).
MEASUREMENT_COLUMNS: tuple[str, ...] = PP_MEASUREMENT_COLUMNS + (
    "ref", "quantity", "source", "source_t_s", "stale",
)

#: (table, telemetry quantity) → (pandapower ``meas_type``, ``side``): the analogue values
#: the estimator uses. Line values sit at the from side, trafo values at the hv side.
SE_QUANTITIES: dict[tuple[str, str], tuple[str, str | None]] = {
    ("bus", "vm_pu"): ("v", None),
    ("bus", "p_mw"): ("p", None),
    ("bus", "q_mvar"): ("q", None),
    ("line", "p_mw"): ("p", "from"),
    ("line", "q_mvar"): ("q", "from"),
    ("line", "i_ka"): ("i", "from"),
    ("trafo", "p_mw"): ("p", "hv"),
    ("trafo", "q_mvar"): ("q", "hv"),
    ("trafo", "i_ka"): ("i", "hv"),
}

#: Reported positions applied to the net: (table, quantity) → net column.
POSITION_QUANTITIES: dict[tuple[str, str], str] = {
    ("trafo", "tap_pos"): "tap_pos",
    ("shunt", "step"): "step",
}

STALE_MODES = ("drop", "downweight")


def telemetry_frame(rows: Iterable[Mapping] | pd.DataFrame) -> pd.DataFrame:
    """Telemetry rows as one table with :data:`TELEMETRY_COLUMNS` and fixed dtypes.

    Parameters
    ----------
    rows : iterable of mapping, or pandas.DataFrame
        Each with at least ``element``, ``quantity``, ``value`` and ``source_t_s``;
        ``delivery_t_s`` and ``sigma`` default to NaN. Booleans (switch states) become
        1.0/0.0.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TELEMETRY_COLUMNS`; ``element``/``quantity`` as str, the rest float.
        A table that is one already is returned as it is, not copied: build it once and
        pass it on (the functions here only read it).

    Raises
    ------
    ValueError
        If a required column is missing.
    """
    if _is_telemetry_frame(rows):
        return rows
    if isinstance(rows, list):
        plain = _plain_frame(rows)
        if plain is not None:
            return plain
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty and not set(_REQUIRED_TELEMETRY) <= set(frame.columns):
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("element", "quantity")
                                          else float) for c in TELEMETRY_COLUMNS})
    missing = [c for c in _REQUIRED_TELEMETRY if c not in frame.columns]
    if missing:
        raise ValueError(
            f"telemetry: expected columns {list(_REQUIRED_TELEMETRY)} (and optionally "
            f"delivery_t_s, sigma); missing {missing}"
        )
    for column in ("delivery_t_s", "sigma"):
        if column not in frame.columns:
            frame[column] = np.nan
    out = frame.loc[:, list(TELEMETRY_COLUMNS)].reset_index(drop=True)
    out["element"] = out["element"].astype(str)
    out["quantity"] = out["quantity"].astype(str)
    for column in ("value", "source_t_s", "delivery_t_s", "sigma"):
        out[column] = pd.to_numeric(out[column], errors="coerce").astype(float)
    return out


_PLAIN_NUMBERS = (float, int, bool, np.float64, np.bool_)


def _plain_frame(rows: list) -> pd.DataFrame | None:
    """:func:`telemetry_frame` of plain rows (dicts with str names and plain numbers or
    None), built column by column without pandas' per-row inference: the same table.
    None for anything else (the general path handles it)."""
    if not rows:
        return None
    columns: dict[str, list] = {c: [] for c in TELEMETRY_COLUMNS}
    nan = math.nan
    for row in rows:
        if type(row) is not dict:
            return None
        element, quantity = row.get("element"), row.get("quantity")
        if type(element) is not str or type(quantity) is not str \
                or "value" not in row or "source_t_s" not in row:
            return None
        columns["element"].append(element)
        columns["quantity"].append(quantity)
        for column in ("value", "source_t_s", "delivery_t_s", "sigma"):
            v = row.get(column)
            if v is None:
                columns[column].append(nan)
            elif type(v) in _PLAIN_NUMBERS:
                columns[column].append(float(v))
            else:
                return None
    return pd.DataFrame({c: np.array(columns[c], dtype=object if c in ("element", "quantity")
                                     else float) for c in TELEMETRY_COLUMNS})


def _is_telemetry_frame(rows) -> bool:
    """Whether ``rows`` is a table :func:`telemetry_frame` made (columns, dtypes, index)."""
    if not isinstance(rows, pd.DataFrame) or tuple(rows.columns) != TELEMETRY_COLUMNS:
        return False
    index = rows.index
    if not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1):
        return False
    dtypes = rows.dtypes
    return all(dtypes[c].kind == "O" for c in ("element", "quantity")) and all(
        dtypes[c] == np.float64 for c in ("value", "source_t_s", "delivery_t_s", "sigma"))


def element_index(net: pp.pandapowerNet, refs: Iterable[str]) -> dict[str, int]:
    """Index in the net of each ``"<table>:<name>"``.

    Raises
    ------
    ValueError
        Naming every unknown table or name (with a few valid names as a hint).
    """
    lookup: dict[str, dict[str, int]] = {}
    found: dict[str, int] = {}
    errors: list[str] = []
    for ref in dict.fromkeys(refs):
        try:
            table, name = split_ref(ref)  # names as the grid gives them: not stripped
        except ValueError as exc:
            raise ValueError(f"telemetry element: expected {exc}") from None
        if table not in lookup:
            if table not in net or not isinstance(net[table], pd.DataFrame) \
                    or table.startswith("res_"):
                errors.append(f"{ref!r}: no element table {table!r} in the net")
                continue
            lookup[table] = _name_lookup(net[table], table)
        idx = lookup[table].get(name)
        if idx is None:
            hint = ", ".join(list(lookup[table])[:6])
            errors.append(f"{ref!r}: no {table} called {name!r} (known: {hint}"
                          f"{' …' if len(lookup[table]) > 6 else ''})")
        else:
            found[ref] = idx
    if errors:
        raise ValueError("telemetry names unknown to the DMS's net: " + "; ".join(errors))
    return found


#: :func:`newest` of the last few tables: a cycle asks for the newest rows of one table
#: from several functions, and the sort behind them costs ~1 ms a time.
_NEWEST = ObjectCache(kept=4)


#: name → index of the last few element tables, by their names and index: on a
#: 10,000-bus grid one lookup costs ~16–40 ms, and a cycle's working copies have new
#: tables with the same names cycle after cycle (a key costs well under a millisecond).
_LOOKUPS: dict[tuple, dict[str, int]] = {}
_LOOKUPS_KEPT = 32


def _name_lookup(df: pd.DataFrame, table: str) -> dict[str, int]:
    # the names' objects themselves: a copied table holds the same ones (so even a NaN
    # name compares equal); anything else only misses the cache
    names = tuple(df["name"].tolist()) if "name" in df.columns else None
    key = (table, np.asarray(df.index.to_numpy()).tobytes(), names)
    lookup = _LOOKUPS.get(key)
    if lookup is not None:
        return lookup
    lookup = {n: int(i) for n, i in zip(element_names({table: df}, table), df.index)}
    while len(_LOOKUPS) >= _LOOKUPS_KEPT:
        del _LOOKUPS[next(iter(_LOOKUPS))]
    _LOOKUPS[key] = lookup
    return lookup


def newest(telemetry: pd.DataFrame) -> pd.DataFrame:
    """The newest valid row per (element, quantity): latest ``source_t_s``, then latest
    ``delivery_t_s``; rows with a NaN value (a lost or invalid reading) never win.

    Tables are read-only here (see :func:`telemetry_frame`): the result for one table
    object is computed once and shared, so it must not be changed in place either.
    """
    hit = _NEWEST.get(telemetry)
    if hit is not None:
        return hit
    valid = telemetry[np.isfinite(telemetry["value"].to_numpy(dtype=float))]
    keys = list(zip(valid["element"].to_numpy(), valid["quantity"].to_numpy()))
    if len(set(keys)) == len(keys):
        out = valid  # one row per point (the DMS's own table): it is the newest already
    else:
        # A stable sort keeps arrival order among exact ties, so the last row seen wins.
        ordered = valid.sort_values(["source_t_s", "delivery_t_s"], kind="stable",
                                    na_position="first")
        out = ordered.drop_duplicates(["element", "quantity"], keep="last").sort_index()
    _NEWEST.put(telemetry, out)
    return out


def to_pandapower_measurements(
    net: pp.pandapowerNet,
    telemetry: Iterable[Mapping] | pd.DataFrame,
    now_s: float,
    stale_after_s: float,
    stale_mode: str = "drop",
    downweight_factor: float = 10.0,
) -> tuple[pd.DataFrame, list[dict]]:
    """Telemetry → pandapower measurement rows, newest value per point, stale ones handled.

    Parameters
    ----------
    net : pandapower.pandapowerNet
        The DMS's net; only read, to map names to indices.
    telemetry : iterable of mapping, or pandas.DataFrame
        Rows as in :func:`telemetry_frame`.
    now_s : float
        The estimator's time [s]; a value's age is ``now_s − source_t_s``.
    stale_after_s : float
        Age above which a value is stale [s].
    stale_mode : {'drop', 'downweight'}
        Drop stale values, or keep them with ``sigma × downweight_factor``.
    downweight_factor : float
        Factor on a stale value's standard deviation [-], ≥ 1.

    Returns
    -------
    measurements : pandas.DataFrame
        Columns :data:`MEASUREMENT_COLUMNS`, one row per point the estimator uses
        (:data:`SE_QUANTITIES`), ``value``/``std_dev`` in the quantity's unit, ``source``
        ``"telemetry"``, index 0…m−1.
    stale : list of dict
        One per stale point: ``element``, ``quantity``, ``value``, ``source_t_s`` [s],
        ``age_s`` [s], ``action`` (``"dropped"`` or ``"downweighted"``).

    Raises
    ------
    ValueError
        For an unknown element name or table, a bad ``stale_mode``, or a missing or
        non-positive ``sigma`` on a value the estimator uses.

    Notes
    -----
    Rows of other quantities (switch states, tap positions, loadings, …) are not
    measurements for the estimator and are skipped here, but their element names are
    still checked. Only the newest value per (element, quantity) counts: an estimator
    that averaged a point's history would smear the state over time. The age test
    applies to that newest value, so an older duplicate is never a fallback.
    """
    if stale_mode not in STALE_MODES:
        raise ValueError(f"stale_mode: expected one of {STALE_MODES}; found {stale_mode!r}")
    if not downweight_factor >= 1.0:
        raise ValueError(f"downweight_factor: expected >= 1; found {downweight_factor}")
    frame = telemetry_frame(telemetry)
    index = element_index(net, frame["element"])
    current = newest(frame)
    tables = current["element"].map(lambda ref: split_ref(ref)[0])
    keys = list(zip(tables, current["quantity"]))
    current = current.loc[np.array([k in SE_QUANTITIES for k in keys], dtype=bool)]
    tables = tables[current.index]

    sigma = current["sigma"].to_numpy(dtype=float)
    bad_sigma = ~(np.isfinite(sigma) & (sigma > 0))
    if bad_sigma.any():
        shown = ", ".join(f"{e}/{q}" for e, q in
                          current.loc[bad_sigma, ["element", "quantity"]].to_numpy()[:6])
        raise ValueError(f"telemetry sigma: expected a positive meter standard deviation "
                         f"for every value the estimator uses; missing for {shown}")

    age_s = now_s - current["source_t_s"].to_numpy(dtype=float)
    # A value without a scan time cannot be dated: treat it as stale rather than fresh.
    is_stale = ~(age_s <= stale_after_s)
    stale: list[dict] = [
        {"element": row.element, "quantity": row.quantity, "value": float(row.value),
         "source_t_s": float(row.source_t_s), "age_s": float(age),
         "action": "dropped" if stale_mode == "drop" else "downweighted"}
        for row, age in zip(current[is_stale].itertuples(), age_s[is_stale])
    ]
    if stale_mode == "drop":
        keep = ~is_stale
        current, tables, sigma, is_stale = (current[keep], tables[keep], sigma[keep],
                                            is_stale[keep])
    else:
        sigma = np.where(is_stale, sigma * downweight_factor, sigma)

    types_sides = [SE_QUANTITIES[k] for k in zip(tables, current["quantity"])]
    out = pd.DataFrame({
        "name": [f"{e}/{q}" for e, q in zip(current["element"], current["quantity"])],
        "measurement_type": [t for t, _s in types_sides],
        "element_type": tables.to_numpy(dtype=object),
        "element": [index[e] for e in current["element"]],
        "value": current["value"].to_numpy(dtype=float),
        "std_dev": sigma,
        "side": [s for _t, s in types_sides],
        "ref": current["element"].to_numpy(dtype=object),
        "quantity": current["quantity"].to_numpy(dtype=object),
        "source": "telemetry",
        "source_t_s": current["source_t_s"].to_numpy(dtype=float),
        "stale": np.asarray(is_stale, dtype=bool),
    }, columns=list(MEASUREMENT_COLUMNS))
    return out.reset_index(drop=True), stale


def _newest_of(net: pp.pandapowerNet, telemetry, table: str, quantity: str
               ) -> tuple[list, np.ndarray]:
    """Newest reported ``quantity`` per element of ``table``: (net indices, values)."""
    # newest first, then filtered: the same rows, and the newest of the whole table is
    # shared with the cycle's other readers of it
    # the table's points already: no need to check the table
    points = _POINTS.get(telemetry)
    if points is None:
        points = newest_points(telemetry_frame(telemetry))
    elements, values = points.get(
        (table, quantity), ((), np.empty(0)))
    index = element_index(net, elements)
    return [index[e] for e in elements], np.asarray(values, dtype=float)


#: :func:`newest_points` of the last few tables.
_POINTS = ObjectCache(kept=4)


def newest_points(telemetry: pd.DataFrame
                  ) -> dict[tuple[str, str], tuple[tuple[str, ...], np.ndarray]]:
    """:func:`newest` of a telemetry table grouped by (table, quantity): the elements and
    their values, in row order. Computed once per table object and shared (read-only)."""
    hit = _POINTS.get(telemetry)
    if hit is not None:
        return hit
    rows = newest(telemetry)
    groups: dict[tuple[str, str], tuple[list, list]] = {}
    for element, quantity, value in zip(rows["element"].to_numpy(),
                                        rows["quantity"].to_numpy(),
                                        rows["value"].to_numpy(dtype=float)):
        table, colon, _name = element.partition(":")
        if not colon:
            continue  # no table: nothing asks for it (element_index rejects it)
        group = groups.setdefault((table, quantity), ([], []))
        group[0].append(element)
        group[1].append(value)
    out = {key: (tuple(e), np.asarray(v, dtype=float)) for key, (e, v) in groups.items()}
    _POINTS.put(telemetry, out)
    return out


def apply_switch_states(net: pp.pandapowerNet,
                        telemetry: Iterable[Mapping] | pd.DataFrame) -> pp.pandapowerNet:
    """A copy of ``net`` with :func:`set_switch_states` applied (``net`` is not modified)."""
    out = copy.deepcopy(net)
    set_switch_states(out, telemetry)
    return out


def apply_tap_positions(net: pp.pandapowerNet,
                        telemetry: Iterable[Mapping] | pd.DataFrame) -> pp.pandapowerNet:
    """A copy of ``net`` with :func:`set_tap_positions` applied (``net`` is not modified)."""
    out = copy.deepcopy(net)
    set_tap_positions(out, telemetry)
    return out


def set_switch_states(net: pp.pandapowerNet,
                      telemetry: Iterable[Mapping] | pd.DataFrame) -> None:
    """Set ``net.switch.closed`` from the newest ``closed`` telemetry, in place.

    ``telemetry``: rows as in :func:`telemetry_frame`; ``closed`` values ≥ 0.5 mean closed.
    Switches without telemetry keep their state; ValueError for an unknown switch name.
    """
    index, closed = _newest_of(net, telemetry, "switch", "closed")
    if len(closed):
        _set_column(net.switch, index, "closed", closed >= 0.5)


def set_tap_positions(net: pp.pandapowerNet,
                      telemetry: Iterable[Mapping] | pd.DataFrame) -> None:
    """Set trafo ``tap_pos`` and shunt ``step`` from the newest telemetry, in place.

    A wrong tap in the model biases every estimated voltage behind the trafo, so the
    estimator uses the reported positions like the switch states. Values are rounded to
    whole steps.
    """
    for (table, quantity), column in POSITION_QUANTITIES.items():
        index, values = _newest_of(net, telemetry, table, quantity)
        if len(values):
            _set_column(net[table], index, column, np.round(values))


def _set_column(df: pd.DataFrame, index, column: str, values: np.ndarray) -> None:
    """``df.loc[index, column] = values``, skipped when the column holds these values
    already in the same dtype (the usual cycle: no switching, no tap change since)."""
    current = df[column].to_numpy()
    # (whole-number floats equal to an int64 column: pandas would keep it int64)
    if (current.dtype == values.dtype and current.dtype in (np.bool_, np.float64)) or (
            current.dtype == np.int64 and values.dtype == np.float64):
        positions = df.index.get_indexer(index)
        if (positions >= 0).all() and np.array_equal(current[positions], values):
            return
    df.loc[index, column] = values
