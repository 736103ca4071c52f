"""The built-in DMS behind the DMS interface (:mod:`twin.dms.api`): created from a
:class:`~twin.dms.api.DMSContext` and its settings, run by :class:`DMSController`.

Its ``params`` are the scenario's ``dms`` settings of the built-in functions, with
durations in seconds::

    {"stale_after": 120.0, "stale_mode": "drop", "pseudo_sigma_pct": 30.0,
     "volt_var": {"mode": "direct", "deadband_pu": 0.005, "min_tap_interval": 300.0, …},
     "flisr": {"mode": "direct", "wait": 5.0, …},
     "load_management": {"mode": "off", …},
     "short_circuit": true}

A key left out takes the scenario's default.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from twin import __version__
from twin.dms import caches
from twin.dms.api import API_VERSION, CommandOutcome, DMSContext, DMSStep, TelemetryRow
from twin.dms.cells import Cell
from twin.dms.controller import DMSController, DMSPlan
from twin.dms.cycle import CycleSettings, DMSState
from twin.dms.flisr_control import FlisrController, FlisrSettings
from twin.dms.load_management import LoadManagementSettings, LoadManager
from twin.dms.short_circuit import BreakerRating, short_circuit_report
from twin.dms.supervisory import BatteryInfo, Supervisor, SupervisorySettings, TsoRequest
from twin.dms.switchgear import SwitchgearWatch
from twin.dms.volt_var import VoltVarSettings
from twin.grid.names import element_names

#: The built-in functions' settings and their defaults (the scenario's ``dms`` section
#: says what each means).
DEFAULTS: dict[str, object] = {
    "stale_after": 120.0, "stale_mode": "drop", "pseudo_sigma_pct": 30.0,
    "volt_var": {"mode": "off", "deadband_pu": 0.005, "min_tap_interval": 300.0,
                 "max_actions": 3, "min_loss_gain_kw": 2.0, "loss_check_every": 900.0,
                 "advice_hold": 900.0, "der": []},
    "flisr": {"mode": "off", "wait": 5.0, "max_loading_percent": 100.0, "repair": True},
    "load_management": {"mode": "off", "max_loading_percent": 100.0, "hold": 900.0},
    "short_circuit": True,
    "cells": {"mode": "off", "cells": [], "kp": 0.1, "ki_per_s": 0.01},
    "curtailment": {"mode": "off", "max_loading_percent": 100.0, "remote": [], "hold": 900.0,
                    "margin_percent": 5.0},
    "tso_dso": {"mode": "off", "interface": None, "requests": [], "tolerance_mvar": 0.1},
    "monitoring": {"enabled": False, "wind_inertia_h_s": 0.0, "storage_inertia_h_s": 0.0,
                   "rotating_h_s": 2.0, "v2g_fcr_mw": 0.0},
    # the EV fleet's database: per V2G-capable EV, and their share (from the scenario)
    "ev_fleet": {"p_discharge_max_mw": 0.0, "v2g_share": 0.0},
    # the database of the batteries and the day-ahead prices (from the scenario's batteries)
    "batteries": [],
    "prices": {"times_s": [], "eur_mwh": []},
    "schedules": {"times_s": [], "p_mw": []},   # rows: times; columns: batteries in order
}


def settings_from(params: Mapping[str, object]) -> dict:
    """``params`` over :data:`DEFAULTS`, one level deep; an unknown key is a ValueError."""
    out = copy.deepcopy(DEFAULTS)
    for key, value in params.items():
        if key not in out:
            raise ValueError(f"unknown setting {key!r}; expected one of {sorted(out)}")
        if isinstance(out[key], dict):
            if not isinstance(value, Mapping):
                raise ValueError(f"{key}: expected a mapping; found {value!r}")
            unknown = sorted(set(value) - set(out[key]))
            if unknown:
                raise ValueError(f"{key}: unknown settings {unknown}; expected some of "
                                 f"{sorted(out[key])}")
            out[key].update(value)
        else:
            out[key] = value
    return out


class BuiltinDMS:
    """Load and state estimation, Volt/Var, FLISR, load management and the switchgear
    check, as :mod:`twin.dms.controller` orders them."""

    API_VERSION = API_VERSION
    VERSION = __version__

    def __init__(self, context: DMSContext, params: Mapping[str, object]) -> None:
        caches.clear_all()  # this run's results must not depend on an earlier run's
        s = settings_from(params)
        net = context.net
        device_refs = {d.element: d.ref for d in context.devices if d.element != d.ref}
        vv, band = s["volt_var"], context.band_pu
        unknown = sorted(set(vv["der"]) - set(element_names(net, "sgen")))
        if unknown:
            raise ValueError(f"volt_var.der: expected PV/wind plant names; found {unknown}")
        settings = CycleSettings(
            band_pu=band, stale_after_s=float(s["stale_after"]), stale_mode=s["stale_mode"],
            pseudo_sigma_pct=float(s["pseudo_sigma_pct"]), volt_var_mode=vv["mode"],
            volt_var=VoltVarSettings(
                band_pu=band, deadband_pu=vv["deadband_pu"],
                min_tap_interval_s=float(vv["min_tap_interval"]),
                max_actions=int(vv["max_actions"]), der=tuple(vv["der"]),
                min_loss_gain_mw=vv["min_loss_gain_kw"] / 1000.0,
                loss_check_every_s=float(vv["loss_check_every"]),
                advice_hold_s=float(vv["advice_hold"])),
            device_refs=device_refs)
        ratings = _ratings(net, context.switch_ratings)
        check = _switchgear_check(ratings)
        manual = frozenset(context.manual_switches)
        fl, lm = s["flisr"], s["load_management"]
        flisr = None if fl["mode"] == "off" else FlisrController(
            FlisrSettings(mode=fl["mode"], wait_s=float(fl["wait"]), vm_min_pu=band[0],
                          vm_max_pu=band[1], max_loading_percent=fl["max_loading_percent"],
                          repair=bool(fl["repair"]), manual_switches=manual),
            copy.deepcopy(net), check=check)
        manager = None if lm["mode"] == "off" else LoadManager(
            LoadManagementSettings(mode=lm["mode"], max_loading_percent=lm["max_loading_percent"],
                                   vm_min_pu=band[0], hold_s=float(lm["hold"]),
                                   manual_switches=manual),
            copy.deepcopy(net), check=check)
        self.controller = DMSController(DMSPlan(
            state=DMSState(model=copy.deepcopy(net)), settings=settings,
            cycle_offset_s=context.cycle_offset_s, cycle_s=context.cycle_s,
            forecast=context.forecast, flisr=flisr, load_manager=manager,
            switchgear=SwitchgearWatch(ratings) if s["short_circuit"] else None,
            supervisor=_supervisor(s, net, context, device_refs)))

    def step(self, t_s: float, telemetry: list[TelemetryRow],
             outcomes: list[CommandOutcome]) -> DMSStep:
        return self.controller.step(t_s, telemetry, outcomes)


def _supervisor(s: dict, net, context: DMSContext,
                device_refs: Mapping[str, str]) -> Supervisor | None:
    """The section-III functions (cells, curtailment, TSO–DSO, monitoring), or None."""
    cells, cu, tso, mon = s["cells"], s["curtailment"], s["tso_dso"], s["monitoring"]
    interface = tso["interface"]
    settings = SupervisorySettings(
        cells=tuple(Cell(c["name"], tuple(c["buses"]), float(c["tie_schedule_mw"]),
                         float(c["tolerance_mw"])) for c in cells["cells"]),
        cells_mode=cells["mode"], kp=float(cells["kp"]), ki_per_s=float(cells["ki_per_s"]),
        curtailment_mode=cu["mode"], max_loading_percent=float(cu["max_loading_percent"]),
        remote=frozenset(cu["remote"]), curtailment_hold_s=float(cu["hold"]),
        curtailment_margin_percent=float(cu["margin_percent"]),
        tso_mode=tso["mode"], interface=f"trafo:{interface}" if interface else None,
        requests=tuple(TsoRequest(float(r["after"]), r.get("q_mvar"),
                                  r.get("p_max_import_mw"), r.get("p_max_export_mw"))
                       for r in tso["requests"]),
        tolerance_mvar=float(tso["tolerance_mvar"]), monitoring=bool(mon["enabled"]),
        wind_inertia_h_s=float(mon["wind_inertia_h_s"]),
        storage_inertia_h_s=float(mon["storage_inertia_h_s"]),
        rotating_h_s=float(mon["rotating_h_s"]), v2g_fcr_mw=float(mon["v2g_fcr_mw"]),
        ev_p_discharge_max_mw=float(s["ev_fleet"]["p_discharge_max_mw"]),
        ev_v2g_share=float(s["ev_fleet"]["v2g_share"]),
        batteries=tuple(BatteryInfo(**b) for b in s["batteries"]),
        price_times_s=tuple(s["prices"]["times_s"]), prices_eur_mwh=tuple(s["prices"]["eur_mwh"]),
        schedule_times_s=tuple(s["schedules"]["times_s"]),
        schedule_p_mw=tuple(tuple(row) for row in s["schedules"]["p_mw"]),
        band_pu=tuple(context.band_pu), stale_after_s=float(s["stale_after"]))
    if not settings.active:
        return None
    # what the field can command, as the DMS names it (grid elements)
    controllable = frozenset(d.element for d in context.devices if not d.manual)
    return Supervisor(settings, copy.deepcopy(net), controllable)


def _ratings(net, by_name: Mapping[str, tuple[float | None, float | None]]
             ) -> dict[int, BreakerRating]:
    """The context's ratings (by switch name) by row of ``net.switch``."""
    index = dict(zip(element_names(net, "switch"), net.switch.index))
    return {int(index[name]): BreakerRating(breaking_ka=b, making_ka=m)
            for name, (b, m) in by_name.items() if name in index}


def _switchgear_check(ratings: dict[int, BreakerRating]):
    """check(proposed net) → sentences for every switch its fault currents would exceed."""
    def check(proposed) -> list[str]:
        return [c.reason for c in short_circuit_report(proposed, ratings).violations]

    return check
