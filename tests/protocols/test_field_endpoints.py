"""The RTUs' endpoints in a running twin, driven over loopback by the protocols' own
clients (pymodbus, c104): telemetry as the field delivers it, a switch and a tap command
that change the grid with their outcome reported, an outage window that takes an RTU off
the air. The run is live at 60 × real time, so the clients act while it runs; every
assertion is on the simulation's clock (the RTUs' ``scan_t_s`` point and the records),
not on the wall clock."""

# No ``from __future__ import annotations``: c104 checks a callback's signature by its text.
import math
import socket
import struct
import threading
import time

import numpy as np
import pandas as pd
import pytest
from pymodbus.client import ModbusTcpClient

from twin.recording.files import read_measurement
from twin.runner import run_scenario

c104 = pytest.importorskip("c104")

SPEED = 60.0
OUTAGE_S = (360.0, 480.0)  # the Substation RTU's link is down 6 – 8 min
# Substation's map (twin points): IR 8-9 Trafo 0-1 tap_pos, IR 20-21 scan_t_s, DI 0
# switch_6 closed; coil 0 switch_6; HR 2 Trafo 0-1 set_tap; HR 100 / 102 their status.
TAP_IR, SCAN_IR, SW6_COIL, TAP_HR = 8, 20, 0, 2
S1_CA, S1_CLOSED_IOA, S1_SWITCH_IOA = 3, 1, 2001


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _f32(words) -> float:
    return struct.unpack(">f", struct.pack(">HH", *words))[0]


class ModbusScada(threading.Thread):
    """A front end polling the Substation RTU, switching switch_6 open and raising the
    tap of Trafo 0-1 by one once the first minute's values are in."""

    def __init__(self, port: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.stop = port, stop
        self.log: list[tuple[str, float]] = []  # ("scan", scan_t_s) or ("timeout", last seen)
        self.tap0: int | None = None
        self.status: dict[str, int] = {}
        self.sw6_open_seen_at: float | None = None
        self.tap_seen_at: float | None = None
        self.bad_write_refused: int | None = None
        self.error: BaseException | None = None

    def _scan_t(self, c: ModbusTcpClient) -> float | None:
        rr = c.read_input_registers(SCAN_IR, count=2)
        return None if rr.isError() else _f32(rr.registers)

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test
            import traceback
            self.error = "".join(traceback.format_exception(exc))

    def _wait_status(self, c: ModbusTcpClient, register: int) -> int:
        end = time.monotonic() + 10
        while time.monotonic() < end:
            value = c.read_holding_registers(register, count=1).registers[0]
            if value not in (0, 1):
                return value
            time.sleep(0.005)
        return -1

    def _run(self) -> None:
        c = ModbusTcpClient("127.0.0.1", port=self.port, timeout=0.5, retries=0)
        end = time.monotonic() + 30
        while not c.connect():
            assert time.monotonic() < end, "the Modbus endpoint never came up"
            time.sleep(0.05)
        while (self._scan_t(c) or math.nan) < 60 or math.isnan(self._scan_t(c)):
            time.sleep(0.01)
        self.tap0 = round(_f32(c.read_input_registers(TAP_IR, count=2).registers))
        assert not c.write_coil(SW6_COIL, False).isError()
        self.status["switch"] = self._wait_status(c, 100 + SW6_COIL)
        assert not c.write_register(TAP_HR, (self.tap0 + 1) & 0xFFFF).isError()
        self.status["tap"] = self._wait_status(c, 100 + TAP_HR)
        bad = c.write_register(TAP_HR, 99)  # outside -9 .. 9: refused, the run goes on
        self.bad_write_refused = getattr(bad, "exception_code", None)
        last = 0.0
        while not self.stop.is_set():
            try:
                scan = self._scan_t(c)
                if scan is not None:
                    sw6_closed = c.read_discrete_inputs(0, count=1).bits[0]
                    tap = round(_f32(c.read_input_registers(TAP_IR, count=2).registers))
            except Exception:  # pymodbus raises on a timeout or a closed connection
                scan = None
            if scan is None:
                self.log.append(("timeout", last))
                c.close()  # a fresh connection: no late answer taken for the next request
                c.connect()
                continue
            last = scan
            self.log.append(("scan", scan))
            if self.sw6_open_seen_at is None and not sw6_closed:
                self.sw6_open_seen_at = scan
            if self.tap_seen_at is None and tap == self.tap0 + 1:
                self.tap_seen_at = scan
            time.sleep(0.01)
        c.close()


class IecScada(threading.Thread):
    """A front end on the S1 RTU (common address 3): interrogates, then closes S1 by
    select-before-operate."""

    def __init__(self, port: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.stop = port, stop
        self.closed_events: list[tuple[bool, str]] = []  # (state, cause)
        self.command_sent: bool | None = None
        self.error: BaseException | None = None
        self.frames: list[dict] = []
        self._lock = threading.Lock()

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            self.error = exc

    def _on_point(self, point: c104.Point, previous_info: c104.Information,
                  message: c104.IncomingMessage) -> c104.ResponseState:
        with self._lock:
            self.closed_events.append((bool(point.value), message.cot.name))
        return c104.ResponseState.SUCCESS

    def _on_raw(self, connection: c104.Connection, data: bytes) -> None:
        with self._lock:
            self.frames.append(c104.explain_bytes_dict(apdu=data))

    def _run(self) -> None:
        client = c104.Client(tick_rate_ms=50, command_timeout_ms=3000)
        con = client.add_connection(ip="127.0.0.1", port=self.port, init=c104.Init.ALL)
        con.on_receive_raw(callable=self._on_raw)
        station = con.add_station(common_address=S1_CA)
        station.add_point(io_address=S1_CLOSED_IOA, type=c104.Type.M_SP_NA_1).on_receive(
            callable=self._on_point)
        switch = station.add_point(io_address=S1_SWITCH_IOA, type=c104.Type.C_DC_NA_1,
                                   command_mode=c104.CommandMode.SELECT_AND_EXECUTE)
        client.start()
        end = time.monotonic() + 30
        while con.state != c104.ConnectionState.OPEN:
            assert time.monotonic() < end, f"IEC 104 connection {con.state}"
            if con.state == c104.ConnectionState.OPEN_MUTED:
                con.unmute()
            time.sleep(0.05)
        # the interrogation's answer carries S1's state: open
        while not any(cause == "INTERROGATED_BY_STATION" for _, cause in self.closed_events):
            assert time.monotonic() < end, "no answer to the general interrogation"
            con.interrogation(common_address=S1_CA, cause=c104.Cot.ACTIVATION,
                              qualifier=c104.Qoi.STATION)
            time.sleep(0.2)
        switch.value = c104.Double.ON
        self.command_sent = switch.transmit(cause=c104.Cot.ACTIVATION)
        self.stop.wait()
        client.stop()


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    import yaml

    from tests.conftest import DEFAULT_SCENARIO

    data = yaml.safe_load(DEFAULT_SCENARIO.read_text())
    modbus_port, iec_port = _free_port(), _free_port()
    data.update(name="endpoints", start="2026-06-21T11:00:00Z", duration="10min",
                dms={"enabled": False})
    rtus = {r["name"]: r for r in data["rtus"]}
    rtus["RTU Substation"]["endpoint"] = {"protocol": "modbus", "port": modbus_port}
    rtus["RTU Substation"]["link"] = {"preset": "fibre", "outages": [
        {"after": f"{OUTAGE_S[0]:g}s", "duration": f"{OUTAGE_S[1] - OUTAGE_S[0]:g}s"}]}
    rtus["RTU S1"]["endpoint"] = {"protocol": "iec104", "port": iec_port}
    tmp = tmp_path_factory.mktemp("endpoints")
    path = tmp / "endpoints.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    stop = threading.Event()
    modbus, iec = ModbusScada(modbus_port, stop), IecScada(iec_port, stop)
    modbus.start()
    iec.start()
    try:
        summary = run_scenario(path, out=tmp / "run", speed=SPEED)
    finally:
        stop.set()
        modbus.join(10)
        iec.join(10)
    return summary, modbus, iec


def _cmd(store) -> pd.DataFrame:
    cmd = read_measurement(store, "command")
    cmd["t_s"] = (cmd.time - pd.Timestamp("2026-06-21T11:00:00Z")).dt.total_seconds()
    return cmd


def test_modbus_client_reads_telemetry_and_commands_the_grid(live_run):
    summary, modbus, _ = live_run
    assert modbus.error is None, modbus.error
    assert modbus.status == {"switch": 2, "tap": 2}  # success in the status registers
    assert modbus.bad_write_refused == 3  # ILLEGAL DATA VALUE, and the run went on
    store = summary.run_dir / "store"
    cmd = _cmd(store)
    ours = cmd[cmd.source.str.startswith("modbus 127.0.0.1:")]
    assert sorted(ours.action) == ["open", "set_tap"]
    assert (ours.status == "success").all() and (ours.via == "RTU Substation").all()
    assert 0.004 < ours.applied_delay_s.max() < 0.05  # the fibre link's downlink latency
    sw = ours[ours.action == "open"].iloc[0]
    tap = ours[ours.action == "set_tap"].iloc[0]
    assert sw.element == "switch:switch_6" and tap.value == modbus.tap0 + 1

    # the grid: switch_6 open and the tap one up from the command on, to the end
    grid_sw = read_measurement(store, "switch").query("element == 'switch_6'")
    t = (grid_sw.time - pd.Timestamp("2026-06-21T11:00:00Z")).dt.total_seconds()
    assert grid_sw[t < sw.t_s - 1].closed.astype(bool).all()
    assert not grid_sw[t > sw.t_s + 60].closed.astype(bool).any()
    trafo = read_measurement(store, "trafo").query("element == 'Trafo 0-1'")
    tt = (trafo.time - pd.Timestamp("2026-06-21T11:00:00Z")).dt.total_seconds()
    assert (trafo[tt > tap.t_s + 60].tap_pos == modbus.tap0 + 1).all()

    # and the client saw both in the RTU's telemetry from its first poll after the commands,
    # in values scanned after them
    first_scan = next(t for kind, t in modbus.log if kind == "scan")
    assert modbus.sw6_open_seen_at == modbus.tap_seen_at == first_scan
    assert first_scan > max(sw.t_s, tap.t_s)


def test_outage_window_takes_the_modbus_rtu_off_the_air(live_run):
    _, modbus, _ = live_run
    kinds = [k for k, _ in modbus.log]
    assert "timeout" in kinds, "the RTU answered all through its outage"
    first = kinds.index("timeout")
    back = kinds.index("scan", first)  # answers again (timeouts at the very end: run over)
    before = [t for k, t in modbus.log[:first] if k == "scan"]
    after = [t for k, t in modbus.log[back:] if k == "scan"]
    # the last values before it were scanned before the window; the first after, after it
    assert max(before) < OUTAGE_S[0] and OUTAGE_S[0] - max(before) <= 10 + 1
    assert min(after) >= OUTAGE_S[1]
    # every answer in between is a timeout: nothing scanned in the window ever shows
    assert not [t for k, t in modbus.log if k == "scan" and OUTAGE_S[0] <= t < OUTAGE_S[1]]


def test_iec104_client_interrogates_and_closes_s1_with_select_before_operate(live_run):
    summary, _, iec = live_run
    assert iec.error is None, iec.error
    assert iec.command_sent is True  # positive ACTCONs of select and execute
    states = iec.closed_events
    assert states[0] == (False, "INTERROGATED_BY_STATION")  # S1 is the open tie switch
    assert (True, "SPONTANEOUS") in states  # reported by exception once closed
    # the execution's termination, once the field reported success (c104 also terminates
    # the select by itself, S/E = 1)
    term = [f for f in iec.frames if f.get("type") == c104.Type.C_DC_NA_1
            and f.get("cot") == c104.Cot.ACTIVATION_TERMINATION and f.get("select") is False]
    assert len(term) == 1
    assert term[0]["negative"] is False

    cmd = _cmd(summary.run_dir / "store")
    s1 = cmd[cmd.element == "switch:S1"]
    assert len(s1) == 1 and s1.iloc[0].status == "success"
    assert s1.iloc[0].source.startswith("iec104 OA") and s1.iloc[0].via == "RTU S1"
    grid_sw = read_measurement(summary.run_dir / "store", "switch").query("element == 'S1'")
    t = (grid_sw.time - pd.Timestamp("2026-06-21T11:00:00Z")).dt.total_seconds()
    closed = np.asarray(grid_sw.closed.astype(bool))
    assert not closed[t < s1.iloc[0].t_s - 1].any() and closed[-1]
