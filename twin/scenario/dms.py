"""Scenario section ``dms``: the built-in DMS controller's cycle and functions."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

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


class DMSSpec(Strict):
    enabled: bool = Field(False, description="Run the built-in DMS controller.")
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
    short_circuit: bool = Field(
        True, description="IEC 60909 check of the switchgear at the start and on every "
        "topology change the DMS sees (results recorded as dms_short_circuit).")
