"""The built-in DMS as the scenario configures it: its network model, forecasts, settings."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from twin.build.resolve import find_element
from twin.dms.controller import DMSPlan
from twin.dms.cycle import CycleSettings, DMSState
from twin.dms.flisr_control import FlisrController, FlisrSettings
from twin.dms.forecast import ProfileForecast
from twin.dms.load_management import LoadManagementSettings, LoadManager
from twin.dms.short_circuit import BreakerRating, default_ratings, short_circuit_report
from twin.dms.switchgear import SwitchgearWatch
from twin.dms.volt_var import VoltVarSettings
from twin.grid.names import element_names
from twin.models.load_shapes import load_kind
from twin.scenario import Scenario, ScenarioError


def plan_dms(scenario: Scenario, net, weather: pd.DataFrame, pv_names: list[str],
             wind_names: list[str], field_refs: dict[str, str] | None = None
             ) -> DMSPlan | None:
    """The DMS's plan, or None when the scenario has no DMS. ``field_refs`` maps the
    field's device references to grid elements (``"ev:Bus 10"`` → ``"load:EV Bus 10"``):
    the DMS decides on grid elements and commands the devices."""
    spec = scenario.dms
    if not spec.enabled:
        return None
    if not scenario.rtus:
        raise ScenarioError("dms.enabled: expected RTUs (rtus: …) for the DMS to see the grid; "
                            "found none")
    sgen_names = element_names(net, "sgen")
    unknown = [n for n in spec.volt_var.der if n not in sgen_names]
    if unknown:
        raise ScenarioError(f"dms.volt_var.der: expected PV/wind plant names; found {unknown}")
    load_names = element_names(net, "load")
    start = scenario.start
    # EV charging points have no typical daily shape: the DMS forecasts them at zero
    forecast = ProfileForecast(
        load_kinds=tuple(None if str(t) == "EV" else load_kind(n) for n, t in
                         zip(load_names, net.load.get("type", [None] * len(net.load)))),
        is_pv=np.array([n in pv_names for n in sgen_names]),
        is_wind=np.array([n in wind_names for n in sgen_names]),
        clear_sky_ghi_w_m2=weather["clearsky_ghi_w_m2"].to_numpy(),
        weather_step_s=scenario.step, start_hour_utc=start.hour + start.minute / 60
        + start.second / 3600, longitude_deg=scenario.weather.longitude_deg)

    vv = spec.volt_var
    settings = CycleSettings(
        band_pu=scenario.kpis.voltage_band_pu, stale_after_s=spec.stale_after,
        stale_mode=spec.stale_mode, pseudo_sigma_pct=spec.pseudo_sigma_pct,
        volt_var_mode=vv.mode,
        volt_var=VoltVarSettings(band_pu=scenario.kpis.voltage_band_pu,
                                 deadband_pu=vv.deadband_pu,
                                 min_tap_interval_s=vv.min_tap_interval,
                                 max_actions=vv.max_actions, der=tuple(vv.der),
                                 min_loss_gain_mw=vv.min_loss_gain_kw / 1000.0,
                                 loss_check_every_s=vv.loss_check_every,
                                 advice_hold_s=vv.advice_hold),
        device_refs={grid: device for device, grid in (field_refs or {}).items()})
    scenario.clock.ticks(spec.cycle)  # a whole number of ticks, or a clear error now
    return DMSPlan(state=DMSState(model=copy.deepcopy(net)), settings=settings,
                   cycle_offset_s=float(spec.cycle_offset or 0.0), cycle_s=float(spec.cycle),
                   forecast=forecast,
                   flisr=_flisr(scenario, net), load_manager=_load_manager(scenario, net),
                   switchgear=SwitchgearWatch(switchgear_ratings(scenario, net))
                   if spec.short_circuit else None)


def _load_manager(scenario: Scenario, net) -> LoadManager | None:
    spec = scenario.dms.load_management
    if spec.mode == "off":
        return None
    return LoadManager(LoadManagementSettings(
        mode=spec.mode, max_loading_percent=spec.max_loading_percent,
        vm_min_pu=scenario.kpis.voltage_band_pu[0], hold_s=spec.hold,
        manual_switches=frozenset(scenario.devices.manual_switches)), copy.deepcopy(net),
        check=_switchgear_check(scenario, net))


def switchgear_ratings(scenario: Scenario, net) -> dict[int, BreakerRating]:
    """Ratings of every switch: defaults by type and voltage, the scenario's where given."""
    ratings = default_ratings(net)
    for k, r in enumerate(scenario.protection.ratings):
        sw = find_element(net, "switch", r.switch, f"protection.ratings[{k}].switch")
        ratings[sw] = BreakerRating(
            breaking_ka=r.breaking_ka if r.breaking_ka is not None else ratings[sw].breaking_ka,
            making_ka=r.making_ka if r.making_ka is not None else ratings[sw].making_ka)
    return ratings


def _switchgear_check(scenario: Scenario, net):
    """check(proposed net) → sentences for every switch its fault currents would exceed."""
    ratings = switchgear_ratings(scenario, net)

    def check(proposed) -> list[str]:
        return [c.reason for c in short_circuit_report(proposed, ratings).violations]

    return check


def _flisr(scenario: Scenario, net) -> FlisrController | None:
    spec = scenario.dms.flisr
    if spec.mode == "off":
        return None
    check = _switchgear_check(scenario, net)
    band = scenario.kpis.voltage_band_pu
    settings = FlisrSettings(mode=spec.mode, wait_s=spec.wait, vm_min_pu=band[0],
                             vm_max_pu=band[1], max_loading_percent=spec.max_loading_percent,
                             repair=spec.repair,
                             manual_switches=frozenset(scenario.devices.manual_switches))
    return FlisrController(settings, copy.deepcopy(net), check=check)
