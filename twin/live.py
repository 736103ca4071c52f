"""Live mode: the run paced at ``speed`` × real time, streaming to the store as it goes.

mosaik paces the simulators (``rt_factor``, non-strict: a step that takes too long makes the
run late, it does not stop it). The :class:`LagMeter` measures how late each recorded step
is against the wall clock — mosaik itself only warns, once per late step — and the store is
flushed about once a wall-clock second so that Grafana sees the data while it happens.
"""

from __future__ import annotations

import time as wallclock
from typing import Callable

import numpy as np


class LagMeter:
    """Lag of each observed step behind its real-time due time [s].

    The first observation sets the clock: a step at simulated ``t`` is due ``t / speed``
    wall-clock seconds after the first one's (simulated) time.
    """

    def __init__(self, speed: float, clock: Callable[[], float] = wallclock.perf_counter):
        if not speed > 0:
            raise ValueError(f"--speed: expected a number > 0; found {speed}")
        self.speed = float(speed)
        self.clock = clock
        self._t0: float | None = None
        self._sim0_s = 0.0
        self.lags_s: list[float] = []

    def observe(self, sim_s: float) -> float:
        """A step at ``sim_s`` [s since the start] is done now; its lag [s] (≥ 0)."""
        now = self.clock()
        if self._t0 is None:
            self._t0, self._sim0_s = now, sim_s
        due = self._t0 + (sim_s - self._sim0_s) / self.speed
        lag = max(0.0, now - due)
        self.lags_s.append(lag)
        return lag

    def stats(self) -> dict[str, float | int]:
        """``speed``, ``steps``, ``lag_mean_s``, ``lag_p99_s``, ``lag_max_s``."""
        lags = np.asarray(self.lags_s, dtype=float)
        if not len(lags):
            return {"speed": self.speed, "steps": 0, "lag_mean_s": 0.0, "lag_p99_s": 0.0,
                    "lag_max_s": 0.0}
        return {"speed": self.speed, "steps": int(len(lags)),
                "lag_mean_s": round(float(lags.mean()), 6),
                "lag_p99_s": round(float(np.percentile(lags, 99)), 6),
                "lag_max_s": round(float(lags.max()), 6)}


def live_progress(meter: LagMeter, seconds_of: Callable[[int], float],
                  flush: Callable[[], None] | None,
                  then: Callable[[int], None] | None = None,
                  flush_every_s: float = 1.0) -> Callable[[int], None]:
    """A recorder progress callback that measures the lag and flushes the store about every
    ``flush_every_s`` wall-clock seconds (then calls ``then``, e.g. a progress bar)."""
    last_flush = meter.clock()

    def progress(tick: int) -> None:
        nonlocal last_flush
        meter.observe(seconds_of(tick))
        now = meter.clock()
        if flush is not None and now - last_flush >= flush_every_s:
            flush()
            last_flush = now
        if then is not None:
            then(tick)

    return progress
