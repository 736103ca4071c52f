"""Scenario → everything a run is built from, computed once before it starts: the net
with its added devices, the plants, profiles and weather, and the plans of the EV fleet, the
batteries, protection, the field and the DMS (:class:`Prepared`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path

import pandapower as pp
import pandas as pd

from twin.build.checks import (
    check_commands,
    check_faults,
    check_net,
    check_sizes_and_points,
    late_events,
)
from twin.build.devices import add_capacitors, add_line_switches, manual_switches
from twin.build.dms import DMSSetup, builtin_settings_ignored, plan_dms
from twin.build.endpoints import endpoint_specs
from twin.build.field import build_field_plan, grid_refs
from twin.build.plants import PlantSet, pv_plants, wind_plants
from twin.build.profiles import Profiles, simbench_profiles, synthetic_profiles
from twin.build.protection import plan_protection
from twin.build.storage import plan_batteries, plan_ev_fleet
from twin.dms.api import DMSLoadError
from twin.evaluation.reliability import default_customers
from twin.grid.build import build_net
from twin.grid.model import SolverChoice, choose_solver
from twin.grid.names import ELEMENT_TABLES, element_names
from twin.grid.ratings import unusable_ratings
from twin.models.battery import BatteryPlan
from twin.models.ev import EVPlan
from twin.models.field import FieldPlan
from twin.models.protection import Fault, Protection
from twin.models.weather import read_weather_csv, synthetic_weather
from twin.protocols.gateway import EndpointSpec
from twin.rng import component_rng
from twin.scenario import Scenario, ScenarioError, resolve_path


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
    dms: DMSSetup | None = None
    protection: Protection | None = None
    faults: tuple[tuple[int, Fault], ...] = ()  # (tick, fault)
    solver: SolverChoice | None = None  # the power-flow backend, and why
    endpoints: dict[str, EndpointSpec] = dataclass_field(default_factory=dict)  # RTU -> where
    warnings: list[str] = dataclass_field(default_factory=list)  # e.g. events after the end


def prepare(scenario: Scenario, scenario_file: Path | None = None,
            net: pp.pandapowerNet | None = None, check_only: bool = False,
            scenario_end_s: float | None = None) -> Prepared:
    """Build the net, plants, profiles and weather of ``scenario``. ``check_only`` (for
    ``twin validate``): profiles and weather for the first step only, the weather file read
    at the first and last step (its coverage), everything else as for the run.
    ``scenario_end_s``: the end the scenario file gives, where ``scenario`` was shortened
    to a run's ``--until`` (events after that cut are no news; after the file's end they are)."""
    net = build_net(scenario.grid, scenario_file) if net is None else net
    check_net(net)
    check_faults(scenario)
    check_sizes_and_points(scenario)
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
    times = scenario.clock.timestamps(1 if check_only else scenario.n_steps, scenario.step_ticks)
    weather_times = _span(scenario) if check_only else times
    w = scenario.weather
    if scenario.profiles.source == "simbench":
        profiles = simbench_profiles(net, times, scenario.profiles, profiled)
    else:
        profiles = synthetic_profiles(net, names, times, scenario.profiles, profiled,
                                      w.longitude_deg, scenario.seed)
    if w.source == "csv":
        assert w.csv is not None
        try:
            weather = read_weather_csv(resolve_path(scenario_file, w.csv), weather_times,
                                       w.latitude_deg, w.longitude_deg, w.altitude_m)
        except ValueError as exc:  # WeatherFileError: the file and what is wrong with it
            raise ScenarioError(f"{scenario_file or '<scenario>'}: weather.csv: {exc}") from None
    else:
        weather = synthetic_weather(
            times, w.latitude_deg, w.longitude_deg, w.altitude_m,
            component_rng(scenario.seed, "weather"), cloud_cover=w.cloud_cover,
            cloud_variability=w.cloud_variability, wind_mean_m_s=w.wind_mean_m_s,
            temp_min_c=w.temp_min_c, temp_max_c=w.temp_max_c)
    if check_only:
        weather = weather.loc[times]
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
    prepared.endpoints = endpoint_specs(scenario, prepared.field)
    plant_refs = grid_refs(net, devices)
    unreachable = check_commands(scenario, net, prepared.field, set(plant_refs))
    prepared.dms = plan_dms(scenario, net, weather, pv.names, wind.names,
                            field_refs=plant_refs, field_plan=prepared.field,
                            scenario_file=scenario_file, batteries=battery_plan)
    if prepared.dms is not None and not check_only:
        try:  # the DMS is made before the world: its constructor's error is the input's
            prepared.dms.create()
        except DMSLoadError as exc:
            key = "dms.remote" if scenario.dms.remote else "dms.class"
            raise ScenarioError(f"{key}: {exc}") from None
    try:  # after every element is in the net: the backend must model all of them
        prepared.solver = choose_solver(net, scenario.grid.solver)
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None
    prepared.warnings = late_events(scenario, scenario_end_s) + unreachable + \
        unusable_ratings(net) + builtin_settings_ignored(scenario)
    if not check_only:
        for message in prepared.warnings:
            logging.getLogger(__name__).warning("%s", message)
    return prepared


def _span(scenario: Scenario) -> pd.DatetimeIndex:
    """The times of the scenario's first and last step."""
    clock, last = scenario.clock, (scenario.n_steps - 1) * scenario.step_ticks
    ticks = [0, last] if last > 0 else [0]
    return pd.DatetimeIndex(pd.to_datetime([clock.time_ns(t) for t in ticks], utc=True))


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
