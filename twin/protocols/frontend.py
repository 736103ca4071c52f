"""A SCADA front end for the twin's DMS: with ``dms.transport: modbus | iec104`` the DMS
reads its telemetry and sends its commands over the RTUs' protocol endpoints
(:mod:`twin.protocols.gateway`), as a control centre does, instead of in process.

The DMS is still called at the simulation's times — its cycle, and whenever the field hands
over telemetry or a command outcome (the mosaik connections carry that clock, and only
that) — and the run waits for it, so the front end is in lockstep with the simulated clock.
What the DMS is given comes over the wire:

Telemetry
    At each call every RTU's image is read: Modbus, its input registers and discrete
    inputs; IEC 104, a station interrogation, waited for until its termination (frames on
    one connection arrive in order, so what the field published before is in). An RTU whose
    ``scan_t_s`` moved on since the last read gives one row per valid point, stamped with
    that scan time (``source_t_s``) and the call's time (``delivery_t_s``), with the
    point's sigma from the DMS's database. Invalid values (stale: Modbus NaN, IEC 104 IV or
    NT) and RTUs that do not answer (an outage) give none, and the DMS's own staleness rule
    does the rest, as in process. Values travel as float32 (about 7 significant digits).
Commands
    Each is written to its RTU: Modbus, the coil or holding register(s) of the point map;
    IEC 104, the command object, select-before-operate for switches. Commands to devices no
    RTU carries (manual switches: a crew) go the in-process way. :meth:`FrontEnd.take_sent`
    tells the DMS simulator that commands went over the wire, so that the field takes them
    at the next tick, as it takes in-process ones.
Outcomes
    Modbus: the command's status register, read at each call (2 success, 3 failed,
    4 timeout). IEC 104: the ACTTERM is success; a negative ACTCON is failed at once; a
    command without ACTTERM after ``command_timeout_s`` is a timeout (c104 cannot send a
    negative ACTTERM, so a failure in the field reads as a timeout here). The device's
    application time does not travel (``applied_t_s`` None). In-process outcomes of
    commands that went over the wire are dropped; others (a crew's, the operator's) pass.
"""

# No ``from __future__ import annotations``: c104 checks a callback's signature by its text.

import logging
import math
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from twin.protocols.modbus import _float_words, _words_float
from twin.protocols.pointmap import COMMAND_STATUS, SCAN_TIME, MappedPoint, PointMap

_LOG = logging.getLogger("twin.protocols")

#: Wall-clock limit of one protocol exchange [s]: on loopback, with the simulation waiting
#: for the DMS, an RTU that does not answer in this time is not answering (an outage).
REQUEST_TIMEOUT_S = 0.5
#: An IEC 104 station interrogation's wait for its termination [s], and the tries.
GI_TIMEOUT_S = 1.0
GI_ATTEMPTS = 3
#: Outcome of a Modbus status register.
_STATUS_NAME = {v: k for k, v in COMMAND_STATUS.items()}
#: IEC 104 type ids of the commands and of the interrogation (IEC 60870-5-101, 7.2.1).
_C_IC_NA_1 = 100
_COMMAND_TYPE_IDS = frozenset({45, 46, 47, 48, 49, 50})
_ACTCON, _ACTTERM = 7, 10
_MAX_READ_REGISTERS = 125


@dataclass
class _Pending:
    rtu: str
    point: MappedPoint
    sent_t_s: float


def _spans(points: list[MappedPoint], limit: int) -> list[tuple[int, int]]:
    """(address, count) reads covering ``points`` in runs of at most ``limit``."""
    out: list[tuple[int, int]] = []
    for p in sorted(points, key=lambda p: p.modbus_address):
        end = p.modbus_address + p.modbus_count
        if out and end - out[-1][0] <= limit and p.modbus_address <= out[-1][0] + out[-1][1]:
            out[-1] = (out[-1][0], end - out[-1][0])
        else:
            out.append((p.modbus_address, p.modbus_count))
    return out


# --------------------------------------------------------------------------- Modbus
class _ModbusRTU:
    """pymodbus's client on one RTU."""

    def __init__(self, rtu: str, points: list[MappedPoint], host: str, port: int):
        from pymodbus.client import ModbusTcpClient

        self.rtu = rtu
        self.client = ModbusTcpClient(host, port=port, timeout=REQUEST_TIMEOUT_S, retries=0)
        self.floats = [p for p in points if p.direction == "telemetry"
                       and p.modbus_table == "input_register"]
        self.bits = [p for p in points if p.direction == "telemetry"
                     and p.modbus_table == "discrete_input"]

    def _ready(self) -> bool:
        return self.client.connected or self.client.connect()

    def ask(self) -> bool:
        return True  # Modbus reads are synchronous: all in :meth:`read`

    def read(self, token: object = None) -> dict[str, float | None] | None:
        """Point name → value (None: invalid); None if the RTU does not answer."""
        if not self._ready():
            return None
        try:
            words: dict[int, int] = {}
            for address, count in _spans(self.floats, _MAX_READ_REGISTERS):
                rr = self.client.read_input_registers(address, count=count)
                if rr.isError():
                    raise OSError(str(rr))
                words.update(zip(range(address, address + count), rr.registers))
            bits: dict[int, bool] = {}
            for address, count in _spans(self.bits, 2000):
                rr = self.client.read_discrete_inputs(address, count=count)
                if rr.isError():
                    raise OSError(str(rr))
                bits.update(zip(range(address, address + count), rr.bits))
        except Exception as err:  # a timeout (outage) or a closed connection
            self.client.close()  # a fresh connection next time: no late answer mistaken
            _LOG.debug("front end: RTU %s not answering: %s", self.rtu, err)
            return None
        out: dict[str, float | None] = {}
        for p in self.floats:
            x = _words_float(words[p.modbus_address], words[p.modbus_address + 1])
            out[p.name] = x if math.isfinite(x) else None
        for p in self.bits:
            out[p.name] = 1.0 if bits[p.modbus_address] else 0.0
        return out

    def send(self, p: MappedPoint, action: str, value: Any) -> str | None:
        """Write one command; None if accepted, else why not."""
        if not self._ready():
            return "RTU not answering"
        try:
            if p.modbus_table == "coil":
                rr = self.client.write_coil(p.modbus_address, action == "close")
            elif p.value_type == "int":
                rr = self.client.write_register(p.modbus_address, int(round(value)) & 0xFFFF)
            else:
                rr = self.client.write_registers(p.modbus_address,
                                                 list(_float_words(float(value))))
        except Exception as err:
            self.client.close()
            return f"no answer ({err})"
        return f"Modbus exception {rr.exception_code}" if rr.isError() else None

    def status(self, p: MappedPoint) -> str | None:
        """The outcome in the command's status register (None: still pending or unknown)."""
        if not self._ready():
            return None
        try:
            rr = self.client.read_holding_registers(p.modbus_address + 100, count=1)
        except Exception:
            self.client.close()
            return None
        if rr.isError():
            return None
        name = _STATUS_NAME.get(rr.registers[0])
        return name if name in ("success", "failed", "timeout") else None

    def close(self) -> None:
        self.client.close()


# --------------------------------------------------------------------------- IEC 104
class _IecRTU:
    """One connection of c104's client to one RTU, with a barrier on interrogations."""

    def __init__(self, client: Any, c104: Any, rtu: str, points: list[MappedPoint],
                 host: str, port: int):
        self.rtu, self.c104 = rtu, c104
        self.con = client.add_connection(ip=host, port=port, init=c104.Init.NONE)
        self.ca = points[0].iec104_ca
        self.station = self.con.add_station(common_address=self.ca)
        self.telemetry: dict[str, Any] = {}
        self.commands: dict[str, Any] = {}
        for p in points:
            if p.direction == "telemetry":
                kind = getattr(c104.Type, p.iec104_type)
                self.telemetry[p.name] = self.station.add_point(io_address=p.iec104_ioa,
                                                                type=kind)
            elif p.direction == "command":
                mode = (c104.CommandMode.SELECT_AND_EXECUTE if p.select_before_operate
                        else c104.CommandMode.DIRECT)
                self.commands[p.name] = self.station.add_point(
                    io_address=p.iec104_ioa, type=getattr(c104.Type, p.iec104_type),
                    command_mode=mode)
        self._cond = threading.Condition()
        self._gi_done = 0
        self._terms: list[int] = []  # IOAs of positive ACTTERMs of executions, in order
        self._refused: list[int] = []  # IOAs of negative ACTCONs of commands
        self._was_open = False  # once open, a closed connection means the RTU is gone

        def on_raw(connection: c104.Connection, data: bytes) -> None:  # c104 checks the text
            self._on_raw(data)

        self.con.on_receive_raw(callable=on_raw)

    def _on_raw(self, data: bytes) -> None:
        # I-frame: 68 len ctrl(4) | type, VSQ, COT (+P/N), OA, CA(2), IOA(3), element
        if len(data) < 15 or data[0] != 0x68 or data[2] & 1:
            return
        type_id, cot = data[6], data[8] & 0x3F
        negative = bool(data[8] & 0x40)
        if cot == _ACTCON and negative and type_id in _COMMAND_TYPE_IDS:
            with self._cond:
                self._refused.append(data[12] | data[13] << 8 | data[14] << 16)
            return
        if cot != _ACTTERM or negative:
            return
        with self._cond:
            if type_id == _C_IC_NA_1:
                self._gi_done += 1
            elif type_id in _COMMAND_TYPE_IDS and not data[-1] & 0x80:  # S/E 0: execution
                self._terms.append(data[12] | data[13] << 8 | data[14] << 16)
            self._cond.notify_all()

    def _open(self) -> bool:
        c104 = self.c104
        end = time.monotonic() + REQUEST_TIMEOUT_S
        while self.con.state != c104.ConnectionState.OPEN:
            if time.monotonic() > end or self._was_open and self.con.state in (
                    c104.ConnectionState.CLOSED, c104.ConnectionState.CLOSED_AWAIT_RECONNECT):
                return False  # lost (an outage): no wait; c104 reconnects by itself
            if self.con.state == c104.ConnectionState.OPEN_MUTED:
                self.con.unmute()  # c104 now and then skips its own STARTDT
            time.sleep(0.002)
        self._was_open = True
        return True

    def ask(self) -> int | None:
        """Send a station interrogation (not waiting); a token for :meth:`read`, or None
        if the RTU is not there."""
        if not self._open():
            return None
        with self._cond:
            before = self._gi_done
        # not waiting for the ACTCON in c104 (it now and then misses one and waits out its
        # command timeout): the termination is what counts
        if not self.con.interrogation(common_address=self.ca, cause=self.c104.Cot.ACTIVATION,
                                      qualifier=self.c104.Qoi.STATION,
                                      wait_for_response=False):
            return None
        return before

    def read(self, token: int | None = None) -> dict[str, float | None] | None:
        """The image once the interrogation ``token`` (:meth:`ask`; None: one now) ended."""
        for _attempt in range(GI_ATTEMPTS):
            if token is None:
                token = self.ask()
                if token is None:
                    return None
            with self._cond:
                if self._cond.wait_for(lambda: self._gi_done > token, GI_TIMEOUT_S):
                    break
            _LOG.info("front end: RTU %s: no end of interrogation in %g s; again",
                      self.rtu, GI_TIMEOUT_S)
            token = None
        else:
            return None
        out: dict[str, float | None] = {}
        for name, point in self.telemetry.items():
            q = point.quality
            bad = q is not None and (self.c104.Quality.Invalid in q
                                     or self.c104.Quality.NonTopical in q)
            out[name] = None if bad else float(point.value)
        return out

    def send(self, p: MappedPoint, action: str, value: Any) -> str | None:
        if not self._open():
            return "RTU not answering"
        point = self.commands[p.name]
        if p.iec104_type == "C_DC_NA_1":
            point.value = self.c104.Double.ON if action == "close" else self.c104.Double.OFF
        elif p.iec104_type == "C_SE_NB_1":
            point.value = self.c104.Int16(int(round(value)))
        else:
            point.value = float(value)
        with self._cond:
            self._refused.clear()
        if point.transmit(cause=self.c104.Cot.ACTIVATION):
            return None
        # c104 now and then misses a positive ACTCON: only a negative one is a refusal (an
        # accepted command then ends with its ACTTERM, or times out)
        with self._cond:
            refused = p.iec104_ioa in self._refused
        return "negative activation confirmation" if refused else None

    def terminated(self, ioa: int) -> bool:
        """Whether an ACTTERM for ``ioa`` came (and take it)."""
        with self._cond:
            if ioa in self._terms:
                self._terms.remove(ioa)
                return True
        return False


# --------------------------------------------------------------------------- front end
class FrontEnd:
    """A DMS behind a SCADA front end (see the module notes).

    Parameters
    ----------
    dms : object with ``step(t_s, telemetry, outcomes)``
        The DMS as the simulator calls it (a :class:`twin.dms.api.GuardedDMS`).
    point_map : PointMap
    addresses : mapping of str to (protocol, host, port)
        Each RTU's endpoint (:meth:`twin.protocols.gateway.Gateway.addresses`).
    sigma : mapping of (rtu, point name) to float
        The meters' standard deviations from the DMS's database.
    command_timeout_s : float
        When an IEC 104 command without ACTTERM is a timeout [s, simulated].
    """

    def __init__(self, dms: Any, point_map: PointMap,
                 addresses: Mapping[str, tuple[str, str, int]],
                 sigma: Mapping[tuple[str, str], float], command_timeout_s: float):
        self.dms = dms
        self._sigma = dict(sigma)
        self._timeout_s = float(command_timeout_s)
        self._rtus: dict[str, Any] = {}
        self._points: dict[str, dict[str, MappedPoint]] = {}
        self._commands: dict[tuple[str, str], MappedPoint] = {}  # (device, command) -> point
        self._last_scan: dict[str, float] = {}
        self._scan_point: dict[str, str] = {}  # RTU with telemetry -> its scan_t_s point
        self._pending: dict[str, _Pending] = {}
        self._refused: dict[str, str] = {}  # command id -> why the RTU did not take it
        self._sent = 0
        self._c104_client = None
        for rtu, (protocol, host, port) in addresses.items():
            points = point_map.for_rtu(rtu)
            self._points[rtu] = {p.name: p for p in points}
            self._scan_point.update({rtu: p.name for p in points if p.quantity == SCAN_TIME})
            for p in points:
                if p.direction == "command":
                    self._commands[(p.element, p.quantity)] = p
            if protocol == "modbus":
                self._rtus[rtu] = _ModbusRTU(rtu, points, host, port)
            else:
                import c104  # the GPL extra, only when asked for

                if self._c104_client is None:
                    self._c104_client = c104.Client(tick_rate_ms=50,
                                                    command_timeout_ms=round(
                                                        REQUEST_TIMEOUT_S * 1000))
                self._rtus[rtu] = _IecRTU(self._c104_client, c104, rtu, points, host, port)
        if self._c104_client is not None:
            self._c104_client.start()

    # ------------------------------------------------------------------ the DMS interface
    def step(self, t_s: float, telemetry: list, outcomes: list) -> Any:
        rows = self._telemetry(t_s)
        wire_outcomes = self._outcomes(t_s)
        # in-process outcomes of commands that went over the wire come from the wire instead
        passed = [o for o in outcomes if not str(o.get("id", "")).startswith(
            ("modbus:", "iec104:"))]
        result = self.dms.step(t_s, rows, passed + wire_outcomes)
        local = []
        for command in result.commands:
            if not self._send(command, t_s):
                local.append(command)
        result.commands = local
        return result

    def take_sent(self) -> int:
        """Commands written over the wire since the last call."""
        n, self._sent = self._sent, 0
        return n

    def close(self) -> None:
        for rtu in self._rtus.values():
            if isinstance(rtu, _ModbusRTU):
                rtu.close()
        if self._c104_client is not None:
            self._c104_client.stop()
            self._c104_client = None

    # ------------------------------------------------------------------ parts
    def _telemetry(self, t_s: float) -> list[dict]:
        rows: list[dict] = []
        # every IEC 104 interrogation goes out first: the RTUs answer at once, not in turn
        tokens = {rtu: client.ask() for rtu, client in self._rtus.items()
                  if rtu in self._scan_point}
        for rtu, token in tokens.items():
            points = self._points[rtu]
            image = self._rtus[rtu].read(token) if token is not None else None
            if image is None:
                continue
            scan_t_s = image.get(self._scan_point[rtu])
            if scan_t_s is None or scan_t_s <= self._last_scan.get(rtu, -math.inf):
                continue  # nothing new since the last read
            self._last_scan[rtu] = scan_t_s
            for name, value in image.items():
                p = points[name]
                if value is None or p.quantity == SCAN_TIME:
                    continue
                rows.append({"element": p.element, "quantity": p.quantity,
                             "value": float(value), "source_t_s": float(scan_t_s),
                             "delivery_t_s": t_s, "sigma": self._sigma.get((rtu, name), 0.0),
                             "rtu": rtu, "point": name})
        return rows

    def _send(self, command: Mapping[str, Any], t_s: float) -> bool:
        """Write ``command`` to its RTU; False if no RTU's endpoint carries it."""
        action = command["action"]
        kind = "switch" if action in ("open", "close") else action
        p = self._commands.get((command["target"], kind))
        if p is None:
            return False
        cid = str(command["id"])
        why = self._rtus[p.rtu].send(p, action, command.get("value"))
        self._sent += 1
        if why is None:
            if isinstance(self._rtus[p.rtu], _ModbusRTU):
                # one status register per command point: a newer command hides the older's
                for old in [c for c, q in self._pending.items() if q.point is p]:
                    _LOG.info("front end: %s superseded by %s before its outcome", old, cid)
                    del self._pending[old]
            self._pending[cid] = _Pending(p.rtu, p, t_s)
        else:
            _LOG.warning("front end: %s %s to %s refused: %s", cid, action, p.rtu, why)
            self._refused[cid] = why
        return True

    def _outcomes(self, t_s: float) -> list[dict]:
        out: list[dict] = []
        for cid, why in list(self._refused.items()):
            out.append({"id": cid, "status": "failed", "applied_t_s": None,
                        "result_t_s": t_s, "reason": why})
        self._refused.clear()
        for cid, pend in list(self._pending.items()):
            client = self._rtus[pend.rtu]
            if isinstance(client, _ModbusRTU):
                status = client.status(pend.point)
                reason = "status register"
            else:
                status = "success" if client.terminated(pend.point.iec104_ioa) else None
                reason = "ACTTERM"
                if status is None and t_s - pend.sent_t_s >= self._timeout_s:
                    status, reason = "timeout", f"no ACTTERM within {self._timeout_s:g} s"
            if status is not None:
                del self._pending[cid]
                out.append({"id": cid, "status": status, "applied_t_s": None,
                            "result_t_s": t_s, "reason": reason, "via": pend.rtu})
        return out


def sigma_of(rtus: Iterable[tuple[str, float, tuple[Any, ...]]]) -> dict[tuple[str, str], float]:
    """(rtu, point) → sigma from :attr:`twin.dms.api.DMSContext.rtus`."""
    return {(p.rtu, p.point): float(p.sigma) for _name, _period, points in rtus for p in points}
