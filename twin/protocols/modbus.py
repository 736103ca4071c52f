"""Modbus TCP server of one RTU, in a thread of its own: what a SCADA front end polls.

A :class:`ModbusEndpoint` serves one RTU's mapped points (:mod:`twin.protocols.pointmap`)
on a TCP port. The field simulator (the mosaik thread) hands it telemetry as the comm
model delivered it (:meth:`ModbusEndpoint.publish`), switches it off and on with the link's
outages (:meth:`ModbusEndpoint.set_reachable`) and gets back the commands clients write,
as :class:`CommandRequest` objects, through ``on_command``; it reports their outcome with
:meth:`ModbusEndpoint.command_done`. Every public method is thread-safe.

The server is a small asyncio implementation of the functions the point map needs (read
coils 1, read discrete inputs 2, read holding registers 3, read input registers 4, write
single coil 5, write single register 6, write multiple coils 15, write multiple registers
16), after the MODBUS Application Protocol Specification V1.1b3 and the MODBUS Messaging on
TCP/IP Implementation Guide V1.0b. It needs no Modbus library; pymodbus's client is what
the tests and ``bench/modbus_latency.py`` check it against.

Rules
-----
Register image
    Laid out by the point map's conventions: measurands as IEEE-754 float32 in two input
    registers, high word first (big-endian words, ``1.0`` → ``0x3F80 0x0000``); status
    points as discrete inputs; switch commands as coils that read back the last command
    written; tap position and capacitor step as signed int16 holding registers; P/Q
    set-points as float32 in two holding registers; one status holding register per
    command (0 none, 1 pending, 2 success, 3 failed, 4 timeout). Only mapped addresses
    exist: a request touching any other address is answered ILLEGAL DATA ADDRESS.
    Float telemetry reads NaN until first published.
Quality
    Modbus carries no quality bits. A point published as ``invalid`` (stale) reads as a
    quiet NaN (``0x7FC0 0x0000``) in float registers, which every IEEE-754 client sees as
    "no value". Discrete inputs and int16 registers have no such code: an invalid one keeps
    its last value.
Consistency
    A publish is applied atomically: a read never sees half of a float, nor part of one
    publish beside part of the next.
Commands
    A write to a command coil or holding register is checked, then becomes one
    :class:`CommandRequest` per command written, handed to ``on_command`` *before* the
    reply goes out; the command's status register reads 1 (pending) from then on, until
    :meth:`ModbusEndpoint.command_done` sets 2, 3 or 4 (for the latest command of that
    register only; an outcome for a superseded command is ignored). A write is all or
    nothing: one bad value refuses the whole request and no command is issued.

    * coil of a ``switch`` command: ``0xFF00`` → action ``"close"``, ``0x0000`` →
      ``"open"`` (value None); any other boolean command: its quantity, value 1.0 / 0.0;
    * int16 holding register: the action is the point's quantity (``set_tap``,
      ``set_step``), the value the signed integer;
    * float32 set-point: both registers in one write multiple registers (16); a write
      covering one half only (function 6, or 16 starting or ending mid-float) is refused
      with ILLEGAL DATA ADDRESS. The range is checked on the float32 written, against
      bounds rounded to float32 (a client can write the top of the range); the value
      handed over is the shortest decimal that reads back as that float32 (``0x3F19999A``
      → 0.6, not 0.6000000238…).
Errors (the protocol's exception answer and a log line, never an exception in the server)
    * an address not in the map, a write to a status register or a half float: 2
      ILLEGAL DATA ADDRESS (input registers and discrete inputs have no write function);
    * a value outside ``MappedPoint.low .. high``, NaN or infinite, a coil value other
      than ``0xFF00``/``0x0000``, a count outside the protocol's limits or a PDU whose
      length does not match its function: 3 ILLEGAL DATA VALUE;
    * an unsupported function code: 1 ILLEGAL FUNCTION;
    * ``on_command`` raising: 4 SERVER DEVICE FAILURE (the request's other commands are
      still handed over; all of them read pending);
    * a unit id other than 1 (or 0, 255, which the TCP guide lets a directly addressed
      device accept): 11 GATEWAY TARGET DEVICE FAILED TO RESPOND.

    A frame that is not Modbus TCP (protocol id not 0, length field outside 2 .. 254, which
    is what garbage bytes look like) closes that connection; the others are not affected.
Unreachable
    While :meth:`ModbusEndpoint.set_reachable` is False the RTU behaves as one behind a
    dead link: it answers nothing. Everything received is discarded (commands included,
    so no :class:`CommandRequest` is issued); clients see their requests time out, as a
    front end does in a comm outage. Connections are kept, and TCP connects still succeed:
    on loopback the kernel completes the handshake, which a user-space server cannot
    prevent (refusing would look like an RTU whose server is down, not an unreachable
    one). Answers resume, on the same connections, with ``set_reachable(True)``.
Connections
    At most ``max_connections`` at once (RTUs typically accept a handful). A new connection
    beyond that closes the least recently active one, so a flood of idle connections
    cannot lock a polling front end out; each eviction is logged. A connection holds at
    most one partial frame (260 bytes); one that does not read its answers stops being
    read once asyncio's write buffer is full.
Threads
    The server runs an asyncio loop in a daemon thread named ``modbus-<rtu>``;
    ``on_command`` is called in that thread (keep it short: put the request on a queue).
    :meth:`ModbusEndpoint.stop` closes the listener and every connection and joins the
    thread.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import math
import struct
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from twin.protocols.pointmap import COMMAND_STATUS, MappedPoint

_LOG = logging.getLogger(__name__)

CommandOutcome = Literal["success", "failed", "timeout"]

#: Unit ids answered (the point map's 1, and 0 / 255 which the TCP guide allows).
UNIT_IDS = frozenset({0, 1, 255})

# Exception codes (Modbus Application Protocol V1.1b3, 7).
ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3
SERVER_DEVICE_FAILURE = 4
GATEWAY_TARGET_NO_RESPONSE = 11

# Quantity limits per function (ibid., 6.1-6.12).
_MAX_READ_BITS = 2000
_MAX_READ_REGISTERS = 125
_MAX_WRITE_BITS = 1968
_MAX_WRITE_REGISTERS = 123

_MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
_MAX_LENGTH = 254  # unit id + PDU of at most 253 bytes
_COIL_ON, _COIL_OFF = 0xFF00, 0x0000
_NAN_WORDS = (0x7FC0, 0x0000)


@dataclass(frozen=True)
class CommandRequest:
    """A command a client wrote to an RTU, for the field's command path.

    Attributes
    ----------
    id : str
        Unique per endpoint; pass it back to :meth:`ModbusEndpoint.command_done`.
    rtu : str
        The RTU that received it.
    device : str
        The device reference (``MappedPoint.element``, e.g. ``"switch:S1"``).
    action : str
        ``"close"`` / ``"open"`` for a switch; otherwise the point's quantity
        (``"set_tap"``, ``"set_step"``, ``"set_p"``, …).
    value : float or None
        None for a switch; the integer for an int16 command; for a set-point the float32
        written, as its shortest decimal, in the point's unit.
    client : str
        The writing client's address, ``"host:port"``.
    """

    id: str
    rtu: str
    device: str
    action: str
    value: float | None
    client: str


class _RequestError(Exception):
    """A request answered with a Modbus exception."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


# --------------------------------------------------------------------------- encoding
def _float_words(value: float) -> tuple[int, int]:
    """Two registers, high word first, of ``value`` as float32 (±inf beyond its range)."""
    try:
        packed = struct.pack(">f", value)
    except OverflowError:
        packed = struct.pack(">f", math.copysign(math.inf, value))
    return struct.unpack(">HH", packed)


def _words_float(hi: int, lo: int) -> float:
    return struct.unpack(">f", struct.pack(">HH", hi, lo))[0]


def _f32(value: float) -> float:
    """``value`` rounded to the nearest float32."""
    return _words_float(*_float_words(value))


def _shortest_f32(value: float) -> float:
    """The shortest decimal that rounds to the same float32 as ``value`` (a float32):
    what the client meant (``0x3F19999A`` → 0.6, not 0.6000000238418579)."""
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if _f32(candidate) == value:
            return candidate
    return value  # pragma: no cover - 9 significant digits always round-trip a float32


def _int16_word(value: int) -> int:
    return max(-0x8000, min(0x7FFF, value)) & 0xFFFF


def _word_int16(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


def _layout(p: MappedPoint) -> str:
    """The point's kind of register use; raises ValueError for one the conventions lack."""
    kinds = {
        ("telemetry", "input_register", "float", 2): "float",
        ("telemetry", "input_register", "int", 1): "int16",
        ("telemetry", "discrete_input", "bool", 1): "bit",
        ("command", "coil", "bool", 1): "bit",
        ("command", "holding_register", "int", 1): "int16",
        ("command", "holding_register", "float", 2): "float",
        ("status", "holding_register", "int", 1): "int16",
    }
    kind = kinds.get((p.direction, p.modbus_table, p.value_type, p.modbus_count))
    if kind is None:
        raise ValueError(
            f"point {p.name!r}: a {p.direction} point of type {p.value_type} in "
            f"{p.modbus_table} with modbus_count {p.modbus_count} is not a layout of the "
            f"Modbus conventions (see twin.protocols.pointmap)")
    if not 0 <= p.modbus_address <= 0xFFFF - (p.modbus_count - 1):
        raise ValueError(f"point {p.name!r}: modbus_address {p.modbus_address} (count "
                         f"{p.modbus_count}) lies outside 0 .. 65535")
    return kind


# --------------------------------------------------------------------------- endpoint
class ModbusEndpoint:
    """One RTU's Modbus TCP server (unit id 1), in a thread with its own asyncio loop.

    Parameters
    ----------
    rtu : str
        The RTU's name; every point must belong to it.
    points : sequence of MappedPoint
        The RTU's points (``PointMap.for_rtu(rtu)``): telemetry, commands and their
        status registers. Checked here: unknown layouts, overlapping addresses and
        repeated names raise ValueError.
    host : str
        Address to listen on (loopback by default). Give one address: a name resolving to
        several is bound on each, with different ports when ``port`` is 0.
    port : int
        TCP port; 0 lets the OS choose (read it back from :attr:`port`).
    on_command : callable(CommandRequest), optional
        Called in the endpoint's thread for every accepted command. Without it, commands
        are still checked, answered and left pending (and logged).
    log : logging.Logger
        Where bad requests, evictions and dropped commands are logged.
    max_connections : int
        Concurrent connections kept; see the module's rules.

    Notes
    -----
    See the module's rules for the register image, quality, commands and errors.
    """

    def __init__(self, rtu: str, points: Sequence[MappedPoint], host: str = "127.0.0.1",
                 port: int = 0, on_command: Callable[[CommandRequest], None] | None = None,
                 log: logging.Logger = _LOG, *, max_connections: int = 16):
        if not rtu:
            raise ValueError("ModbusEndpoint: rtu must not be empty")
        if not 0 <= int(port) <= 0xFFFF:
            raise ValueError(f"ModbusEndpoint {rtu}: port must lie in 0 .. 65535; found {port}")
        if max_connections < 1:
            raise ValueError(f"ModbusEndpoint {rtu}: max_connections must be >= 1; "
                             f"found {max_connections}")
        self.rtu = rtu
        self.host = host
        self._requested_port = int(port)
        self._on_command = on_command
        self._log = log
        self._max_connections = int(max_connections)

        self._lock = threading.Lock()  # the image, the requests, reachability
        self._lifecycle = threading.Lock()  # start / stop
        self._reachable = True
        self._ids = itertools.count(1)
        # Register image: address -> 16-bit word (registers) or bool (bits).
        self._input: dict[int, int] = {}
        self._holding: dict[int, int] = {}
        self._discrete: dict[int, bool] = {}
        self._coils: dict[int, bool] = {}
        # Telemetry by name; writable addresses -> (command point, word index).
        self._telemetry: dict[str, tuple[MappedPoint, str]] = {}
        self._coil_commands: dict[int, MappedPoint] = {}
        self._holding_commands: dict[int, tuple[MappedPoint, int]] = {}
        self._kind: dict[str, str] = {}
        self._status_address: dict[str, int] = {}  # command name -> status register
        self._latest: dict[int, str] = {}  # status register -> latest request id
        self._requests: dict[str, int | None] = {}  # request id -> status register
        self._build(points)

        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_Connection] = set()
        self._closing = False
        self._port: int | None = None

    # ------------------------------------------------------------------ map
    def _build(self, points: Iterable[MappedPoint]) -> None:
        tables = {"input_register": self._input, "holding_register": self._holding,
                  "discrete_input": self._discrete, "coil": self._coils}
        owner: dict[tuple[str, int], str] = {}
        commands, statuses = [], {}
        for p in points:
            if not isinstance(p, MappedPoint):
                raise TypeError(f"ModbusEndpoint {self.rtu}: expected MappedPoint objects; "
                                f"found {type(p).__name__}")
            if p.rtu != self.rtu:
                raise ValueError(f"ModbusEndpoint {self.rtu}: point {p.name!r} belongs to "
                                 f"RTU {p.rtu!r}")
            if p.name in self._kind:
                raise ValueError(f"ModbusEndpoint {self.rtu}: point name {p.name!r} repeated")
            try:
                kind = _layout(p)
            except ValueError as err:
                raise ValueError(f"ModbusEndpoint {self.rtu}: {err}") from None
            self._kind[p.name] = kind
            table = tables[p.modbus_table]
            for i in range(p.modbus_count):
                key = (p.modbus_table, p.modbus_address + i)
                if key in owner:
                    raise ValueError(f"ModbusEndpoint {self.rtu}: {p.modbus_table} "
                                     f"{key[1]} is used by both {owner[key]!r} and {p.name!r}")
                owner[key] = p.name
            if kind == "bit":
                table[p.modbus_address] = False
            elif kind == "float":
                nan = _NAN_WORDS if p.direction == "telemetry" else (0, 0)
                table[p.modbus_address], table[p.modbus_address + 1] = nan
            else:
                table[p.modbus_address] = 0
            if p.direction == "telemetry":
                self._telemetry[p.name] = (p, kind)
            elif p.direction == "command":
                commands.append(p)
                if p.modbus_table == "coil":
                    self._coil_commands[p.modbus_address] = p
                else:
                    for i in range(p.modbus_count):
                        self._holding_commands[p.modbus_address + i] = (p, i)
            else:
                statuses[p.name] = p.modbus_address
        for p in commands:
            address = statuses.get(f"{p.name}/status")
            if address is None:
                self._log.warning("ModbusEndpoint %s: command %r has no status register "
                                  "(%r)", self.rtu, p.name, f"{p.name}/status")
            else:
                self._status_address[p.name] = address

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        """The bound TCP port (from :meth:`start` on; kept after :meth:`stop`)."""
        if self._port is None:
            raise RuntimeError(f"ModbusEndpoint {self.rtu}: not started")
        return self._port

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Bind and listen; returns once clients can connect.

        Raises
        ------
        OSError
            The address cannot be bound (``errno.EADDRINUSE`` when the port is taken);
            no thread is left behind.
        RuntimeError
            Already started.
        """
        with self._lifecycle:
            if self._thread is not None:
                raise RuntimeError(f"ModbusEndpoint {self.rtu}: already started")
            loop = asyncio.new_event_loop()
            self._closing = False
            ready = threading.Event()
            failure: list[BaseException] = []
            thread = threading.Thread(target=self._run, args=(loop, ready, failure),
                                      name=f"modbus-{self.rtu}", daemon=True)
            thread.start()
            ready.wait()
            if failure:
                thread.join()
                err = failure[0]
                if not isinstance(err, OSError):
                    raise RuntimeError(f"ModbusEndpoint {self.rtu}: cannot listen on "
                                       f"{self.host}:{self._requested_port}: {err!r}") from err
                code = err.errno if err.errno is not None else errno.EIO
                why = ("the port is in use" if code == errno.EADDRINUSE
                       else err.strerror or str(err))
                raise OSError(code, f"ModbusEndpoint {self.rtu}: cannot listen on "
                                    f"{self.host}:{self._requested_port}: {why}") from err
            self._loop, self._thread = loop, thread
        self._log.info("ModbusEndpoint %s: listening on %s:%d", self.rtu, self.host, self._port)

    def _run(self, loop: asyncio.AbstractEventLoop, ready: threading.Event,
             failure: list[BaseException]) -> None:
        asyncio.set_event_loop(loop)
        try:
            try:
                server = loop.run_until_complete(loop.create_server(
                    lambda: _Connection(self), self.host, self._requested_port))
            except BaseException as err:  # handed to start(), which raises it
                failure.append(err)
                ready.set()
                return
            self._server = server
            self._port = server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
        finally:
            loop.close()

    def stop(self) -> None:
        """Close the listener and every connection and join the thread (idempotent).

        Must not be called from ``on_command`` (the endpoint's own thread).
        """
        with self._lifecycle:
            thread, loop = self._thread, self._loop
            if thread is None or loop is None:
                return
            if threading.current_thread() is thread:
                raise RuntimeError(f"ModbusEndpoint {self.rtu}: stop() called from the "
                                   "endpoint's own thread (on_command)")
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout=10)
                self._thread = self._loop = self._server = None
            if thread.is_alive():  # pragma: no cover - a stuck on_command
                self._log.error("ModbusEndpoint %s: server thread did not end", self.rtu)
        self._log.info("ModbusEndpoint %s: stopped", self.rtu)

    async def _shutdown(self) -> None:
        self._closing = True
        server = self._server
        loop = asyncio.get_running_loop()
        # Stop accepting first, and let connections accepted just before finish their
        # set-up (their connection_made aborts them): closing the server while one is half
        # made leaks its socket (asyncio's Server._attach asserts on a closed server).
        if server is not None:
            for sock in server.sockets:
                loop.remove_reader(sock.fileno())
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if others:
            await asyncio.wait(others, timeout=1.0)
        if server is not None:
            server.close()
        for conn in list(self._connections):
            conn.transport.abort()
        self._connections.clear()
        if server is not None:
            await server.wait_closed()
        # Let the aborted transports run connection_lost and release their sockets.
        for _ in range(3):
            await asyncio.sleep(0)

    def __enter__(self) -> "ModbusEndpoint":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ mosaik side
    def publish(self, values: Mapping[str, float | bool], invalid: Collection[str] = ()) -> None:
        """Store telemetry as the comm model delivered it.

        Parameters
        ----------
        values : mapping of str to float or bool
            Point name → value in the point's unit; points not named keep their value.
        invalid : collection of str
            Stale points: float registers read NaN (see the module's rules); a name may be
            here without a value.

        Raises
        ------
        ValueError
            A name is not a telemetry point of this RTU (nothing is stored then).
        """
        unknown = [n for n in itertools.chain(values, invalid) if n not in self._telemetry]
        if unknown:
            raise ValueError(f"ModbusEndpoint {self.rtu}.publish: not telemetry points of this "
                             f"RTU: {sorted(set(unknown))}")
        writes: list[tuple[dict, int, object]] = []
        for name, value in values.items():
            p, kind = self._telemetry[name]
            a = p.modbus_address
            if kind == "bit":
                writes.append((self._discrete, a, bool(value)))
            elif kind == "float":
                hi, lo = _float_words(float(value))
                writes += [(self._input, a, hi), (self._input, a + 1, lo)]
            else:
                v = float(value)
                if math.isfinite(v):
                    writes.append((self._input, a, _int16_word(round(v))))
        for name in invalid:
            p, kind = self._telemetry[name]
            if kind == "float":
                writes += [(self._input, p.modbus_address, _NAN_WORDS[0]),
                           (self._input, p.modbus_address + 1, _NAN_WORDS[1])]
        with self._lock:
            for table, address, word in writes:
                table[address] = word

    def set_reachable(self, reachable: bool) -> None:
        """Answer requests (True) or stay silent as behind a dead link (False)."""
        with self._lock:
            changed = self._reachable != bool(reachable)
            self._reachable = bool(reachable)
        if changed:
            self._log.info("ModbusEndpoint %s: %s", self.rtu,
                           "reachable" if reachable else "unreachable (answering nothing)")

    @property
    def reachable(self) -> bool:
        return self._reachable

    def command_done(self, request_id: str, status: CommandOutcome) -> None:
        """Record a command's outcome in its status register (2 success, 3 failed,
        4 timeout), unless a later command of the same register superseded it.

        Raises
        ------
        ValueError
            Unknown ``request_id`` or ``status``.
        """
        if status not in ("success", "failed", "timeout"):
            raise ValueError(f"ModbusEndpoint {self.rtu}.command_done: status must be one of "
                             f"'success', 'failed', 'timeout'; found {status!r}")
        with self._lock:
            if request_id not in self._requests:
                raise ValueError(f"ModbusEndpoint {self.rtu}.command_done: unknown request "
                                 f"{request_id!r}")
            address = self._requests[request_id]
            if address is None or self._latest.get(address) != request_id:
                return
            self._holding[address] = COMMAND_STATUS[status]

    # ------------------------------------------------------------------ requests
    def _handle(self, unit: int, pdu: bytes, peer: str) -> bytes:
        """The response PDU (or exception PDU) to a request PDU."""
        fc = pdu[0]
        try:
            if unit not in UNIT_IDS:
                raise _RequestError(GATEWAY_TARGET_NO_RESPONSE, f"unit id {unit} (serving 1)")
            handler = self._handlers.get(fc)
            if handler is None:
                raise _RequestError(ILLEGAL_FUNCTION, f"function code {fc} not supported")
            return bytes([fc]) + handler(self, pdu[1:], peer)
        except _RequestError as err:
            self._log.warning("ModbusEndpoint %s: request from %s, function %d: %s -> "
                              "exception %d", self.rtu, peer, fc, err.reason, err.code)
            return bytes([(fc | 0x80) & 0xFF, err.code])

    @staticmethod
    def _address_count(data: bytes, limit: int) -> tuple[int, int]:
        if len(data) != 4:
            raise _RequestError(ILLEGAL_DATA_VALUE, f"PDU data of {len(data)} bytes, expected 4")
        address, count = struct.unpack(">HH", data)
        if not 1 <= count <= limit:
            raise _RequestError(ILLEGAL_DATA_VALUE, f"count {count} outside 1 .. {limit}")
        if address + count > 0x10000:
            raise _RequestError(ILLEGAL_DATA_ADDRESS, f"addresses {address} + {count} beyond "
                                                      "65535")
        return address, count

    def _read(self, table: dict, name: str, address: int, count: int) -> list:
        with self._lock:
            try:
                return [table[a] for a in range(address, address + count)]
            except KeyError as err:
                raise _RequestError(ILLEGAL_DATA_ADDRESS,
                                    f"{name} {err.args[0]} is not mapped") from None

    def _read_bits(self, table: dict, name: str, data: bytes) -> bytes:
        address, count = self._address_count(data, _MAX_READ_BITS)
        bits = self._read(table, name, address, count)
        packed = bytearray((count + 7) // 8)
        for i, bit in enumerate(bits):
            if bit:
                packed[i // 8] |= 1 << (i % 8)
        return bytes([len(packed)]) + bytes(packed)

    def _read_registers(self, table: dict, name: str, data: bytes) -> bytes:
        address, count = self._address_count(data, _MAX_READ_REGISTERS)
        words = self._read(table, name, address, count)
        return bytes([2 * count]) + struct.pack(f">{count}H", *words)

    def _fc1(self, data: bytes, _peer: str) -> bytes:
        return self._read_bits(self._coils, "coil", data)

    def _fc2(self, data: bytes, _peer: str) -> bytes:
        return self._read_bits(self._discrete, "discrete input", data)

    def _fc3(self, data: bytes, _peer: str) -> bytes:
        return self._read_registers(self._holding, "holding register", data)

    def _fc4(self, data: bytes, _peer: str) -> bytes:
        return self._read_registers(self._input, "input register", data)

    def _fc5(self, data: bytes, peer: str) -> bytes:
        if len(data) != 4:
            raise _RequestError(ILLEGAL_DATA_VALUE, f"PDU data of {len(data)} bytes, expected 4")
        address, value = struct.unpack(">HH", data)
        if value not in (_COIL_ON, _COIL_OFF):
            raise _RequestError(ILLEGAL_DATA_VALUE, f"coil value 0x{value:04X} (0xFF00 or 0)")
        self._write_coils(address, [value == _COIL_ON], peer)
        return data

    @staticmethod
    def _write_multiple(data: bytes, limit: int, nbytes_of: Callable[[int], int],
                        what: str) -> tuple[int, int]:
        """(address, count) of a write-multiple request (functions 15, 16), checked."""
        if len(data) < 5:
            raise _RequestError(ILLEGAL_DATA_VALUE, f"PDU data of {len(data)} bytes, expected "
                                                    ">= 5")
        address, count, nbytes = struct.unpack(">HHB", data[:5])
        if not 1 <= count <= limit or nbytes != nbytes_of(count) or len(data) != 5 + nbytes:
            raise _RequestError(ILLEGAL_DATA_VALUE, f"count {count} with byte count {nbytes} "
                                                    f"and {len(data) - 5} data bytes")
        if address + count > 0x10000:
            raise _RequestError(ILLEGAL_DATA_ADDRESS, f"{what} {address} + {count} beyond "
                                                      "65535")
        return address, count

    def _fc15(self, data: bytes, peer: str) -> bytes:
        address, count = self._write_multiple(data, _MAX_WRITE_BITS, lambda n: (n + 7) // 8,
                                              "coils")
        bits = [bool(data[5 + i // 8] >> (i % 8) & 1) for i in range(count)]
        self._write_coils(address, bits, peer)
        return data[:4]

    def _fc6(self, data: bytes, peer: str) -> bytes:
        if len(data) != 4:
            raise _RequestError(ILLEGAL_DATA_VALUE, f"PDU data of {len(data)} bytes, expected 4")
        address, word = struct.unpack(">HH", data)
        self._write_registers(address, [word], peer)
        return data

    def _fc16(self, data: bytes, peer: str) -> bytes:
        address, count = self._write_multiple(data, _MAX_WRITE_REGISTERS, lambda n: 2 * n,
                                              "registers")
        self._write_registers(address, list(struct.unpack(f">{count}H", data[5:])), peer)
        return data[:4]

    _handlers: dict[int, Callable[["ModbusEndpoint", bytes, str], bytes]] = {
        1: _fc1, 2: _fc2, 3: _fc3, 4: _fc4, 5: _fc5, 6: _fc6, 15: _fc15, 16: _fc16}

    # ------------------------------------------------------------------ commands
    def _write_coils(self, address: int, bits: list[bool], peer: str) -> None:
        commands = []
        for i, bit in enumerate(bits):
            p = self._coil_commands.get(address + i)
            if p is None:
                raise _RequestError(ILLEGAL_DATA_ADDRESS,
                                    f"coil {address + i} is not a command coil")
            if p.quantity == "switch":
                commands.append((p, "close" if bit else "open", None, [(address + i, bit)]))
            else:
                commands.append((p, p.quantity, 1.0 if bit else 0.0, [(address + i, bit)]))
        self._issue(commands, self._coils, peer)

    def _write_registers(self, address: int, words: list[int], peer: str) -> None:
        commands = []
        i = 0
        while i < len(words):
            a = address + i
            entry = self._holding_commands.get(a)
            if entry is None:
                what = "a status register" if a in self._holding else "not mapped"
                raise _RequestError(ILLEGAL_DATA_ADDRESS,
                                    f"holding register {a} is {what}, not a command")
            p, part = entry
            if part != 0 or i + p.modbus_count > len(words):
                raise _RequestError(ILLEGAL_DATA_ADDRESS,
                                    f"holding register {a} is half of the float32 {p.name!r} "
                                    f"({p.modbus_address}, {p.modbus_address + 1}): write both "
                                    "with function 16")
            if self._kind[p.name] == "float":
                value: float = _words_float(words[i], words[i + 1])
                lo, hi = _f32(p.low), _f32(p.high)
            else:
                value = _word_int16(words[i])
                lo, hi = p.low, p.high
            if not math.isfinite(value) or not lo <= value <= hi \
                    or (p.value_type == "int" and value != int(value)):
                raise _RequestError(ILLEGAL_DATA_VALUE,
                                    f"{p.name!r} = {value} outside {p.low} .. {p.high}")
            if self._kind[p.name] == "float":
                value = _shortest_f32(value)
            image = [(a + k, words[i + k]) for k in range(p.modbus_count)]
            commands.append((p, p.quantity, value, image))
            i += p.modbus_count
        self._issue(commands, self._holding, peer)

    def _issue(self, commands: list, table: dict, peer: str) -> None:
        """Store the written values, mark the commands pending and hand them over."""
        requests = []
        with self._lock:
            for p, action, value, image in commands:
                for a, v in image:
                    table[a] = v
                request = CommandRequest(f"modbus:{self.rtu}:{next(self._ids)}", self.rtu,
                                         p.element, action, value, peer)
                status = self._status_address.get(p.name)
                self._requests[request.id] = status
                if status is not None:
                    self._latest[status] = request.id
                    self._holding[status] = COMMAND_STATUS["pending"]
                requests.append(request)
        failure = None
        for request in requests:
            if self._on_command is None:
                self._log.warning("ModbusEndpoint %s: no on_command; %s left pending",
                                  self.rtu, request)
                continue
            try:
                self._on_command(request)
            except Exception as err:  # the server must answer whatever the callback does
                self._log.exception("ModbusEndpoint %s: on_command failed for %s",
                                    self.rtu, request)
                failure = failure or err
        if failure is not None:
            raise _RequestError(SERVER_DEVICE_FAILURE, f"on_command raised {failure!r}")


# --------------------------------------------------------------------------- connection
class _Connection(asyncio.Protocol):
    """One client connection: MBAP framing, the unreachable switch, eviction."""

    def __init__(self, endpoint: ModbusEndpoint):
        self.endpoint = endpoint
        self.buffer = bytearray()
        self.peer = "?"
        self.last_active_s = time.monotonic()
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ep = self.endpoint
        self.transport = transport  # type: ignore[assignment]
        if ep._closing:
            transport.abort()
            return
        peer = transport.get_extra_info("peername")
        if peer:
            host = f"[{peer[0]}]" if ":" in peer[0] else peer[0]
            self.peer = f"{host}:{peer[1]}"
        if len(ep._connections) >= ep._max_connections:
            oldest = min(ep._connections, key=lambda c: c.last_active_s)
            ep._log.warning("ModbusEndpoint %s: %d connections (the limit); closing the least "
                            "recently active, %s, for %s", ep.rtu, len(ep._connections),
                            oldest.peer, self.peer)
            ep._connections.discard(oldest)
            oldest.transport.abort()
        ep._connections.add(self)
        ep._log.debug("ModbusEndpoint %s: connection from %s", ep.rtu, self.peer)

    def pause_writing(self) -> None:  # a client not reading its answers: stop reading it
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.endpoint._connections.discard(self)
        self.endpoint._log.debug("ModbusEndpoint %s: %s disconnected", self.endpoint.rtu,
                                 self.peer)

    def data_received(self, data: bytes) -> None:
        ep = self.endpoint
        if not ep._reachable:
            self.buffer.clear()  # lost on the dead link
            return
        self.last_active_s = time.monotonic()
        self.buffer += data
        out = bytearray()
        while len(self.buffer) >= _MBAP.size:
            tid, pid, length, unit = _MBAP.unpack_from(self.buffer)
            if pid != 0 or not 2 <= length <= _MAX_LENGTH:
                ep._log.warning("ModbusEndpoint %s: not a Modbus TCP frame from %s (protocol "
                                "id %d, length %d); closing the connection", ep.rtu, self.peer,
                                pid, length)
                self.buffer.clear()
                if out:
                    self.transport.write(bytes(out))
                self.transport.close()
                return
            end = 6 + length
            if len(self.buffer) < end:
                break
            pdu = bytes(self.buffer[_MBAP.size:end])
            del self.buffer[:end]
            response = ep._handle(unit, pdu, self.peer)
            out += _MBAP.pack(tid, 0, len(response) + 1, unit) + response
        if out:
            self.transport.write(bytes(out))
