"""The field as plain data: what each RTU point measures (where its truth sits in the grid
simulator's snapshot), which device each command target is and how commands reach it.

Built from the scenario by :mod:`twin.build.field`; run by the field simulator
(:mod:`simulators.field`) with the comm network (:mod:`twin.models.comms`) and the field
crews (:mod:`twin.models.crews`). Nothing here runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twin.models import comms
from twin.models.crews import CrewSpec

#: Command action → (device kind it applies to, attribute the device entity outputs).
ACTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "open": (("switch",), "closed"),
    "close": (("switch",), "closed"),
    "set_tap": (("trafo",), "tap_pos"),
    "set_step": (("shunt",), "step"),
    "set_p_limit": (("pv", "wind"), "p_limit_mw"),
    "set_q": (("pv", "wind"), "q_setpoint_mvar"),
    "set_p": (("battery",), "p_setpoint_mw"),
    "set_ev_limit": (("ev",), "p_limit_mw"),
    "repair": (("line",), "repaired"),   # a crew repairs a faulted line
}

#: Device kind → grid table holding its truth.
KIND_TABLE = {"bus": "bus", "line": "line", "trafo": "trafo", "switch": "switch",
              "shunt": "shunt", "load": "load", "sgen": "sgen", "pv": "sgen", "wind": "sgen",
              "battery": "storage", "ev": "load"}


@dataclass(frozen=True)
class TruthRef:
    """Where a point's true value sits in the grid snapshot."""

    table: str
    position: int
    attr: str


@dataclass(frozen=True)
class Device:
    ref: str                 # "switch:S1"
    kind: str                # "switch"
    eid: str                 # field simulator entity id
    attr: str                # output attribute ("closed")
    rtu: str | None          # RTU whose link carries its commands (None: crew or unreachable)
    manual: bool = False     # only a crew can operate it
    location_xy_km: tuple[float, float] | None = None


@dataclass
class FieldPlan:
    rtus: list[comms.RTUSpec]
    truth: dict[str, dict[str, TruthRef]]     # rtu -> point name -> where its truth is
    devices: dict[str, Device]                # ref -> device
    crew: CrewSpec | None
    command_timeout_s: float = 5.0
    targets: dict[str, tuple[str, int]] = field(default_factory=dict)  # device eid -> (table, idx)
    # a crew's time on site for a job, where it is not the usual switching time: the repair
    # of a faulted line (by device ref)
    work_time_s: dict[str, float] = field(default_factory=dict)
    # RTU -> its status points (reported by exception when they change)
    status_points: dict[str, tuple[str, ...]] = field(default_factory=dict)
