"""mosaik adapter of the synchronous area's frequency (:mod:`twin.models.frequency`) and of
the twin's units answering it (:mod:`twin.models.frequency_units`).

One ``Area`` entity. It steps at each disturbance and then every :data:`EXCHANGE_S` while
the frequency is away from rest, and not at all while it rests (until the next
disturbance). Within an exchange the area is advanced in steps of ``step_ticks``, each
recorded as a ``frequency`` record at its own time (the frequency, RoCoF, the step's
extremes and the reserves' powers): the record keeps the fine resolution while mosaik —
and the recorder it wakes — step ten times less often.

With ``units`` the twin's PV, wind, batteries and EVs answer too: their parents send their
``snapshot`` at each grid step (availability, SOC, V2G capability; held until the next),
each record step asks the units for their response at the frequency reached, feeds it —
scaled to the area — into the swing equation, and the latest response goes back to the
parents as ``frequency_response`` (P(f) caps, FCR and synthetic-inertia powers), which they
apply from their next step: the grid sees the response as it stands at its steps.
A snapshot only wakes the area; it does not cut a record step short.
"""

from __future__ import annotations

import mosaik_api_v3
import numpy as np

from twin.models.frequency import AreaSpec, AreaState, AreaStep, advance
from twin.models.frequency_units import TwinUnits, UnitResponse
from twin.recording.schema import BATTERY, EV, PV, WIND, frequency_record

#: Time between two mosaik steps while the frequency moves [s] (at least one record step).
EXCHANGE_S = 1.0

META: mosaik_api_v3.Meta = {
    "api_version": "3.0",
    # hybrid: event-like stepping and records, but the units' response holds until changed
    "type": "hybrid",
    "models": {
        "Area": {
            "public": True,
            "params": ["spec", "disturbances", "step_ticks", "units"],
            "attrs": ["records", "snapshot", "frequency_response"],
            "trigger": ["snapshot"],
            "persistent": ["snapshot", "frequency_response"],
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
        self.last_tick: int | None = None  # where the integration stands (None: at rest)
        self.planned: int | None = None    # the step this simulator asked for
        self.records: list[dict] = []
        self.units: TwinUnits | None = None
        self.response: UnitResponse | None = None
        self.p_inertia_mw = 0.0  # the area's synthetic inertia in the last record step
        self.units_seen_tick = 0
        self.inputs: dict = {}

    def init(self, sid, time_resolution=1.0, **sim_params):
        self.res_s = float(time_resolution)
        return self.meta

    def create(self, num, model, spec=None, disturbances=(), step_ticks=1, units=None):
        if model != "Area" or num != 1 or self.spec is not None or spec is None:
            raise ValueError("FrequencySim holds exactly one Area (spec=<AreaSpec>)")
        self.spec = spec
        self.disturbances = sorted((int(t), float(p)) for t, p in disturbances)
        self.step_ticks = max(1, int(step_ticks))
        self.units = units
        return [{"eid": "area", "type": "Area", "rel": []}]

    def _imbalance_mw(self, tick: int) -> float:
        """The disturbances in force at ``tick`` [MW]."""
        return sum(p for t, p in self.disturbances if t <= tick)

    def _next_disturbance(self, tick: int) -> int | None:
        later = [t for t, _p in self.disturbances if t > tick]
        return min(later) if later else None

    # ------------------------------------------------------------------ the twin's units
    def _observe(self, inputs: dict) -> None:
        units = self.units
        snaps = inputs.get("area", {}).get("snapshot", {})
        for snap in snaps.values():
            if not snap:
                continue
            for kind, v in snap.items():
                if kind == PV:
                    units.observe_pv(v["p_available_mw"], v["p_mw"])
                elif kind == WIND:
                    units.observe_wind(v["p_available_mw"], v["p_mw"])
                elif kind == BATTERY:
                    units.observe_batteries(v["soc"], v["p_mw"])
                elif kind == EV:
                    units.observe_ev(v["fcr_inject_mw"], v["fcr_absorb_mw"])

    def _respond(self, f_hz: float, dt_s: float) -> tuple[float, object]:
        """The units' explicit response for the next step, scaled to the area [MW], and
        their synthetic inertia (None without units)."""
        if self.units is None:
            return 0.0, None
        self.response = self.units.step(f_hz, dt_s)
        return self.units.settings.scale * self.response.explicit_mw, self.units.inertia()

    def _twin_fields(self, p_twin_area_mw: float, done: AreaStep) -> dict | None:
        if self.units is None or self.response is None:
            return None
        r, scale = self.response, self.units.settings.scale
        self.p_inertia_mw = done.p_inertia_mw
        return {"twin_pf_mw": r.pf_mw, "twin_fcr_battery_mw": float(r.fcr_battery_mw.sum()),
                "twin_fcr_ev_mw": float(r.fcr_ev_mw.sum()),
                "twin_inertia_mw": done.p_inertia_mw / scale,
                "p_twin_area_mw": p_twin_area_mw + done.p_inertia_mw}

    # ------------------------------------------------------------------ stepping
    def _integrate(self, until: int, held: float, imbalance: float, whole: bool) -> None:
        """Advance from ``last_tick`` to ``until`` in record steps (``whole``: only whole
        steps, leaving the rest for the next call)."""
        spec = self.spec
        tick = self.last_tick
        while tick < until:
            nxt = tick + self.step_ticks
            if nxt > until:
                if whole:
                    break
                nxt = until
            dt_s = (nxt - tick) * self.res_s
            p_twin, inertia = self._respond(spec.f0_hz + self.state.df_hz, dt_s)
            done = advance(spec, self.state, dt_s, held, p_twin, inertia)
            self.state = done.state
            self.records.append(frequency_record(
                nxt * self.res_s, spec.f0_hz, done, held if nxt < until else imbalance,
                dt_s, self._twin_fields(p_twin, done)))
            tick = nxt
        self.last_tick = tick

    def step(self, time, inputs, max_advance):
        assert self.spec is not None
        spec = self.spec
        self.inputs = inputs  # the units' new state: from now on (see _plan)
        if self.units is not None and self.last_tick is None and self.response is not None:
            # at rest: a reconnected unit's P(f) ramp goes on with the time passed
            self._respond(spec.f0_hz + self.state.df_hz,
                          (time - self.units_seen_tick) * self.res_s)
        self.units_seen_tick = time
        imbalance = self._imbalance_mw(time)
        woken_by_data = (self.planned is not None and time < self.planned
                         and not any(t == time for t, _p in self.disturbances))
        if self.last_tick is None:
            # woken from rest (the start, a disturbance, data): the state is where it rested
            if woken_by_data or (time > 0 and not any(t == time for t, _ in self.disturbances)
                                 and self.state.at_rest(spec, imbalance)):
                return self._plan(self._next_disturbance(time))
            f_hz = spec.f0_hz + self.state.df_hz
            rest = AreaStep(self.state, f_hz, f_hz, abs(self.state.rocof_hz_s))
            if time > 0 or imbalance:
                self.records.append(frequency_record(time * self.res_s, spec.f0_hz, rest,
                                                     imbalance))
        else:
            # the imbalance held since the last exchange (each disturbance starts one)
            held = self._imbalance_mw(self.last_tick)
            self._integrate(time, held, imbalance, whole=woken_by_data)
            if woken_by_data:
                return self._plan(self.planned)
        nxt = self._next_disturbance(time)
        if self.state.at_rest(spec, imbalance, self._twin_now()):
            self.last_tick = None  # nothing to integrate until the next disturbance
            return self._plan(nxt)
        self.last_tick = time
        exchange = max(self.step_ticks, round(EXCHANGE_S / self.res_s))
        return self._plan(time + exchange if nxt is None else min(time + exchange, nxt))

    def _twin_now(self) -> float:
        if self.units is None or self.response is None:
            return 0.0
        return self.units.settings.scale * self.response.explicit_mw

    def _plan(self, tick: int | None) -> int | None:
        """Ask for the step at ``tick``, having integrated up to now: the units' snapshots
        that woke this step hold from now on (the time before had the previous ones)."""
        if self.units is not None and self.inputs:
            self._observe(self.inputs)
        self.inputs = {}
        self.planned = tick
        return tick

    def get_data(self, outputs):
        out = {}
        if "area" in outputs:
            want = outputs["area"]
            data = {}
            if "records" in want and self.records:
                data["records"] = self.records
                self.records = []
            if "frequency_response" in want and self.units is not None:
                data["frequency_response"] = self._response_out()
            if data:
                out["area"] = data
        return out

    def _response_out(self) -> dict:
        """What each parent applies from its next step (a :class:`UnitResponse` as lists)."""
        r, units = self.response, self.units
        if r is None:
            return {}
        si_wind, si_bat = units.share_inertia(self.p_inertia_mw) if self.last_tick is not None \
            else (np.zeros(len(units.wind_rated_mw)), np.zeros(len(units.battery_p_max_mw)))
        return {PV: {"p_cap_mw": r.pv_cap_mw.tolist()},
                WIND: {"p_cap_mw": r.wind_cap_mw.tolist(), "p_extra_mw": si_wind.tolist()},
                BATTERY: {"p_mw": (r.fcr_battery_mw + si_bat).tolist()},
                EV: {"p_mw": r.fcr_ev_mw.tolist()}}
