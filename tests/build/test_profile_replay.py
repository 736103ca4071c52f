"""Profiles replayed by the time-series simulator's Table entity (simulators.timeseries)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulators.timeseries import TimeSeriesSim
from twin.build.profiles import ProfileTable

TIMES = pd.date_range("2016-01-01", periods=4, freq="15min", tz="UTC")


def table(ref) -> ProfileTable:
    shapes = np.array([[1.0, 0.0], [0.5, 1.0], [0.25, 2.0], [0.0, 3.0]])
    return ProfileTable(TIMES, np.array([3, 7, 9]), shapes, np.array([0, 1, 1]),
                        np.asarray(ref, dtype=float))


def test_children_replay_shape_times_reference_and_hold_the_last_row():
    sim = TimeSeriesSim()
    sim.init("series", time_resolution=1.0, attrs=["p_mw", "q_mvar"])
    made = sim.create(1, "Table", tables={"p_mw": table([2.0, 1.0, 4.0]),
                                          "q_mvar": table([0.2, 0.1, 0.4])},
                      step_ticks=900, eid="load-profiles", prefix="load")
    assert [c["eid"] for c in made[0]["children"]] == ["load-3", "load-7", "load-9"]
    assert sim.step(900, {}, 0) == 1800
    data = sim.get_data({"load-3": ["p_mw"], "load-9": ["p_mw", "q_mvar"]})
    assert data == {"load-3": {"p_mw": 1.0}, "load-9": {"p_mw": 4.0, "q_mvar": 0.4}}
    sim.step(9000, {}, 0)  # beyond the table: its last row holds
    assert sim.get_data({"load-7": ["p_mw"]}) == {"load-7": {"p_mw": 3.0}}


def test_tables_of_other_elements_or_lengths_are_refused():
    sim = TimeSeriesSim()
    sim.init("series", attrs=["p_mw", "q_mvar"])
    other = ProfileTable(TIMES, np.array([3, 7, 8]), np.ones((4, 1)), np.zeros(3, dtype=int),
                         np.ones(3))
    with pytest.raises(ValueError, match="other elements"):
        sim.create(1, "Table", tables={"p_mw": table([1, 1, 1]), "q_mvar": other})
    sim.create(1, "Table", tables={"p_mw": table([1, 1, 1])}, prefix="load")
    with pytest.raises(ValueError, match="exists already"):
        sim.create(1, "Table", tables={"p_mw": table([1, 1, 1])}, prefix="load")
    with pytest.raises(ValueError, match="same number of rows"):
        sim.create(1, "Series", columns={"p_mw": np.ones(5)}, eid="weather")
