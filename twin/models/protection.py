"""Faults in the grid and the protection that clears them: overcurrent relays on circuit
breakers, one auto-reclose shot, and fault-passage indicators (FPIs).

Plain Python over a pandapower net; the grid model (:mod:`twin.grid.model`) owns one
:class:`Protection` and calls it whenever faults or the topology change. Times are float
seconds since the run start.

Rules
-----
Fault currents
    IEC 60909 initial short-circuit currents (:func:`twin.grid.iec60909.fault_currents`,
    case "max") of the fault at its place on the line, in the topology of the moment.
Which relay trips
    Of the relays whose breaker is closed and carries more than their pick-up, the one
    nearest the fault (fewest branches away): definite-time grading makes the downstream
    relay the fastest, so the upstream ones drop off before their delay runs out. The
    protection operating time (tenths of a second) is below the twin's step, so the trip is
    in the state of the same tick; its delay is recorded.
Reclose
    With ``reclose_dead_time_s`` set, a breaker that trips recloses once after that time.
    A trip within ``reclaim_s`` of its reclose locks it out (no further shots).
Temporary faults
    An arc: gone as soon as the line is de-energised, so a reclose succeeds.
Indicators
    An FPI on a line (at its from end) or a trafo (HV side) picks up when the fault current
    through it exceeds its pick-up, and resets ``fpi_reset_s`` later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import networkx as nx
import pandapower as pp
import pandapower.topology as top

from twin.grid.iec60909 import FaultCurrents, fault_currents, live_buses


@dataclass(frozen=True)
class Fault:
    """A fault on a line. ``position`` is the share of the length from the from bus."""

    name: str
    line: int
    position: float = 0.5
    fault_type: str = "3ph"
    r_ohm: float = 0.0
    x_ohm: float = 0.0
    permanent: bool = True
    repair_time_s: float = 7200.0


@dataclass(frozen=True)
class Relay:
    """An overcurrent relay tripping breaker ``switch``."""

    switch: int
    pickup_ka: float
    delay_s: float = 0.3


@dataclass(frozen=True)
class ProtectionSettings:
    relays: dict[int, Relay]
    #: FPI pick-up per ("line" | "trafo", index) [kA]
    fpi_pickup_ka: dict[tuple[str, int], float] = field(default_factory=dict)
    fpi_reset_s: float = 600.0
    reclose_dead_time_s: float | None = None
    reclaim_s: float = 60.0


@dataclass(frozen=True)
class ProtectionEvent:
    """Something the protection did or saw, for the record."""

    t_s: float
    kind: str          # fault, trip, reclose, lockout, cleared, repaired, not_cleared
    element: str       # "line:3", "switch:6"
    fields: dict = field(default_factory=dict)


FaultCurrentsFn = Callable[..., FaultCurrents]


class Protection:
    """The faults present in a net and the protection acting on them.

    Parameters
    ----------
    settings : ProtectionSettings
    currents : callable, optional
        ``currents(net, line, position, fault, r_fault_ohm, x_fault_ohm)`` → FaultCurrents;
        the IEC 60909 calculation by default.
    """

    def __init__(self, settings: ProtectionSettings,
                 currents: FaultCurrentsFn = fault_currents):
        self.settings = settings
        self.currents = currents
        self.faults: dict[int, Fault] = {}          # line -> its fault
        self.tripped: set[int] = set()              # breakers open by protection
        self.locked_out: set[int] = set()
        self.fpi_since: dict[tuple[str, int], float] = {}
        self._reclose_at: dict[int, float] = {}     # breaker -> when its shot comes
        self._reclosed_at: dict[int, float] = {}    # breaker -> when it last reclosed
        self._unclearable: set[int] = set()         # faults no relay sees (said once)

    # ---------------------------------------------------------------- inputs
    def inject(self, net: pp.pandapowerNet, fault: Fault, t_s: float) -> list[ProtectionEvent]:
        """A fault appears; the protection reacts at once. Returns what happened. A fault
        whose impedance is not a finite, non-negative number is no fault the short-circuit
        calculation can take: it is ignored, and said so (``fault_ignored``)."""
        bad = [f"{k} = {v!r}" for k, v in (("r_ohm", fault.r_ohm), ("x_ohm", fault.x_ohm))
               if not (math.isfinite(v) and v >= 0)]
        if bad:
            return [ProtectionEvent(t_s, "fault_ignored", f"line:{fault.line}", {
                "name": fault.name, "reason": "fault impedance must be finite and "
                f"non-negative; found {', '.join(bad)}"})]
        self.faults[fault.line] = fault
        self._unclearable.discard(fault.line)
        events = [ProtectionEvent(t_s, "fault", f"line:{fault.line}", {
            "name": fault.name, "position": fault.position, "type": fault.fault_type,
            "permanent": int(fault.permanent)})]
        return events + self.settle(net, t_s)

    def repair(self, line: int, t_s: float) -> list[ProtectionEvent]:
        """A crew has repaired ``line``: its fault is gone."""
        fault = self.faults.pop(line, None)
        if fault is None:
            return []
        return [ProtectionEvent(t_s, "repaired", f"line:{line}", {"name": fault.name})]

    def switch_closed(self, switch: int) -> None:
        """Someone closed ``switch`` (a command): its trip indication and lockout reset."""
        self.tripped.discard(switch)
        self.locked_out.discard(switch)
        self._reclose_at.pop(switch, None)

    # ---------------------------------------------------------------- time
    def next_event_s(self) -> float:
        """When the protection next acts on its own (reclose, indicator reset) [s]."""
        times = list(self._reclose_at.values())
        times += [t + self.settings.fpi_reset_s for t in self.fpi_since.values()]
        return min(times, default=float("inf"))

    def advance(self, net: pp.pandapowerNet, t_s: float) -> list[ProtectionEvent]:
        """Do what is due by ``t_s``: indicator resets, reclose shots (and their trips)."""
        reset = self.settings.fpi_reset_s
        for key in [k for k, since in self.fpi_since.items() if since + reset <= t_s]:
            del self.fpi_since[key]
        events: list[ProtectionEvent] = []
        for sw in sorted(s for s, at in self._reclose_at.items() if at <= t_s):
            del self._reclose_at[sw]
            if bool(net.switch.at[sw, "closed"]):
                continue  # closed meanwhile by someone else
            net.switch.at[sw, "closed"] = True
            self.tripped.discard(sw)
            self._reclosed_at[sw] = t_s
            events.append(ProtectionEvent(t_s, "reclose", f"switch:{sw}"))
            events += self.settle(net, t_s)
        return events

    # ---------------------------------------------------------------- physics
    def settle(self, net: pp.pandapowerNet, t_s: float) -> list[ProtectionEvent]:
        """Trip breakers until no fault is energised (or no relay sees the one left)."""
        events: list[ProtectionEvent] = []
        for _ in range(len(self.settings.relays) + len(self.faults) + 1):
            graph = top.create_nxgraph(net, respect_switches=True, include_out_of_service=False)
            live = live_buses(net, graph)
            fault = next((f for line, f in sorted(self.faults.items())
                          if line not in self._unclearable and line_energised(net, line, live)),
                         None)
            if fault is None:
                break
            cur = self.currents(net, fault.line, fault.position, fault.fault_type,
                                fault.r_ohm, fault.x_ohm)
            self._pick_up_fpis(cur, t_s)
            relay = self._tripping_relay(net, graph, fault, cur)
            if relay is None:
                self._unclearable.add(fault.line)
                events.append(ProtectionEvent(t_s, "not_cleared", f"line:{fault.line}", {
                    "name": fault.name, "ikss_ka": cur.ikss_ka}))
                continue
            events += self._trip(net, relay, fault, cur, t_s)
        # Temporary faults are arcs: once their line is dead they are gone.
        graph = top.create_nxgraph(net, respect_switches=True, include_out_of_service=False)
        live = live_buses(net, graph)
        for line, fault in sorted(self.faults.items()):
            if not fault.permanent and not line_energised(net, line, live):
                del self.faults[line]
                events.append(ProtectionEvent(t_s, "cleared", f"line:{line}", {"name": fault.name}))
        return events

    def _pick_up_fpis(self, cur: FaultCurrents, t_s: float) -> None:
        for (table, idx), pickup in self.settings.fpi_pickup_ka.items():
            flows = cur.line_ka if table == "line" else cur.trafo_ka
            if flows.get(idx, 0.0) > pickup:
                self.fpi_since[(table, idx)] = t_s

    def _tripping_relay(self, net, graph, fault: Fault, cur: FaultCurrents) -> Relay | None:
        closed = net.switch["closed"]
        candidates = [r for r in self.settings.relays.values() if bool(closed.at[r.switch])
                      and cur.switch_ka.get(r.switch, 0.0) > r.pickup_ka]
        if not candidates:
            return None
        ends = (int(net.line.at[fault.line, "from_bus"]), int(net.line.at[fault.line, "to_bus"]))

        def distance(relay: Relay) -> float:
            bus = int(net.switch.at[relay.switch, "bus"])
            hops = [nx.shortest_path_length(graph, bus, e) for e in ends
                    if bus in graph and e in graph and nx.has_path(graph, bus, e)]
            return min(hops, default=float("inf"))

        return min(candidates, key=lambda r: (distance(r), r.switch))

    def _trip(self, net, relay: Relay, fault: Fault, cur: FaultCurrents,
              t_s: float) -> list[ProtectionEvent]:
        sw = relay.switch
        net.switch.at[sw, "closed"] = False
        self.tripped.add(sw)
        fields = {"fault": fault.name, "i_fault_ka": round(cur.switch_ka.get(sw, 0.0), 6),
                  "ikss_ka": round(cur.ikss_ka, 6), "pickup_ka": relay.pickup_ka,
                  "delay_s": relay.delay_s}
        events = [ProtectionEvent(t_s, "trip", f"switch:{sw}", fields)]
        dead = self.settings.reclose_dead_time_s
        recent = t_s - self._reclosed_at.get(sw, -float("inf")) <= self.settings.reclaim_s
        if dead is None or recent:
            self.locked_out.add(sw)
            events.append(ProtectionEvent(t_s, "lockout", f"switch:{sw}", {"fault": fault.name}))
        else:
            self._reclose_at[sw] = t_s + dead
        return events

    # ---------------------------------------------------------------- state
    def fpi_flag(self, table: str, idx: int) -> bool:
        return (table, idx) in self.fpi_since


def line_energised(net: pp.pandapowerNet, line: int, live: set[int]) -> bool:
    """Whether ``line`` is connected to a source at either end (a line with an open switch
    at one end is still live from the other)."""
    if not bool(net.line.at[line, "in_service"]):
        return False
    sw = net.switch[(net.switch.et == "l") & (net.switch.element == line)]
    for end in ("from_bus", "to_bus"):
        bus = int(net.line.at[line, end])
        at_end = sw[sw.bus == bus]
        if bus in live and bool(at_end["closed"].all()):
            return True
    return False
