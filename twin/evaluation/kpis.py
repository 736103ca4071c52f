"""Key performance indicators of a run, accumulated from the recorded points as they stream.

Time weighting: a sample holds from its time until the next sample of the same kind (or the
end of the run), so event-triggered extra power flows between regular steps count for exactly
the time they were valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from twin.evaluation.reliability import MOMENTARY_S, ReliabilityLedger
from twin.recording.schema import (
    BATTERY,
    BUS,
    COMMAND,
    CREW,
    DMS_CYCLE,
    DMS_ESTIMATE,
    EV,
    GRID,
    LINE,
    LOAD,
    MEASUREMENTS,
    PROTECTION,
    PV,
    TELEMETRY,
    TRAFO,
    WIND,
    Point,
    check_measurement,
    kpi_point,
)

__all__ = ["KpiAccumulator", "kpi_point"]  # kpi_point: the schema's, where callers look for it


@dataclass
class _Integral:
    """∫ value dt over piecewise-constant samples [value·h]."""

    last_t_s: float | None = None
    last_value: float = 0.0
    total: float = 0.0

    def add(self, t_s: float, value: float) -> None:
        self.close(t_s)
        self.last_t_s, self.last_value = t_s, value

    def close(self, t_s: float) -> None:
        if self.last_t_s is not None and t_s > self.last_t_s and math.isfinite(self.last_value):
            self.total += self.last_value * (t_s - self.last_t_s) / 3600.0
        if self.last_t_s is not None:
            self.last_t_s = max(self.last_t_s, t_s)


@dataclass
class KpiAccumulator:
    """Feed it the points of each recorder step; :meth:`finish` returns the KPI dict.

    Parameters
    ----------
    band_pu : (low, high)
        Allowed voltage band [p.u.].
    """

    band_pu: tuple[float, float] = (0.95, 1.05)
    #: customers per load name (loads not in it, e.g. EV charging points, are not counted)
    customers: dict[str, int] = field(default_factory=dict)
    momentary_s: float = MOMENTARY_S
    _ledger: ReliabilityLedger | None = None
    _energy: dict[str, _Integral] = field(default_factory=dict)
    _max: dict[str, tuple[float, str]] = field(default_factory=dict)
    _vm_min: float = math.inf
    _vm_max: float = -math.inf
    _grid_solves: int = 0
    _non_converged: int = 0
    _counts: dict[str, float] = field(default_factory=dict)
    _truth_vm: dict[str, float] = field(default_factory=dict)  # bus -> latest true voltage
    _se_abs_dv: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ledger = ReliabilityLedger(self.customers, self.momentary_s)

    def _count(self, key: str, amount: float = 1.0) -> None:
        self._counts[key] = self._counts.get(key, 0.0) + amount

    def _integral(self, key: str) -> _Integral:
        if key not in self._energy:
            self._energy[key] = _Integral()
        return self._energy[key]

    def _track_max(self, key: str, value: object, element: str) -> None:
        if isinstance(value, (int, float)) and math.isfinite(value):
            if key not in self._max or value > self._max[key][0]:
                self._max[key] = (float(value), element)

    def add(self, t_s: float, points: Iterable[Point]) -> None:
        """All points recorded at scenario time ``t_s`` [s since start].

        Raises
        ------
        ValueError
            For a point whose measurement is not in :mod:`twin.recording.schema`: a
            misspelt measurement would otherwise silently leave its KPIs at zero.
        """
        pv_mw = wind_mw = pv_curt_mw = wind_curt_mw = ev_mw = bat_charge_mw = bat_dis_mw = 0.0
        seen_pv = seen_wind = seen_ev = seen_bat = False
        violations: dict[str, int] = {}
        supplied: dict[str, bool] = {}
        demand_mw: dict[str, float] = {}
        grid_seen = False
        for p in points:
            m, f, el = p.measurement, p.fields, p.tags.get("element", "")
            if m == GRID:
                grid_seen = True
                self._grid_solves += 1
                if not f.get("converged", 0):
                    self._non_converged += 1
                self._integral("losses").add(t_s, float(f.get("p_loss_mw", math.nan)))
                self._integral("load").add(t_s, float(f.get("p_load_mw", math.nan)))
                self._integral("ext_grid").add(t_s, float(f.get("p_ext_grid_mw", math.nan)))
            elif m == BUS:
                vm = f.get("vm_pu")
                if isinstance(vm, float) and math.isfinite(vm):
                    self._truth_vm[el] = vm
                    self._vm_min = min(self._vm_min, vm)
                    self._vm_max = max(self._vm_max, vm)
                    violations[el] = int(not self.band_pu[0] <= vm <= self.band_pu[1])
            elif m == LOAD:
                if "supplied" in f and el in self.customers:
                    supplied[el] = bool(f["supplied"])
                    demand_mw[el] = float(f.get("p_demand_mw", 0.0))
            elif m == LINE:
                self._track_max("line", f.get("loading_percent"), el)
            elif m == TRAFO:
                self._track_max("trafo", f.get("loading_percent"), el)
            elif m == PV:
                seen_pv = True
                pv_mw += float(f.get("p_mw", 0.0))
                pv_curt_mw += float(f.get("curtailed_mw", 0.0))
            elif m == WIND:
                seen_wind = True
                wind_mw += float(f.get("p_mw", 0.0))
                wind_curt_mw += float(f.get("curtailed_mw", 0.0))
            elif m == EV:
                seen_ev = True
                ev_mw += float(f.get("p_mw", 0.0))
                self._count("ev_energy_short_mwh", float(f.get("energy_short_mwh", 0.0)))
            elif m == BATTERY:
                seen_bat = True
                p_mw = float(f.get("p_mw", 0.0))
                bat_charge_mw += max(p_mw, 0.0)
                bat_dis_mw += max(-p_mw, 0.0)
            elif m == TELEMETRY:
                self._count("telemetry_values_delivered")
            elif m == COMMAND:
                status = p.tags.get("status", "unknown")
                self._count(f"commands_{status}")
                action = p.tags.get("action")
                if status == "success" and action in ("set_tap", "set_step"):
                    self._count(f"{action}_operations")
                elif status == "success" and action in ("open", "close"):
                    self._count("switching_operations")
            elif m == DMS_ESTIMATE:
                # estimation error against truth: for evaluation only, the DMS never sees it
                truth = self._truth_vm.get(el)
                vm_est = f.get("vm_pu")
                if truth is not None and isinstance(vm_est, float):
                    self._se_abs_dv.append(abs(vm_est - truth))
            elif m == DMS_CYCLE:
                if p.tags.get("function") != "state_estimation":
                    continue  # notes of the other functions count nothing
                self._count("dms_cycles")
                if not f.get("success", 0):
                    self._count("dms_cycles_failed")
                self._count("bad_data_detected", float(f.get("bad_data", 0)))
            elif m == CREW:
                self._count("crew_jobs")
            elif m == PROTECTION:
                if p.tags.get("kind") in ("trip", "reclose"):
                    self._count(f"protection_{p.tags['kind']}s")
            elif m not in MEASUREMENTS:
                check_measurement(m, "KPI accumulator")
        if seen_pv:
            self._integral("pv").add(t_s, pv_mw)
            self._integral("pv_curtailed").add(t_s, pv_curt_mw)
        if seen_wind:
            self._integral("wind").add(t_s, wind_mw)
            self._integral("wind_curtailed").add(t_s, wind_curt_mw)
        if seen_ev:
            self._integral("ev").add(t_s, ev_mw)
        if seen_bat:
            self._integral("battery_charge").add(t_s, bat_charge_mw)
            self._integral("battery_discharge").add(t_s, bat_dis_mw)
        if supplied:
            self._ledger.update(t_s, supplied, demand_mw)
        if grid_seen:
            # Buses without a voltage (failed solve, isolated) count as not violating.
            any_v = float(any(violations.values()))
            self._integral("violation_any").add(t_s, any_v)
            self._integral("violation_bus").add(t_s, float(sum(violations.values())))

    def finish(self, end_t_s: float) -> dict[str, object]:
        for integral in self._energy.values():
            integral.close(end_t_s)

        def e(key: str) -> float:
            return round(self._energy[key].total, 9) if key in self._energy else 0.0

        reliability = self._ledger.finish(end_t_s)
        line_max = self._max.get("line", (math.nan, ""))
        trafo_max = self._max.get("trafo", (math.nan, ""))
        return {
            "voltage_band_pu": list(self.band_pu),
            "voltage_violation_minutes": round(e("violation_any") * 60.0, 6),
            "voltage_violation_bus_minutes": round(e("violation_bus") * 60.0, 6),
            "vm_min_pu": _finite(self._vm_min),
            "vm_max_pu": _finite(self._vm_max),
            "max_line_loading_percent": _finite(line_max[0]),
            "max_line_loading_element": line_max[1],
            "max_trafo_loading_percent": _finite(trafo_max[0]),
            "max_trafo_loading_element": trafo_max[1],
            "energy_losses_mwh": e("losses"),
            "load_energy_mwh": e("load"),
            "ext_grid_energy_mwh": e("ext_grid"),
            "pv_energy_mwh": e("pv"),
            "pv_curtailed_mwh": e("pv_curtailed"),
            "wind_energy_mwh": e("wind"),
            "wind_curtailed_mwh": e("wind_curtailed"),
            "grid_solves": self._grid_solves,
            "non_converged_steps": self._non_converged,
            "ev_energy_mwh": e("ev"),
            "ev_energy_short_mwh": round(self._counts.get("ev_energy_short_mwh", 0.0), 9),
            "battery_charge_mwh": e("battery_charge"),
            "battery_discharge_mwh": e("battery_discharge"),
            "telemetry_values_delivered": int(self._counts.get("telemetry_values_delivered", 0)),
            "commands_success": int(self._counts.get("commands_success", 0)),
            "commands_failed": int(self._counts.get("commands_failed", 0)),
            "commands_timeout": int(self._counts.get("commands_timeout", 0)),
            "crew_jobs": int(self._counts.get("crew_jobs", 0)),
            "switching_operations": int(self._counts.get("switching_operations", 0)),
            "protection_trips": int(self._counts.get("protection_trips", 0)),
            "protection_recloses": int(self._counts.get("protection_recloses", 0)),
            "tap_operations": int(self._counts.get("set_tap_operations", 0)),
            "capacitor_operations": int(self._counts.get("set_step_operations", 0)),
            "dms_cycles": int(self._counts.get("dms_cycles", 0)),
            "dms_cycles_failed": int(self._counts.get("dms_cycles_failed", 0)),
            "bad_data_detected": int(self._counts.get("bad_data_detected", 0)),
            "se_error_mean_pu": _finite(float(np.mean(self._se_abs_dv))) if self._se_abs_dv
            else None,
            "se_error_max_pu": _finite(max(self._se_abs_dv)) if self._se_abs_dv else None,
            **reliability,
        }


def _finite(x: float) -> float | None:
    return round(x, 9) if math.isfinite(x) else None
