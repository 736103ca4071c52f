"""The DMS as the scenario configures it: its class and settings (``dms.class``,
``dms.params``; the built-in one by default) and its database — the network model, RTUs,
devices, forecast and switchgear ratings (:class:`twin.dms.api.DMSContext`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.build.resolve import find_element
from twin.dms.api import (
    API_VERSION,
    DeviceInfo,
    DMSContext,
    DMSInfo,
    DMSLoadError,
    GuardedDMS,
    PointInfo,
    create_dms,
    load_dms_class,
)
from twin.dms.builtin import DEFAULTS as BUILTIN_DEFAULTS
from twin.dms.forecast import ProfileForecast
from twin.dms.short_circuit import BreakerRating, default_ratings
from twin.grid.names import element_names
from twin.models.battery import BatteryPlan
from twin.models.field import ACTIONS, FieldPlan
from twin.models.load_shapes import load_kind
from twin.scenario import Scenario, ScenarioError


@dataclass
class DMSSetup:
    """The DMS of a run before it runs: its class, settings and database.

    :meth:`create` makes the instance the DMS simulator steps (in this process, or a
    connection to an out-of-process one); ``info`` then says what ran (class, version,
    API version, params, transport) for run.json, kpis.json and the report.
    """

    cls_path: str | None             # None: whatever the remote DMS serves
    params: dict[str, Any]
    context: DMSContext
    cls: type | None = None          # loaded (in process); None for a remote DMS
    remote: str | None = None        # host:port of an out-of-process DMS
    scada: str | None = None         # "modbus" / "iec104": telemetry and commands on the wire
    info: DMSInfo | None = None
    instance: Any = field(default=None, repr=False)   # the DMS itself, once created
    guarded: GuardedDMS | None = field(default=None, repr=False)  # as the simulator calls it

    @property
    def cycle_s(self) -> float:
        return self.context.cycle_s

    @property
    def cycle_offset_s(self) -> float:
        return self.context.cycle_offset_s

    def create(self) -> GuardedDMS:
        """The DMS, ready to step; a :class:`~twin.dms.api.DMSLoadError` if it cannot be
        made (its constructor failed, the remote one is not there)."""
        if self.remote is not None:
            from twin.dms.remote import RemoteDMS  # sockets only when asked for

            dms = RemoteDMS.connect(self.remote, self.cls_path, self.context, self.params)
            self.info = dms.info
        else:
            dms = create_dms(self.cls, self.context, self.params)
            self.info = DMSInfo(cls=self.cls_path, version=str(getattr(dms, "VERSION", "")),
                                api_version=str(getattr(dms, "API_VERSION", API_VERSION)),
                                params=self.params)
        if self.scada is not None:
            self.info.transport += f", field over {self.scada}"
        self.instance = dms
        self.guarded = GuardedDMS(dms, self.context.cycle_s, self.context.cycle_offset_s)
        return self.guarded

    def close(self) -> None:
        """End the DMS's session (an out-of-process DMS's connection); idempotent."""
        close = getattr(self.instance, "close", None)
        if callable(close):
            close()

    def describe(self) -> dict:
        """What ran, or (before :meth:`create`) what is to run."""
        if self.info is not None:
            return self.info.as_dict()
        return {"class": self.cls_path, "version": str(getattr(self.cls, "VERSION", "")),
                "api_version": API_VERSION, "params": self.params,
                "transport": (f"tcp://{self.remote}" if self.remote else "in-process")
                + (f", field over {self.scada}" if self.scada else "")}


def plan_dms(scenario: Scenario, net, weather: pd.DataFrame, pv_names: list[str],
             wind_names: list[str], field_refs: dict[str, str] | None = None,
             field_plan: FieldPlan | None = None, scenario_file: str | Path | None = None,
             batteries: BatteryPlan | None = None) -> DMSSetup | None:
    """The run's DMS, or None when the scenario has none. ``field_refs`` maps the field's
    device references to grid elements (``"ev:Bus 10"`` → ``"load:EV Bus 10"``): the DMS
    decides on grid elements and commands the devices. The class is loaded (and checked)
    here: a wrong ``dms.class`` is a ScenarioError before anything runs."""
    spec = scenario.dms
    if not spec.enabled:
        return None
    if not scenario.rtus:
        raise ScenarioError("dms.enabled: expected RTUs (rtus: …) for the DMS to see the grid; "
                            "found none")
    if runs_builtin(spec):
        if spec.params:
            raise ScenarioError("dms.params: the built-in DMS takes its settings from the "
                                "dms section's own keys (volt_var, flisr, …); expected no "
                                f"params; found {sorted(spec.params)}")
        sgen_names = element_names(net, "sgen")
        unknown = [n for n in spec.volt_var.der if n not in sgen_names]
        if unknown:
            raise ScenarioError(
                f"dms.volt_var.der: expected PV/wind plant names; found {unknown}")
        params = spec.builtin_params()
        _check_supervisory(spec, net)
        params.update(_storage_database(batteries))
        ev = scenario.ev_fleet
        params["ev_fleet"] = {"p_discharge_max_mw": ev.p_discharge_max_kw / 1000.0,
                              "v2g_share": ev.v2g_share} if ev.n_ev else \
            {"p_discharge_max_mw": 0.0, "v2g_share": 0.0}
    else:
        params = dict(spec.params)
    scenario.clock.ticks(spec.cycle)  # a whole number of ticks, or a clear error now
    context = dms_context(scenario, net, weather, pv_names, wind_names, field_refs or {},
                          field_plan)
    search = (Path(scenario_file).resolve().parent,) if scenario_file else ()
    cls = None
    if spec.remote is None:
        try:
            cls = load_dms_class(spec.dms_class, search)
        except DMSLoadError as exc:
            raise ScenarioError(f"dms.class: {exc}") from None
    # out of process, the class is what the server serves, checked if the scenario names one
    named = spec.remote is None or "dms_class" in spec.model_fields_set
    return DMSSetup(spec.dms_class if named else None, params, context, cls=cls,
                    remote=spec.remote,
                    scada=None if spec.transport == "in_process" else spec.transport)


def _check_supervisory(spec, net) -> None:
    """The cells, the interface and the remote DER name elements of the grid; the cells
    form a valid set (one clear error each, with its key path)."""
    buses = set(element_names(net, "bus"))
    for k, cell in enumerate(spec.cells.cells):
        unknown = [b for b in cell.buses if b not in buses]
        if unknown:
            raise ScenarioError(f"dms.cells.cells[{k}].buses: expected bus names of the grid; "
                                f"found {unknown}")
    if spec.cells.cells:
        from twin.dms.cells import Cell, tie_branches  # the DMS's own check of the cells

        try:
            tie_branches(net, [Cell(c.name, tuple(c.buses), c.tie_schedule_mw, c.tolerance_mw)
                               for c in spec.cells.cells])
        except ValueError as exc:
            raise ScenarioError(f"dms.cells.cells: {exc}") from None
    if spec.monitoring.enabled and not spec.cells.cells:
        raise ScenarioError("dms.monitoring.enabled: expected cells (dms.cells.cells) to "
                            "monitor; found none")
    trafo = spec.tso_dso.interface
    if spec.tso_dso.mode != "off" and trafo not in element_names(net, "trafo"):
        raise ScenarioError(f"dms.tso_dso.interface: expected a trafo name of the grid; "
                            f"found {trafo!r}")
    unknown = [n for n in spec.curtailment.remote if n not in element_names(net, "sgen")]
    if unknown:
        raise ScenarioError(f"dms.curtailment.remote: expected PV/wind plant names; "
                            f"found {unknown}")


def _storage_database(batteries: BatteryPlan | None) -> dict[str, Any]:
    """What the DMS's database holds of the batteries (nameplates, initial SOC) and the
    day-ahead prices, for the built-in DMS's storage monitoring and cell control."""
    if batteries is None:
        return {"batteries": [], "prices": {"times_s": [], "eur_mwh": []},
                "schedules": {"times_s": [], "p_mw": []}}
    spec = batteries.spec
    n = len(batteries.names)

    def col(name: str) -> list[float]:
        return [float(v) for v in np.broadcast_to(np.asarray(getattr(spec, name), dtype=float),
                                                  (n,))]

    cols = {k: col(k) for k in ("capacity_mwh", "p_discharge_max_mw", "soc_init", "soc_min",
                                "soc_max", "eta_charge", "eta_discharge")}
    return {"batteries": [
        {"name": name, "capacity_mwh": cols["capacity_mwh"][i],
         "p_max_mw": cols["p_discharge_max_mw"][i], "soc_init": cols["soc_init"][i],
         "soc_min": cols["soc_min"][i], "soc_max": cols["soc_max"][i],
         "eta_charge": cols["eta_charge"][i], "eta_discharge": cols["eta_discharge"][i]}
        for i, name in enumerate(batteries.names)],
        "prices": {"times_s": [float(t) for t in batteries.price_times_s],
                   "eur_mwh": [float(p) for p in batteries.prices_eur_mwh]},
        # the owners' timetables as the aggregator shares them (schedule and price modes)
        "schedules": {"times_s": [float(t) for t in batteries.schedule_times_s],
                      "p_mw": [[float(v) for v in row] for row in
                               np.atleast_2d(batteries.schedule_p_mw)]}}


def runs_builtin(spec) -> bool:
    """Whether the scenario's DMS is the built-in one (out of process: only if named)."""
    return spec.is_builtin and (spec.remote is None or "dms_class" in spec.model_fields_set)


def builtin_settings_ignored(scenario: Scenario) -> list[str]:
    """Warnings for built-in settings a scenario gives while another DMS runs."""
    spec = scenario.dms
    if not spec.enabled or runs_builtin(spec):
        return []
    given = spec.builtin_params()
    changed = sorted(k for k, v in given.items() if v != BUILTIN_DEFAULTS.get(k) and not (
        isinstance(v, dict) and {**BUILTIN_DEFAULTS[k], **v} == BUILTIN_DEFAULTS[k]))
    return [f"dms.{k}: a setting of the built-in DMS; {spec.dms_class} runs instead and "
            "does not read it (give its settings in dms.params)" for k in changed]


def dms_context(scenario: Scenario, net, weather: pd.DataFrame, pv_names: list[str],
                wind_names: list[str], field_refs: dict[str, str],
                field_plan: FieldPlan | None) -> DMSContext:
    """What the DMS's database holds (the network model is its own copy)."""
    load_names = element_names(net, "load")
    sgen_names = element_names(net, "sgen")
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
    rtus, devices = (), ()
    if field_plan is not None:
        rtus = tuple((r.name, float(r.scan_period_s), tuple(
            PointInfo(rtu=r.name, point=p.name, element=p.element, quantity=p.quantity,
                      sigma=float(p.sigma), scan_period_s=float(r.scan_period_s))
            for p in r.points)) for r in field_plan.rtus)
        devices = tuple(
            DeviceInfo(ref=ref, element=field_refs.get(ref, ref),
                       actions=tuple(a for a, (kinds, _) in ACTIONS.items() if d.kind in kinds),
                       rtu=d.rtu, manual=d.manual)
            for ref, d in field_plan.devices.items())
    switch_names = dict(zip(net.switch.index, element_names(net, "switch")))
    return DMSContext(
        net=copy.deepcopy(net), rtus=rtus, devices=devices, forecast=forecast,
        band_pu=tuple(scenario.kpis.voltage_band_pu), start_utc=start.isoformat(),
        step_s=float(scenario.step), duration_s=float(scenario.duration),
        cycle_s=float(scenario.dms.cycle), cycle_offset_s=float(scenario.dms.cycle_offset or 0.0),
        seed=scenario.seed, manual_switches=tuple(scenario.devices.manual_switches),
        switch_ratings={switch_names[i]: (r.breaking_ka, r.making_ka)
                        for i, r in switchgear_ratings(scenario, net).items()})


def switchgear_ratings(scenario: Scenario, net) -> dict[int, BreakerRating]:
    """Ratings of every switch: defaults by type and voltage, the scenario's where given."""
    ratings = default_ratings(net)
    for k, r in enumerate(scenario.protection.ratings):
        sw = find_element(net, "switch", r.switch, f"protection.ratings[{k}].switch")
        ratings[sw] = BreakerRating(
            breaking_ka=r.breaking_ka if r.breaking_ka is not None else ratings[sw].breaking_ka,
            making_ka=r.making_ka if r.making_ka is not None else ratings[sw].making_ka)
    return ratings
