"""Supervisory control and monitoring of the DMS paper's section III: after each estimate.

The DMS's picture is its present-state net (:func:`twin.dms.cycle.forecast_model` with the
metered heads and powers it knows), solved once a cycle. On it, in this order:

- **cells** (ELECTRA web of cells, distributed control): each cell's tie-line deviation
  controller (:class:`twin.dms.tie_line.TieLineController`) moves the cell's own batteries,
  EV charging and DER to hold its export at schedule; a tie branch's flow is its fresh
  telemetry where metered, else the solved net's;
- **curtailment** (central control): an estimated overload above the limit is relieved by
  remote power limits of DER above 30 kWp, least curtailed energy first
  (:func:`twin.dms.curtailment.plan_curtailment`); limits are lifted after ``hold_s`` and
  set again if the congestion returns;
- **tso_dso**: the TSO's reactive-power request at the interface is met with DER Q,
  capacitors and the OLTC (:func:`twin.dms.tso_dso.meet_q_request`) when the metered Q is
  off by more than the tolerance, and an active-power limit there with batteries first,
  then curtailment (:func:`twin.dms.tso_dso.meet_p_limit`); the interface's capability is
  recorded every cycle;
- **monitoring**: per cell the inertia (rotating and synthetic, deliverable to and
  receivable from neighbours), the storage (SOC counted from metered power, schedule,
  timetable, price, power it can add or withhold for 15 minutes) and each battery's row;
  and the V2G
  participation: the share of connected V2G power the charging points report they can
  hold for FCR, and the DSO's assignment of its FCR request over them (advisory).

Every decision carries its reason; ``advisory`` records without commands.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandapower as pp
import pandas as pd

from twin.dms.cells import (
    Cell,
    branch_flows_mw,
    cell_export_mw,
    cell_of_bus,
    tie_branches,
)
from twin.dms.curtailment import plan_curtailment, units_from_net
from twin.dms.decisions import Decision, Mode
from twin.dms.inertia import InertiaUnit, inertia_per_cell
from twin.dms.netcopy import working_copy
from twin.dms.storage_monitor import storage_rows, storage_view
from twin.dms.tie_line import FlexResource, TieLineController
from twin.dms.tso_dso import (
    interface_q_capability,
    inverter_q_ranges,
    meet_p_limit,
    meet_q_request,
)
from twin.dms.v2g import V2GParticipation, assign_fcr
from twin.grid.names import element_names
from twin.recording.schema import (
    dms_cell_record,
    dms_interface_record,
    dms_storage_record,
)


@dataclass(frozen=True)
class BatteryInfo:
    """A battery as the DMS's database knows it."""

    name: str
    capacity_mwh: float
    p_max_mw: float
    soc_init: float = 0.5
    soc_min: float = 0.1
    soc_max: float = 0.9
    eta_charge: float = 0.95
    eta_discharge: float = 0.95


@dataclass(frozen=True)
class TsoRequest:
    """The TSO's request from ``at_s`` on: a Q set-point at the interface and limits on
    its active import / export (None: none)."""

    at_s: float
    q_mvar: float | None = None
    p_max_import_mw: float | None = None
    p_max_export_mw: float | None = None


@dataclass(frozen=True)
class SupervisorySettings:
    cells: tuple[Cell, ...] = ()
    cells_mode: Mode = "off"
    kp: float = 0.1
    ki_per_s: float = 0.01
    curtailment_mode: Mode = "off"
    max_loading_percent: float = 100.0
    remote: frozenset[str] = frozenset()  # small DER (≤ 30 kWp) with a remote interface
    curtailment_hold_s: float = 900.0
    curtailment_margin_percent: float = 5.0  # plan to the limit less this: estimates err
    tso_mode: Mode = "off"
    interface: str | None = None          # "trafo:<name>"
    requests: tuple[TsoRequest, ...] = ()
    tolerance_mvar: float = 0.1
    monitoring: bool = False
    wind_inertia_h_s: float = 0.0
    storage_inertia_h_s: float = 0.0
    rotating_h_s: float = 2.0             # combustion engines and turbines (CHP)
    v2g_fcr_mw: float = 0.0               # FCR the DSO seeks from the EVs [MW, symmetric]
    ev_p_discharge_max_mw: float = 0.0    # per V2G-capable EV (the fleet's database)
    ev_v2g_share: float = 0.0             # share of EVs able to discharge
    batteries: tuple[BatteryInfo, ...] = ()
    price_times_s: tuple[float, ...] = ()
    prices_eur_mwh: tuple[float, ...] = ()
    schedule_times_s: tuple[float, ...] = ()
    schedule_p_mw: tuple[tuple[float, ...], ...] = ()  # per time, per battery (in order)
    band_pu: tuple[float, float] = (0.95, 1.05)
    stale_after_s: float = 120.0

    @property
    def active(self) -> bool:
        return (self.cells_mode != "off" or self.curtailment_mode != "off"
                or self.tso_mode != "off" or self.monitoring)


#: How long the DSO's assignment of FCR to the EVs stands [s] (FCR is contracted in blocks;
#: Continental Europe's are 4 h, a DSO's own assignment may be finer).
V2G_BLOCK_S = 900.0

#: sgen types that turn a synchronous machine (rotating inertia), by a word in the type
ROTATING_TYPES = ("chp", "diesel", "gas", "hydro", "synchronous")


class Supervisor:
    """The section-III functions of the built-in DMS, kept between cycles."""

    def __init__(self, settings: SupervisorySettings, net: pp.pandapowerNet,
                 controllable: frozenset[str]):
        self.s = settings
        self.controllable = controllable  # grid elements the field can command
        self.ties = tie_branches(net, settings.cells) if settings.cells else []
        self.cell_of_bus = cell_of_bus(settings.cells) if settings.cells else {}
        self.controllers = {c.name: TieLineController(c, settings.kp, settings.ki_per_s)
                            for c in settings.cells}
        self.bus_names = dict(zip(net.bus.index, element_names(net, "bus")))
        # the model's injections and shunts: (name, index, cell or None), fixed for the run
        self.elements = {table: [(name, idx, self._cell(net, table, idx)) for name, idx in
                                 zip(element_names(net, table), net[table].index)]
                         for table in ("load", "sgen", "storage", "shunt")}
        self.battery = {b.name: b for b in settings.batteries}
        self.e_mwh = {b.name: b.soc_init * b.capacity_mwh for b in settings.batteries}
        self.last_t_s: float | None = None
        self.limits: dict[str, float] = {}   # "sgen:<name>" -> the DMS's limit [MW]
        self.limits_since_s = -math.inf
        self.q_request: float | None = None
        self.p_limits: tuple[float | None, float | None] = (None, None)
        # set-points a Q request moved, and their values before it: (action, target) -> value
        self.q_restore: dict[tuple[str, str], float] = {}
        self.v2g_assigned_mw: float | None = None
        self.v2g_next_s = -math.inf

    # ------------------------------------------------------------------ helpers
    def _fresh(self, telemetry: pd.DataFrame, t_s: float) -> dict[tuple[str, str], float]:
        if not len(telemetry):
            return {}
        ok = telemetry["source_t_s"].to_numpy() >= t_s - self.s.stale_after_s
        rows = telemetry[ok]
        return {(e, q): float(v) for e, q, v in zip(rows["element"], rows["quantity"],
                                                    rows["value"])}

    def _cell(self, net, table: str, idx) -> str | None:
        return self.cell_of_bus.get(self.bus_names.get(int(net[table].at[idx, "bus"])))

    def _commandable(self, table: str) -> list[str]:
        """Names of the ``table`` elements the field can command."""
        return [n for n, _i, _c in self.elements[table] if f"{table}:{n}" in self.controllable]

    def _index(self, ref: str) -> int:
        table, name = ref.split(":", 1)
        return int(next(i for n, i, _c in self.elements[table] if n == name))

    # ------------------------------------------------------------------ the step
    def on_estimate(self, t_s: float, model: pp.pandapowerNet, telemetry: pd.DataFrame
                    ) -> tuple[list[Decision], list[dict]]:
        """Decisions and records after an estimate; ``model`` is the present-state net
        (not changed)."""
        dt_s = t_s - self.last_t_s if self.last_t_s is not None else None
        self.last_t_s = t_s
        fresh = self._fresh(telemetry, t_s)
        self._count_energy(fresh, dt_s)
        net = working_copy(model, ("load", "sgen", "storage", "shunt", "trafo"))
        try:
            pp.runpp(net, numba=False)
        except Exception as exc:  # noqa: BLE001 - no picture, no supervisory decision
            return [Decision(t_s, "supervisory", "none", "grid", None, "advisory",
                             f"The present state did not solve ({exc}); supervisory "
                             "functions wait for the next cycle.", {})], []
        decisions: list[Decision] = []
        records: list[dict] = []
        if self.s.curtailment_mode != "off":
            decisions += self._curtail(t_s, net)
        if self.s.tso_mode != "off" and self.s.interface:
            d, r = self._tso(t_s, net, fresh)
            decisions += d
            records += r
        if self.s.cells:
            d, r = self._cells(t_s, net, fresh, dt_s)
            decisions += d
            records += r
        return decisions, records

    # ------------------------------------------------------------------ storage energy
    def _count_energy(self, fresh: Mapping, dt_s: float | None) -> None:
        """SOC by counting the metered power since the last cycle (load convention)."""
        if dt_s is None:
            return
        for name, b in self.battery.items():
            p = fresh.get((f"storage:{name}", "p_mw"))
            if p is None or not math.isfinite(p):
                continue
            e = self.e_mwh[name] + dt_s / 3600.0 * (
                b.eta_charge * p if p > 0 else p / b.eta_discharge)
            self.e_mwh[name] = min(max(e, 0.0), b.capacity_mwh)

    def _schedule(self, t_s: float, names: list[str]) -> list[float]:
        """Each battery's scheduled power from ``t_s`` [MW, + charging]; NaN: none known."""
        order = [b.name for b in self.s.batteries]
        if not self.s.schedule_times_s:
            return [math.nan] * len(names)
        k = max(0, int(np.searchsorted(np.asarray(self.s.schedule_times_s), t_s, "right")) - 1)
        row = self.s.schedule_p_mw[k]
        return [float(row[order.index(n)]) for n in names]

    def _price(self, t_s: float) -> float:
        if not self.s.prices_eur_mwh:
            return math.nan
        k = int(np.searchsorted(np.asarray(self.s.price_times_s), t_s, "right")) - 1
        return float(self.s.prices_eur_mwh[max(0, k)])

    # ------------------------------------------------------------------ curtailment
    def _curtail(self, t_s: float, net) -> list[Decision]:
        s = self.s
        mode = "advisory" if s.curtailment_mode == "advisory" else "direct"
        out: list[Decision] = []
        if self.limits and t_s - self.limits_since_s >= s.curtailment_hold_s:
            # lift, and look again next cycle (the congestion may be gone)
            for target in sorted(self.limits):
                peak = float(net.sgen.at[self._index(target), "sn_mva"])
                out.append(Decision(t_s, "curtailment", "set_der_p_limit", target, peak, mode,
                                    f"{target.split(':', 1)[1]}: the limit is lifted after "
                                    f"{s.curtailment_hold_s / 60:.0f} min; the DMS looks "
                                    "again at the next cycle.", {}))
            self.limits = {}
            return out
        # the estimate and the minute until the next cycle both err: plan with a margin
        target = s.max_loading_percent - s.curtailment_margin_percent
        loading = pd.concat([net.res_line.loading_percent, net.res_trafo.loading_percent])
        if not (loading > target).any():
            return out
        units = units_from_net(net, self._commandable("sgen"), remote=s.remote)
        plan = plan_curtailment(net, units, max_loading_percent=target)
        for sp in plan.set_points:
            if sp.curtailed_mw <= 1e-6:
                continue
            self.limits[sp.target] = sp.p_limit_mw
        if self.limits:
            self.limits_since_s = t_s  # the hold counts from the last tightening
        return out + plan.decisions(t_s, mode)

    # ------------------------------------------------------------------ TSO–DSO
    def _tso(self, t_s: float, net, fresh: Mapping) -> tuple[list[Decision], list[dict]]:
        s = self.s
        for req in s.requests:
            if req.at_s <= t_s + 1e-6:
                self.q_request = req.q_mvar
                self.p_limits = (req.p_max_import_mw, req.p_max_export_mw)
        trafo = s.interface
        name = trafo.split(":", 1)[1]
        der = [f"sgen:{n}" for n in self._commandable("sgen")]
        caps = [f"shunt:{n}" for n in self._commandable("shunt")]
        ranges = inverter_q_ranges(net, der)
        cap = interface_q_capability(net, trafo, ranges, caps)
        q_now = fresh.get((trafo, "q_mvar"), cap.q_now_mvar)
        p_now = fresh.get((trafo, "p_mw"), cap.p_now_mw)
        records = [dms_interface_record(t_s, name, p_now, q_now, cap.q_min_mvar,
                                        cap.q_max_mvar, self.q_request, *self.p_limits)]
        mode = "advisory" if s.tso_mode == "advisory" else "direct"
        decisions: list[Decision] = []
        max_import, max_export = self.p_limits
        over = (max_import is not None and p_now > max_import) or (
            max_export is not None and -p_now > max_export)
        if over:
            # batteries first, then the least curtailed energy of DER above 30 kWp
            bats = {f"storage:{n}": (-self.battery[n].p_max_mw, self.battery[n].p_max_mw)
                    for n in self._commandable("storage") if n in self.battery}
            units = units_from_net(net, self._commandable("sgen"), remote=s.remote)
            p_plan = meet_p_limit(net, trafo, max_import_mw=max_import,
                                  max_export_mw=max_export, units=units, batteries=bats)
            decisions += p_plan.decisions(t_s, mode) or [Decision(
                t_s, "tso_dso", "none", trafo, None, "advisory", p_plan.reason,
                {"p_mw": round(p_now, 4)})]
        if self.q_request is None:
            return decisions + self._restore(t_s, mode), records
        if abs(q_now - self.q_request) <= s.tolerance_mvar:
            return decisions, records
        plan = meet_q_request(net, trafo, self.q_request, ranges, caps, band_pu=s.band_pu,
                              tolerance_mvar=s.tolerance_mvar / 2)
        made = plan.decisions(t_s, mode)
        for d in made:  # what to return to when the request ends
            self.q_restore.setdefault((d.action, d.target), plan.before.get(d.target, 0.0))
        decisions += made or [Decision(
            t_s, "tso_dso", "none", trafo, self.q_request, "advisory", plan.reason,
            {"q_mvar": round(q_now, 4)})]
        return decisions, records

    def _restore(self, t_s: float, mode) -> list[Decision]:
        """The TSO's request ended: DER Q, capacitors and taps back to where they were."""
        out = [Decision(t_s, "tso_dso", action, target,
                        float(round(value, 4 if action == "set_der_q" else 0)), mode,
                        f"The TSO's reactive-power request at {self.s.interface.split(':')[1]} "
                        f"ended: {target.split(':', 1)[1]} back to where it was before it.", {})
               for (action, target), value in sorted(self.q_restore.items())]
        self.q_restore = {}
        return out

    # ------------------------------------------------------------------ cells
    def _cells(self, t_s: float, net, fresh: Mapping, dt_s: float | None
               ) -> tuple[list[Decision], list[dict]]:
        s = self.s
        flows = branch_flows_mw(net)
        for tie in self.ties:
            metered = fresh.get((tie.element, "p_mw"))
            if metered is not None and math.isfinite(metered):
                flows[tie.element] = metered
        export = cell_export_mw(self.ties, flows)
        resources = self._resources(net, fresh)
        monitor = self._monitor(t_s, net, flows) if s.monitoring else ({}, [])
        per_cell, records = monitor
        decisions: list[Decision] = []
        if s.monitoring:
            decisions += self._v2g(t_s, net, fresh, per_cell)
        mode = "advisory" if s.cells_mode == "advisory" else "direct"
        for cell in s.cells:
            ctl = self.controllers[cell.name]
            e = export.get(cell.name, math.nan) - cell.tie_schedule_mw
            action = None
            if s.cells_mode != "off" and dt_s is not None and dt_s > 0:
                action = ctl.step(e, resources.get(cell.name, []), dt_s)
                decisions += self._cell_decisions(t_s, action, resources.get(cell.name, []),
                                                  mode)
            records.append(dms_cell_record(
                t_s, cell.name, export.get(cell.name, math.nan), cell.tie_schedule_mw,
                correction_mw=action.correction_mw if action else math.nan,
                residual_mw=action.residual_mw if action else math.nan,
                **per_cell.get(cell.name, {})))
        return decisions, records

    def _resources(self, net, fresh: Mapping) -> dict[str, list[FlexResource]]:
        out: dict[str, list[FlexResource]] = {}
        for name, idx, cell in self.elements["storage"]:
            ref = f"storage:{name}"
            b = self.battery.get(name)
            if ref not in self.controllable or b is None or cell is None:
                continue
            p_load = fresh.get((ref, "p_mw"), float(net.storage.at[idx, "p_mw"]))
            soc = self.e_mwh[name] / b.capacity_mwh
            gen = -p_load
            up = max(b.p_max_mw - gen, 0.0) if soc > b.soc_min + 1e-3 else max(-gen, 0.0)
            down = max(gen + b.p_max_mw, 0.0) if soc < b.soc_max - 1e-3 else max(gen, 0.0)
            out.setdefault(cell, []).append(FlexResource(ref, "battery", gen, up, down))
        for name, idx, cell in self.elements["load"]:
            ref = f"load:{name}"
            if ref not in self.controllable or cell is None:
                continue
            p_load = max(fresh.get((ref, "p_mw"), float(net.load.at[idx, "p_mw"])), 0.0)
            # charging can be cut to zero, not forced up
            out.setdefault(cell, []).append(FlexResource(ref, "ev", -p_load, p_load, 0.0))
        for name, idx, cell in self.elements["sgen"]:
            ref = f"sgen:{name}"
            if ref not in self.controllable or cell is None:
                continue
            p = max(fresh.get((ref, "p_mw"), float(net.sgen.at[idx, "p_mw"])), 0.0)
            limited = ref in self.limits
            up = max(float(net.sgen.at[idx, "sn_mva"]) - p, 0.0) if limited else 0.0
            out.setdefault(cell, []).append(FlexResource(ref, "der", p, up, p))
        return out

    def _cell_decisions(self, t_s: float, action, resources, mode) -> list[Decision]:
        kind = {r.target: r.kind for r in resources}
        inputs = {"cell": action.cell, "deviation_mw": round(action.deviation_mw, 4),
                  "correction_mw": round(action.correction_mw, 4)}
        out = []
        for target in action.delta_mw:
            p = action.set_points_mw[target]
            if kind[target] == "battery":
                out.append(Decision(t_s, "cells", "set_battery_p", target, round(-p, 6), mode,
                                    action.reason, inputs))
            elif kind[target] == "ev":
                out.append(Decision(t_s, "cells", "set_ev_limit", target,
                                    round(max(-p, 0.0), 6), mode, action.reason, inputs))
            else:
                out.append(Decision(t_s, "cells", "set_der_p_limit", target,
                                    round(max(p, 0.0), 6), mode, action.reason, inputs))
        return out

    # ------------------------------------------------------------------ V2G
    def _v2g(self, t_s: float, net, fresh: Mapping, per_cell: dict[str, dict]
             ) -> list[Decision]:
        """The share of connected V2G power that can take part in FCR, per cell, from the
        charging points' reports, and the DSO's assignment of its FCR request over them.

        ``v2g_share``: the symmetric reserve the points can hold for 15 min over the
        discharge rating of their plugged-in V2G-capable EVs (at most 1: a charging EV also
        offers its charging power)."""
        s = self.s
        points, cells, rows = [], [], []
        for name, _idx, cell in self.elements["load"]:
            ref = f"load:{name}"
            inject = fresh.get((ref, "fcr_inject_mw"))
            if inject is None:
                continue
            n = max(fresh.get((ref, "n_connected"), 0.0), 0.0)
            rows.append((n * s.ev_v2g_share * s.ev_p_discharge_max_mw, max(inject, 0.0),
                         max(fresh.get((ref, "fcr_absorb_mw"), 0.0), 0.0),
                         fresh.get((ref, "p_mw"), math.nan), n))
            points.append(ref)
            cells.append(cell)
        if not points:
            return []
        connected, inject, absorb, p, n = (np.array(c, dtype=float) for c in zip(*rows))
        cap = _v2g_capability(points, connected, inject, absorb, p, n)
        assigned = assign_fcr(s.v2g_fcr_mw, cap) if s.v2g_fcr_mw > 0 else None
        for cell in per_cell:
            mine = np.array([c == cell for c in cells])
            fields = per_cell[cell]
            fields.update(v2g_connected_mw=float(connected[mine].sum()),
                          v2g_up_mw=float(inject[mine].sum()),
                          v2g_down_mw=float(absorb[mine].sum()),
                          v2g_symmetric_mw=float(cap.symmetric_mw[mine].sum()))
            fields["v2g_share"] = (min(fields["v2g_symmetric_mw"] / fields["v2g_connected_mw"],
                                       1.0) if fields["v2g_connected_mw"] > 0 else 0.0)
            if assigned is not None:
                fields["v2g_assigned_mw"] = float(np.asarray(assigned.reserve_mw)[mine].sum())
        if assigned is None or t_s < self.v2g_next_s:
            return []
        # FCR is contracted in blocks: the assignment stands for V2G_BLOCK_S
        self.v2g_next_s = t_s + V2G_BLOCK_S
        self.v2g_assigned_mw = assigned.assigned_mw
        return [Decision(t_s, "v2g", "none", "ev:fleet", round(assigned.assigned_mw, 6),
                         "advisory", assigned.reason,
                         {"requested_mw": s.v2g_fcr_mw,
                          "symmetric_mw": round(cap.symmetric_total_mw, 6),
                          "share": round(cap.share_total, 4)})]

    # ------------------------------------------------------------------ monitoring
    def _monitor(self, t_s: float, net, flows: Mapping[str, float]
                 ) -> tuple[dict[str, dict], list[dict]]:
        s = self.s
        cells = {c.name: [] for c in s.cells}
        spare_out: dict[str, dict[str, float]] = {c: {} for c in cells}
        spare_in: dict[str, dict[str, float]] = {c: {} for c in cells}
        rating = _ratings_mw(net)
        for tie in self.ties:
            if tie.neighbour is None:
                continue
            cells[tie.cell].append(tie.neighbour)
            out_mw = tie.sign * flows.get(tie.element, 0.0)  # export of tie.cell over it
            r = rating.get(tie.element, 0.0)
            spare_out[tie.cell][tie.neighbour] = spare_out[tie.cell].get(
                tie.neighbour, 0.0) + (max(r - out_mw, 0.0) if r > 0 else 0.0)
            spare_in[tie.cell][tie.neighbour] = spare_in[tie.cell].get(
                tie.neighbour, 0.0) + (max(r + out_mw, 0.0) if r > 0 else 0.0)
        cells = {c: sorted(set(n)) for c, n in cells.items()}
        units = []
        for name, idx, cell in self.elements["sgen"]:
            if cell is None or not net.sgen.at[idx, "in_service"]:
                continue
            kind = str(net.sgen.at[idx, "type"]).lower() if "type" in net.sgen else ""
            s_mva = float(net.sgen.at[idx, "sn_mva"])
            p = float(net.res_sgen.at[idx, "p_mw"])
            if any(w in kind for w in ROTATING_TYPES) and p > 0:
                units.append(InertiaUnit(name, cell, "rotating", s.rotating_h_s, s_mva))
            elif kind in ("wp", "wind") and s.wind_inertia_h_s > 0 and p > 1e-6:
                units.append(InertiaUnit(name, cell, "synthetic", s.wind_inertia_h_s, s_mva,
                                         up_mw=0.1 * s_mva, down_mw=min(0.1 * s_mva, p)))
        for name, idx, cell in self.elements["storage"]:
            b = self.battery.get(name)
            if b is None or cell is None or s.storage_inertia_h_s <= 0:
                continue
            gen = -float(net.res_storage.at[idx, "p_mw"])
            units.append(InertiaUnit(name, cell, "synthetic", s.storage_inertia_h_s,
                                     b.p_max_mw, up_mw=max(b.p_max_mw - gen, 0.0),
                                     down_mw=max(b.p_max_mw + gen, 0.0)))
        inertia = inertia_per_cell(units, cells, spare_out, spare_in)
        per_cell = {c: {"rotating_mws": v.rotating_mws, "synthetic_mws": v.synthetic_mws,
                        "deliverable_mws": v.deliverable_mws, "receivable_mws": v.receivable_mws}
                    for c, v in inertia.items()}
        records = []
        storage = {name: idx for name, idx, _cell in self.elements["storage"]}
        names = [b.name for b in s.batteries if b.name in storage]
        if names:
            idx = [storage[n] for n in names]
            info = [self.battery[n] for n in names]
            buses = [self.bus_names[int(net.storage.at[i, "bus"])] for i in idx]
            rows = storage_rows(
                names, "battery", buses,
                soc=[self.e_mwh[n] / b.capacity_mwh for n, b in zip(names, info)],
                capacity_mwh=[b.capacity_mwh for b in info],
                p_mw=[float(net.res_storage.at[i, "p_mw"]) for i in idx],
                p_schedule_mw=self._schedule(t_s, names),
                price_eur_mwh=self._price(t_s),
                cell_of_bus={b: self.cell_of_bus.get(b, "") for b in buses},
                p_charge_max_mw=[b.p_max_mw for b in info],
                p_discharge_max_mw=[b.p_max_mw for b in info],
                soc_min=[b.soc_min for b in info], soc_max=[b.soc_max for b in info],
                eta_charge=[b.eta_charge for b in info],
                eta_discharge=[b.eta_discharge for b in info])
            records += [dms_storage_record(t_s, r.name, r.cell, r.soc, r.e_mwh, r.p_mw,
                                           r.price_eur_mwh, r.up_mw, r.down_mw,
                                           r.p_schedule_mw) for r in rows]
            for c in cells:
                view = storage_view(rows, c, cells)
                per_cell.setdefault(c, {}).update(
                    storage_e_mwh=view.own_total.e_mwh, storage_up_mw=view.own_total.up_mw,
                    storage_down_mw=view.own_total.down_mw,
                    neighbour_storage_up_mw=view.neighbour_total.up_mw)
        return per_cell, records


def _v2g_capability(points, connected_mw, inject_mw, absorb_mw, p_mw, n_connected
                    ) -> V2GParticipation:
    """The EV operators' reported capability as :class:`V2GParticipation` (what each point
    can hold for 15 minutes each way, departure targets kept)."""
    sym = np.minimum(inject_mw, absorb_mw)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(connected_mw > 0, np.clip(sym / connected_mw, 0.0, 1.0), 0.0)
    total = float(connected_mw.sum())
    return V2GParticipation(
        points=tuple(points), n_connected=n_connected, p_max_mw=connected_mw, p_mw=p_mw,
        up_mw=inject_mw, down_mw=absorb_mw, symmetric_mw=sym, share=share,
        p_max_total_mw=total, up_total_mw=float(inject_mw.sum()),
        down_total_mw=float(absorb_mw.sum()), symmetric_total_mw=float(sym.sum()),
        share_total=float(sym.sum()) / total if total > 0 else 0.0)


def _ratings_mw(net) -> dict[str, float]:
    """Thermal rating of every line and trafo as active power at nominal voltage [MW]; 0 for
    one out of service or behind an open switch (a normally open tie carries nothing)."""
    out = {}
    vn = net.bus.vn_kv
    sw = net.switch
    open_lines = set(sw.element[(sw.et == "l") & ~sw.closed.astype(bool)].astype(int))
    for name, i in zip(element_names(net, "line"), net.line.index):
        row = net.line.loc[i]
        carries = bool(row.in_service) and int(i) not in open_lines
        out[f"line:{name}"] = float(math.sqrt(3) * vn[row.from_bus] * row.max_i_ka
                                    * row.get("parallel", 1) * row.get("df", 1.0)) * carries
    for name, i in zip(element_names(net, "trafo"), net.trafo.index):
        out[f"trafo:{name}"] = float(net.trafo.at[i, "sn_mva"])
    return out
