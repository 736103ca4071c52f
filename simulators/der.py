"""mosaik adapters for the PV and wind plant models (:mod:`twin.models.pv`, ``.wind``).

One parent entity per technology takes the weather once per step; its children are the
plants, each with outputs (``p_mw``, ``q_mvar``, ``p_available_mw``, ``curtailed_mw``) and
set-point inputs for the DMS (``p_limit_mw``: curtailment cap, ``q_setpoint_mvar``).
Time-based, stepping with the grid.
"""

from __future__ import annotations

import mosaik_api_v3
import numpy as np

from twin.models import pv as pv_model
from twin.models import wind as wind_model

WEATHER_ATTRS = ("ghi_w_m2", "dni_w_m2", "dhi_w_m2", "solar_zenith_deg", "solar_azimuth_deg",
                 "temp_air_c", "wind_speed_m_s")
PLANT_OUTPUTS = ("p_mw", "q_mvar", "p_available_mw", "curtailed_mw")
PLANT_INPUTS = ("p_limit_mw", "q_setpoint_mvar")

META: mosaik_api_v3.Meta = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        # "snapshot": every plant's outputs in one value (for the recorder)
        "PVPark": {"public": True, "params": ["plants", "names", "step_ticks"],
                   "attrs": [*WEATHER_ATTRS, "snapshot"]},
        "PV": {"public": False, "params": [], "attrs": [*PLANT_OUTPUTS, *PLANT_INPUTS]},
        "WindFarm": {"public": True,
                     "params": ["p_rated_mw", "hub_height_m", "shear_exponent", "names",
                                "step_ticks"],
                     "attrs": ["wind_speed_m_s", "snapshot"]},
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

    def dispatch(self, p_available_mw: np.ndarray) -> None:
        p, q, curtailed = pv_model.dispatch(
            p_available_mw, self.p_limit_mw, self.q_setpoint_mvar, self.s_max_mva)
        self.out = {"p_mw": p, "q_mvar": q, "p_available_mw": p_available_mw,
                    "curtailed_mw": curtailed}


class DERSim(mosaik_api_v3.Simulator):
    """One instance holds one PV park or one wind farm."""

    def __init__(self) -> None:
        super().__init__(META)
        self.kind: str | None = None
        self.parent = ""
        self.plants: _Plants | None = None
        self.step_ticks = 1
        self.pv: pv_model.PVPlants | None = None
        self.wind: dict | None = None

    def init(self, sid, time_resolution=1.0, **sim_params):
        return self.meta

    def _children(self, names: list[str], child_type: str) -> list[dict]:
        return [{"eid": n, "type": child_type, "rel": []} for n in names]

    def create(self, num, model, names=None, step_ticks=1, plants=None, p_rated_mw=None,
               hub_height_m=None, shear_exponent=0.14):
        if num != 1 or self.kind is not None:
            raise ValueError("DERSim holds exactly one PVPark or WindFarm")
        if not names:
            raise ValueError(f"{model} needs names=[plant names]")
        self.step_ticks = int(step_ticks)
        if model == "PVPark":
            if plants is None:
                raise ValueError("PVPark needs plants=<twin.models.pv.PVPlants>")
            self.kind, self.pv = "pv", plants
            self.plants = _Plants(list(names), np.asarray(plants.s_inverter_mva, dtype=float))
            child = "PV"
        elif model == "WindFarm":
            rated = np.asarray(p_rated_mw, dtype=float)
            if rated.shape != (len(names),):
                raise ValueError("WindFarm needs one p_rated_mw per name")
            self.kind = "wind"
            self.wind = {"p_rated_mw": rated,
                         "hub_height_m": np.asarray(hub_height_m, dtype=float),
                         "shear_exponent": float(shear_exponent),
                         "curve": wind_model.PowerCurve.generic()}
            self.plants = _Plants(list(names), rated.copy())
            child = "Turbine"
        else:
            raise ValueError(f"unknown model {model!r}")
        self.parent = f"{self.kind}-park"
        return [{"eid": self.parent, "type": model, "rel": [],
                 "children": self._children(list(names), child)}]

    def step(self, time, inputs, max_advance):
        plants = self.plants
        assert plants is not None
        weather = {a: _first(v) for a, v in inputs.get(self.parent, {}).items()}
        for eid, attrs in inputs.items():
            if eid != self.parent:
                plants.take_setpoints(eid, attrs)
        if self.kind == "pv":
            missing = [a for a in WEATHER_ATTRS if a not in weather]
            if missing:
                raise ValueError(f"PVPark needs weather inputs; missing {missing}")
            p_avail = pv_model.available_power_mw(self.pv, **weather)
        else:
            w = self.wind
            assert w is not None
            v_hub = wind_model.hub_wind_speed_m_s(
                weather["wind_speed_m_s"], hub_height_m=w["hub_height_m"],
                shear_exponent=w["shear_exponent"])
            p_avail = wind_model.available_power_mw(v_hub, w["p_rated_mw"], w["curve"])
        plants.dispatch(np.asarray(p_avail, dtype=float))
        return (time // self.step_ticks + 1) * self.step_ticks

    def get_data(self, outputs):
        plants = self.plants
        assert plants is not None
        data = {}
        for eid, attrs in outputs.items():
            if eid == self.parent:
                if list(attrs) != ["snapshot"]:
                    raise ValueError(f"{eid} outputs only 'snapshot'; found {attrs}")
                data[eid] = {"snapshot": {self.kind: {a: plants.out[a].tolist()
                                                      for a in PLANT_OUTPUTS}}}
                continue
            i = plants.pos[eid]
            unknown = [a for a in attrs if a not in plants.out]
            if unknown:
                raise ValueError(f"{eid}: {unknown} are inputs; outputs are {PLANT_OUTPUTS}")
            data[eid] = {a: float(plants.out[a][i]) for a in attrs}
        return data
