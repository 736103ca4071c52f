"""The recording policy: which grid rows are stored (``recording.elements``/``every``)."""

from __future__ import annotations

import numpy as np
import pytest

from twin.recording.columns import column_batch
from twin.recording.policy import AUTO_ALL_MAX_BUSES, recording_policy
from twin.recording.schema import BUS, BUS_EXTREMES, LINE, LINE_EXTREMES, LOAD, PV
from twin.scenario import RecordingSpec, ScenarioError

T0_NS = 1_704_067_200_000_000_000
BUSES = ["Bus 0", "Bus 1", "Bus 2", "Bus 3"]
LINES = ["Line 0-1", "Line 1-2", "Line 2-3"]
NAMES = {"bus": BUSES, "line": LINES, "load": ["Load 1"]}
STEP_S = 60.0


def policy(**spec: object):
    return recording_policy(RecordingSpec(**spec), NAMES, STEP_S, 1.0, (0.95, 1.05))


def bus_batch(vm: list[float], tick: int = 0):
    return column_batch(BUS, BUSES, {"vm_pu": np.array(vm), "p_mw": np.ones(len(vm))}, "r",
                        T0_NS + tick * 10**9)


def line_batch(loading: list[float], tick: int = 0):
    return column_batch(LINE, LINES, {"loading_percent": np.array(loading)}, "r",
                        T0_NS + tick * 10**9)


def test_all_keeps_every_row() -> None:
    p = policy(elements="all")
    batch = bus_batch([1.0, 0.9, 1.0, 1.1])
    assert p.keeps_everything and p.select(0, batch) is batch
    assert p.extremes("r") == []


def test_summary_keeps_only_rows_in_violation_with_all_their_fields() -> None:
    p = policy(elements="summary")
    kept = p.select(0, bus_batch([1.0, 0.94, np.nan, 1.06]))
    assert kept.elements == ["Bus 1", "Bus 3"]
    assert kept.fields["p_mw"].tolist() == [1.0, 1.0]
    kept = p.select(0, line_batch([99.0, 100.5, np.nan]))
    assert kept.elements == ["Line 1-2"]
    assert p.select(0, bus_batch([1.0, 1.0, 1.0, 1.0])) is None  # nothing to say
    # tables without limits, and device tables, are not the policy's business
    load = column_batch(LOAD, ["Load 1"], {"p_mw": np.array([1.0])}, "r", T0_NS)
    assert p.select(0, load) is None
    pv = column_batch(PV, ["PV 1"], {"p_mw": np.array([1.0])}, "r", T0_NS)
    assert p.select(0, pv) is pv


def test_selected_elements_are_kept_with_the_violations() -> None:
    p = policy(elements=["bus:Bus 2", "line:Line 0-1"])
    kept = p.select(0, bus_batch([1.0, 0.9, 1.0, 1.0]))
    assert kept.elements == ["Bus 1", "Bus 2"]
    assert p.select(0, line_batch([10.0, 20.0, 30.0])).elements == ["Line 0-1"]


def test_every_thins_table_snapshots_but_not_violations() -> None:
    p = policy(elements="all", every="15min")
    assert p.every_ticks == 900
    ok, low = bus_batch([1.0] * 4), bus_batch([1.0, 0.9, 1.0, 1.0])
    assert p.select(900, ok) is ok and p.select(1800, ok) is ok
    assert p.select(60, ok) is None
    assert p.select(60, low).elements == ["Bus 1"]
    selected = policy(elements=["bus:Bus 0"], every="15min")
    assert selected.select(60, ok) is None
    assert selected.select(900, ok).elements == ["Bus 0"]


def test_every_equal_to_the_step_thins_nothing() -> None:
    assert policy(elements="all", every="1min").keeps_everything


def test_extremes_cover_every_solve_at_the_last_time() -> None:
    p = policy(elements="summary")
    p.select(0, bus_batch([1.0, 0.99, np.nan, 1.02], 0))
    p.select(60, bus_batch([1.01, 0.97, np.nan, 1.0], 60))
    p.select(120, line_batch([50.0, np.nan, 70.0], 120))
    p.select(180, line_batch([60.0, np.nan, 65.0], 180))
    bus, line = p.extremes("r")
    assert bus.measurement == BUS_EXTREMES and line.measurement == LINE_EXTREMES
    assert bus.elements == ["Bus 0", "Bus 1", "Bus 3"]  # Bus 2 never had a voltage
    assert bus.fields["vm_min_pu"].tolist() == [1.0, 0.97, 1.0]
    assert bus.fields["vm_max_pu"].tolist() == [1.01, 0.99, 1.02]
    assert line.elements == ["Line 0-1", "Line 2-3"]
    assert line.fields["loading_max_percent"].tolist() == [60.0, 70.0]
    assert bus.time_ns == line.time_ns == T0_NS + 180 * 10**9


def test_auto_is_all_up_to_the_limit_then_summary() -> None:
    small = {"bus": [f"b{k}" for k in range(AUTO_ALL_MAX_BUSES)]}
    large = {"bus": [f"b{k}" for k in range(AUTO_ALL_MAX_BUSES + 1)]}
    spec = RecordingSpec()
    assert spec.elements == "auto" and spec.every is None
    assert recording_policy(spec, small, STEP_S, 1.0, (0.95, 1.05)).whole_tables
    assert not recording_policy(spec, large, STEP_S, 1.0, (0.95, 1.05)).whole_tables


@pytest.mark.parametrize("refs, message", [
    (["bus:Bus 9"], r"recording.elements\[0\]: expected a bus of the grid \(Bus 3, .*found "
                    r"'bus:Bus 9'"),
    (["bus:Bus 0", "Bus 1"], r"recording.elements\[1\]: expected '<table>:<name>'.*found "
                             r"'Bus 1'"),
    (["feeder:F1"], r"recording.elements\[0\]: expected '<table>:<name>'"),
])
def test_refs_name_elements_of_the_grid(refs: list[str], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        policy(elements=refs)


def test_every_must_be_whole_steps() -> None:
    with pytest.raises(ScenarioError, match=r"recording.every: expected a whole multiple of "
                                            r"step \(60 s\); found 90 s"):
        policy(every="90s")
