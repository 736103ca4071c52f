"""Seconds → ticks rounding: the one place simulators take it from."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest

from twin.timebase import Clock, scheduled_tick, ticks_at_or_after, ticks_nearest


def _clock(time_resolution_s: float) -> Clock:
    return Clock(datetime(2026, 1, 1, tzinfo=timezone.utc), time_resolution_s)


@pytest.mark.parametrize(("t_s", "res_s", "ticks"), [
    (0.0, 1.0, 0),
    (60.0, 1.0, 60),             # exact multiple: that tick, not the next
    (60.0 + 1e-12, 1.0, 60),     # floating-point noise above a tick: still that tick
    (60.000001, 1.0, 61),        # really after it: the next tick
    (59.5, 1.0, 60),             # inside a tick: at its end, never early
    (0.3, 0.1, 3),               # 0.3 / 0.1 = 2.9999999999999996
    (0.1 + 0.2, 0.1, 3),         # 0.30000000000000004: noise, not a fourth tick
    (1800.0, 0.1, 18000),
    (0.07, 0.01, 7),             # 7.000000000000001
    (0.071, 0.01, 8),
    (1e-12, 0.01, 0),
])
def test_ticks_at_or_after(t_s, res_s, ticks):
    assert ticks_at_or_after(t_s, res_s) == ticks
    assert _clock(res_s).ticks_at_or_after(t_s) == ticks
    # the arithmetic the simulators wrote out by hand, which this replaces
    assert ticks == int(math.ceil(t_s / res_s - 1e-9))


@pytest.mark.parametrize(("duration_s", "res_s", "ticks"), [
    (60.0, 1.0, 60),
    (60.0 + 1e-12, 1.0, 60),
    (60.4, 1.0, 60),
    (60.6, 1.0, 61),
    (2.5, 1.0, 2),               # halves to even, like round()
    (0.3, 0.1, 3),
    (0.07, 0.01, 7),
    (12.345, 0.01, 1234),        # 1234.4999999999998
])
def test_ticks_nearest(duration_s, res_s, ticks):
    assert ticks_nearest(duration_s, res_s) == ticks
    assert _clock(res_s).ticks_nearest(duration_s) == ticks
    assert ticks == round(duration_s / res_s)


@pytest.mark.parametrize(("t_s", "res_s", "tick"), [
    (60.0, 1.0, 60),
    (60.0 - 1e-9, 1.0, 60),      # noise below a tick: that tick (ceil would agree)
    (60.0 + 1e-9, 1.0, 60),      # noise above: that tick (ceil(x - 1e-9) would not)
    (60.5, 1.0, 61),             # between ticks: the next one, never early
    (60.000002, 1.0, 61),
    (0.1 * 3, 0.1, 3),
    # a 1-min cycle counted in seconds at 0.01 s for 30 days: 2.592e8 ticks
    (43200 * 60.0, 0.01, 259_200_000),
])
def test_scheduled_tick(t_s, res_s, tick):
    assert scheduled_tick(t_s, res_s) == tick


def test_scheduled_tick_of_a_long_schedule_is_the_integer_schedule():
    # what the DMS did when it counted its cycle in ticks: offset + k * cycle, exactly
    res_s, cycle_ticks, offset_ticks = 0.01, 6000, 3
    for k in range(0, 500_000, 997):
        t_s = offset_ticks * res_s + k * (cycle_ticks * res_s)
        assert scheduled_tick(t_s, res_s) == offset_ticks + k * cycle_ticks


def test_ticks_wants_whole_ticks():
    clock = _clock(0.01)
    assert clock.ticks(60.0) == 6000
    assert clock.ticks(0.07) == 7
    with pytest.raises(ValueError, match="whole number of ticks"):
        clock.ticks(0.075)
    with pytest.raises(ValueError, match="whole number of ticks"):
        clock.ticks(0.0)
