"""The DMS functions' mode: one definition in the DMS, spelled again by the scenario schema
(which does not depend on the DMS); the two must not drift apart."""

from __future__ import annotations

import typing

from twin.dms.decisions import Mode
from twin.scenario import dms as scenario_dms


def test_the_scenario_offers_exactly_the_dms_modes():
    literal = typing.get_args(scenario_dms.Mode)[0]  # Annotated[Literal[...], validator]
    assert typing.get_args(literal) == typing.get_args(Mode)
