"""Scenario section ``frequency``: the synchronous area's frequency and its disturbances.

Defaults are Continental Europe's order of magnitude (see :mod:`twin.models.frequency`).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from twin.scenario.base import OffsetSeconds, Seconds, Strict


class AreaSpecModel(Strict):
    f0_hz: float = Field(50.0, gt=0, description="Nominal frequency.")
    inertia_h_s: float = Field(5.0, gt=0, description="Inertia constant H of the area's "
                               "rotating generation, on rated_mw.")
    rated_mw: float = Field(300_000.0, gt=0, description="Rated power of that generation.")
    load_mw: float = Field(300_000.0, ge=0, description="The area's load (self-regulation).")
    damping_pct_per_hz: float = Field(1.0, ge=0, description="Load self-regulation D: "
                                      "% of the load per Hz.")
    fcr_mw: float = Field(3_000.0, ge=0, description="The TSOs' frequency containment "
                          "reserve, fully activated at fcr_full_hz.")
    fcr_deadband_hz: float = Field(0.010, ge=0, description="FCR's insensitivity (±).")
    fcr_full_hz: float = Field(0.200, gt=0, description="Deviation of full FCR activation.")
    fcr_full_s: Seconds = Field(30.0, description="Time to activate all of FCR.")
    afrr_s: OffsetSeconds = Field(300.0, description="Time constant of the aFRR restoring "
                                  "nominal frequency; 0 for none.")

    @model_validator(mode="after")
    def _band(self) -> "AreaSpecModel":
        if not self.fcr_deadband_hz < self.fcr_full_hz:
            raise ValueError(f"fcr_deadband_hz below fcr_full_hz ({self.fcr_full_hz}); "
                             f"found {self.fcr_deadband_hz}")
        return self


class DisturbanceSpec(Strict):
    after: OffsetSeconds = Field(..., description="When, from the scenario start.")
    p_mw: float = Field(..., description="Power imbalance from then on [MW]: −3000 for the "
                        "loss of 3 GW of generation, positive for a load lost.")


class ResponseSpecModel(Strict):
    """What the twin's own units do for the frequency (:mod:`twin.models.frequency_units`)."""

    scale: float = Field(1.0, gt=0, description="How many feeders like the twin's answer "
                         "alike in the area: the units' responses are scaled by it.")
    pf: bool = Field(True, description="PV and wind reduce their output above 50.2 Hz "
                     "(VDE-AR-N 4105 P(f)).")
    fcr_battery_share: float = Field(0.0, ge=0, le=1, description="Share of each battery's "
                                     "power offered as FCR (droop, SOC-aware).")
    v2g_share: float = Field(0.0, ge=0, le=1, description="Share of the EVs' V2G capability "
                             "(held 15 min, departure targets kept) assigned to FCR.")
    wind_inertia_h_s: float = Field(0.0, ge=0, description="Emulated inertia constant of "
                                    "the wind turbines on their rating; 0 for none.")
    storage_inertia_h_s: float = Field(0.0, ge=0, description="Emulated inertia constant "
                                       "of the batteries on their power rating; 0 for none.")
    wind_headroom_share: float = Field(0.10, ge=0, le=1, description="Extra power a "
                                       "turning rotor lends, share of its rating.")


class FrequencySpec(Strict):
    enabled: bool = Field(False, description="Simulate the area's frequency.")
    area: AreaSpecModel = AreaSpecModel()
    step: Seconds = Field(0.1, le=10.0, description="Step while the frequency is away from "
                          "rest (none while it rests).")
    disturbances: list[DisturbanceSpec] = Field(
        [], description="Power imbalances of the area, e.g. a generation trip.")
    response: ResponseSpecModel | None = Field(
        None, description="The twin's PV, wind, batteries and EVs answering the frequency "
        "(P(f), FCR, synthetic inertia), scaled to the area; none: they do not.")
