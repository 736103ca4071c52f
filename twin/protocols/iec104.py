"""IEC 60870-5-104 server of one RTU (c104): what a SCADA front end talks to over 104.

An :class:`Iec104Endpoint` serves one RTU's mapped points (:mod:`twin.protocols.pointmap`)
as one controlled station (common address ``MappedPoint.iec104_ca``) on a TCP port. The
field simulator (the mosaik thread) hands it telemetry as the comm model delivered it
(:meth:`Iec104Endpoint.publish`), takes it off the air and back with the link's outages
(:meth:`Iec104Endpoint.set_reachable`) and gets back the commands clients send, as
:class:`~twin.protocols.modbus.CommandRequest` objects, through ``on_command``; it reports
their outcome with :meth:`Iec104Endpoint.command_done`. Every public method is thread-safe.

The protocol is c104 (Fraunhofer FIT's Python binding of MZ Automation's lib60870-C),
licensed GPL-3.0: an optional dependency (``pip install 'dms-twin[iec104]'``), imported by
this module only when an endpoint is built, and by no other module of the twin. c104
listens on a loopback port of its own; clients reach it through a guard on ``host:port``
that checks every APDU first (see "Bad input" below).

Rules
-----
Monitoring direction
    Measurands are ``M_ME_NC_1`` (short float) and status points ``M_SP_NA_1`` (single
    point), at the point map's IOAs. Every :meth:`~Iec104Endpoint.publish` is one scan of
    the RTU as the comm model delivered it:

    * measurands go out with cause of transmission PERIODIC (1) on every publish that
      names them: the RTU's cyclic transmission, with the scan as its cycle (c104's own
      ``report_ms`` timer runs on wall-clock time, which is not the simulation's);
    * status points go out SPONTANEOUS (3) when their value or quality changed, and not
      at all when they did not;
    * ``spontaneous=[names]`` overrides both: exactly the named points go out
      SPONTANEOUS, the other measurands PERIODIC, the other status points not at all.

    Points of one type and cause travel packed in one ASDU (split by c104 when full).
    A general interrogation (``C_IC_NA_1``, station) is answered by c104 with every point's
    current value and quality, cause INTERROGATED_BY_STATION (20), between ACTCON and
    ACTTERM. A GI that overlaps a publish may see part of it.
Quality descriptor
    * IV (invalid) for the points the publisher names in ``invalid`` (the value is not
      to be trusted: bad measurement, failed sensor) and for a measurand that is not
      finite;
    * NT (not topical) for a value older than the deliveries it should have had: a point
      never published (value 0 / OFF, flagged IV as well), and every point held over a
      comm outage (:meth:`~Iec104Endpoint.set_reachable` False), until it is published
      again.

    A publish without ``invalid`` for a point clears its IV; any publish of a value clears
    its NT.
Commands
    * switch: ``C_DC_NA_1`` double command, 1 = OFF → action ``"open"``, 2 = ON →
      ``"close"`` (value None); 0 and 3 are refused;
    * tap position, capacitor step: ``C_SE_NB_1`` scaled set-point, value the integer;
    * P/Q set-points: ``C_SE_NC_1`` short-float set-point, value the float32 as sent.

    Points with :attr:`MappedPoint.select_before_operate` run in c104's select-and-execute
    mode: an execute without a valid select from the same connection (within
    ``select_timeout_s``) is refused by c104 with a negative ACTCON, as is a select of a
    point in direct mode. An accepted execute becomes one ``CommandRequest`` handed to
    ``on_command`` before c104 answers with a positive ACTCON (7); ``command_done(id,
    "success")`` sends the ACTTERM (10) for it. A refused command gets a negative ACTCON
    (P/N = 1) and a log line, and no request: a value outside ``MappedPoint.low .. high``
    (bounds rounded to float32 for float set-points) or not finite, a double command state
    other than 1 or 2, a deactivation, no ``on_command`` handler or one that raised. c104
    itself answers an unknown IOA (negative ACTCON, then cause UNKNOWN_IOA 47), a type
    other than the point's (negative ACTCON, then UNKNOWN_TYPE_ID 44) and an unknown common
    address (UNKNOWN_CA 46); those are logged through its unexpected-message callback.
Limits of c104 2.2 (what a client sees that a field RTU might do otherwise)
    * No negative ACTTERM: c104 sets the P/N bit only in the confirmations it builds
      itself, so ``command_done(id, "failed")`` and ``"timeout"`` send no ACTTERM at all
      (logged, and :meth:`~Iec104Endpoint.command_done` returns False): the front end's
      ACTTERM supervision runs out, as it does when the RTU's acknowledgement is lost.
    * In select-and-execute mode c104 ends the selection with an ACTTERM of the select
      ASDU (S/E = 1) right after the execute's ACTCON; the execution's own ACTTERM
      (S/E = 0) follows ``command_done``. c104's own Client counts that first ACTTERM as
      the end of the command.
    * The ACTTERM goes to every connected client with originator address 0 (c104's
      server-side ``Point.transmit`` takes neither a connection nor an originator).
    * c104 tells a command handler the client's originator address but not its TCP
      connection: ``CommandRequest.client`` is ``"iec104 OA <n>"``.
Unreachable
    ``set_reachable(False)`` stops the endpoint: connections are closed and connects are
    refused (to the front end the RTU's server is gone; behind a dead WAN link its connects
    would rather go unanswered). Pending selections die with it; a command pending at that
    moment gets no ACTTERM. ``set_reachable(True)`` listens again
    on the same port, with a fresh c104 server; the values held are NT until published
    again.
Bad input
    c104 2.2.1 crashes the whole process (SIGSEGV) on some well-framed ASDUs no
    controlling station sends, e.g. a monitor-direction type with SQ = 1 (13 octets
    suffice). So clients do not reach c104 directly: the guard reads each APDU a client
    sends and passes it on only if :func:`apdu_problem` finds nothing wrong (framing,
    control-direction type, one object, length for the type); the first bad one closes
    that client's connection, logged, and the endpoint goes on serving the others. c104's
    own port is on loopback, reachable by local processes only.
Latency
    lib60870's server polls each connection with a 100 ms timeout and sends what c104
    queued (spontaneous and periodic telemetry, an ACTTERM) only when it wakes; answers to
    a client's request (ACTCON, a GI) go out at once. After a publish or an ACTTERM the
    guard wakes it with a TESTFR act on each link (the TESTFR con is kept from the client),
    so queued data leaves within a millisecond instead of 0 - 100 ms.
Connections
    At most ``max_connections`` at once: a new connection beyond that closes, logged, the
    oldest one that has not started data transfer, else the least recently active one; so
    a flood of idle connections cannot lock a front end out.
Threads
    The guard runs an asyncio loop in a daemon thread ``iec104-<rtu>``; c104 runs the
    server in threads of its own. ``on_command`` is called in one of c104's,
    while the client waits for its ACTCON: keep it short (put the request on a queue). It
    may call :meth:`~Iec104Endpoint.command_done` (the ACTTERM then still follows the
    ACTCON on the wire), but not :meth:`~Iec104Endpoint.start`, ``stop``,
    ``set_reachable`` or ``publish``, which raise RuntimeError there (stopping joins the
    very thread, and waiting for a stop under way would deadlock).
    :meth:`~Iec104Endpoint.stop` closes every connection and stops both (threads
    joined).

References
----------
IEC 60870-5-101:2003 and IEC 60870-5-104:2006, Telecontrol equipment and systems —
Transmission protocols (causes of transmission 7.2.3, quality descriptors 7.2.6.3,
select and execute 7.2.6.4 / 5.x of -104's companion profile).
c104: https://iec104-python.readthedocs.io (API), Fraunhofer-FIT-DIEN/iec104-python
issue 65 (no user-built ACTCON/ACTTERM).
"""

# No ``from __future__ import annotations`` here: c104 checks a callback's signature by
# its text, annotations included, so the callbacks' annotations must be real classes.

import asyncio
import concurrent.futures
import itertools
import logging
import math
import socket
import struct
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from twin.protocols.modbus import CommandOutcome, CommandRequest
from twin.protocols.pointmap import MappedPoint

__all__ = ["CommandRequest", "Iec104Endpoint", "apdu_problem"]

_LOG = logging.getLogger(__name__)

MEASURAND_TYPE = "M_ME_NC_1"
STATUS_TYPE = "M_SP_NA_1"
DOUBLE_COMMAND_TYPE = "C_DC_NA_1"
SCALED_SETPOINT_TYPE = "C_SE_NB_1"
FLOAT_SETPOINT_TYPE = "C_SE_NC_1"
TELEMETRY_TYPES = (MEASURAND_TYPE, STATUS_TYPE)
COMMAND_TYPES = (DOUBLE_COMMAND_TYPE, SCALED_SETPOINT_TYPE, FLOAT_SETPOINT_TYPE)

_STATUSES = ("success", "failed", "timeout")
_FREE_PORT_ATTEMPTS = 5

#: Information element sizes [octets] after the IOA, by type id, of the ASDUs a controlling
#: station may send in IEC 104 (IEC 60870-5-101, 7.3.2 - 7.3.5; IEC 60870-5-104, 8):
#: commands, with time tag CP56Time2a (+7), system commands (not C_TS_NA_1 104 and
#: C_CD_NA_1 106, which 104 leaves out), parameters. Any other type id from a client is
#: refused (file transfer, which c104 does not serve, and the monitor direction).
CONTROL_ELEMENT_SIZES = {
    45: 1, 46: 1, 47: 1, 48: 3, 49: 3, 50: 5, 51: 4,  # C_SC .. C_BO _NA_1
    58: 8, 59: 8, 60: 8, 61: 10, 62: 10, 63: 12, 64: 11,  # C_SC .. C_BO _TA_1
    100: 1, 101: 1, 102: 0, 103: 7, 105: 1, 107: 9,  # C_IC, C_CI, C_RD, C_CS, C_RP, C_TS_TA
    110: 3, 111: 3, 112: 5, 113: 1,  # P_ME_NA_1 .. P_AC_NA_1
}
#: ASDU header with c104's sizes: type id, VSQ, cause (2 octets), common address (2).
_ASDU_HEADER = 6
_IOA_SIZE = 3
#: U-frame functions (IEC 60870-5-104, 5.3): STARTDT, STOPDT, TESTFR, act and con.
_U_FUNCTIONS = frozenset({0x07, 0x0B, 0x13, 0x23, 0x43, 0x83})
_STARTDT_ACT = b"\x68\x04\x07\x00\x00\x00"
_STOPDT_ACT = b"\x68\x04\x13\x00\x00\x00"
_TESTFR_ACT = b"\x68\x04\x43\x00\x00\x00"
_TESTFR_CON = b"\x68\x04\x83\x00\x00\x00"
#: Wake-ups a link may have unanswered before more are skipped.
_MAX_POKES = 4


def _import_c104() -> Any:
    try:
        import c104
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("twin.protocols.iec104 needs the optional dependency c104 "
                          "(GPL-3.0): pip install 'dms-twin[iec104]'") from err
    return c104


def _float32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def apdu_problem(apdu: bytes) -> str | None:
    """Why a controlling station's APDU must not reach c104, or None if it may.

    Parameters
    ----------
    apdu : bytes
        One APDU as framed: start octet, length, four control octets, ASDU.

    Notes
    -----
    Framing after IEC 60870-5-104, 5.1 - 5.3: start 0x68, length 4 .. 253 equal to what
    follows; S- and U-frames carry no ASDU, a U-frame exactly one function. An I-frame's
    ASDU must be of a control-direction type (:data:`CONTROL_ELEMENT_SIZES`), hold one
    information object without SQ (which every type of that list requires, IEC
    60870-5-101, 7.2.2) and be exactly as long as its type says. c104 2.2.1 crashes the
    process on some ASDUs outside these rules (a monitor-direction type with SQ = 1).
    """
    if len(apdu) < 6 or apdu[0] != 0x68:
        return "no start octet 0x68"
    if apdu[1] != len(apdu) - 2 or not 4 <= apdu[1] <= 253:
        return f"length octet {apdu[1]} for {len(apdu) - 2} octets"
    c1 = apdu[2]
    if c1 & 0x01 == 0:  # I-frame
        asdu = apdu[6:]
        if len(asdu) < _ASDU_HEADER:
            return f"I-frame with an ASDU of {len(asdu)} octets"
        type_id, vsq = asdu[0], asdu[1]
        size = CONTROL_ELEMENT_SIZES.get(type_id)
        if size is None:
            return f"type id {type_id} is not one a controlling station sends"
        if vsq != 1:
            return f"type id {type_id} with VSQ 0x{vsq:02x} (expected one object, no SQ)"
        expected = _ASDU_HEADER + _IOA_SIZE + size
        if len(asdu) != expected:
            return f"type id {type_id} in {len(asdu)} octets (expected {expected})"
        return None
    if apdu[1] != 4:
        return "S- or U-frame with an ASDU"
    if c1 & 0x03 == 0x03 and c1 not in _U_FUNCTIONS:
        return f"U-frame with control octet 0x{c1:02x}"
    return None


class _Link:
    """One client's connection to c104, and the wake-ups it owes an answer for."""

    __slots__ = ("up", "pokes")

    def __init__(self, up: asyncio.StreamWriter):
        self.up = up
        self.pokes = 0


class _Guard:
    """The endpoint's TCP front: accepts clients on ``host:port``, opens one connection to
    the c104 server (loopback) per client, passes on each APDU a client sends once
    :func:`apdu_problem` finds nothing wrong with it, and c104's APDUs back unchanged. The
    first bad APDU closes that client's connection (and its connection to c104). Beyond
    ``max_connections`` one connection is closed: the oldest of those that have not
    started data transfer (STARTDT), else the least recently active (a front end may send
    nothing for t2 or t3, 10 - 20 s). Runs an asyncio loop in a daemon thread
    ``iec104-<rtu>``.

    :meth:`poke` wakes c104's connection threads: lib60870's slave polls a connection's
    socket with a 100 ms timeout and sends queued ASDUs (spontaneous, periodic, a late
    ACTTERM) only when it wakes. A TESTFR act on the link wakes it at once; its TESTFR con
    is kept from the client."""

    def __init__(self, rtu: str, log: logging.Logger, max_connections: int):
        self.rtu = rtu
        self._log = log
        self._max = max_connections
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._conns: dict[asyncio.StreamWriter, float] = {}  # client -> last active [s]
        self._links: dict[asyncio.StreamWriter, _Link] = {}  # client -> its link to c104
        self._started: set[asyncio.StreamWriter] = set()  # clients after STARTDT
        self.port = 0

    @property
    def connection_count(self) -> int:
        return len(self._conns)

    def start(self, host: str, port: int, upstream_port: int) -> int:
        """Listen on ``host:port`` (0: any free port); the port bound. Raises OSError."""
        ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(host, port, upstream_port,
                                                                ready),
                                        name=f"iec104-{self.rtu}", daemon=True)
        self._thread.start()
        try:
            self.port = ready.result()
        except BaseException:
            self._thread.join()
            self._thread = None
            raise
        return self.port

    def stop(self) -> None:
        """Close the listener and every connection; join the thread."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None:
            loop.call_soon_threadsafe(stopping.set)
        thread.join()
        self._thread = None

    def poke(self) -> None:
        """Have c104 send what it has queued now (thread-safe)."""
        loop = self._loop
        if loop is not None and self._links:
            try:
                loop.call_soon_threadsafe(self._poke)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def _poke(self) -> None:
        for link in self._links.values():
            if link.pokes < _MAX_POKES and not link.up.is_closing():
                link.up.write(_TESTFR_ACT)
                link.pokes += 1

    def _run(self, host: str, port: int, upstream_port: int,
             ready: "concurrent.futures.Future[int]") -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(host, port, upstream_port, ready))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None

    async def _serve(self, host: str, port: int, upstream_port: int,
                     ready: "concurrent.futures.Future[int]") -> None:
        self._stopping = asyncio.Event()
        try:
            server = await asyncio.start_server(
                lambda r, w: self._client(r, w, upstream_port), host, port)
        except OSError as err:
            ready.set_exception(OSError(
                err.errno, f"IEC 104 endpoint of RTU {self.rtu!r}: cannot listen on "
                           f"{host}:{port}: {err.strerror or err}"))
            return
        ready.set_result(server.sockets[0].getsockname()[1])
        await self._stopping.wait()
        server.close()
        for writer in list(self._conns):
            writer.transport.abort()
        # Every other task: the handlers, including one accepted but not yet started.
        await self._end_others()
        await server.wait_closed()
        # a connection accepted while closing starts its handler only now
        await self._end_others()

    async def _end_others(self) -> None:
        """Let every other task (the connections' handlers) end: their transports are
        aborted, so they return; cancel only what is still running after a while (asyncio's
        stream server logs an error for a handler task that was cancelled)."""
        for writer in list(self._conns):
            writer.transport.abort()
        for link in list(self._links.values()):
            link.up.transport.abort()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if not others:
            return
        _done, pending = await asyncio.wait(others, timeout=1.0)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      upstream_port: int) -> None:
        loop = asyncio.get_running_loop()
        peer = "%s:%s" % writer.get_extra_info("peername")[:2]
        self._conns[writer] = loop.time()
        if len(self._conns) > self._max:
            idle = min(self._conns, key=lambda w: (w in self._started, self._conns[w]))
            self._log.warning("IEC 104 %s: more than %d connections; closing %s", self.rtu,
                              self._max, "%s:%s" % idle.get_extra_info("peername")[:2])
            del self._conns[idle]  # at once: its handler ends later
            self._started.discard(idle)
            idle.transport.abort()
            if idle is writer:
                return
        self._log.debug("IEC 104 %s: connection from %s", self.rtu, peer)
        up_writer = None
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
            link = self._links[writer] = _Link(up_writer)
            tasks = {asyncio.ensure_future(self._up(reader, up_writer, writer, peer)),
                     asyncio.ensure_future(self._down(up_reader, writer, link))}
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        except OSError as err:
            self._log.warning("IEC 104 %s: no connection to the c104 server for %s: %s",
                              self.rtu, peer, err)
        finally:
            self._conns.pop(writer, None)
            self._links.pop(writer, None)
            self._started.discard(writer)
            writer.transport.abort()
            if up_writer is not None:
                up_writer.transport.abort()
            self._log.debug("IEC 104 %s: connection from %s closed", self.rtu, peer)

    async def _up(self, reader: asyncio.StreamReader, up: asyncio.StreamWriter,
                  client: asyncio.StreamWriter, peer: str) -> None:
        """Client to c104, APDU by APDU, until the client closes or sends a bad one."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                head = await reader.readexactly(2)
                if head[0] != 0x68 or not 4 <= head[1] <= 253:
                    self._log.warning("IEC 104 %s: closed the connection from %s: bad "
                                      "framing (%s)", self.rtu, peer, head.hex(" "))
                    return
                apdu = head + await reader.readexactly(head[1])
                problem = apdu_problem(apdu)
                if problem is not None:
                    self._log.warning("IEC 104 %s: closed the connection from %s: %s",
                                      self.rtu, peer, problem)
                    return
                self._conns[client] = loop.time()
                if apdu == _STARTDT_ACT:
                    self._started.add(client)
                elif apdu == _STOPDT_ACT:
                    self._started.discard(client)
                up.write(apdu)
                await up.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    @staticmethod
    async def _down(up: asyncio.StreamReader, client: asyncio.StreamWriter,
                    link: _Link) -> None:
        """c104 to the client, APDU by APDU, less the answers to wake-ups, until either
        side closes."""
        try:
            while True:
                head = await up.readexactly(2)
                apdu = head + await up.readexactly(head[1])
                if link.pokes and apdu == _TESTFR_CON:
                    link.pokes -= 1
                    continue
                client.write(apdu)
                await client.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return


@dataclass
class _Telemetry:
    """One monitored point's current state, as the endpoint holds it."""

    point: MappedPoint
    is_status: bool
    value: float | bool
    invalid: bool = True
    topical: bool = False


@dataclass(frozen=True)
class _Pending:
    """An accepted command awaiting :meth:`Iec104Endpoint.command_done`."""

    ioa: int
    info: Any  # the c104 command Information as received, echoed in the ACTTERM
    epoch: int  # the server's life it arrived in


class _Refused(Exception):
    """A command refused with a negative ACTCON."""


class Iec104Endpoint:
    """IEC 60870-5-104 controlled station of one RTU: c104's server behind a guard that
    listens on ``host:port`` (see the module's rules).

    Parameters
    ----------
    rtu : str
        The RTU's name; every point must belong to it.
    points : iterable of MappedPoint
        The RTU's points (``PointMap.for_rtu(rtu)``). Telemetry of type ``M_ME_NC_1`` or
        ``M_SP_NA_1`` and commands of type ``C_DC_NA_1``, ``C_SE_NB_1`` or ``C_SE_NC_1``
        are served; ``status`` points (Modbus's outcome registers) are skipped, IEC 104
        reporting outcomes by ACTCON/ACTTERM.
    host : str
        IP address to listen on (default loopback only).
    port : int
        TCP port; 0 picks a free one at :meth:`start` (kept across outages).
    on_command : callable(CommandRequest), optional
        Called, in a c104 thread, with every accepted command. Without it every command
        is refused.
    log : logging.Logger, optional
        Where connections, refusals and outages are logged (default: this module's).
    select_timeout_s : float
        Time within which an execute must follow its select [s].
    max_connections : int
        Clients served at once.
    tick_rate_ms : int
        c104's server tick [ms] (≥ 50): the pace of its timers and deferred callbacks,
        not of transmission.

    Raises
    ------
    ValueError
        A point of another RTU, more than one common address, a repeated IOA or name, or
        an IEC 104 type this endpoint does not serve.
    """

    def __init__(self, rtu: str, points: Iterable[MappedPoint], host: str = "127.0.0.1",
                 port: int = 0, on_command: Callable[[CommandRequest], None] | None = None,
                 log: logging.Logger | None = None, *, select_timeout_s: float = 10.0,
                 max_connections: int = 8, tick_rate_ms: int = 50):
        self.rtu = rtu
        self.host = host
        self._log = log or _LOG
        self._on_command = on_command
        if not (isinstance(port, int) and 0 <= port <= 65535):
            raise ValueError(f"Iec104Endpoint {rtu}: port must be an int in 0 .. 65535; "
                             f"found {port!r}")
        if not (math.isfinite(select_timeout_s) and select_timeout_s > 0):
            raise ValueError(f"Iec104Endpoint {rtu}: select_timeout_s must be > 0; "
                             f"found {select_timeout_s}")
        if max_connections < 1:
            raise ValueError(f"Iec104Endpoint {rtu}: max_connections must be >= 1; "
                             f"found {max_connections}")
        if tick_rate_ms < 50:
            raise ValueError(f"Iec104Endpoint {rtu}: tick_rate_ms must be >= 50 (c104's "
                             f"minimum); found {tick_rate_ms}")
        self._port = port
        self._select_timeout_ms = round(select_timeout_s * 1000)
        self._max_connections = int(max_connections)
        self._tick_rate_ms = int(tick_rate_ms)

        self._telemetry: dict[str, _Telemetry] = {}
        self._commands: dict[int, MappedPoint] = {}
        ca: set[int] = set()
        ioas: dict[int, str] = {}
        for p in points:
            if p.rtu != rtu:
                raise ValueError(f"Iec104Endpoint {rtu}: point {p.name!r} belongs to RTU "
                                 f"{p.rtu!r}")
            if p.direction == "status":
                continue
            expected = TELEMETRY_TYPES if p.direction == "telemetry" else COMMAND_TYPES
            if p.iec104_type not in expected:
                raise ValueError(f"Iec104Endpoint {rtu}: {p.direction} point {p.name!r} has "
                                 f"IEC 104 type {p.iec104_type!r}; expected one of {expected}")
            if p.iec104_ioa in ioas:
                raise ValueError(f"Iec104Endpoint {rtu}: IOA {p.iec104_ioa} of {p.name!r} "
                                 f"already used by {ioas[p.iec104_ioa]!r}")
            if not 1 <= p.iec104_ioa <= 0xFFFFFF:
                raise ValueError(f"Iec104Endpoint {rtu}: IOA {p.iec104_ioa} of {p.name!r} "
                                 "outside 1 .. 16777215")
            ioas[p.iec104_ioa] = p.name
            ca.add(p.iec104_ca)
            if p.direction == "telemetry":
                if p.name in self._telemetry:
                    raise ValueError(f"Iec104Endpoint {rtu}: telemetry point {p.name!r} "
                                     "repeated")
                is_status = p.iec104_type == STATUS_TYPE
                self._telemetry[p.name] = _Telemetry(p, is_status, False if is_status else 0.0)
            else:
                self._commands[p.iec104_ioa] = p
        if len(ca) > 1:
            raise ValueError(f"Iec104Endpoint {rtu}: one RTU is one station; found common "
                             f"addresses {sorted(ca)}")
        self.common_address = ca.pop() if ca else 1
        if not 1 <= self.common_address <= 65534:
            raise ValueError(f"Iec104Endpoint {rtu}: common address {self.common_address} "
                             "outside 1 .. 65534")
        # Float set-points arrive as float32: compare with float32 bounds.
        self._bounds = {
            ioa: ((_float32(p.low), _float32(p.high)) if p.iec104_type == FLOAT_SETPOINT_TYPE
                  else (p.low, p.high))
            for ioa, p in self._commands.items()}

        # _io_lock serialises everything that calls into c104 (and orders publishes);
        # _lock guards the state shared with c104's callback threads, which never take
        # _io_lock and never call c104 while holding _lock. Order: _io_lock, then _lock.
        self._io_lock = threading.RLock()
        self._lock = threading.Lock()
        self._c104: Any = None
        self._guard: _Guard | None = None
        self._server: Any = None
        self._points: dict[int, Any] = {}  # IOA -> c104.Point of the running server
        self._started = False
        self._reachable = True
        self._epoch = 0
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._in_callback = threading.local()

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        """The TCP port (after :meth:`start`, the one chosen for ``port=0``)."""
        return self._port

    @property
    def reachable(self) -> bool:
        return self._reachable

    @property
    def running(self) -> bool:
        """True while the endpoint listens (started and reachable)."""
        server = self._server
        return self._guard is not None and server is not None and server.is_running

    @property
    def client_count(self) -> int:
        """Open client connections (0 while not listening)."""
        guard = self._guard
        return guard.connection_count if guard is not None else 0

    def start(self) -> None:
        """Listen; returns once connects are accepted (or, while unreachable, once the
        port is fixed). Calling it again while started does nothing.

        Raises
        ------
        OSError
            The port is in use (or the host is not a local address).
        ImportError
            c104 is not installed.
        """
        self._check_not_in_callback("start")
        with self._io_lock:
            if self._started:
                return
            self._c104 = _import_c104()
            if self._reachable:
                self._listen()
            elif self._port == 0:
                self._port = _free_port(self.host)
            self._started = True

    def stop(self) -> None:
        """Stop the server and its threads. Idempotent; :meth:`start` may follow."""
        self._check_not_in_callback("stop")
        with self._io_lock:
            self._close()
            self._started = False

    def __enter__(self) -> "Iec104Endpoint":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_reachable(self, reachable: bool) -> None:
        """Take the RTU off the air (False: connections closed, connects refused, values
        held become NT) or bring it back on the same port (True).

        Raises
        ------
        OSError
            Coming back, the port has been taken meanwhile.
        """
        self._check_not_in_callback("set_reachable")
        reachable = bool(reachable)
        with self._io_lock:
            if reachable == self._reachable:
                return
            if not reachable:
                self._reachable = False
                with self._lock:
                    for t in self._telemetry.values():
                        t.topical = False
                self._close()
                self._log.info("IEC 104 %s: unreachable (server stopped)", self.rtu)
            else:
                if self._started:
                    self._listen()  # raises with the endpoint still unreachable
                self._reachable = True
                self._log.info("IEC 104 %s: reachable again", self.rtu)

    def _check_not_in_callback(self, what: str) -> None:
        if getattr(self._in_callback, "active", False):
            raise RuntimeError(f"Iec104Endpoint {self.rtu}.{what}() called from on_command "
                               "(a c104 thread): only command_done may be called there")

    def _listen(self) -> None:
        """Start a c104 server on a loopback port and the guard on the public one (under
        _io_lock)."""
        server, points, upstream = self._start_c104()
        guard = _Guard(self.rtu, self._log, self._max_connections)
        try:
            port = guard.start(self.host, self._port, upstream)
        except OSError:
            server.stop()
            raise
        with self._lock:
            self._server, self._points, self._guard = server, points, guard
        self._port = port
        self._log.info("IEC 104 %s: listening on %s:%d, common address %d", self.rtu,
                       self.host, port, self.common_address)

    def _start_c104(self) -> tuple[Any, dict[int, Any], int]:
        """A started c104 server on a free loopback port, its points and the port."""
        for _attempt in range(_FREE_PORT_ATTEMPTS):
            # c104 cannot report a port it chose itself: probe one, retry if taken.
            port = _free_port("127.0.0.1")
            server, points = self._build(port)
            try:
                server.start()
            except RuntimeError as err:
                problem = err
                continue
            return server, points, port
        raise RuntimeError(f"IEC 104 endpoint of RTU {self.rtu!r}: c104 server did not "
                           f"start on a loopback port: {problem}")

    def _close(self) -> None:
        """Stop the guard and the c104 server if running (under _io_lock)."""
        with self._lock:
            guard, server = self._guard, self._server
            self._guard, self._server, self._points = None, None, {}
            self._epoch += 1
        if guard is not None:
            guard.stop()
        if server is not None:
            server.stop()
            self._log.info("IEC 104 %s: stopped", self.rtu)

    def _build(self, port: int) -> tuple[Any, dict[int, Any]]:
        """A c104 server with this RTU's station, points (by IOA) and callbacks, not
        started."""
        c104 = self._c104
        server = c104.Server(ip="127.0.0.1", port=port, tick_rate_ms=self._tick_rate_ms,
                             select_timeout_ms=self._select_timeout_ms)
        station = server.add_station(common_address=self.common_address)
        points: dict[int, Any] = {}
        with self._lock:
            infos = [(t.point, self._info(t)) for t in self._telemetry.values()]
        for mp, info in infos:
            p = station.add_point(io_address=mp.iec104_ioa, type=getattr(c104.Type,
                                                                       mp.iec104_type))
            p.info = info
            points[mp.iec104_ioa] = p

        endpoint = self

        def on_receive(point: c104.Point, previous_info: c104.Information,
                       message: c104.IncomingMessage) -> c104.ResponseState:
            return endpoint._on_command_message(point, message)

        for ioa, mp in self._commands.items():
            mode = (c104.CommandMode.SELECT_AND_EXECUTE if mp.select_before_operate
                    else c104.CommandMode.DIRECT)
            p = station.add_point(io_address=ioa, type=getattr(c104.Type, mp.iec104_type),
                                  command_mode=mode)
            p.on_receive(callable=on_receive)
            points[ioa] = p

        def on_unexpected_message(server: c104.Server, message: c104.IncomingMessage,
                                  cause: c104.Umc) -> None:
            endpoint._log.warning(
                "IEC 104 %s: refused %s (cause %s) to CA %d IOA %d from OA %d: %s",
                endpoint.rtu, message.type.name, message.cot.name, message.common_address,
                message.io_address, message.originator_address, cause.name)

        def on_send_raw(server: c104.Server, data: bytes) -> None:
            # I-frame (APCI 6 bytes) of a command type with P/N = 1: a negative answer,
            # whoever built it (c104 refuses some commands without calling us).
            if len(data) >= 15 and data[6] >= 45 and data[8] & 0x40:
                endpoint._log.info("IEC 104 %s: sent negative confirmation, type id %d, "
                                   "cause %d, IOA %d", endpoint.rtu, data[6], data[8] & 0x3F,
                                   int.from_bytes(data[12:15], "little"))

        server.on_unexpected_message(callable=on_unexpected_message)
        server.on_send_raw(callable=on_send_raw)
        return server, points

    # ------------------------------------------------------------------ telemetry
    def _info(self, t: _Telemetry) -> Any:
        c104 = self._c104
        quality = c104.Quality()
        if t.invalid:
            quality |= c104.Quality.Invalid
        if not t.topical:
            quality |= c104.Quality.NonTopical
        if t.is_status:
            return c104.SingleInfo(on=bool(t.value), quality=quality)
        return c104.ShortInfo(actual=float(t.value), quality=quality)

    def publish(self, values: Mapping[str, float | bool], invalid: Collection[str] = (),
                spontaneous: Collection[str] | None = None) -> None:
        """Take telemetry as the comm model delivered it and send it to the clients.

        Parameters
        ----------
        values : mapping of str to float or bool
            Point name → value in the point's unit (bool for status points); points not
            named keep their value.
        invalid : collection of str
            Points to flag IV; a name may be here without a value (it keeps its value).
        spontaneous : collection of str, optional
            Points to send with cause SPONTANEOUS; None lets the endpoint decide (see the
            module's rules).

        Raises
        ------
        ValueError
            A name is not a telemetry point of this RTU, or a value is not a number
            (nothing is stored then).
        """
        invalid = set(invalid)
        chosen = None if spontaneous is None else set(spontaneous)
        unknown = (set(values) | invalid | (chosen or set())) - self._telemetry.keys()
        if unknown:
            raise ValueError(f"Iec104Endpoint {self.rtu}.publish: not telemetry points of "
                             f"this RTU: {sorted(unknown)}")
        new: dict[str, float] = {}
        for name, value in values.items():
            try:
                new[name] = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"Iec104Endpoint {self.rtu}.publish: value of {name!r} is "
                                 f"not a number: {value!r}") from None

        self._check_not_in_callback("publish")
        with self._io_lock:
            status_events: list[int] = []
            periodic: list[int] = []
            spont: list[int] = []
            touched: dict[int, Any] = {}
            with self._lock:
                for name in set(new) | invalid:
                    t = self._telemetry[name]
                    before = (t.value, t.invalid, t.topical)
                    bad = name in invalid
                    if name in new:
                        x = new[name]
                        if not math.isfinite(x):
                            bad = True  # a status point keeps its state
                        if t.is_status:
                            t.value = x != 0.0 if math.isfinite(x) else t.value
                        else:
                            t.value = x
                        t.topical = True
                    t.invalid = bad
                    ioa = t.point.iec104_ioa
                    if self._c104 is not None:
                        touched[ioa] = self._info(t)
                    if chosen is None:
                        if not t.is_status:
                            periodic.append(ioa)
                        elif (t.value, t.invalid, t.topical) != before:
                            status_events.append(ioa)
                if chosen is not None:
                    for name in chosen:
                        spont.append(self._telemetry[name].point.iec104_ioa)
                    periodic = [self._telemetry[n].point.iec104_ioa for n in set(new) | invalid
                                if not self._telemetry[n].is_status and n not in chosen]
                else:
                    spont = status_events
            if self._server is None:
                return
            points = self._points  # replaced only under _io_lock, which we hold
            for ioa, info in touched.items():
                points[ioa].info = info
            c104 = self._c104
            self._transmit(c104.Cot.SPONTANEOUS, [points[i] for i in sorted(spont)])
            self._transmit(c104.Cot.PERIODIC, [points[i] for i in sorted(periodic)])
            if (spont or periodic) and self._guard is not None:
                self._guard.poke()

    def _transmit(self, cot: Any, points: list[Any]) -> None:
        """Send points in one batch per type (under _io_lock)."""
        by_type: dict[Any, list[Any]] = {}
        for p in points:
            by_type.setdefault(p.type, []).append(p)
        for group in by_type.values():
            self._server.transmit_batch(self._c104.Batch(cause=cot, points=group))

    # ------------------------------------------------------------------ commands
    def _on_command_message(self, point: Any, message: Any) -> Any:
        """The answer to an execute (c104 thread). Never raises: c104 drops a callback
        that raised."""
        c104 = self._c104
        failure = c104.ResponseState.FAILURE
        mp = self._commands.get(point.io_address)
        try:
            if mp is None:  # c104 checks IOAs first; kept for safety
                raise _Refused(f"IOA {point.io_address} is not a command")
            if message.cot != c104.Cot.ACTIVATION:
                raise _Refused(f"cause {message.cot.name} (only ACTIVATION is served)")
            action, value = self._decode(mp, message.info)
            if self._on_command is None:
                raise _Refused("no command handler")
            with self._lock:
                request = CommandRequest(f"iec104:{self.rtu}:{next(self._ids)}", self.rtu,
                                         mp.element, action, value,
                                         f"iec104 OA {message.originator_address}")
                self._pending[request.id] = _Pending(mp.iec104_ioa, message.info, self._epoch)
            self._in_callback.active = True
            try:
                self._on_command(request)
            except Exception:
                with self._lock:
                    self._pending.pop(request.id, None)
                self._log.exception("IEC 104 %s: on_command raised for %s; refused",
                                    self.rtu, request)
                return failure
            finally:
                self._in_callback.active = False
            self._log.info("IEC 104 %s: accepted %s %s on %s (IOA %d) from OA %d as %s",
                           self.rtu, action, "" if value is None else value, mp.element,
                           mp.iec104_ioa, message.originator_address, request.id)
            return c104.ResponseState.SUCCESS
        except _Refused as why:
            self._log.warning("IEC 104 %s: refused %s to IOA %d (%s) from OA %d: %s",
                              self.rtu, message.type.name, point.io_address,
                              mp.name if mp else "?", message.originator_address, why)
            return failure
        except Exception:
            self._log.exception("IEC 104 %s: error handling a command to IOA %d; refused",
                                self.rtu, point.io_address)
            return failure

    def _decode(self, mp: MappedPoint, info: Any) -> tuple[str, float | int | None]:
        """The command's action and value, or _Refused."""
        c104 = self._c104
        if mp.iec104_type == DOUBLE_COMMAND_TYPE:
            state = info.state
            if state == c104.Double.ON:
                return "close", None
            if state == c104.Double.OFF:
                return "open", None
            raise _Refused(f"double command state {state.name} (1 = OFF/open, 2 = ON/close)")
        if mp.iec104_type == SCALED_SETPOINT_TYPE:
            value: float | int = int(info.target)
        else:
            value = float(info.target)
            if not math.isfinite(value):
                raise _Refused(f"{mp.quantity} value {value} is not finite")
        low, high = self._bounds[mp.iec104_ioa]
        if not low <= value <= high:
            raise _Refused(f"{mp.quantity} value {value} outside {mp.low:g} .. {mp.high:g}")
        return mp.quantity, value

    def command_done(self, request_id: str, status: CommandOutcome) -> bool:
        """Report a command's outcome: ``"success"`` sends its ACTTERM.

        ``"failed"`` and ``"timeout"`` send nothing (c104 cannot set the P/N bit of an
        ACTTERM; see the module's rules), nor does any outcome of a command whose server
        has since stopped (outage or :meth:`stop`).

        Returns
        -------
        bool
            True if an ACTTERM was sent.

        Raises
        ------
        ValueError
            Unknown (or already reported) ``request_id``, or unknown ``status``.
        """
        if status not in _STATUSES:
            raise ValueError(f"Iec104Endpoint {self.rtu}.command_done: status must be one of "
                             f"{_STATUSES}; found {status!r}")
        # Not under _io_lock: on_command may call this from c104's thread while another
        # thread holds _io_lock stopping the server (which joins that thread).
        with self._lock:
            pending = self._pending.pop(request_id, None)
            live = pending is not None and pending.epoch == self._epoch
            point = self._points.get(pending.ioa) if live else None
            guard = self._guard
        if pending is None:
            raise ValueError(f"Iec104Endpoint {self.rtu}.command_done: unknown request "
                             f"{request_id!r}")
        if status != "success":
            self._log.warning("IEC 104 %s: command %s ended %s: no ACTTERM (c104 sends no "
                              "negative termination)", self.rtu, request_id, status)
            return False
        if point is None:
            self._log.info("IEC 104 %s: command %s succeeded after its server stopped: no "
                           "ACTTERM", self.rtu, request_id)
            return False
        # A stopped server's point only answers False.
        point.info = pending.info
        sent = bool(point.transmit(cause=self._c104.Cot.ACTIVATION_TERMINATION))
        if sent and guard is not None:
            guard.poke()
        if not sent:
            self._log.info("IEC 104 %s: no client connected for the ACTTERM of %s",
                           self.rtu, request_id)
        return sent
