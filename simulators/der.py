"""mosaik adapters for the PV and wind plant models (:mod:`twin.models.pv`, ``.wind``).

One parent entity per technology takes the weather once per step; its children are the
plants, each with outputs (``p_mw``, ``q_mvar``, ``p_available_mw``, ``curtailed_mw``) and
set-point inputs for the DMS (``p_limit_mw``: curtailment cap, ``q_setpoint_mvar``).
Time-based, stepping with the grid.

The parks take the frequency simulator's ``frequency_response`` (its P(f) cap per plant and,
for wind, synthetic inertia's extra power from the rotor) from their next step on;
``pf_reduction_mw`` is what P(f) withholds from the available power, ``curtailed_mw`` what
the DMS's limit withholds on top.
"""

from __future__ import annotations

import mosaik_api_v3
import numpy as np

from twin.models import pv as pv_model
from twin.models import wind as wind_model
from twin.models.weather import WEATHER_ATTRS
from twin.recording.schema import PV, WIND

PLANT_OUTPUTS = ("p_mw", "q_mvar", "p_available_mw", "curtailed_mw", "pf_reduction_mw")
PLANT_INPUTS = ("p_limit_mw", "q_setpoint_mvar")

META: mosaik_api_v3.Meta = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        # "snapshot": every plant's outputs in one value (for the recorder)
        "PVPark": {"public": True, "params": ["plants", "names", "step_ticks"],
                   "attrs": [*WEATHER_ATTRS, "snapshot", "frequency_response"]},
        "PV": {"public": False, "params": [], "attrs": [*PLANT_OUTPUTS, *PLANT_INPUTS]},
        "WindFarm": {"public": True,
                     "params": ["p_rated_mw", "hub_height_m", "shear_exponent", "names",
                                "step_ticks"],
                     "attrs": ["wind_speed_m_s", "snapshot", "frequency_response"]},
        "Turbine": {"public": False, "params": [], "attrs": [*PLANT_OUTPUTS, *PLANT_INPUTS]},
    },
}


def _first(values: dict[str, float | None]) -> float | None:
    value = next(iter(values.values()), None)
    return None if value is None else float(value)


class _Plants:
    """State shared by both technologies: set-points in, dispatched outputs out."""

    def __init__(self, names: list[str], s_max_mva: np.ndarray):
        n = len(names)
        self.names = names
        self.pos = {name: i for i, name in enumerate(names)}
        self.s_max_mva = s_max_mva
        self.p_limit_mw = np.full(n, np.inf)
        self.q_setpoint_mvar = np.zeros(n)
        self.out = {a: np.zeros(n) for a in PLANT_OUTPUTS}

    def take_setpoints(self, eid: str, attrs: dict) -> None:
        i = self.pos[eid]
        # None: a set-point that has never been commanded (the plant keeps its default).
        p_limit = _first(attrs.get("p_limit_mw", {}))
        q_set = _first(attrs.get("q_setpoint_mvar", {}))
        if p_limit is not None:
            self.p_limit_mw[i] = p_limit
        if q_set is not None:
            self.q_setpoint_mvar[i] = q_set

    def dispatch(self, p_available_mw: np.ndarray, response: dict | None = None) -> None:
        p_avail = p_available_mw
        pf = np.zeros(len(p_available_mw))
        if response:
            # P(f) caps what the weather gives (a unit off above 51.5 Hz gives nothing)
            cap = np.asarray(response.get("p_cap_mw", np.inf), dtype=float)
            p_avail = np.minimum(p_available_mw, cap)
            pf = np.maximum(p_available_mw - p_avail, 0.0)
        p, q, curtailed = pv_model.dispatch(
            p_avail, self.p_limit_mw, self.q_setpoint_mvar, self.s_max_mva)
        if response and "p_extra_mw" in response:
            # synthetic inertia: the rotor's kinetic energy, briefly beyond the wind's power
            p = np.maximum(p + np.asarray(response["p_extra_mw"], dtype=float), 0.0)
        self.out = {"p_mw": p, "q_mvar": q, "p_available_mw": p_available_mw,
                    "curtailed_mw": curtailed, "pf_reduction_mw": pf}


class _Park:
    """One PV park or wind farm: its plants and how it turns weather into power."""

    def __init__(self, kind: str, eid: str, plants: _Plants, pv=None, wind=None):
        self.kind, self.eid, self.plants, self.pv, self.wind = kind, eid, plants, pv, wind

    def available_mw(self, weather: dict[str, float]) -> np.ndarray:
        if self.kind == PV:
            missing = [a for a in WEATHER_ATTRS if a not in weather]
            if missing:
                raise ValueError(f"{self.eid} needs weather inputs; missing {missing}")
            return pv_model.available_power_mw(self.pv, **weather)
        w = self.wind
        v_hub = wind_model.hub_wind_speed_m_s(
            weather["wind_speed_m_s"], hub_height_m=w["hub_height_m"],
            shear_exponent=w["shear_exponent"])
        return wind_model.available_power_mw(v_hub, w["p_rated_mw"], w["curve"])


class DERSim(mosaik_api_v3.Simulator):
    """PV parks and wind farms (one simulator for all: each simulator costs mosaik
    bookkeeping at every step)."""

    def __init__(self) -> None:
        super().__init__(META)
        self.parks: dict[str, _Park] = {}
        self.park_of: dict[str, _Park] = {}  # plant eid -> its park
        self.step_ticks = 1

    def init(self, sid, time_resolution=1.0, **sim_params):
        return self.meta

    def create(self, num, model, names=None, step_ticks=1, plants=None, p_rated_mw=None,
               hub_height_m=None, shear_exponent=0.14):
        if num != 1:
            raise ValueError(f"create one {model} at a time")
        if not names:
            raise ValueError(f"{model} needs names=[plant names]")
        clash = sorted(set(names) & set(self.park_of))
        if clash:
            raise ValueError(f"plant names must be unique across parks; found {clash} twice")
        self.step_ticks = int(step_ticks)
        if model == "PVPark":
            if plants is None:
                raise ValueError("PVPark needs plants=<twin.models.pv.PVPlants>")
            park = _Park(PV, "pv-park", _Plants(list(names), np.asarray(
                plants.s_inverter_mva, dtype=float)), pv=plants)
            child = "PV"
        elif model == "WindFarm":
            rated = np.asarray(p_rated_mw, dtype=float)
            if rated.shape != (len(names),):
                raise ValueError("WindFarm needs one p_rated_mw per name")
            park = _Park(WIND, "wind-park", _Plants(list(names), rated.copy()), wind={
                "p_rated_mw": rated, "hub_height_m": np.asarray(hub_height_m, dtype=float),
                "shear_exponent": float(shear_exponent),
                "curve": wind_model.PowerCurve.generic()})
            child = "Turbine"
        else:
            raise ValueError(f"unknown model {model!r}")
        if park.eid in self.parks:
            raise ValueError(f"one {model} per simulator")
        self.parks[park.eid] = park
        self.park_of.update({n: park for n in names})
        return [{"eid": park.eid, "type": model, "rel": [],
                 "children": [{"eid": n, "type": child, "rel": []} for n in names]}]

    def step(self, time, inputs, max_advance):
        for eid, attrs in inputs.items():
            if eid in self.park_of:
                self.park_of[eid].plants.take_setpoints(eid, attrs)
        for park in self.parks.values():
            given = inputs.get(park.eid, {})
            weather = {a: _first(v) for a, v in given.items() if a != "frequency_response"}
            response = next(iter(given.get("frequency_response", {}).values()), None)
            park.plants.dispatch(np.asarray(park.available_mw(weather), dtype=float),
                                 response.get(park.kind) if response else None)
        return (time // self.step_ticks + 1) * self.step_ticks

    def get_data(self, outputs):
        data = {}
        for eid, attrs in outputs.items():
            if eid in self.parks:
                if set(attrs) != {"snapshot"}:
                    raise ValueError(f"{eid} outputs only 'snapshot'; found {attrs}")
                park = self.parks[eid]
                data[eid] = {"snapshot": {park.kind: {a: park.plants.out[a].tolist()
                                                      for a in PLANT_OUTPUTS}}}
                continue
            plants = self.park_of[eid].plants
            unknown = [a for a in attrs if a not in plants.out]
            if unknown:
                raise ValueError(f"{eid}: {unknown} are inputs; outputs are {PLANT_OUTPUTS}")
            i = plants.pos[eid]
            data[eid] = {a: float(plants.out[a][i]) for a in attrs}
        return data
