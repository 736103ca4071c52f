"""EV fleet and batteries as the scenario describes them, resolved against the grid.

EVs charge at one charging point per bus (a group of plugs); each point is a new load
``EV <bus>`` in the net. Batteries drive existing storage elements or new ones.
"""

from __future__ import annotations

import numpy as np
import pandapower as pp

from twin.build.resolve import find_element
from twin.grid.names import element_names
from twin.models import battery as bat
from twin.models import ev
from twin.models.battery import BatteryPlan
from twin.models.ev import EVPlan
from twin.models.load_shapes import load_kind
from twin.rng import component_rng
from twin.scenario import ScenarioError
from twin.scenario.field import BatteriesSpec, EVFleetSpecModel


def plan_ev_fleet(net: pp.pandapowerNet, spec: EVFleetSpecModel, seed: int,
                  duration_s: float, start_hour_utc: float, longitude_deg: float) -> EVPlan | None:
    """Place the EVs, draw their sessions and add one EV load per charging bus."""
    if spec.n_ev == 0:
        return None
    bus_names = element_names(net, "bus")
    if spec.buses == "load_buses":
        buses = sorted({int(b) for b in net.load.bus})
    else:
        buses = [find_element(net, "bus", b, f"ev_fleet.buses[{k}]")
                 for k, b in enumerate(spec.buses)]
    if not buses:
        raise ScenarioError("ev_fleet.buses: expected at least one bus; found none")
    load_names = element_names(net, "load")
    # Home chargers where people live, work chargers where they work: weight each bus by
    # its residential or commercial load.
    weights = {"residential": np.zeros(len(buses)), "commercial": np.zeros(len(buses))}
    for name, bus, p in zip(load_names, net.load.bus, net.load.p_mw):
        if int(bus) in buses:
            kind = "residential" if load_kind(name) == "residential" else "commercial"
            weights[kind][buses.index(int(bus))] += abs(float(p))
    rng = component_rng(seed, "ev/fleet")
    n_home = int(round(spec.n_ev * spec.home_share))
    home_cp = _spread(rng, n_home, weights["residential"])
    work_cp = _spread(rng, spec.n_ev - n_home, weights["commercial"])
    charge_point = np.concatenate([home_cp, work_cp]).astype(int)
    v2g = np.zeros(spec.n_ev, dtype=bool)
    v2g[rng.choice(spec.n_ev, size=int(round(spec.n_ev * spec.v2g_share)), replace=False)] = True
    fleet_spec = ev.EVFleetSpec(
        charge_point=charge_point, capacity_mwh=spec.capacity_kwh / 1000.0,
        p_charge_max_mw=spec.p_charge_max_kw / 1000.0,
        p_discharge_max_mw=np.where(v2g, spec.p_discharge_max_kw / 1000.0, 0.0),
        eta_charge=spec.eta_charge, eta_discharge=spec.eta_discharge, soc_min=spec.soc_min,
        n_charge_points=len(buses))
    hour_local = (start_hour_utc + longitude_deg / 15.0) % 24.0
    home = ev.draw_sessions(rng, fleet_spec, 0.0, duration_s, _pattern(spec.home, "home"),
                            start_hour_local=hour_local, evs=np.arange(n_home))
    work = ev.draw_sessions(rng, fleet_spec, 0.0, duration_s, _pattern(spec.work, "work"),
                            start_hour_local=hour_local, evs=np.arange(n_home, spec.n_ev))
    fleet = ev.EVFleet(fleet_spec, ev.Sessions.concatenate(home, work), t_start_s=0.0)
    names = [bus_names[list(net.bus.index).index(b)] for b in buses]
    load_idx = [int(pp.create_load(net, b, p_mw=0.0, q_mvar=0.0, name=f"EV {n}", type="EV"))
                for b, n in zip(buses, names)]
    return EVPlan(fleet, names, load_idx, spec.strategy)


def _pattern(p, key: str) -> ev.SessionPattern:
    try:
        return ev.SessionPattern(
            arrival_mean_h=p.arrival_h, arrival_std_h=p.arrival_sd_h,
            departure_mean_h=p.departure_h, departure_std_h=p.departure_sd_h,
            departure_next_day=p.departure_next_day, e_drive_mean_kwh=p.energy_kwh,
            e_drive_std_kwh=p.energy_sd_kwh, p_daily=p.p_daily)
    except ValueError as exc:  # e.g. windows that let one day's stay overlap the next
        raise ScenarioError(f"ev_fleet.{key}: expected a feasible pattern; {exc}") from None


def _spread(rng: np.random.Generator, n: int, weights: np.ndarray) -> np.ndarray:
    """``n`` charging point indices drawn with probability ∝ weights (uniform if all zero)."""
    if n == 0:
        return np.zeros(0, dtype=int)
    w = weights if weights.sum() > 0 else np.ones_like(weights)
    return rng.choice(len(w), size=n, p=w / w.sum())


def plan_batteries(net: pp.pandapowerNet, spec: BatteriesSpec, duration_s: float,
                   start_hour_utc: float) -> BatteryPlan | None:
    """Batteries for the grid's storage elements (and new ones), with their requests."""
    rows: dict[int, dict] = {}
    storage_names = element_names(net, "storage")
    default = {"eta_charge": spec.eta_charge, "eta_discharge": spec.eta_discharge,
               "soc_min": spec.soc_min, "soc_max": spec.soc_max, "soc_init": spec.soc_init,
               "self_discharge_per_h": spec.self_discharge_per_h, "mode": spec.mode,
               "schedule": []}
    if spec.attach_existing:
        for pos, idx in enumerate(net.storage.index):
            p_max = _storage_rating_mw(net, int(idx))
            e = net.storage.at[idx, "max_e_mwh"]
            rows[int(idx)] = {**default, "name": storage_names[pos], "p_max_mw": p_max,
                              "capacity_mwh": float(e) if np.isfinite(e) and e > 0
                              else spec.hours * p_max}
    for k, unit in enumerate(spec.units):
        key = f"batteries.units[{k}]"
        if unit.storage is not None:
            idx = find_element(net, "storage", unit.storage, f"{key}.storage")
            p_max = unit.p_max_kw / 1000.0 if unit.p_max_kw else _storage_rating_mw(net, idx)
        else:
            bus = find_element(net, "bus", unit.bus, f"{key}.bus")
            p_max = unit.p_max_kw / 1000.0
            idx = int(pp.create_storage(net, bus, p_mw=0.0, max_e_mwh=unit.capacity_kwh / 1000,
                                        name=unit.name, max_p_mw=p_max, min_p_mw=-p_max))
        row = {**rows.get(idx, default), "name": unit.name, "p_max_mw": p_max}
        row["capacity_mwh"] = (unit.capacity_kwh / 1000.0 if unit.capacity_kwh
                               else row.get("capacity_mwh", spec.hours * p_max))
        if unit.soc_init is not None:
            row["soc_init"] = unit.soc_init
        if unit.mode is not None:
            row["mode"] = unit.mode
        row["schedule"] = unit.schedule
        if row["mode"] == "schedule" and not unit.schedule:
            raise ScenarioError(f"{key}.schedule: expected entries for mode 'schedule'; found none")
        rows[idx] = row
    if not rows:
        return None
    col = {k: np.array([r[k] for r in rows.values()], dtype=float) for k in
           ("capacity_mwh", "p_max_mw", "eta_charge", "eta_discharge", "soc_min", "soc_max",
            "soc_init", "self_discharge_per_h")}
    bspec = bat.BatterySpec(
        capacity_mwh=col["capacity_mwh"], p_charge_max_mw=col["p_max_mw"],
        p_discharge_max_mw=col["p_max_mw"], eta_charge=col["eta_charge"],
        eta_discharge=col["eta_discharge"], soc_min=col["soc_min"], soc_max=col["soc_max"],
        self_discharge_per_h=col["self_discharge_per_h"], soc_init=col["soc_init"])
    # Hourly price intervals from the start of the first UTC day to past the end.
    offset_s = start_hour_utc * 3600.0
    n_hours = int(np.ceil((duration_s + offset_s) / 3600.0)) + 24
    price_times = np.arange(n_hours) * 3600.0 - offset_s
    prices = np.array(spec.prices_eur_mwh, dtype=float)[np.arange(n_hours) % 24]
    by_price = bat.price_schedule(price_times, prices, bspec, start_hour_local=0.0) \
        if any(r["mode"] == "price" for r in rows.values()) else np.zeros((n_hours, len(rows)))
    own: list[tuple[np.ndarray, np.ndarray]] = []  # each battery's timetable (times, p)
    days = np.arange(n_hours // 24 + 1) * 86400.0 - offset_s
    for j, r in enumerate(rows.values()):
        if r["mode"] == "schedule":
            entries = sorted(r["schedule"], key=lambda e: e.at)
            # the daily timetable, repeated for every day of the run
            t = (days[:, None] + np.array([e.at for e in entries])[None, :]).ravel()
            p = np.tile([e.p_kw / 1000.0 for e in entries], len(days))
            own.append((t, p))
        elif r["mode"] == "price":
            own.append((price_times, by_price[:, j]))
        else:  # setpoint: nothing until the DMS commands
            own.append((price_times[:1], np.zeros(1)))
    times = np.unique(np.concatenate([t for t, _p in own]))
    requests = np.column_stack([bat.schedule_request(times, t, p) for t, p in own])
    modes = [r["mode"] for r in rows.values()]
    return BatteryPlan(list(r["name"] for r in rows.values()), list(rows), bspec, modes,
                       times, requests, price_times, prices)


def _storage_rating_mw(net: pp.pandapowerNet, idx: int) -> float:
    for col in ("max_p_mw", "sn_mva"):
        if col in net.storage.columns and np.isfinite(net.storage.at[idx, col]) \
                and net.storage.at[idx, col] > 0:
            return float(net.storage.at[idx, col])
    raise ScenarioError(f"batteries: storage {idx} has no power rating (max_p_mw or sn_mva); "
                        "give p_max_kw under batteries.units")
