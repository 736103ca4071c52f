"""mosaik adapter of the synchronous area's frequency (:mod:`twin.models.frequency`).

One ``Area`` entity. It steps at each disturbance and then every ``step_ticks`` while the
frequency is away from rest, and not at all while it rests (until the next disturbance).
Each step is recorded as a ``frequency`` record at its time: the frequency, RoCoF, the
step's extremes and the reserves' powers.
"""

from __future__ import annotations

import mosaik_api_v3

from twin.models.frequency import AreaSpec, AreaState, AreaStep, advance
from twin.recording.schema import frequency_record

META: mosaik_api_v3.Meta = {
    "api_version": "3.0",
    "type": "event-based",
    "models": {
        "Area": {
            "public": True,
            "params": ["spec", "disturbances", "step_ticks"],
            "attrs": ["records"],
            "non-persistent": ["records"],
        },
    },
}


class FrequencySim(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.res_s = 1.0
        self.spec: AreaSpec | None = None
        self.state = AreaState()
        self.disturbances: list[tuple[int, float]] = []  # (tick, MW from then on)
        self.step_ticks = 1
        self.last_tick: int | None = None
        self.records: list[dict] = []

    def init(self, sid, time_resolution=1.0, **sim_params):
        self.res_s = float(time_resolution)
        return self.meta

    def create(self, num, model, spec=None, disturbances=(), step_ticks=1):
        if model != "Area" or num != 1 or self.spec is not None or spec is None:
            raise ValueError("FrequencySim holds exactly one Area (spec=<AreaSpec>)")
        self.spec = spec
        self.disturbances = sorted((int(t), float(p)) for t, p in disturbances)
        self.step_ticks = max(1, int(step_ticks))
        return [{"eid": "area", "type": "Area", "rel": []}]

    def _imbalance_mw(self, tick: int) -> float:
        """The disturbances in force at ``tick`` [MW]."""
        return sum(p for t, p in self.disturbances if t <= tick)

    def _next_disturbance(self, tick: int) -> int | None:
        later = [t for t, _p in self.disturbances if t > tick]
        return min(later) if later else None

    def step(self, time, inputs, max_advance):
        assert self.spec is not None
        if self.last_tick is None:
            # woken from rest (the start, a disturbance): the state is where it rested
            step = AreaStep(self.state, self.spec.f0_hz + self.state.df_hz,
                            self.spec.f0_hz + self.state.df_hz, abs(self.state.rocof_hz_s))
        else:
            # the imbalance held since the last step (each disturbance starts a step)
            dt_s = (time - self.last_tick) * self.res_s
            step = advance(self.spec, self.state, dt_s, self._imbalance_mw(self.last_tick))
            self.state = step.state
        imbalance = self._imbalance_mw(time)
        if time > 0 or imbalance:
            self.records.append(frequency_record(time * self.res_s, self.spec.f0_hz, step,
                                                 imbalance))
        nxt = self._next_disturbance(time)
        if self.state.at_rest(self.spec, imbalance):
            self.last_tick = None  # nothing to integrate until the next disturbance
            return nxt
        self.last_tick = time
        return time + self.step_ticks if nxt is None else min(time + self.step_ticks, nxt)

    def get_data(self, outputs):
        out = {}
        if "area" in outputs and self.records:
            out["area"] = {"records": self.records}
            self.records = []
        return out
