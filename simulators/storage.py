"""mosaik adapters for the EV fleet (:mod:`twin.models.ev`) and the batteries
(:mod:`twin.models.battery`).

Both are time-based and step with the grid: the power they output at ``t`` holds for the step
``[t, t + step)``. Set-points come from the field (``p_limit_mw`` per charging point,
``p_setpoint_mw`` per battery) and hold until changed; ``None`` means none was ever sent.
The frequency simulator's ``frequency_response`` (FCR and synthetic inertia, MW per unit,
positive = more injection) is added on top from the next step, within each unit's limits.
"""

from __future__ import annotations

import mosaik_api_v3
import numpy as np

from twin.models import battery as bat
from twin.models.battery import BatteryPlan
from twin.models.ev import EVPlan, sum_by
from twin.recording.schema import BATTERY, EV

CP_OUTPUTS = ("p_mw", "q_mvar", "n_connected", "soc_mean", "flex_up_mw", "flex_down_mw",
              "energy_short_mwh", "droop_mw_per_hz", "fcr_inject_mw", "fcr_absorb_mw")
BATTERY_OUTPUTS = ("p_mw", "q_mvar", "soc", "p_charge_avail_mw", "p_discharge_avail_mw",
                   "p_schedule_mw", "price_eur_mwh")

META: mosaik_api_v3.Meta = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        # parents output "snapshot": every child's outputs in one value (for the recorder)
        "EVFleet": {"public": True, "params": ["plan", "step_ticks"],
                    "attrs": ["snapshot", "frequency_response"]},
        "ChargingPoint": {"public": False, "params": [],
                          "attrs": [*CP_OUTPUTS, "p_limit_mw"]},
        "Batteries": {"public": True, "params": ["plan", "step_ticks"],
                      "attrs": ["snapshot", "frequency_response"]},
        "Battery": {"public": False, "params": [],
                    "attrs": [*BATTERY_OUTPUTS, "p_setpoint_mw"]},
    },
}


def _response(inputs: dict, parent: str, kind: str) -> np.ndarray | None:
    """The frequency response for ``kind`` sent to ``parent`` [MW per unit, injection
    positive], or None."""
    sent = next(iter(inputs.get(parent, {}).get("frequency_response", {}).values()), None)
    if not sent or kind not in sent:
        return None
    p = np.asarray(sent[kind]["p_mw"], dtype=float)
    return p if p.any() else None


def _setpoint(attrs: dict, name: str) -> float:
    value = next(iter(attrs.get(name, {}).values()), None)
    return np.nan if value is None else float(value)


class _Base(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.res_s = 1.0
        self.step_ticks = 1
        self.pos: dict[str, int] = {}
        self.out: dict[str, np.ndarray] = {}

    def init(self, sid, time_resolution=1.0, **sim_params):
        self.res_s = float(time_resolution)
        return self.meta

    def _children(self, parent: str, model: str, child: str, names: list[str]) -> list[dict]:
        self.pos = {n: i for i, n in enumerate(names)}
        self.parent = parent
        return [{"eid": parent, "type": model, "rel": [],
                 "children": [{"eid": n, "type": child, "rel": []} for n in names]}]

    def _setpoints(self, inputs: dict, attr: str) -> np.ndarray:
        values = np.full(len(self.pos), np.nan)
        for eid, attrs in inputs.items():
            if eid in self.pos:
                values[self.pos[eid]] = _setpoint(attrs, attr)
        return values

    measurement = ""
    parent = ""

    def get_data(self, outputs):
        data = {}
        for eid, attrs in outputs.items():
            if eid == self.parent:
                data[eid] = {"snapshot": {self.measurement: {a: v.tolist()
                                                             for a, v in self.out.items()}}}
                continue
            i = self.pos[eid]
            unknown = [a for a in attrs if a not in self.out]
            if unknown:
                raise ValueError(f"{eid}: {unknown} are inputs or unknown; outputs are "
                                 f"{sorted(self.out)}")
            data[eid] = {a: self.out[a][i].item() for a in attrs}
        return data


class EVSim(_Base):
    """One EV fleet; children are its charging points (one per bus)."""

    measurement = EV

    def __init__(self) -> None:
        super().__init__()
        self.plan: EVPlan | None = None
        self.limits = np.zeros(0)

    def create(self, num, model, plan=None, step_ticks=1):
        if model != "EVFleet" or num != 1 or self.plan is not None or plan is None:
            raise ValueError("EVSim holds exactly one EVFleet (plan=<EVPlan>)")
        self.plan, self.step_ticks = plan, int(step_ticks)
        self.limits = np.full(len(plan.points), np.nan)
        return self._children("ev-fleet", "EVFleet", "ChargingPoint", plan.points)

    def step(self, time, inputs, max_advance):
        plan = self.plan
        assert plan is not None
        given = self._setpoints(inputs, "p_limit_mw")
        self.limits = np.where(np.isnan(given), self.limits, given)
        # "v2g": the set-point is the request (negative = discharge); "limited": the cap.
        response = _response(inputs, self.parent, EV)
        res = plan.fleet.step(time * self.res_s, self.step_ticks * self.res_s,
                              p_limit_mw=self.limits, p_request_mw=self.limits,
                              strategy=plan.strategy,
                              p_offset_mw=None if response is None else -response)
        n = len(plan.points)
        dep = res.departures
        self.out = {
            "p_mw": res.p_mw, "q_mvar": np.zeros(n),
            "n_connected": res.n_connected.astype(float), "soc_mean": res.soc_mean,
            "flex_up_mw": res.flex_up_mw, "flex_down_mw": res.flex_down_mw,
            "energy_short_mwh": sum_by(dep.charge_point, dep.energy_short_mwh, n),
        }
        # V2G's FCR capability held 15 min, each way (the droop is its symmetric part)
        inject, absorb = plan.fleet.fcr_capability_mw()
        self.out["droop_mw_per_hz"] = np.minimum(inject, absorb) / 0.2
        self.out["fcr_inject_mw"], self.out["fcr_absorb_mw"] = inject, absorb
        return time + self.step_ticks


class BatterySim(_Base):
    """The batteries; requests from their timetable (schedule or price) or the DMS."""

    measurement = BATTERY

    def __init__(self) -> None:
        super().__init__()
        self.plan: BatteryPlan | None = None
        self.battery: bat.Battery | None = None
        self.setpoints = np.zeros(0)

    def create(self, num, model, plan=None, step_ticks=1):
        if model != "Batteries" or num != 1 or self.plan is not None or plan is None:
            raise ValueError("BatterySim holds exactly one Batteries (plan=<BatteryPlan>)")
        self.plan, self.step_ticks = plan, int(step_ticks)
        self.battery = bat.Battery(plan.spec)
        self.setpoints = np.full(len(plan.names), np.nan)
        return self._children("batteries", "Batteries", "Battery", plan.names)

    def step(self, time, inputs, max_advance):
        plan, battery = self.plan, self.battery
        assert plan is not None and battery is not None
        t_s = time * self.res_s
        given = self._setpoints(inputs, "p_setpoint_mw")
        self.setpoints = np.where(np.isnan(given), self.setpoints, given)
        scheduled = bat.schedule_request(t_s, plan.schedule_times_s, plan.schedule_p_mw)
        # A DMS set-point, once given, overrides the timetable.
        request = np.where(np.isnan(self.setpoints), scheduled, self.setpoints)
        response = _response(inputs, self.parent, BATTERY)
        if response is not None:
            request = request - response  # load convention: more injection, less p
        res = battery.step(self.step_ticks * self.res_s, request)
        price = plan.prices_eur_mwh[max(0, np.searchsorted(plan.price_times_s, t_s, "right") - 1)]
        n = len(plan.names)
        self.out = {"p_mw": res.p_mw, "q_mvar": np.zeros(n), "soc": res.soc,
                    "p_charge_avail_mw": res.p_charge_avail_mw,
                    "p_discharge_avail_mw": res.p_discharge_avail_mw,
                    "p_schedule_mw": scheduled, "price_eur_mwh": np.full(n, price)}
        return time + self.step_ticks
