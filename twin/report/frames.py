"""Shaping the recorded frames for plots: per-step aggregates, time bins, interruptions."""

from __future__ import annotations

import math
import re
from typing import Iterable

import numpy as np
import pandas as pd

#: Most time points a figure series holds; longer runs are binned (see :func:`time_bins`).
MAX_POINTS = 2000


def natural_key(name: str) -> list:
    """Sort key that puts ``Bus 2`` before ``Bus 10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(name))]


def time_bins(times: pd.Series, max_points: int = MAX_POINTS) -> pd.Series:
    """The time each sample is plotted at: its own, or its bin's start when there are too many.

    Parameters
    ----------
    times : pandas.Series of datetime64
        Sample times.
    max_points : int
        At most this many distinct times come out.

    Returns
    -------
    pandas.Series
        Same index as ``times``.

    Notes
    -----
    Bins are whole seconds wide, ``ceil(span / max_points)``, floored from the epoch, so the
    same run always bins the same way.
    """
    unique = times.drop_duplicates()
    if len(unique) <= max_points:
        return times
    span_s = (unique.max() - unique.min()).total_seconds()
    width_s = max(1, math.ceil(span_s / max(1, max_points - 1)))
    return times.dt.floor(f"{width_s}s")


def per_step(frame: pd.DataFrame, column: str, how: Iterable[str],
             max_points: int = MAX_POINTS) -> pd.DataFrame:
    """Aggregate one field over all elements per time step (binned if too many steps).

    Parameters
    ----------
    frame : pandas.DataFrame
        A measurement with ``time`` and ``column``.
    column : str
        Field to aggregate.
    how : iterable of {"min", "max", "mean", "sum"}
        Aggregations; with binning, ``sum`` becomes the bin's mean of the per-step sums
        (a power stays a power), the others keep their meaning.
    max_points : int
        Time axis length limit.

    Returns
    -------
    pandas.DataFrame
        Index: time; one column per aggregation.
    """
    how = list(how)
    data = frame[["time", column]].dropna()
    step = data.groupby("time")[column].agg(how)
    if len(step) <= max_points:
        return step
    bins = time_bins(step.index.to_series(), max_points)
    rebin = {"min": "min", "max": "max", "mean": "mean", "sum": "mean"}
    return step.groupby(bins.values).agg({name: rebin[name] for name in how})


def per_element(frame: pd.DataFrame, column: str, elements: Iterable[str],
                max_points: int = MAX_POINTS, how: str = "mean") -> pd.DataFrame:
    """One column per element over time (binned with ``how`` if too many steps)."""
    data = frame.loc[frame["element"].isin(list(elements)), ["time", "element", column]]
    data = data.assign(time=time_bins(data["time"], max_points))
    return data.pivot_table(index="time", columns="element", values=column, aggfunc=how)


def peak_per_element(frame: pd.DataFrame, column: str = "loading_percent") -> pd.Series:
    """Each element's highest ``column`` over the run (elements without a value left out)."""
    return frame.groupby("element")[column].max().dropna()


def interruptions(load: pd.DataFrame, end: pd.Timestamp | None) -> pd.DataFrame:
    """Intervals in which a load was not supplied.

    Parameters
    ----------
    load : pandas.DataFrame
        The ``load`` measurement with ``time``, ``element`` and ``supplied``.
    end : pandas.Timestamp or None
        End of the run: an interval still open at the last sample ends here.

    Returns
    -------
    pandas.DataFrame
        Columns ``element``, ``off`` (time), ``back`` (time, or NaT if it never came back
        and ``end`` is None), ``duration_min``; sorted by ``off``.

    Notes
    -----
    A sample's state holds until the next sample of the same load, as in the KPIs; samples
    come at every step and at every event solve, so the edges are exact to the tick.
    """
    columns = ["element", "off", "back", "duration_min"]
    data = load[["time", "element", "supplied"]].dropna(subset=["supplied"])
    if data.empty:
        return pd.DataFrame(columns=columns)
    data = data.sort_values(["element", "time"], kind="stable")
    off = ~data["supplied"].astype(bool).to_numpy()
    same = data["element"].to_numpy()
    first = np.r_[True, same[1:] != same[:-1]]
    previous_off = np.r_[False, off[:-1]] & ~first
    starts = off & ~previous_off
    ends = ~off & previous_off  # first supplied sample after an off one
    times = data["time"].to_numpy()
    rows = []
    start_idx = np.flatnonzero(starts)
    end_idx = np.flatnonzero(ends)
    for i in start_idx:
        later = end_idx[end_idx > i]
        j = later[0] if len(later) else None
        if j is not None and same[j] != same[i]:
            j = None
        back = pd.Timestamp(times[j]) if j is not None else end
        rows.append((same[i], pd.Timestamp(times[i]), back))
    if not rows:
        return pd.DataFrame(columns=columns)
    out = pd.DataFrame(rows, columns=columns[:3])
    out["back"] = pd.to_datetime(out["back"])
    out["duration_min"] = (out["back"] - out["off"]).dt.total_seconds() / 60.0
    return out.sort_values(["off", "element"], kind="stable").reset_index(drop=True)


def furthest_buses(deviation: pd.Series, limit: int) -> tuple[list[str], str]:
    """The buses of ``deviation`` (by name: how far each went from 1 p.u.) in natural
    order, only the ``limit`` furthest when there are more, and the note that says so."""
    buses = sorted(deviation.index, key=natural_key)
    if len(buses) <= limit:
        return buses, ""
    keep = set(deviation.nlargest(limit).index)
    note = (f'<p class="note">{limit} of {len(buses)} buses: those that went furthest from '
            "1 p.u.</p>")
    return [b for b in buses if b in keep], note
