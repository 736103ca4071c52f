"""The smallest valid scenario around the sections a build test is about."""

from __future__ import annotations

from twin.scenario import Scenario, parse_scenario


def minimal_scenario(name: str, duration: str = "1h", grid: str = "cigre_mv",
                     **sections) -> Scenario:
    """A scenario on the built-in ``grid`` from 2026-06-21 00:00 UTC, seed 1, with
    ``sections`` as given (``devices=…``, ``pv=…``, ``rtus=…``)."""
    return parse_scenario({"name": name, "start": "2026-06-21T00:00:00Z",
                           "duration": duration, "seed": 1, "grid": {"builtin": grid},
                           **sections})
