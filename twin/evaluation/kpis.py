"""Key performance indicators of a run, accumulated from the recorded points as they stream.

Time weighting: a sample holds from its time until the next sample of the same kind (or the
end of the run), so event-triggered extra power flows between regular steps count for exactly
the time they were valid.

Warmup: the KPIs that judge operation (voltage-violation minutes, the extreme bus voltages,
the highest line and transformer loading, overload minutes) are not charged for the run's
opening state, which the DMS had no chance to change: they count the states valid at or after
``warmup_s`` (a state set before and still valid after it counts). Energies, counts and the
reliability indices are balances of the whole run and ignore the warmup.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from twin.evaluation.reliability import MOMENTARY_S, ReliabilityLedger
from twin.recording.columns import ColumnBatch
from twin.recording.schema import (
    BATTERY,
    BUS,
    COMMAND,
    CREW,
    DMS_CELL,
    DMS_CYCLE,
    DMS_DECISION,
    DMS_ESTIMATE,
    EV,
    FREQUENCY,
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

if TYPE_CHECKING:
    from twin.scenario import Scenario

__all__ = ["KpiAccumulator", "kpi_point", "kpi_warmup_s"]  # kpi_point: the schema's

#: A line or transformer is overloaded above this loading [%].
OVERLOAD_PERCENT = 100.0
#: Device tables the KPIs sum row by row (few rows; the same floats as point by point).
_DEVICE_TABLES = frozenset({PV, WIND, EV, BATTERY})


def kpi_warmup_s(scenario: Scenario) -> float:
    r"""The scenario's KPI warmup [s]: ``kpis.warmup`` where given, else the first grid step
    after the DMS's first cycle when the DMS is enabled (the first state its commands can
    reach), else 0.

    Notes
    -----
    With the DMS's first cycle at :math:`t_c` (``dms.cycle_offset``) and the grid step
    :math:`\Delta t`: :math:`t_w = (\lfloor t_c / \Delta t \rfloor + 1)\,\Delta t`, e.g.
    60 s for a first cycle at 5 s and a 1-minute step. A cycle exactly at a step reads the
    state solved there, so its commands reach the next step at the earliest.
    """
    if scenario.kpis.warmup is not None:
        return float(scenario.kpis.warmup)
    if not scenario.dms.enabled:
        return 0.0
    steps = math.floor(scenario.dms.cycle_offset / scenario.step + 1e-9) + 1
    return steps * scenario.step


@dataclass
class _Integral:
    """∫ value dt over piecewise-constant samples [value·h], counted from ``from_t_s`` on."""

    last_t_s: float | None = None
    last_value: float = 0.0
    total: float = 0.0
    from_t_s: float = -math.inf

    def add(self, t_s: float, value: float) -> None:
        self.close(t_s)
        self.last_t_s, self.last_value = t_s, value

    def close(self, t_s: float) -> None:
        if self.last_t_s is None:
            return
        t0 = max(self.last_t_s, self.from_t_s)
        if t_s > t0 and math.isfinite(self.last_value):
            self.total += self.last_value * (t_s - t0) / 3600.0
        self.last_t_s = max(self.last_t_s, t_s)


@dataclass
class _HeldMax:
    """The largest value (and its element) of piecewise-constant states valid at some time
    at or after ``from_t_s``: a state set before ``from_t_s`` counts if it still holds after
    it. Each :meth:`add` replaces the state (``None``: a state without a value)."""

    from_t_s: float = 0.0
    best: tuple[float, str] | None = None
    _held: tuple[float, float, str] | None = None  # (since, value, element), set before from_t_s

    def add(self, t_s: float, value: float | None, element: str = "") -> None:
        self.close(t_s)
        self._held = None
        if value is None or not math.isfinite(value):
            return
        if t_s >= self.from_t_s:
            self._fold(value, element)
        else:
            self._held = (t_s, value, element)

    def close(self, t_s: float) -> None:
        """The held state ends at ``t_s`` (the next state or the end of the run)."""
        if self._held is not None and t_s > self.from_t_s:
            self._fold(self._held[1], self._held[2])
            self._held = None

    def _fold(self, value: float, element: str) -> None:
        if self.best is None or value > self.best[0]:
            self.best = (float(value), element)

    def value(self) -> float:
        return self.best[0] if self.best is not None else math.nan

    def element(self) -> str:
        return self.best[1] if self.best is not None else ""


@dataclass
class KpiAccumulator:
    """Feed it the points of each recorder step; :meth:`finish` returns the KPI dict.

    Parameters
    ----------
    band_pu : (low, high)
        Allowed voltage band [p.u.].
    customers : dict
        Customers per load name (loads not in it, e.g. EV charging points, are not counted).
    momentary_s : float
        Interruptions up to this long are momentary [s] (IEEE 1366).
    warmup_s : float
        Voltage violations, extreme voltages, the highest loadings and overloads count
        from this time on [s since start] (:func:`kpi_warmup_s`).
    """

    band_pu: tuple[float, float] = (0.95, 1.05)
    customers: dict[str, int] = field(default_factory=dict)
    momentary_s: float = MOMENTARY_S
    warmup_s: float = 0.0
    _ledger: ReliabilityLedger | None = None
    _energy: dict[str, _Integral] = field(default_factory=dict)
    _max: dict[str, _HeldMax] = field(default_factory=dict)
    _grid_solves: int = 0
    _non_converged: int = 0
    _counts: dict[str, float] = field(default_factory=dict)
    _truth_vm: dict[str, float] = field(default_factory=dict)  # bus -> latest true voltage
    # the same from column batches: (bus names, name -> position, latest finite vm or NaN)
    _truth_table: tuple[Sequence[str], dict[str, int], np.ndarray] | None = None
    _customer_rows: tuple[Sequence[str], np.ndarray] | None = None  # loads with customers
    _se_abs_dv: list[float] = field(default_factory=list)
    # the area's frequency over the run: lowest, highest [Hz], largest |RoCoF| [Hz/s]
    _frequency: list[float] | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.warmup_s) and self.warmup_s >= 0):
            raise ValueError(f"KpiAccumulator: warmup_s ≥ 0; found {self.warmup_s!r}")
        self._ledger = ReliabilityLedger(self.customers, self.momentary_s)
        for key in _JUDGED:
            self._energy[key] = _Integral(from_t_s=self.warmup_s)
        for key in ("vm_max", "vm_min_neg", "line", "trafo"):
            self._max[key] = _HeldMax(from_t_s=self.warmup_s)

    def _count(self, key: str, amount: float = 1.0) -> None:
        self._counts[key] = self._counts.get(key, 0.0) + amount

    def _integral(self, key: str) -> _Integral:
        if key not in self._energy:
            self._energy[key] = _Integral()
        return self._energy[key]

    def add(self, t_s: float, points: Iterable[Point | ColumnBatch]) -> None:
        """All points recorded at scenario time ``t_s`` [s since start], and the column
        batches of table snapshots (read whole, vectorised; same KPIs as their points).

        Raises
        ------
        ValueError
            For a point whose measurement is not in :mod:`twin.recording.schema`: a
            misspelt measurement would otherwise silently leave its KPIs at zero.
        """
        pv_mw = wind_mw = pv_curt_mw = wind_curt_mw = ev_mw = bat_charge_mw = bat_dis_mw = 0.0
        pf_mw = 0.0
        seen_pv = seen_wind = seen_ev = seen_bat = False
        violations: dict[str, int] = {}
        vm_lo = vm_hi = None  # (vm, bus)
        loading: dict[str, tuple[float, str] | None] = {}  # "line"/"trafo" -> highest
        overloaded = 0  # lines and transformers above OVERLOAD_PERCENT
        supplied: dict[str, bool] = {}
        demand_mw: dict[str, float] = {}
        grid_seen = False
        batch_violations = 0  # buses outside the band in column batches
        ledger_due = False  # a load batch had supply states (maybe none changed)
        for p in _expand(points):
            if type(p) is ColumnBatch:
                m = p.measurement
                if m == BUS:
                    extremes = self._bus_batch(p)
                    if extremes is not None:
                        lo, hi, n_out = extremes
                        if vm_lo is None or lo[0] < vm_lo[0]:
                            vm_lo = lo
                        if vm_hi is None or hi[0] > vm_hi[0]:
                            vm_hi = hi
                        batch_violations += n_out
                elif m == LOAD:
                    ledger_due = self._load_batch(p, supplied, demand_mw) or ledger_due
                elif m == PV and p.n_rows:
                    seen_pv = True
                    pv_mw = _add_each(pv_mw, _values(p, "p_mw"))
                    pv_curt_mw = _add_each(pv_curt_mw, _values(p, "curtailed_mw"))
                    pf_mw = _add_each(pf_mw, _values(p, "pf_reduction_mw"))
                elif m == WIND and p.n_rows:
                    seen_wind = True
                    wind_mw = _add_each(wind_mw, _values(p, "p_mw"))
                    wind_curt_mw = _add_each(wind_curt_mw, _values(p, "curtailed_mw"))
                    pf_mw = _add_each(pf_mw, _values(p, "pf_reduction_mw"))
                elif m == EV and p.n_rows:
                    seen_ev = True
                    for p_mw, short_mwh in zip(_values(p, "p_mw"),
                                               _values(p, "energy_short_mwh")):
                        ev_mw += p_mw  # row by row, in the points' order: the same sums
                        self._count("ev_energy_short_mwh", short_mwh)
                elif m == BATTERY and p.n_rows:
                    seen_bat = True
                    for p_mw in _values(p, "p_mw"):
                        bat_charge_mw += max(p_mw, 0.0)
                        bat_dis_mw += max(-p_mw, 0.0)
                elif m in (LINE, TRAFO) and p.n_rows:
                    kind = "line" if m == LINE else "trafo"
                    loading.setdefault(kind, None)
                    top = _loading_batch(p)
                    if top is not None:
                        best, n_over = top
                        if loading[kind] is None or best[0] > loading[kind][0]:
                            loading[kind] = best
                        overloaded += n_over
                continue
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
                    if vm_lo is None or vm < vm_lo[0]:
                        vm_lo = (vm, el)
                    if vm_hi is None or vm > vm_hi[0]:
                        vm_hi = (vm, el)
                    violations[el] = int(not self.band_pu[0] <= vm <= self.band_pu[1])
            elif m == LOAD:
                if "supplied" in f and el in self.customers:
                    supplied[el] = bool(f["supplied"])
                    demand_mw[el] = float(f.get("p_demand_mw", 0.0))
            elif m in (LINE, TRAFO):
                kind = "line" if m == LINE else "trafo"
                value = f.get("loading_percent")
                loading.setdefault(kind, None)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    if loading[kind] is None or value > loading[kind][0]:
                        loading[kind] = (float(value), el)
                    overloaded += value > OVERLOAD_PERCENT
            elif m == PV:
                seen_pv = True
                pv_mw += float(f.get("p_mw", 0.0))
                pv_curt_mw += float(f.get("curtailed_mw", 0.0))
                pf_mw += float(f.get("pf_reduction_mw", 0.0))
            elif m == WIND:
                seen_wind = True
                wind_mw += float(f.get("p_mw", 0.0))
                wind_curt_mw += float(f.get("curtailed_mw", 0.0))
                pf_mw += float(f.get("pf_reduction_mw", 0.0))
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
                if truth is None:
                    truth = self._batch_truth(el)
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
            elif m == DMS_DECISION:
                # every mode (direct, remote, manual, advisory) counts: what the DMS decided
                self._count(f"decision:{p.tags.get('function', '')}."
                            f"{p.tags.get('action', '')}")
            elif m == CREW:
                self._count("crew_jobs")
            elif m == FREQUENCY:
                # the step's extremes: the nadir may fall between two recorded steps
                f = p.fields
                lo, hi = f.get("f_min_hz", math.inf), f.get("f_max_hz", -math.inf)
                rocof = f.get("rocof_max_hz_s", 0.0)
                if self._frequency is None:
                    self._frequency = [lo, hi, rocof]
                else:
                    seen = self._frequency
                    seen[0], seen[1], seen[2] = min(seen[0], lo), max(seen[1], hi), max(
                        seen[2], rocof)
                # the twin's responses, each held over the step the record ends
                dt_h = float(f.get("dt_s", 0.0)) / 3600.0
                for source, key in _RESPONSE_SOURCES:
                    if key in f:
                        self._count(f"response_{source}_mwh", float(f[key]) * dt_h)
            elif m == DMS_CELL:
                deviation = f.get("deviation_mw")
                if isinstance(deviation, float) and math.isfinite(deviation):
                    self._count(f"cell_abs_dev:{el}", abs(deviation))
                    self._count(f"cell_cycles:{el}")
            elif m == PROTECTION:
                if p.tags.get("kind") in ("trip", "reclose"):
                    self._count(f"protection_{p.tags['kind']}s")
            elif m not in MEASUREMENTS:
                check_measurement(m, "KPI accumulator")
        if seen_pv or seen_wind:
            self._integral("pf_reduction").add(t_s, pf_mw)
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
        if supplied or ledger_due:
            self._ledger.update(t_s, supplied, demand_mw)
        if grid_seen:
            # Buses without a voltage (failed solve, isolated) count as not violating.
            n_violations = sum(violations.values()) + batch_violations
            self._integral("violation_any").add(t_s, float(n_violations > 0))
            self._integral("violation_bus").add(t_s, float(n_violations))
        if grid_seen or vm_hi is not None:
            self._max["vm_max"].add(t_s, *(vm_hi or (None, "")))
            self._max["vm_min_neg"].add(t_s, *((-vm_lo[0], vm_lo[1]) if vm_lo else (None, "")))
        if grid_seen or loading:
            # a solve (or a set of loadings) is the whole new state: a kind it leaves out has
            # no value now (failed solve); lines without a loading count as not overloaded
            for kind in ("line", "trafo"):
                if grid_seen or kind in loading:
                    self._max[kind].add(t_s, *(loading.get(kind) or (None, "")))
            self._integral("overload_any").add(t_s, float(overloaded > 0))
            self._integral("overload_element").add(t_s, float(overloaded))

    def _bus_batch(self, batch: ColumnBatch
                   ) -> tuple[tuple[float, str], tuple[float, str], int] | None:
        """Lowest and highest finite voltage (the first bus holding each) and the buses
        outside the band; the latest truth per bus for the estimation error."""
        vm = batch.fields.get("vm_pu")
        if vm is None:
            return None
        mask = batch.valid["vm_pu"]
        names = batch.names
        truth = self._truth_table
        if truth is None or truth[0] is not names:
            truth = self._truth_table = (names, {n: i for i, n in enumerate(names)},
                                         np.full(len(names), np.nan))
        rows = np.arange(len(names)) if batch.rows is None else batch.rows
        if mask is not None:
            if not mask.any():
                return None
            vm, rows = vm[mask], rows[mask]
        truth[2][rows] = vm
        lo, hi = int(np.argmin(vm)), int(np.argmax(vm))  # the first of equal values
        low, high = self.band_pu
        n_out = int(np.count_nonzero((vm < low) | (vm > high)))
        return ((float(vm[lo]), names[int(rows[lo])]), (float(vm[hi]), names[int(rows[hi])]),
                n_out)

    def _batch_truth(self, bus: str) -> float | None:
        if self._truth_table is None:
            return None
        position = self._truth_table[1].get(bus)
        if position is None:
            return None
        value = float(self._truth_table[2][position])
        return value if math.isfinite(value) else None

    def _load_batch(self, batch: ColumnBatch, supplied: dict[str, bool],
                    demand_mw: dict[str, float]) -> bool:
        """Supply states and demands of the loads with customers for the reliability ledger;
        whether the batch holds any (then the ledger takes this time, as for points).

        Only what the ledger does not know yet: a supply state that changed, and the demand
        of the loads cut off now. The ledger keeps the others' states, and uses a demand
        only while its load is cut off (energy not supplied), so its result is the same as
        with every load, without a dict of thousands of loads at every step.
        """
        state = batch.fields.get("supplied")
        if state is None or not self.customers:
            return False
        names = batch.names
        cached = self._customer_rows
        if cached is None or cached[0] is not names:
            cached = self._customer_rows = (
                names, np.fromiter((n in self.customers for n in names), bool, len(names)),
                np.ones(len(names), bool))  # the ledger's states: every load starts supplied
        _, has_customers, known = cached
        rows = np.arange(len(names)) if batch.rows is None else batch.rows
        positions = np.flatnonzero(has_customers[rows])
        if batch.valid["supplied"] is not None:
            positions = positions[batch.valid["supplied"][positions]]
        if not len(positions):
            return False
        now = state[positions] != 0
        changed = now != known[rows[positions]]
        known[rows[positions]] = now
        for i in positions[changed].tolist():
            supplied[names[int(rows[i])]] = bool(state[i])
        cut_off = positions[~now]
        if len(cut_off):
            demand = batch.fields.get("p_demand_mw")
            for i in cut_off.tolist():
                valid = demand is not None and (batch.valid["p_demand_mw"] is None
                                                or batch.valid["p_demand_mw"][i])
                demand_mw[names[int(rows[i])]] = float(demand[i]) if valid else 0.0
        return True

    def finish(self, end_t_s: float) -> dict[str, object]:
        for integral in self._energy.values():
            integral.close(end_t_s)
        for held in self._max.values():
            held.close(end_t_s)

        def e(key: str) -> float:
            return round(self._energy[key].total, 9) if key in self._energy else 0.0

        reliability = self._ledger.finish(end_t_s)
        line_max, trafo_max = self._max["line"], self._max["trafo"]
        decisions = {key.removeprefix("decision:"): int(n)
                     for key, n in sorted(self._counts.items()) if key.startswith("decision:")}
        return {
            "voltage_band_pu": list(self.band_pu),
            "warmup_s": self.warmup_s,
            "voltage_violation_minutes": round(e("violation_any") * 60.0, 6),
            "voltage_violation_bus_minutes": round(e("violation_bus") * 60.0, 6),
            "vm_min_pu": _finite(-self._max["vm_min_neg"].value()),
            "vm_max_pu": _finite(self._max["vm_max"].value()),
            "max_line_loading_percent": _finite(line_max.value()),
            "max_line_loading_element": line_max.element(),
            "max_trafo_loading_percent": _finite(trafo_max.value()),
            "max_trafo_loading_element": trafo_max.element(),
            "overload_minutes": round(e("overload_any") * 60.0, 6),
            "overload_element_minutes": round(e("overload_element") * 60.0, 6),
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
            "dms_decisions_total": sum(decisions.values()),
            "dms_decisions": decisions,
            "se_error_mean_pu": _finite(float(np.mean(self._se_abs_dv))) if self._se_abs_dv
            else None,
            "se_error_max_pu": _finite(max(self._se_abs_dv)) if self._se_abs_dv else None,
            # None without a frequency simulation (scenario section ``frequency``)
            "frequency_nadir_hz": _finite(self._frequency[0]) if self._frequency else None,
            "frequency_max_hz": _finite(self._frequency[1]) if self._frequency else None,
            "rocof_max_hz_s": _finite(self._frequency[2]) if self._frequency else None,
            # energy the twin's units gave the area (MWh, + = injected; P(f): withheld, ≤ 0),
            # None unless they answer the frequency (``frequency.response``)
            "frequency_response_mwh": {
                source: round(self._counts.get(f"response_{source}_mwh", 0.0), 9)
                for source, _key in _RESPONSE_SOURCES}
            if f"response_{_RESPONSE_SOURCES[0][0]}_mwh" in self._counts else None,
            # each cell's mean |export − schedule| over the DMS's cycles [MW] (dms.cells)
            "tie_line_deviation_mw": {
                key.split(":", 1)[1]: round(n_abs / self._counts[
                    "cell_cycles:" + key.split(":", 1)[1]], 6)
                for key, n_abs in sorted(self._counts.items())
                if key.startswith("cell_abs_dev:")} or None,
            # what PV and wind did not feed in, by why: the DMS's limits, P(f) [MWh]
            "curtailed_mwh_by_reason": {"dms_limit": round(e("pv_curtailed")
                                                           + e("wind_curtailed"), 9),
                                        "pf": e("pf_reduction")},
            **reliability,
        }


#: the twin's frequency responses in ``frequency`` records: KPI key, record field
_RESPONSE_SOURCES = (("fcr_battery", "twin_fcr_battery_mw"), ("fcr_ev", "twin_fcr_ev_mw"),
                     ("synthetic_inertia", "twin_inertia_mw"), ("pf", "twin_pf_mw"))

#: the integrals charged from the warmup on (the others are whole-run balances)
_JUDGED = ("violation_any", "violation_bus", "overload_any", "overload_element")


def numeric_kpi_names() -> list[str]:
    """The names of the numeric KPIs kpis.json holds (what a check or a study may name)."""
    return sorted(k for k, v in KpiAccumulator().finish(0.0).items()
                  if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)))


def _finite(x: float) -> float | None:
    return round(x, 9) if math.isfinite(x) else None


def _expand(items: Iterable[Point | ColumnBatch]) -> Iterable[Point | ColumnBatch]:
    """The items without the batches of tables no KPI reads."""
    for item in items:
        if type(item) is not ColumnBatch:
            yield item
        elif item.measurement in (BUS, LOAD, LINE, TRAFO):
            yield item
        elif item.measurement in _DEVICE_TABLES:
            yield item


def _loading_batch(batch: ColumnBatch) -> tuple[tuple[float, str], int] | None:
    """The highest finite loading (the first element holding it) and how many are above
    :data:`OVERLOAD_PERCENT`; None when no row has a loading."""
    loading = batch.fields.get("loading_percent")
    if loading is None:
        return None
    mask = batch.valid["loading_percent"]
    positions = None
    if mask is not None:
        if not mask.any():
            return None
        positions = np.flatnonzero(mask)
        loading = loading[positions]
    top = int(np.argmax(loading))
    row = top if positions is None else int(positions[top])
    name = batch.names[row] if batch.rows is None else batch.names[int(batch.rows[row])]
    return (float(loading[top]), name), int(np.count_nonzero(loading > OVERLOAD_PERCENT))


def _values(batch: ColumnBatch, key: str) -> list[float]:
    """A column as floats, 0.0 where a row has no value (as ``fields.get(key, 0.0)``)."""
    column = batch.fields.get(key)
    if column is None:
        return [0.0] * batch.n_rows
    mask = batch.valid[key]
    values = column.astype(float, copy=False).tolist()
    if mask is not None:
        for i in np.flatnonzero(~mask).tolist():
            values[i] = 0.0
    return values


def _add_each(total: float, values: list[float]) -> float:
    """``total`` plus each value in turn: the same float as adding point by point."""
    for value in values:
        total += value
    return total
