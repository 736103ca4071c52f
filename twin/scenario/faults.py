"""Scenario sections for what goes wrong and what clears it: ``faults`` (injected into the
grid), ``protection`` (overcurrent relays, auto-reclose, fault-passage indicators, switchgear
ratings) and ``reliability`` (customers per load for IEEE 1366 indices).

Names (lines, switches, loads) are checked against the grid when the run is prepared.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from twin.scenario.base import OffsetSeconds, Seconds, Strict


class FaultSpecModel(Strict):
    after: OffsetSeconds = Field(..., description="When, from the scenario start.")
    line: str = Field(..., description="Name of the faulted line.")
    position: float = Field(0.5, ge=0, le=1,
                            description="Where along the line, as a share of its length "
                            "from its from bus.")
    type: Literal["3ph", "2ph", "1ph"] = Field("3ph", description="IEC 60909 fault type.")
    r_ohm: float = Field(0.0, ge=0, description="Fault resistance.")
    x_ohm: float = Field(0.0, ge=0, description="Fault reactance.")
    permanent: bool = Field(
        True, description="Permanent: stays until repaired. Temporary: gone once the line "
        "is de-energised (an arc), so a reclose succeeds.")
    repair_time: Seconds = Field(7200.0, description="A crew's time on site to repair it.")


class RelaySpecModel(Strict):
    switch: str = Field(..., description="The circuit breaker the relay trips.")
    pickup_ka: float | None = Field(
        None, gt=0, description="Overcurrent pick-up; default: pickup_factor × the rated "
        "current of the line or trafo the breaker switches.")
    delay: OffsetSeconds = Field(0.3, description="Definite-time delay (recorded).")


class RatingSpecModel(Strict):
    switch: str
    breaking_ka: float | None = Field(None, gt=0, description="Symmetrical breaking current.")
    making_ka: float | None = Field(None, gt=0, description="Peak making current.")


class ProtectionSpec(Strict):
    relays: list[RelaySpecModel] | Literal["breakers"] = Field(
        "breakers", description="'breakers': an overcurrent relay on every circuit breaker "
        "(switch type CB) with the default pick-up.")
    pickup_factor: float = Field(2.0, gt=1, description="Default pick-up / rated current.")
    reclose_dead_time: Seconds | None = Field(
        None, description="One auto-reclose shot this long after a trip (None: no reclose; "
        "the breaker locks out).")
    fpi_pickup_factor: float = Field(
        2.0, gt=0, description="Fault-passage indicators pick up above this × the line's "
        "(trafo's) rated current.")
    fpi_reset_after: Seconds = Field(600.0, description="Indicators reset this long after "
                                     "they picked up.")
    ratings: list[RatingSpecModel] = Field(
        [], description="Switchgear ratings; others get defaults by type and voltage.")


class ReliabilitySpec(Strict):
    customers: dict[str, Annotated[int, Field(ge=0)]] = Field(
        {}, description="Customers per load name; others derived from the load's size.")
    momentary: Seconds = Field(300.0, description="Interruptions up to this long are "
                               "momentary (IEEE 1366: 5 min).")
