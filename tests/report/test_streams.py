"""Chunked aggregates equal the whole-frame ones (twin.report.streams, RunData.chunks)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twin.report.frames import per_element, per_step, time_bins
from twin.report.streams import (
    bin_width_s,
    binned_steps,
    element_any,
    element_furthest,
    element_max,
    element_series,
    step_stats,
)


@pytest.fixture
def frame():
    rng = np.random.default_rng(5)
    times = pd.date_range("2026-06-21", periods=300, freq="1min")
    elements = [f"Bus {i}" for i in range(7)]
    data = pd.DataFrame({"time": np.repeat(times, len(elements)),
                         "element": np.tile(elements, len(times)),
                         "vm_pu": 1.0 + rng.normal(0, 0.02, len(times) * len(elements))})
    data["on"] = data["element"] != "Bus 3"
    return data


def chunks(frame, n):
    """``frame`` cut into ``n`` pieces, which split time steps and come in no order."""
    pieces = np.array_split(frame.sample(frac=1.0, random_state=1), n)
    return lambda: iter(pieces)


def test_per_step_over_chunks(frame):
    split = chunks(frame, 7)
    got = binned_steps(step_stats(split(), "vm_pu"), ("min", "mean", "max"), max_points=50)
    want = per_step(frame, "vm_pu", ("min", "mean", "max"), max_points=50)
    pd.testing.assert_frame_equal(got, want, check_names=False, check_freq=False, rtol=1e-12)
    whole = binned_steps(step_stats([frame], "vm_pu"), ("min", "mean", "max"))
    pd.testing.assert_frame_equal(whole, per_step(frame, "vm_pu", ("min", "mean", "max")))


def test_per_element_over_chunks(frame):
    split = chunks(frame, 5)
    assert element_max(split(), "vm_pu").equals(frame.groupby("element")["vm_pu"].max())
    deviation = (frame["vm_pu"] - 1).abs()
    worst = frame.loc[deviation.groupby(frame["element"]).idxmax()].set_index("element")["vm_pu"]
    pd.testing.assert_series_equal(element_furthest(split(), "vm_pu", 1.0), worst)
    ever_on = element_any(split(), "on")
    assert list(ever_on.index[~ever_on]) == ["Bus 3"]
    buses = ["Bus 1", "Bus 5"]
    width = bin_width_s(frame["time"], 40)
    assert width is not None and frame["time"].dt.floor(f"{width}s").equals(
        time_bins(frame["time"], 40))
    got = element_series(split(), "vm_pu", buses, width)
    want = per_element(frame, "vm_pu", buses, max_points=40)
    pd.testing.assert_frame_equal(got, want, check_names=False, rtol=1e-12)
    peak = element_series(split(), "vm_pu", buses, width, how="max")
    pd.testing.assert_frame_equal(peak, per_element(frame, "vm_pu", buses, max_points=40,
                                                    how="max"), check_names=False)
