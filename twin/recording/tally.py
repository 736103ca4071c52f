"""What the recorder counted, for the run summary."""

from __future__ import annotations

from dataclasses import dataclass, field

from twin.recording.schema import Point


@dataclass
class Tally:
    """What the recorder counted, for the run summary (shared with the caller in-process)."""

    points: int = 0
    grid_solves: int = 0
    events: list[Point] = field(default_factory=list)
