"""Aggregates over a measurement read chunk by chunk (see :meth:`RunData.chunks`).

A year of a 10,458-bus grid recorded in full is ~370 million bus points: the report never
holds them at once. Each function here folds chunk-sized partial aggregates into one result
whose size grows with the steps *or* the elements, never with their product. On a small run
the one chunk is the whole frame and the results equal the whole-frame aggregates.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator

import pandas as pd

from twin.report.frames import MAX_POINTS

Chunks = Iterable[pd.DataFrame]

_REBIN = {"min": "min", "max": "max", "mean": "mean", "sum": "mean"}


def step_stats(chunks: Chunks, column: str) -> pd.DataFrame:
    """Per time step over all elements: ``min``, ``max``, ``mean``, ``sum`` of ``column``.

    Returns
    -------
    pandas.DataFrame
        Index: time (sorted); columns min, max, mean, sum, count.

    Notes
    -----
    A step split over two chunks is merged: min of mins, max of maxes, sums added, and
    mean = Σsum / Σcount.
    """
    parts = []
    for frame in chunks:
        if column not in frame:
            continue
        data = frame[["time", column]].dropna()
        if not data.empty:
            parts.append(data.groupby("time")[column].agg(["min", "max", "mean", "sum",
                                                          "count"]))
    if not parts:
        return pd.DataFrame(columns=["min", "max", "mean", "sum", "count"], dtype=float)
    if len(parts) == 1:
        return parts[0]
    merged = pd.concat(parts).groupby(level=0).agg(
        {"min": "min", "max": "max", "sum": "sum", "count": "sum"})
    merged["mean"] = merged["sum"] / merged["count"]
    return merged


def binned_steps(step: pd.DataFrame, how: Iterable[str],
                 max_points: int = MAX_POINTS) -> pd.DataFrame:
    """``step`` (from :func:`step_stats`) with the columns ``how``, binned in time when it
    has more than ``max_points`` steps (a bin's ``sum`` is the mean of its steps' sums: a
    power stays a power)."""
    how = list(how)
    step = step[how]
    width_s = bin_width_s(step.index, max_points)
    if width_s is None:
        return step
    bins = pd.DatetimeIndex(step.index).floor(f"{width_s}s")
    return step.groupby(bins).agg({name: _REBIN[name] for name in how})


def bin_width_s(times: Iterable, max_points: int = MAX_POINTS) -> int | None:
    """Whole-second bin width that leaves at most ``max_points`` times (None: no binning
    needed), as :func:`twin.report.frames.time_bins` chooses it."""
    unique = pd.DatetimeIndex(times).unique()
    if len(unique) <= max_points:
        return None
    span_s = (unique.max() - unique.min()).total_seconds()
    return max(1, math.ceil(span_s / max(1, max_points - 1)))


def element_max(chunks: Chunks, column: str, deviation_from: float | None = None) -> pd.Series:
    """Each element's largest ``column`` (or largest ``|column − deviation_from|``)."""
    parts = []
    for frame in chunks:
        if column not in frame:
            continue
        data = frame[["element", column]].dropna()
        values = data[column] if deviation_from is None else (data[column] - deviation_from).abs()
        parts.append(values.groupby(data["element"]).max())
    if not parts:
        return pd.Series(dtype=float)
    return parts[0] if len(parts) == 1 else pd.concat(parts).groupby(level=0).max()


def element_furthest(chunks: Chunks, column: str, centre: float) -> pd.Series:
    """Each element's value of ``column`` furthest from ``centre`` (the first such one)."""
    parts = []
    for frame in chunks:
        if column not in frame:
            continue
        data = frame[["element", column]].dropna()
        if data.empty:
            continue
        deviation = (data[column] - centre).abs()
        parts.append(data.loc[deviation.groupby(data["element"]).idxmax()])
    if not parts:
        return pd.Series(dtype=float)
    data = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    deviation = (data[column] - centre).abs()
    return data.loc[deviation.groupby(data["element"]).idxmax()].set_index("element")[column]


def element_any(chunks: Chunks, column: str) -> pd.Series:
    """Per element: whether ``column`` was ever true."""
    parts = []
    for frame in chunks:
        if column not in frame:
            continue
        data = frame[["element", column]].dropna()
        parts.append(data[column].astype(bool).groupby(data["element"]).any())
    if not parts:
        return pd.Series(dtype=bool)
    return parts[0] if len(parts) == 1 else pd.concat(parts).groupby(level=0).any()


def element_series(chunks: Chunks, column: str, elements: Iterable, width_s: int | None,
                   how: str = "mean") -> pd.DataFrame:
    """One column per element of ``elements`` over time, in bins of ``width_s`` seconds
    (None: every time) aggregated with ``how`` ("mean" or "max")."""
    wanted = set(elements)
    parts = []
    for frame in chunks:
        if column not in frame:
            continue
        data = frame.loc[frame["element"].isin(wanted), ["time", "element", column]]
        if width_s is not None:
            data = data.assign(time=data["time"].dt.floor(f"{width_s}s"))
        stats = ["sum", "count"] if how == "mean" else [how]
        parts.append(data.groupby(["time", "element"])[column].agg(stats))
    if not parts:
        return pd.DataFrame()
    both = pd.concat(parts)
    if how == "mean":
        both = both.groupby(level=[0, 1]).sum()
        values = both["sum"] / both["count"]
    else:
        values = both.groupby(level=[0, 1])[how].agg(how)
    return values.unstack("element").sort_index()


def rows_of(chunks: Chunks, elements: Iterable) -> Iterator[pd.DataFrame]:
    """The rows of ``elements`` only."""
    wanted = set(elements)
    for frame in chunks:
        yield frame[frame["element"].isin(wanted)]
