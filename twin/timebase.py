"""Scenario time: durations, and mosaik ticks ↔ UTC timestamps.

Time in a run is mosaik integer ticks; one tick lasts ``time_resolution`` seconds and tick 0
is the scenario's ``start`` (UTC). Nothing here assumes one tick is one second.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

_UNITS_S = {
    "ms": 1e-3,
    "s": 1.0, "sec": 1.0,
    "min": 60.0, "m": 60.0,
    "h": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)")
_ISO = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?"
    r"(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


#: The longest duration anywhere in a scenario: 10 years (of 365.25 days). Longer is a typo
#: (``1000000000d``), and would make preparation build profiles for ages.
MAX_DURATION_S = 10 * 365.25 * 86400.0

_FORMS = "a duration like '1d', '24h', '90min', '1h30min', '30s', '250ms', 'PT1H30M' or seconds"


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, so a message never echoes a huge input."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def parse_duration_s(value: str | int | float | timedelta, allow_zero: bool = False) -> float:
    """Turn ``"1d"``, ``"90min"``, ``"15 s"``, ``"PT1H30M"`` or a number of seconds into seconds.

    Parameters
    ----------
    value : str, int, float or datetime.timedelta
        The duration as written in a scenario.
    allow_zero : bool
        Whether zero is a valid duration (offsets, fixed latencies).

    Returns
    -------
    float
        Seconds, finite, at most :data:`MAX_DURATION_S` (10 years).

    Raises
    ------
    ValueError
        With a message that says which forms are accepted and what was found (cut to
        80 characters).
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"a duration, not a boolean ({value!r})")
    elif isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond float range
            seconds = math.inf
    elif not isinstance(value, str):
        raise ValueError(f"{_FORMS}; found {type(value).__name__} {short_repr(value)}")
    else:
        text = value.strip()
        parts = _compound(text.lower())
        iso = _ISO.match(text.upper())
        if text == "0":
            seconds = 0.0
        elif parts is not None:
            seconds = sum(float(n) * _UNITS_S[u] for n, u in parts)
        elif iso and text.upper() not in ("P", "PT"):
            parts = {k: float(v) if v else 0.0 for k, v in iso.groupdict().items()}
            seconds = parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
        else:
            raise ValueError(f"{_FORMS}; found {short_repr(value)}")
    if math.isnan(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(
            f"a {'non-negative' if allow_zero else 'positive'} duration; found {short_repr(value)}")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"a duration of at most 10 years; found {short_repr(value)}")
    return seconds


def _compound(text: str) -> list[tuple[str, str]] | None:
    """``"1h30min"`` → ``[("1", "h"), ("30", "min")]``; None unless the whole text parses."""
    parts, pos = [], 0
    for m in _PART.finditer(text):
        if m.start() != pos or m.group(2) not in _UNITS_S:
            return None
        parts.append((m.group(1), m.group(2)))
        pos = m.end()
    return parts if parts and text[pos:].strip() == "" else None


def format_duration(seconds: float) -> str:
    """Short human form: ``1d 02:03:04`` or ``02:03:04``."""
    whole = int(round(seconds))
    days, rest = divmod(whole, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    clock = f"{h:02d}:{m:02d}:{s:02d}"
    return f"{days}d {clock}" if days else clock


#: Relative slack when rounding seconds to ticks: a time computed as a sum or product of
#: seconds (``k * period_s``) lands a hair above a whole tick and must not round up a tick.
_TICK_SLACK = 1e-9


def ticks_at_or_after(t_s: float, time_resolution_s: float) -> int:
    """The first tick at or after ``t_s`` seconds since start (an event due at ``t_s`` is
    handled at that tick, never before it).

    A time within ``1e-9`` tick above a whole tick counts as that tick, so floating-point
    noise (``0.1 + 0.2``) does not delay an event by one tick.
    """
    return int(math.ceil(t_s / time_resolution_s - _TICK_SLACK))


#: How far (in ticks) a scheduled time may sit from a whole tick and still be that tick.
_SCHEDULE_SNAP = 1e-6


def scheduled_tick(t_s: float, time_resolution_s: float) -> int:
    """The tick of a scheduled time ``t_s`` [s] computed from whole ticks in seconds (a
    cycle ``offset_s + k * cycle_s``): within ``1e-6`` tick of a whole tick, on either side,
    it is that tick; otherwise the next tick (a wake-up between ticks is never early).

    Unlike :func:`ticks_at_or_after` it also snaps down: a schedule in seconds over a long
    run at a fine resolution (10⁸ ticks) carries more float noise than 1e-9 tick.
    """
    ticks = t_s / time_resolution_s
    nearest = round(ticks)
    return int(nearest) if abs(ticks - nearest) < _SCHEDULE_SNAP else int(math.ceil(ticks))


def ticks_nearest(duration_s: float, time_resolution_s: float) -> int:
    """``duration_s`` as the nearest whole number of ticks (halves to even, like ``round``);
    for periods that need not be whole ticks."""
    return int(round(duration_s / time_resolution_s))


@dataclass(frozen=True)
class Clock:
    """Maps mosaik ticks to scenario time."""

    start: datetime
    time_resolution_s: float
    start_ns: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            object.__setattr__(self, "start", self.start.replace(tzinfo=timezone.utc))
        # computed once: it is needed for every recorded point
        object.__setattr__(self, "start_ns", int(pd.Timestamp(self.start).value))

    def ticks(self, seconds: float) -> int:
        """Seconds → ticks; the duration must be a whole number of ticks."""
        ticks = seconds / self.time_resolution_s
        rounded = round(ticks)
        if rounded < 1 or abs(ticks - rounded) > 1e-6 * max(1.0, abs(ticks)):
            raise ValueError(
                f"{seconds:g} s is not a whole number of ticks of {self.time_resolution_s:g} s"
            )
        return int(rounded)

    def ticks_at_or_after(self, t_s: float) -> int:
        """The first tick at or after ``t_s`` seconds since start; see
        :func:`ticks_at_or_after`."""
        return ticks_at_or_after(t_s, self.time_resolution_s)

    def ticks_nearest(self, duration_s: float) -> int:
        """``duration_s`` rounded to the nearest whole number of ticks; see
        :func:`ticks_nearest`."""
        return ticks_nearest(duration_s, self.time_resolution_s)

    def seconds(self, tick: int) -> float:
        return tick * self.time_resolution_s

    def time_ns(self, tick: int) -> int:
        # Integer arithmetic where possible, so timestamps do not drift over long runs.
        return self.start_ns + int(round(tick * self.time_resolution_s * 1e9))

    def time_ns_at(self, seconds: float) -> int:
        """Scenario seconds since start → ns since the epoch."""
        return self.start_ns + int(round(seconds * 1e9))

    def timestamps(self, n_steps: int, step_ticks: int) -> pd.DatetimeIndex:
        """UTC timestamps of ``n_steps`` steps of ``step_ticks`` ticks each from tick 0."""
        ns = np.array([self.time_ns(i * step_ticks) for i in range(n_steps)], dtype=np.int64)
        return pd.DatetimeIndex(pd.to_datetime(ns, utc=True))
