"""Scenario → mosaik world → run.

The builder prepares everything that does not change during the run (the net, the plants,
the profiles, the weather), starts the in-process simulators, wires them as in DESIGN's data
flow, and runs. Recording and KPIs happen in the recorder simulator as the data streams.
"""

from __future__ import annotations

import logging
import time as wallclock
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import mosaik
import pandapower as pp
import pandas as pd

from twin.build.devices import add_capacitors, add_line_switches, manual_switches
from twin.build.dms import plan_dms
from twin.build.field import build_field_plan, grid_refs
from twin.build.plants import PlantSet, pv_plants, wind_plants
from twin.build.profiles import Profiles, simbench_profiles, synthetic_profiles
from twin.build.protection import plan_protection
from twin.build.storage import plan_batteries, plan_ev_fleet
from twin.dms.controller import DMSPlan
from twin.evaluation.kpis import KpiAccumulator
from twin.evaluation.reliability import default_customers
from twin.grid.build import build_net
from twin.grid.model import SUMMARY_ATTRS as GRID_SUMMARY_ATTRS
from twin.grid.names import ELEMENT_TABLES, element_names
from twin.models import pv as pv_model
from twin.models.battery import BatteryPlan
from twin.models.ev import EVPlan
from twin.models.field import FieldPlan
from twin.models.protection import Fault, Protection
from twin.models.weather import WEATHER_ATTRS, read_weather_csv, synthetic_weather
from twin.recording.schema import Store
from twin.recording.tally import Tally
from twin.rng import component_rng
from twin.scenario import Scenario, ScenarioError, resolve_path

SIM_CONFIG: mosaik.SimConfig = {
    "Grid": {"python": "simulators.grid:GridSim"},
    "Series": {"python": "simulators.timeseries:TimeSeriesSim"},
    "DER": {"python": "simulators.der:DERSim"},
    "Recorder": {"python": "simulators.recorder:RecorderSim"},
    "Scripted": {"python": "simulators.scripted:ScriptedSim"},
    "Field": {"python": "simulators.field:FieldSim"},
    "EV": {"python": "simulators.storage:EVSim"},
    "Battery": {"python": "simulators.storage:BatterySim"},
    "DMS": {"python": "simulators.dms:DMSSim"},
}


@dataclass
class Prepared:
    """Everything the world is built from, computed once before the run."""

    scenario: Scenario
    net: pp.pandapowerNet
    names: dict[str, list[str]]
    times: pd.DatetimeIndex
    pv: PlantSet
    wind: PlantSet
    profiled_sgens: list[int]
    profiles: Profiles
    weather: pd.DataFrame
    ev: EVPlan | None = None
    batteries: BatteryPlan | None = None
    field: FieldPlan | None = None
    dms: DMSPlan | None = None
    protection: Protection | None = None
    faults: tuple[tuple[int, Fault], ...] = ()  # (tick, fault)


@dataclass
class WorldHandles:
    """What a hook gets to add simulators to a built world before it runs."""

    world: mosaik.World
    grid: dict[str, mosaik.Entity]  # grid element entities by eid ("switch-4", "bus-3")
    recorder: mosaik.Entity
    registry: dict[str, tuple[str, str]]  # full entity id -> (measurement, element)


@dataclass
class RunOutcome:
    kpis: dict
    ticks: int
    wall_time_s: float
    grid_solves: int
    points_recorded: int
    events: list = field(default_factory=list)


def prepare(scenario: Scenario, scenario_file: Path | None = None,
            net: pp.pandapowerNet | None = None) -> Prepared:
    """Build the net, plants, profiles and weather of ``scenario``."""
    net = build_net(scenario.grid, scenario_file) if net is None else net
    add_capacitors(net, scenario.devices)
    add_line_switches(net, scenario.devices)
    pv = pv_plants(net, scenario.pv)
    wind = wind_plants(net, scenario.wind)
    overlap = set(pv.sgen_idx) & set(wind.sgen_idx)
    same_name = sorted(set(pv.names) & set(wind.names))
    if same_name:
        raise ScenarioError(f"pv/wind: expected different plant names; found {same_name} in both")
    if overlap:
        raise ScenarioError(f"pv/wind: an sgen cannot be both a PV and a wind plant ({sorted(overlap)})")
    names = {t: element_names(net, t) for t in ELEMENT_TABLES}
    driven = set(pv.sgen_idx) | set(wind.sgen_idx)
    profiled = [int(i) for i in net.sgen.index if int(i) not in driven]
    times = scenario.clock.timestamps(scenario.n_steps, scenario.step_ticks)
    w = scenario.weather
    if scenario.profiles.source == "simbench":
        profiles = simbench_profiles(net, times, scenario.profiles, profiled)
    else:
        profiles = synthetic_profiles(net, names, times, scenario.profiles, profiled,
                                      w.longitude_deg, scenario.seed)
    if w.source == "csv":
        assert w.csv is not None
        weather = read_weather_csv(resolve_path(scenario_file, w.csv), times,
                                   w.latitude_deg, w.longitude_deg, w.altitude_m)
    else:
        weather = synthetic_weather(
            times, w.latitude_deg, w.longitude_deg, w.altitude_m,
            component_rng(scenario.seed, "weather"), cloud_cover=w.cloud_cover,
            cloud_variability=w.cloud_variability, wind_mean_m_s=w.wind_mean_m_s,
            temp_min_c=w.temp_min_c, temp_max_c=w.temp_max_c)
    start_hour_utc = scenario.start.hour + scenario.start.minute / 60.0
    ev_plan = plan_ev_fleet(net, scenario.ev_fleet, scenario.seed, scenario.duration,
                            start_hour_utc, w.longitude_deg)  # adds the EV loads
    battery_plan = plan_batteries(net, scenario.batteries, scenario.duration, start_hour_utc)
    names = {t: element_names(net, t) for t in ELEMENT_TABLES}  # with the new elements
    prepared = Prepared(scenario, net, names, times, pv, wind, profiled, profiles, weather,
                        ev=ev_plan, batteries=battery_plan)
    prepared.protection, prepared.faults = plan_protection(scenario, net)
    manual = manual_switches(net, scenario.devices)
    devices = {"pv": dict(zip(pv.names, pv.sgen_idx)), "wind": dict(zip(wind.names, wind.sgen_idx)),
               "battery": dict(zip(battery_plan.names, battery_plan.storage_idx))
               if battery_plan else {},
               "ev": dict(zip(ev_plan.points, ev_plan.load_idx)) if ev_plan else {}}
    if scenario.rtus or manual or scenario.commands or scenario.faults:
        prepared.field = build_field_plan(
            scenario, net, pv=devices["pv"], wind=devices["wind"],
            batteries=devices["battery"], ev_loads=devices["ev"], manual=manual)
    prepared.dms = plan_dms(scenario, net, weather, pv.names, wind.names,
                            field_refs=grid_refs(net, devices))
    return prepared


@dataclass
class _Wiring:
    """What the wiring steps share while the world is built."""

    world: mosaik.World
    prep: Prepared
    step: int
    until: int
    grid: mosaik.Entity
    children: dict[str, mosaik.Entity]
    recorder: mosaik.Entity
    registry: dict[str, tuple[str, str]]
    periods: dict[str, int]
    tables: dict[str, dict[str, list[str]]]
    plants: dict[str, mosaik.Entity] = field(default_factory=dict)  # "pv:PV 3" -> entity
    series: mosaik.ModelFactory | None = None
    field: mosaik.Entity | None = None

    def record(self, entity: mosaik.Entity, measurement: str, element: str, *attrs: str,
               periodic: bool = True) -> None:
        """Connect ``entity`` to the recorder as ``measurement``/``element``."""
        self.registry[entity.full_id] = (measurement, element)
        if periodic:
            self.periods[entity.full_id] = self.step
        self.world.connect(entity, self.recorder, *attrs)

    def record_table(self, parent: mosaik.Entity, measurement: str, names: list[str]) -> None:
        """Record all children of ``parent`` from its one ``snapshot`` output (one mosaik
        connection instead of one per child and attribute)."""
        self.tables[parent.full_id] = {measurement: list(names)}
        self.record(parent, measurement, parent.eid, "snapshot")


def run_world(prep: Prepared, store: Store, run_id: str, until_s: float | None = None,
              progress: Callable[[int], None] | None = None,
              hook: Callable[[WorldHandles], None] | None = None,
              speed: float | None = None) -> RunOutcome:
    """Build the mosaik world for ``prep`` and run it, recording into ``store``; with
    ``speed``, paced at that many simulated seconds per wall-clock second."""
    sc = prep.scenario
    clock = sc.clock
    until_ticks = clock.ticks(until_s if until_s is not None else sc.duration)
    if until_ticks > clock.ticks(sc.duration):
        raise ScenarioError(f"--until: expected at most the scenario's duration ({sc.duration:g} s)")

    world = mosaik.World(SIM_CONFIG, time_resolution=sc.time_resolution,
                         skip_greetings=True, configure_logging=False)
    kpis = KpiAccumulator(band_pu=sc.kpis.voltage_band_pu, customers=customers(prep),
                          momentary_s=sc.reliability.momentary)
    tally = Tally()
    try:
        grid = world.start("Grid", sim_id="grid").Grid(
            net=prep.net, step_ticks=sc.step_ticks, protection=prep.protection,
            faults=prep.faults)
        registry: dict[str, tuple[str, str]] = {grid.full_id: ("grid", "grid")}
        periods: dict[str, int] = {}  # filled by the wiring: periodic sources of the recorder
        tables: dict[str, dict[str, list[str]]] = {grid.full_id: prep.names}
        recorder = world.start("Recorder", sim_id="recorder").Recorder(
            registry=registry, tables=tables, periods=periods,
            store=store, clock=clock,
            run_id=run_id, kpis=kpis, progress=progress, tally=tally, step_ticks=sc.step_ticks)
        w = _Wiring(world, prep, sc.step_ticks, until_ticks, grid,
                    {e.eid: e for e in grid.children}, recorder, registry, periods, tables)
        # One simulator replays every time series (profiles and weather): each simulator
        # costs mosaik bookkeeping at every step, whatever it does.
        w.series = world.start("Series", sim_id="series",
                               attrs=["p_mw", "q_mvar", *WEATHER_ATTRS])
        _wire_profiles(w)
        _wire_weather_and_der(w)
        _wire_storage(w)
        _wire_field(w)
        _wire_dms(w)
        # Everything the grid knows goes to the recorder, as one snapshot per solve.
        world.connect(grid, recorder, *GRID_SUMMARY_ATTRS, "snapshot", "solved_at", "records")
        if hook is not None:
            hook(WorldHandles(world, w.children, recorder, registry))
    except BaseException:
        _shutdown(world)
        raise
    t0 = wallclock.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            # (shuts down when it ends; in live mode late steps only warn, ignored above:
            # the lag is measured and reported by the caller)
            world.run(until=until_ticks, print_progress=False,
                      rt_factor=1.0 / speed if speed else None, rt_strict=False)
    except BaseException:
        _shutdown(world)  # a failing simulator leaves the world running otherwise
        raise
    wall = wallclock.perf_counter() - t0
    return RunOutcome(
        kpis=kpis.finish(clock.seconds(until_ticks)),
        ticks=until_ticks,
        wall_time_s=wall,
        grid_solves=tally.grid_solves,
        points_recorded=tally.points,
        events=tally.events,
    )


def customers(prep: Prepared) -> dict[str, int]:
    """Customers per load name: the scenario's, else derived from the load's size; EV
    charging points are not customers of their own."""
    net, given = prep.net, prep.scenario.reliability.customers
    names = prep.names["load"]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ScenarioError(f"reliability.customers: expected load names; found {unknown}")
    types = net.load["type"] if "type" in net.load.columns else [None] * len(net.load)
    return {name: given.get(name, default_customers(float(p)))
            for name, p, kind in zip(names, net.load.p_mw, types) if str(kind) != "EV"}


def _wire_profiles(w: _Wiring) -> None:
    """Loads and the generators no physical model drives replay their profiles."""
    prep = w.prep
    series = w.series
    columns = [("load", idx, prep.profiles.load_p_mw, prep.profiles.load_q_mvar)
               for idx in prep.profiles.load_p_mw.columns]
    columns += [("sgen", idx, prep.profiles.sgen_p_mw, prep.profiles.sgen_q_mvar)
                for idx in prep.profiled_sgens]
    for table, idx, p, q in columns:
        src = series.Series(eid=f"{table}-{idx}", step_ticks=w.step,
                            columns={"p_mw": p[idx], "q_mvar": q[idx]})
        w.world.connect(src, w.children[f"{table}-{idx}"], "p_mw", "q_mvar")


def _wire_weather_and_der(w: _Wiring) -> None:
    prep, world, sc = w.prep, w.world, w.prep.scenario
    weather = w.series.Series(eid="weather", step_ticks=w.step, columns={
        a: prep.weather[a] for a in WEATHER_ATTRS})
    w.record(weather, "weather", "weather", *WEATHER_ATTRS)
    sim = world.start("DER", sim_id="der") if prep.pv.names or prep.wind.names else None
    for kind, plants in (("pv", prep.pv), ("wind", prep.wind)):
        if not plants.names:
            continue
        if kind == "pv":
            p = plants.params
            park = sim.PVPark(names=plants.names, step_ticks=w.step, plants=pv_model.PVPlants(
                p_peak_mw=p["p_peak_mw"], tilt_deg=p["tilt_deg"],
                azimuth_deg=p["azimuth_deg"], s_inverter_mva=p["s_inverter_mva"]))
            world.connect(weather, park, *WEATHER_ATTRS)
        else:
            park = sim.WindFarm(names=plants.names, step_ticks=w.step,
                                p_rated_mw=plants.params["p_rated_mw"],
                                hub_height_m=plants.params["hub_height_m"],
                                shear_exponent=sc.wind.shear_exponent)
            world.connect(weather, park, "wind_speed_m_s")
        w.record_table(park, kind, [p.eid for p in park.children])
        for plant, sgen_idx in zip(park.children, plants.sgen_idx):
            world.connect(plant, w.children[f"sgen-{sgen_idx}"], "p_mw", "q_mvar")
            w.plants[f"{kind}:{plant.eid}"] = plant


def _wire_storage(w: _Wiring) -> None:
    """The EV fleet (one load per charging bus) and the batteries (the storage elements)."""
    prep, world = w.prep, w.world
    if prep.ev is not None:
        fleet = world.start("EV", sim_id="ev").EVFleet(plan=prep.ev, step_ticks=w.step)
        w.record_table(fleet, "ev", prep.ev.points)
        for cp, load_idx in zip(fleet.children, prep.ev.load_idx):
            world.connect(cp, w.children[f"load-{load_idx}"], "p_mw", "q_mvar")
            w.plants[f"ev:{cp.eid}"] = cp
    if prep.batteries is not None:
        sim = world.start("Battery", sim_id="battery")
        batteries = sim.Batteries(plan=prep.batteries, step_ticks=w.step)
        w.record_table(batteries, "battery", prep.batteries.names)
        for unit, idx in zip(batteries.children, prep.batteries.storage_idx):
            world.connect(unit, w.children[f"storage-{idx}"], "p_mw", "q_mvar")
            w.plants[f"battery:{unit.eid}"] = unit


def _wire_field(w: _Wiring) -> None:
    """RTUs, links, crews and the devices commands reach; scenario commands as an operator."""
    plan, sc, world, prep = w.prep.field, w.prep.scenario, w.world, w.prep
    if plan is None:
        return
    # The scenario's operator commands go with the field: a separate simulator that steps
    # only at command times would hold back mosaik's pruning of its data cache all run.
    operator = [(sc.clock.ticks(c.after) if c.after > 0 else 0,
                 {"id": f"op-{k}", "target": c.target, "action": c.action, "value": c.value,
                  "source": "operator"}) for k, c in enumerate(sc.commands)]
    field_ent = world.start("Field", sim_id="field").Field(
        plan=plan, seed=sc.seed, until_ticks=w.until, grid_step_ticks=w.step,
        record_every_ticks=w.step,
        scheduled_commands=operator,
        handover_ticks=(prep.dms.cycle_offset_ticks, prep.dms.cycle_ticks) if prep.dms else None)
    w.field = field_ent
    w.registry[field_ent.full_id] = ("field", "field")  # it sends "records" only
    # The RTUs read the grid's state as it was one tick before: no same-tick loop with the
    # commands the field sends back to the grid.
    world.connect(w.grid, field_ent, "snapshot", time_shifted=True,
                  initial_data={"snapshot": None})
    world.connect(w.grid, field_ent, "solved_at", time_shifted=1)  # a new state: scan
    world.connect(field_ent, w.recorder, "records")
    devices = {e.eid: e for e in field_ent.children}
    for dev in plan.devices.values():
        table, idx = plan.targets[dev.eid]
        if dev.kind in ("switch", "trafo", "shunt", "line"):
            world.connect(devices[dev.eid], w.children[f"{table}-{idx}"], dev.attr)
        elif dev.kind in ("pv", "wind"):
            world.connect(devices[dev.eid], w.plants[dev.ref], "p_limit_mw", "q_setpoint_mvar")
        else:
            target = w.plants.get(dev.ref)
            if target is None:
                raise ScenarioError(f"rtus: {dev.ref} has no simulator to command")
            world.connect(devices[dev.eid], target, dev.attr)


def _wire_dms(w: _Wiring) -> None:
    """The DMS: telemetry and command outcomes in, commands out through the field."""
    plan = w.prep.dms
    if plan is None:
        return
    assert w.field is not None
    dms = w.world.start("DMS", sim_id="dms").DMS(plan=plan)
    w.world.connect(w.field, dms, "measurements", "command_outcomes")
    # commands go out one tick after the cycle that decided them (no same-tick loop)
    w.world.connect(dms, w.field, "commands", time_shifted=1)
    w.registry[dms.full_id] = ("dms", "dms")  # it sends "records" only
    w.world.connect(dms, w.recorder, "records")


def _shutdown(world: mosaik.World) -> None:
    try:
        world.shutdown()
    except Exception as exc:  # shutting down a half-built world may fail; the error above matters
        logging.getLogger(__name__).debug("world shutdown: %s", exc)
