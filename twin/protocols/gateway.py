"""The field's protocol gateway: the RTUs' endpoints, fed and drained by the field simulator.

A :class:`Gateway` starts one endpoint per RTU the scenario gives one
(``rtus[i].endpoint``), Modbus TCP (:mod:`twin.protocols.modbus`) or IEC 60870-5-104
(:mod:`twin.protocols.iec104`, imported only when an RTU asks for it). The field simulator
(:mod:`simulators.field`), in the mosaik thread, calls it:

* :meth:`Gateway.deliver` with every batch of telemetry the comm model delivers: the
  endpoint shows it from then on (IEC 104 sends it at once). A value that is not a number
  is published invalid (Modbus: NaN; IEC 104: IV). Each scan also sets the RTU's
  ``scan_t_s`` point, the simulated time the values were taken, so a client knows how old
  they are on any clock;
* :meth:`Gateway.at` at each of its steps: an RTU inside one of its link's outage windows
  is unreachable (Modbus answers nothing, IEC 104 refuses connections), and an RTU whose
  last scan is older than :data:`STALE_SCANS` scan periods has its values flagged
  invalid, as a front end would flag them;
* :meth:`Gateway.drain` for the commands clients wrote since, as field command dicts whose
  ``source`` names the protocol and the client, and :meth:`Gateway.done` with each one's
  outcome, which the endpoint reports back (Modbus status register; IEC 104 ACTTERM);
* :meth:`Gateway.stop` at the end of the run.

Endpoints call back from their own threads; commands cross to the mosaik thread through a
thread-safe queue, so nothing else is shared.
"""

from __future__ import annotations

import logging
import math
import queue
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from twin.protocols.modbus import CommandRequest, ModbusEndpoint
from twin.protocols.pointmap import PointMap, scan_time_point

_LOG = logging.getLogger("twin.protocols")

#: An RTU's values are flagged invalid once its last delivered scan is older than this many
#: scan periods (two scans lost in a row, or a link down).
STALE_SCANS = 2.5


class EndpointUnavailable(OSError):
    """An endpoint could not listen where asked (its RTU in :attr:`rtu`)."""

    def __init__(self, rtu: str, message: str):
        super().__init__(message)
        self.rtu = rtu


@dataclass(frozen=True)
class EndpointSpec:
    """Where one RTU serves its points: ``protocol`` on ``host:port`` (port 0: the system
    picks one, see :meth:`Gateway.addresses`)."""

    protocol: Literal["modbus", "iec104"]
    port: int
    host: str = "127.0.0.1"


class _Endpoint(Protocol):
    rtu: str
    host: str

    @property
    def port(self) -> int: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def publish(self, values: Mapping[str, float | bool], invalid: Iterable[str] = ()) -> None: ...
    def set_reachable(self, reachable: bool) -> None: ...
    def command_done(self, request_id: str, status: str) -> Any: ...


@dataclass
class _RTU:
    endpoint: Any
    protocol: str
    scan_period_s: float
    outages: tuple[tuple[float, float], ...]
    telemetry: tuple[str, ...]  # point names (without scan_t_s)
    spec: EndpointSpec
    last_scan_s: float = -math.inf
    stale: bool = False
    reachable: bool = True


class Gateway:
    """The endpoints of a run's RTUs (see the module notes).

    Parameters
    ----------
    point_map : PointMap
        The run's map (:func:`twin.protocols.pointmap.point_map`).
    endpoints : mapping of str to EndpointSpec
        RTU name → where it listens; RTUs not named get no endpoint.
    rtus : iterable of twin.models.comms.RTUSpec
        The field plan's RTUs (scan periods, outage windows).
    log : logging.Logger
    """

    def __init__(self, point_map: PointMap, endpoints: Mapping[str, EndpointSpec],
                 rtus: Iterable[Any], log: logging.Logger = _LOG):
        self._log = log
        self._commands: queue.SimpleQueue[CommandRequest] = queue.SimpleQueue()
        self._rtus: dict[str, _RTU] = {}
        self._requests: dict[str, tuple[str, str]] = {}  # field command id -> (rtu, request id)
        specs = {r.name: r for r in rtus}
        for name, spec in endpoints.items():
            points = point_map.for_rtu(name)
            if name not in specs or not points:
                raise ValueError(f"Gateway: RTU {name!r} has no points in the map")
            if spec.protocol == "iec104":
                from twin.protocols.iec104 import Iec104Endpoint  # GPL extra, only when used
                ep: Any = Iec104Endpoint(name, points, host=spec.host, port=spec.port,
                                         on_command=self._commands.put, log=log)
            elif spec.protocol == "modbus":
                ep = ModbusEndpoint(name, points, host=spec.host, port=spec.port,
                                    on_command=self._commands.put, log=log)
            else:
                raise ValueError(f"Gateway: RTU {name!r}: protocol must be 'modbus' or "
                                 f"'iec104'; found {spec.protocol!r}")
            rtu = specs[name]
            telemetry = tuple(p.name for p in points if p.direction == "telemetry"
                              and p.quantity != "scan_t_s")
            self._rtus[name] = _RTU(ep, spec.protocol, float(rtu.scan_period_s),
                                    tuple(rtu.link.outages), telemetry, spec)
        self._started = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start every endpoint; :class:`EndpointUnavailable` (none left running) if one
        cannot listen."""
        for name, rtu in self._rtus.items():
            try:
                rtu.endpoint.start()
            except (OSError, RuntimeError) as err:  # RuntimeError: c104 would not start
                self.stop()
                raise EndpointUnavailable(name, f"RTU {name} cannot listen for "
                                          f"{_LABEL[rtu.protocol]} on {rtu.spec.host}:"
                                          f"{rtu.spec.port}: "
                                          f"{getattr(err, 'strerror', None) or err}") from None
        self._started = True  # (each endpoint logs where it listens)

    def stop(self) -> None:
        """Stop every endpoint (idempotent)."""
        for rtu in self._rtus.values():
            try:
                rtu.endpoint.stop()
            except Exception as err:  # one endpoint failing to stop must not keep others up
                self._log.warning("RTU %s: stopping its endpoint: %s", rtu.endpoint.rtu, err)
        self._started = False

    def addresses(self) -> dict[str, tuple[str, str, int]]:
        """RTU → (protocol, host, port) of each endpoint (ports as bound, after start)."""
        return {name: (r.protocol, r.endpoint.host, r.endpoint.port)
                for name, r in self._rtus.items()}

    def __contains__(self, rtu: str) -> bool:
        return rtu in self._rtus

    # ------------------------------------------------------------------ telemetry
    def deliver(self, rtu: str, values: Mapping[str, float | bool], source_t_s: float) -> None:
        """One delivered scan (or part of one) of ``rtu``: point name → value."""
        r = self._rtus.get(rtu)
        if r is None:
            return
        good: dict[str, float | bool] = {}
        invalid: list[str] = []
        for name, value in values.items():
            if isinstance(value, bool) or math.isfinite(float(value)):
                good[name] = value
            else:
                invalid.append(name)
        if source_t_s >= r.last_scan_s:
            r.last_scan_s = source_t_s
            good[scan_time_point(rtu)] = float(source_t_s)
        if r.stale:  # a scan arrived: the others are as old as they were; keep them flagged
            invalid += [n for n in r.telemetry if n not in good and n not in invalid]
        r.endpoint.publish(good, invalid)

    def at(self, t_s: float) -> None:
        """The state of the links at ``t_s``: reachability and staleness."""
        for name, r in self._rtus.items():
            reachable = not any(start <= t_s < end for start, end in r.outages)
            if reachable != r.reachable:
                r.reachable = reachable
                try:
                    r.endpoint.set_reachable(reachable)
                except OSError as err:  # IEC 104 back on a port taken meanwhile
                    self._log.error("RTU %s: back from its outage but cannot listen again: %s",
                                    name, err)
            stale = t_s - r.last_scan_s > STALE_SCANS * r.scan_period_s
            if stale and not r.stale and math.isfinite(r.last_scan_s):
                r.endpoint.publish({}, r.telemetry)
            r.stale = stale

    # ------------------------------------------------------------------ commands
    def drain(self) -> list[dict]:
        """Commands written by clients since the last call, as field commands (``id``,
        ``target``, ``action``, ``value``, ``source``) in arrival order."""
        out: list[dict] = []
        while True:
            try:
                req = self._commands.get_nowait()
            except queue.Empty:
                return out
            # the endpoints' ids are unique per run ("modbus:<rtu>:<n>", "iec104:<rtu>:<n>")
            self._requests[req.id] = (req.rtu, req.id)
            protocol = self._rtus[req.rtu].protocol
            source = req.client if req.client.startswith(protocol) else \
                f"{protocol} {req.client}"
            out.append({"id": req.id, "target": req.device, "action": req.action,
                        "value": req.value, "source": source})

    def done(self, command_id: str, status: str) -> None:
        """The outcome of a command :meth:`drain` gave (others are ignored)."""
        found = self._requests.pop(command_id, None)
        if found is None:
            return
        rtu, request_id = found
        try:
            self._rtus[rtu].endpoint.command_done(request_id, status)
        except ValueError as err:  # the endpoint restarted since (IEC 104 outage)
            self._log.info("RTU %s: outcome of %s not reported: %s", rtu, command_id, err)


_LABEL = {"modbus": "Modbus TCP", "iec104": "IEC 60870-5-104"}
