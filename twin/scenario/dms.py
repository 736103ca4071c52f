"""Scenario section ``dms``: the built-in DMS controller's cycle and functions."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from twin.scenario.base import OffsetSeconds, Seconds, Strict

#: A DMS function's mode; YAML 1.1 reads a bare ``off`` as false. The same literal as
#: :data:`twin.dms.decisions.Mode` (the scenario does not import the DMS; a test in
#: tests/dms keeps the two equal).
Mode = Annotated[Literal["off", "advisory", "direct"],
                 BeforeValidator(lambda v: "off" if v is False else v)]


class VoltVarSpec(Strict):
    mode: Mode = Field(
        "off", description="direct: commands sent automatically; advisory: recorded only.")
    deadband_pu: float = Field(0.005, ge=0, le=0.05)
    min_tap_interval: Seconds = Field(300.0, description="Anti-hunting: between tap moves.")
    max_actions: int = Field(3, ge=1, le=20, description="Moves per cycle at most.")
    min_loss_gain_kw: float = Field(
        2.0, ge=0, description="Inside the band, a tap/capacitor move must save this much.")
    loss_check_every: Seconds = Field(900.0, description="How often to look for loss savings.")
    advice_hold: Seconds = Field(
        900.0, description="advisory: a recommendation stands this long before it is repeated.")
    der: list[str] = Field([], description="PV/wind plants whose Q the DMS may set.")


class FlisrSpec(Strict):
    mode: Mode = Field(
        "off", description="direct: isolate and restore automatically; advisory: record "
        "the plan only.")
    wait: OffsetSeconds = Field(
        5.0, description="After a trip report, wait this long for the fault indicators "
        "(and longer than a reclose's dead time, so a successful reclose is not an incident).")
    max_loading_percent: float = Field(100.0, gt=0, description="Limit for a restoring tie.")
    repair: bool = Field(True, description="Send a crew to repair, then return to normal.")


class LoadManagementSpec(Strict):
    mode: Mode = Field(
        "off", description="direct: carry out the switching plan; advisory: record it.")
    max_loading_percent: float = Field(100.0, gt=0, description="Overload limit.")
    hold: Seconds = Field(900.0, description="After a plan, look again this much later.")


class CellSpec(Strict):
    name: str = Field(..., min_length=1)
    buses: list[str] = Field(..., min_length=1, description="The cell's buses (bus names).")
    tie_schedule_mw: float = Field(0.0, description="Scheduled export over the cell's tie "
                                   "branches [MW] (+ = out of the cell).")
    tolerance_mw: float = Field(0.1, gt=0, description="Deviation within which the cell "
                                "counts as on schedule.")


class CellsSpec(Strict):
    mode: Mode = Field("off", description="direct: each cell's controller sends set-points "
                       "to its batteries, EV charging and DER; advisory: recorded only.")
    cells: list[CellSpec] = Field([], description="ELECTRA web of cells: the grid's cells; "
                                  "each keeps its tie-line flows at schedule.")
    kp: float = Field(0.1, ge=0, description="Proportional gain of the tie-line controller.")
    ki_per_s: float = Field(0.01, gt=0, description="Its integral gain [1/s].")


class CurtailmentSpec(Strict):
    mode: Mode = Field("off", description="direct: the DSO limits DER above 30 kWp by remote "
                       "set-points to relieve estimated overloads (least curtailed energy); "
                       "advisory: recorded only.")
    max_loading_percent: float = Field(100.0, gt=0)
    remote: list[str] = Field([], description="Small DER (≤ 30 kWp) that do have a remote "
                              "interface (the rest are capped at 70 % locally).")
    hold: Seconds = Field(900.0, description="A limit stands this long, then it is lifted "
                          "and the congestion looked at again.")
    margin_percent: float = Field(5.0, ge=0, lt=50, description="Curtail when the estimated "
                                  "loading exceeds the limit less this, down to it: the "
                                  "estimate and the minute to the next cycle both err.")


class TsoRequestSpec(Strict):
    after: OffsetSeconds
    q_mvar: float | None = Field(None, description="Reactive power at the interface the TSO "
                                 "asks for [Mvar, + = import at the HV side]; null: none.")
    p_max_import_mw: float | None = Field(None, gt=0, description="Active-power import "
                                          "limit at the interface [MW]; null: none.")
    p_max_export_mw: float | None = Field(None, gt=0, description="Export limit [MW].")


class TsoDsoSpec(Strict):
    mode: Mode = Field("off", description="direct: meet the TSO's requests with DER Q, "
                       "capacitors and the OLTC; advisory: recorded only.")
    interface: str | None = Field(None, description="The HV/MV trafo at the interface.")
    requests: list[TsoRequestSpec] = []
    tolerance_mvar: float = Field(0.1, gt=0)


class MonitoringSpec(Strict):
    enabled: bool = Field(False, description="Record per cell (dms.cells) the inertia and "
                          "storage the DMS sees, and every battery's row, each cycle.")
    wind_inertia_h_s: float = Field(0.0, ge=0, description="Synthetic inertia the wind "
                                    "turbines emulate [s].")
    storage_inertia_h_s: float = Field(0.0, ge=0, description="… and the batteries [s].")
    rotating_h_s: float = Field(2.0, ge=0, description="Inertia constant of the DER "
                                "turning synchronous machines (CHP, diesel, gas) [s].")
    v2g_fcr_mw: float = Field(0.0, ge=0, description="FCR the DSO seeks from the EVs "
                              "[MW, symmetric]: assigned over the charging points that "
                              "report their V2G capability (ev:… points n_connected, "
                              "fcr_inject_mw, fcr_absorb_mw).")


#: ``dms.class``'s default: the built-in DMS (its settings are the keys below).
BUILTIN_DMS = "twin.dms.builtin:BuiltinDMS"


class DMSSpec(Strict):
    # ``class`` is a Python keyword: the field is dms_class, the YAML key ``class``
    model_config = {**Strict.model_config, "populate_by_name": True}

    enabled: bool = Field(False, description="Run a DMS (the built-in one unless dms.class "
                          "names another).")
    dms_class: str = Field(
        BUILTIN_DMS, alias="class", pattern=r"^[^:\s][^:]*:[A-Za-z_][A-Za-z0-9_]*$",
        description="The DMS: 'package.module:Class' or 'path/file.py:Class' (relative to the "
        "working directory or the scenario's folder) implementing the DMS interface "
        "(docs/dms-api.md); 'builtin' or the default is the built-in DMS, configured by "
        "the keys of this section.")
    params: dict[str, Any] = Field(
        {}, description="Settings handed to a DMS class other than the built-in one "
        "(JSON-like: numbers, strings, booleans, lists, mappings).")
    remote: str | None = Field(
        None, pattern=r"^[^\s:]+:[0-9]{1,5}$",
        description="host:port of a DMS served out of process (twin.dms.remote; "
        "`python -m twin.dms.serve CLASS`): the twin connects to it and hands it dms.class "
        "and dms.params.")
    transport: Literal["in_process", "modbus", "iec104"] = Field(
        "in_process", description="How the DMS reaches the field: in_process, or as a SCADA "
        "front end over the RTUs' protocol endpoints (every RTU without an endpoint gets one "
        "of this protocol on a loopback port; docs/scada.md).")
    cycle: Seconds = Field(
        60.0, ge=1.0, description="Time between DMS cycles, at least 1 s: a cycle estimates "
        "the state of the whole grid and runs every enabled function, which takes far longer "
        "than a tick; a real DMS cycles every few seconds to minutes.")
    cycle_offset: OffsetSeconds = Field(
        5.0, description="First cycle after the start (let the first telemetry arrive).")
    stale_after: Seconds = Field(120.0, description="Telemetry older than this is stale.")
    stale_mode: Literal["drop", "downweight"] = "drop"
    pseudo_sigma_pct: float = Field(30.0, gt=0, le=100,
                                    description="σ of load pseudo-measurements [% of value].")
    volt_var: VoltVarSpec = VoltVarSpec()
    flisr: FlisrSpec = FlisrSpec()
    load_management: LoadManagementSpec = LoadManagementSpec()
    cells: CellsSpec = CellsSpec()
    curtailment: CurtailmentSpec = CurtailmentSpec()
    tso_dso: TsoDsoSpec = TsoDsoSpec()
    monitoring: MonitoringSpec = MonitoringSpec()

    @field_validator("dms_class", mode="before")
    @classmethod
    def _builtin(cls, value: Any) -> Any:
        return BUILTIN_DMS if value == "builtin" else value

    @field_validator("params")
    @classmethod
    def _json(cls, params: dict[str, Any]) -> dict[str, Any]:
        try:  # what travels to an out-of-process DMS and into run.json must be JSON
            json.dumps(params, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"JSON-like values (numbers, strings, lists, mappings); {exc}"
                             ) from None
        return params

    @property
    def is_builtin(self) -> bool:
        return self.dms_class == BUILTIN_DMS

    def builtin_params(self) -> dict[str, Any]:
        """The built-in DMS's settings (durations in seconds)."""
        return self.model_dump(include={"stale_after", "stale_mode", "pseudo_sigma_pct",
                                        "volt_var", "flisr", "load_management",
                                        "short_circuit", "cells", "curtailment", "tso_dso",
                                        "monitoring"})

    short_circuit: bool = Field(
        True, description="IEC 60909 check of the switchgear at the start and on every "
        "topology change the DMS sees (results recorded as dms_short_circuit).")
