"""mosaik adapter of the synchronous area's frequency (:mod:`twin.models.frequency`).

One ``Area`` entity. It steps at each disturbance and then every :data:`EXCHANGE_S` while
the frequency is away from rest, and not at all while it rests (until the next
disturbance). Within an exchange the area is advanced in steps of ``step_ticks``, each
recorded as a ``frequency`` record at its own time (the frequency, RoCoF, the step's
extremes and the reserves' powers): the record keeps the fine resolution while mosaik —
and the recorder it wakes — step ten times less often.
"""

from __future__ import annotations

import mosaik_api_v3

from twin.models.frequency import AreaSpec, AreaState, AreaStep, advance
from twin.recording.schema import frequency_record

#: Time between two mosaik steps while the frequency moves [s] (at least one record step).
EXCHANGE_S = 1.0

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
        imbalance = self._imbalance_mw(time)
        if self.last_tick is None:
            # woken from rest (the start, a disturbance): the state is where it rested
            f_hz = self.spec.f0_hz + self.state.df_hz
            rest = AreaStep(self.state, f_hz, f_hz, abs(self.state.rocof_hz_s))
            if time > 0 or imbalance:
                self.records.append(frequency_record(time * self.res_s, self.spec.f0_hz,
                                                     rest, imbalance))
        else:
            # the imbalance held since the last exchange (each disturbance starts one),
            # in record steps of step_ticks
            held = self._imbalance_mw(self.last_tick)
            tick = self.last_tick
            while tick < time:
                nxt = min(tick + self.step_ticks, time)
                done = advance(self.spec, self.state, (nxt - tick) * self.res_s, held)
                self.state = done.state
                self.records.append(frequency_record(nxt * self.res_s, self.spec.f0_hz, done,
                                                     held if nxt < time else imbalance))
                tick = nxt
        nxt = self._next_disturbance(time)
        if self.state.at_rest(self.spec, imbalance):
            self.last_tick = None  # nothing to integrate until the next disturbance
            return nxt
        self.last_tick = time
        exchange = max(self.step_ticks, round(EXCHANGE_S / self.res_s))
        return time + exchange if nxt is None else min(time + exchange, nxt)

    def get_data(self, outputs):
        out = {}
        if "area" in outputs and self.records:
            out["area"] = {"records": self.records}
            self.records = []
        return out
