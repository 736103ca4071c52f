"""Scenario sections for the field: devices, EV fleet, batteries, RTUs and links, crews,
operator commands.

Grid elements are named ``<kind>:<name>`` — ``bus:Bus 3``, ``line:Line 1-2``,
``trafo:Trafo 0-1``, ``switch:S1``, ``shunt:Cap 11``, ``pv:PV 3``, ``wind:WKA 7``,
``battery:Battery 1``, ``ev:Bus 3`` (the EV charging at a bus). Names are checked against
the grid when the run is prepared.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator

from twin.grid.names import ELEMENT_KINDS, split_ref
from twin.scenario.base import Name, OffsetSeconds, Seconds, Strict


def _check_ref(ref: str) -> str:
    # Hand-written references may carry spaces around the name ("bus: Bus 3").
    split_ref(ref, ELEMENT_KINDS, strip=True)
    return ref


# --------------------------------------------------------------------------- devices
class CapacitorSpec(Strict):
    name: Name
    bus: str
    q_step_mvar: float = Field(..., gt=0, description="Capacitive Mvar per step.")
    max_step: int = Field(1, ge=1)
    step_init: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _init(self) -> "CapacitorSpec":
        if self.step_init > self.max_step:
            raise ValueError(f"step_init ≤ max_step ({self.max_step}); found {self.step_init}")
        return self


class LineSwitchSpec(Strict):
    name: Name
    line: str = Field(..., description="The line the switch is on.")
    end: Literal["from", "to"] = Field("from", description="At the line's from or to bus.")
    type: Literal["CB", "LBS", "DS"] = Field(
        "LBS", description="CB: circuit breaker (can clear faults, may carry a relay); LBS: "
        "load-break switch; DS: disconnector.")
    closed: bool = True


class DevicesSpec(Strict):
    manual_switches: list[str] = Field(
        [], description="Switch names only a field crew can operate (no remote control).")
    capacitors: list[CapacitorSpec] = Field([], description="Switchable shunts to add.")
    line_switches: list[LineSwitchSpec] = Field(
        [], description="Switches to add at line ends (sectionalisers, feeder breakers).")


# --------------------------------------------------------------------------- EV fleet
class SessionPatternSpec(Strict):
    """When EVs plug in and leave (local time, truncated normal) and what they need."""

    arrival_h: float = Field(..., ge=0, lt=24)
    arrival_sd_h: float = Field(..., gt=0)
    departure_h: float = Field(..., ge=0, lt=24)
    departure_sd_h: float = Field(..., gt=0)
    departure_next_day: bool
    energy_kwh: float = Field(..., gt=0, description="Mean daily driving energy (lognormal).")
    energy_sd_kwh: float = Field(..., gt=0)
    p_daily: float = Field(1.0, gt=0, le=1, description="Share of days with a session.")


class EVFleetSpecModel(Strict):
    n_ev: int = Field(0, ge=0, description="Number of EVs (0 = no EV fleet).")
    buses: list[str] | Literal["load_buses"] = Field(
        "load_buses", description="Buses with charging points; 'load_buses' = every MV bus "
        "with a load (the LV-feeding buses).")
    home_share: float = Field(0.8, ge=0, le=1, description="Share charging at home; rest at work.")
    capacity_kwh: float = Field(60.0, gt=0)
    p_charge_max_kw: float = Field(11.0, gt=0)
    v2g_share: float = Field(0.2, ge=0, le=1, description="Share of EVs able to discharge.")
    p_discharge_max_kw: float = Field(11.0, ge=0)
    eta_charge: float = Field(0.92, gt=0, le=1)
    eta_discharge: float = Field(0.92, gt=0, le=1)
    soc_min: float = Field(0.2, ge=0, lt=1)
    strategy: Literal["uncontrolled", "limited", "v2g"] = "uncontrolled"
    home: SessionPatternSpec = Field(
        SessionPatternSpec(arrival_h=18.0, arrival_sd_h=1.5, departure_h=7.5,
                           departure_sd_h=1.0, departure_next_day=True, energy_kwh=8.0,
                           energy_sd_kwh=4.0),
        description="Charging at home: plug in in the evening, leave next morning.")
    work: SessionPatternSpec = Field(
        SessionPatternSpec(arrival_h=8.5, arrival_sd_h=1.0, departure_h=17.0,
                           departure_sd_h=1.0, departure_next_day=False, energy_kwh=6.0,
                           energy_sd_kwh=3.0),
        description="Charging at work: plug in in the morning, leave in the afternoon.")


# --------------------------------------------------------------------------- batteries
class ScheduleEntry(Strict):
    at: OffsetSeconds = Field(..., description="Time of day from 00:00 UTC, e.g. '6h'.")
    p_kw: float = Field(..., description="Charging +, discharging −.")


class BatteryUnitSpec(Strict):
    name: Name
    storage: str | None = Field(None, description="An existing storage element to drive.")
    bus: str | None = Field(None, description="Bus for a new battery.")
    capacity_kwh: float | None = Field(None, gt=0)
    p_max_kw: float | None = Field(None, gt=0)
    soc_init: float | None = Field(None, ge=0, le=1)
    mode: Literal["schedule", "setpoint", "price"] | None = None
    schedule: list[ScheduleEntry] = []

    @model_validator(mode="after")
    def _where(self) -> "BatteryUnitSpec":
        if (self.storage is None) == (self.bus is None):
            raise ValueError("exactly one of 'storage' (existing) or 'bus' (new battery)")
        if self.bus is not None and (self.capacity_kwh is None or self.p_max_kw is None):
            raise ValueError("a new battery (with 'bus') needs 'capacity_kwh' and 'p_max_kw'")
        return self


class BatteriesSpec(Strict):
    attach_existing: bool = Field(True, description="Model every storage element of the grid.")
    hours: float = Field(4.0, gt=0, description="Default capacity = hours × the element's power.")
    eta_charge: float = Field(0.95, gt=0, le=1)
    eta_discharge: float = Field(0.95, gt=0, le=1)
    soc_min: float = Field(0.1, ge=0, lt=1)
    soc_max: float = Field(0.9, gt=0, le=1)
    soc_init: float = Field(0.5, ge=0, le=1)
    self_discharge_per_h: float = Field(1e-4, ge=0, lt=1)
    mode: Literal["schedule", "setpoint", "price"] = "price"
    prices_eur_mwh: list[float] = Field(
        [62, 58, 55, 53, 54, 60, 75, 92, 98, 90, 78, 66, 58, 55, 57, 64, 78, 96, 118, 124, 110,
         94, 80, 70],
        description="Hourly day-ahead prices from 00:00 UTC, repeated every day.")
    units: list[BatteryUnitSpec] = []

    @field_validator("prices_eur_mwh")
    @classmethod
    def _hourly(cls, prices: list[float]) -> list[float]:
        if len(prices) != 24:
            raise ValueError(f"24 hourly prices; found {len(prices)}")
        return prices

    @model_validator(mode="after")
    def _soc_band(self) -> "BatteriesSpec":
        if not self.soc_min < self.soc_max:
            raise ValueError(f"soc_min < soc_max; found soc_min {self.soc_min:g}, "
                             f"soc_max {self.soc_max:g}")
        return self


# --------------------------------------------------------------------------- comms
class LatencyModel(Strict):
    fixed: OffsetSeconds = Field(0.0, description="Fixed part, e.g. '5ms'.")
    kind: Literal["none", "lognormal", "exponential", "uniform"] = "lognormal"
    mean: OffsetSeconds = Field(0.0, description="Mean of the random part.")
    sigma: OffsetSeconds | None = Field(None, description="Standard deviation (lognormal, uniform).")


class OutageSpec(Strict):
    after: OffsetSeconds = Field(..., description="Start, from the scenario start.")
    duration: Seconds


class LinkModel(Strict):
    preset: Literal["fibre", "cellular"] | None = Field(
        None, description="Start from a preset; the keys below override it.")
    uplink: LatencyModel | None = None
    downlink: LatencyModel | None = None
    loss_prob: float | None = Field(None, ge=0, le=1)
    bandwidth_bps: float | None = Field(None, gt=0)
    outages: list[OutageSpec] = []


class PointModel(Strict):
    element: str = Field(..., description="e.g. 'bus:Bus 1', 'line:Line 1-2', 'switch:S1'.")
    quantity: str = Field(..., description="vm_pu, i_ka, p_mw, q_mvar, loading_percent, closed, "
                          "tap_pos, step.")
    range: tuple[float, float] | None = Field(None, description="Measuring range (noise basis).")
    noise_pct: float = Field(0.5, ge=0, le=100)
    quantum: float | None = Field(None, gt=0)

    @field_validator("element")
    @classmethod
    def _ref(cls, ref: str) -> str:
        return _check_ref(ref)

    @field_validator("range")
    @classmethod
    def _range(cls, span: tuple[float, float] | None) -> tuple[float, float] | None:
        # the noise is a share of the range's width: an empty range has none
        if span is not None and not span[0] < span[1]:
            raise ValueError(f"two numbers, low < high, e.g. [0.9, 1.1]; found {list(span)}")
        return span


class EndpointModel(Strict):
    protocol: Literal["modbus", "iec104"] = Field(
        ..., description="modbus: Modbus TCP; iec104: IEC 60870-5-104 (the optional extra "
        "dms-twin[iec104]).")
    port: int = Field(..., ge=0, le=65535, description="TCP port; 0 lets the system pick one "
                      "(printed when the run starts).")
    host: str = Field("127.0.0.1", description="IP address to listen on: loopback unless "
                      "given (0.0.0.0 for every interface).")

    @field_validator("host")
    @classmethod
    def _ip(cls, host: str) -> str:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"an IP address such as 127.0.0.1; found {host!r}") from None
        return host


class RTUSpecModel(Strict):
    name: Name
    scan_period: Seconds = Field(10.0, description="Time between scans.")
    scan_offset: OffsetSeconds = 0.0
    link: Literal["fibre", "cellular"] | LinkModel = "fibre"
    points: list[PointModel] = []
    devices: list[str] = Field(
        [], description="Devices commanded through this RTU, e.g. 'switch:S1', 'trafo:Trafo 0-1'.")
    report_by_exception: bool = Field(
        True, description="A status point that changes (switch, trip, fault indicator) is "
        "reported at once, not only at the next scan.")
    endpoint: EndpointModel | None = Field(
        None, description="Serve this RTU's points over a real protocol (see docs/scada.md).")

    @field_validator("devices")
    @classmethod
    def _refs(cls, refs: list[str]) -> list[str]:
        return [_check_ref(r) for r in refs]


class CrewSpecModel(Strict):
    n_crews: int = Field(2, ge=0)
    depot_bus: str | None = Field(None, description="Depot at this bus's geodata (km).")
    depot_xy_km: tuple[float, float] | None = None
    speed_km_h: float = Field(40.0, gt=0)
    work_time: Seconds = Field(900.0, description="Time on site to operate a switch.")
    fixed_travel: Seconds | None = Field(None, description="Travel time instead of distance.")
    detour_factor: float = Field(1.3, ge=1)


class CommandSpec(Strict):
    after: OffsetSeconds = Field(..., description="When, from the scenario start.")
    target: str = Field(..., description="e.g. 'switch:S2', 'trafo:Trafo 0-1', 'pv:PV 3'.")
    action: Literal["open", "close", "set_tap", "set_step", "set_p_limit", "set_q", "set_p",
                    "set_ev_limit"]
    value: float | None = None

    @model_validator(mode="after")
    def _value(self) -> "CommandSpec":
        _check_ref(self.target)
        if self.action not in ("open", "close") and self.value is None:
            raise ValueError(f"action '{self.action}' needs a 'value'")
        return self
