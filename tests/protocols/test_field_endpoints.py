"""The RTUs' endpoints in a running twin, driven over loopback by the protocols' own
clients (pymodbus, c104). Twice, with the protocols swapped between two RTUs:

* the Substation RTU: read its telemetry, open switch_6 and raise the tap of Trafo 0-1 by
  one, see the outcomes and the grid change, a refused out-of-range tap, and its link's
  outage window taking it off the air;
* the S1 RTU: close the open tie switch S1 (IEC 104: select-before-operate after a general
  interrogation) and see it reported.

The run is live at 60 × real time, so the clients act while it runs; every assertion is on
the simulation's clock (the RTUs' ``scan_t_s`` point and the records), not the wall clock.
"""

# No ``from __future__ import annotations``: c104 checks a callback's signature by its text.

import math
import socket
import struct
import threading
import time
import traceback

import numpy as np
import pandas as pd
import pytest
from pymodbus.client import ModbusTcpClient

from twin.recording.files import read_measurement
from twin.runner import run_scenario

c104 = pytest.importorskip("c104")

SPEED = 60.0
T0 = pd.Timestamp("2026-06-21T11:00:00Z")
OUTAGE_S = (360.0, 480.0)  # the Substation RTU's link is down 6 – 8 min
# Substation's map (twin points scenarios/cigre_mv_day.yaml)
SUB = {"ca": 1, "tap_ir": 8, "scan_ir": 20, "tap_ioa": 1005, "scan_ioa": 1011,
       "sw6_di": 0, "sw6_ioa": 1, "sw6_coil": 0, "sw6_cmd_ioa": 2001,
       "tap_hr": 2, "tap_cmd_ioa": 3001}
S1 = {"ca": 3, "closed_di": 0, "closed_ioa": 1, "coil": 0, "cmd_ioa": 2001}
# Python's switch interval while the endpoints are open is 1 ms (twin.build.wiring); a
# read still waits for the run's thread now and then
DEADLINE_S = 20.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _f32(words) -> float:
    return struct.unpack(">f", struct.pack(">HH", *words))[0]


class _Iec:
    """c104's client on one RTU: points, an interrogation waited for to its termination,
    and the frames received (decoded by c104)."""

    def __init__(self, port: int, ca: int, monitor: dict, commands: dict):
        self.ca = ca
        self.client = c104.Client(tick_rate_ms=50, command_timeout_ms=3000)
        self.con = self.client.add_connection(ip="127.0.0.1", port=port, init=c104.Init.NONE)
        self.station = self.con.add_station(common_address=ca)
        self.points = {ioa: self.station.add_point(io_address=ioa, type=kind)
                       for ioa, kind in monitor.items()}
        for ioa, (kind, sbo) in commands.items():
            mode = c104.CommandMode.SELECT_AND_EXECUTE if sbo else c104.CommandMode.DIRECT
            self.points[ioa] = self.station.add_point(io_address=ioa, type=kind,
                                                      command_mode=mode)
        self.frames: list[dict] = []
        self.cond = threading.Condition()
        self.con.on_receive_raw(callable=self._on_raw)
        self.client.start()

    def _on_raw(self, connection: c104.Connection, data: bytes) -> None:
        frame = c104.explain_bytes_dict(apdu=data)
        with self.cond:
            self.frames.append(frame)
            self.cond.notify_all()

    def _n(self, **match) -> int:
        return sum(all(f.get(k) == v for k, v in match.items()) for f in self.frames)

    def wait_open(self, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while self.con.state != c104.ConnectionState.OPEN:
            if time.monotonic() > end:
                return False
            if self.con.state == c104.ConnectionState.OPEN_MUTED:
                self.con.unmute()  # c104's client now and then skips its STARTDT
            time.sleep(0.01)
        return True

    def interrogate(self, timeout_s: float = 1.0) -> bool:
        end = dict(type=c104.Type.C_IC_NA_1, cot=c104.Cot.ACTIVATION_TERMINATION)
        with self.cond:
            n = self._n(**end)
        if not self.con.interrogation(common_address=self.ca, cause=c104.Cot.ACTIVATION,
                                      qualifier=c104.Qoi.STATION, wait_for_response=False):
            return False
        with self.cond:
            return self.cond.wait_for(lambda: self._n(**end) > n, timeout_s)

    def command(self, ioa: int, value) -> bool:
        """Send; True once its execution's positive ACTTERM came (False: ACTCON negative)."""
        kind = self.points[ioa].type
        done = dict(type=kind, cot=c104.Cot.ACTIVATION_TERMINATION, select=False,
                    negative=False)
        with self.cond:
            n = self._n(**done)
        self.points[ioa].value = value
        if not self.points[ioa].transmit(cause=c104.Cot.ACTIVATION):
            return False
        with self.cond:
            return self.cond.wait_for(lambda: self._n(**done) > n, DEADLINE_S)

    def stop(self) -> None:
        self.client.stop()


class Substation(threading.Thread):
    """A front end on the Substation RTU (see the module notes), either protocol."""

    def __init__(self, protocol: str, port: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.protocol, self.port, self.stop = protocol, port, stop
        self.log: list[tuple[str, float]] = []  # ("scan", scan_t_s) or ("timeout", last)
        self.tap0: int | None = None
        self.outcome: dict[str, str] = {}
        self.sw6_open_seen_at: float | None = None
        self.tap_seen_at: float | None = None
        self.bad_tap_refused: bool | None = None
        self.error: str | None = None

    def run(self) -> None:
        try:
            (self._modbus if self.protocol == "modbus" else self._iec)()
        except BaseException as exc:  # reported by the test
            self.error = "".join(traceback.format_exception(exc))

    def _observe(self, image) -> None:
        if image is None:
            self.log.append(("timeout", self.log[-1][1] if self.log else 0.0))
            return
        scan, sw6_closed, tap = image
        self.log.append(("scan", scan))
        if self.sw6_open_seen_at is None and not sw6_closed:
            self.sw6_open_seen_at = scan
        if self.tap_seen_at is None and tap == self.tap0 + 1:
            self.tap_seen_at = scan

    # ------------------------------------------------------------------ Modbus
    def _modbus(self) -> None:
        c = ModbusTcpClient("127.0.0.1", port=self.port, timeout=0.5, retries=0)
        end = time.monotonic() + 30
        while not c.connect():
            assert time.monotonic() < end, "the Modbus endpoint never came up"
            time.sleep(0.05)

        def image():
            try:
                rr = c.read_input_registers(0, count=SUB["scan_ir"] + 2)
                di = c.read_discrete_inputs(SUB["sw6_di"], count=1)
                if rr.isError() or di.isError():
                    raise OSError(rr)
            except Exception:  # a timeout or a closed connection
                c.close()  # a fresh connection: no late answer taken for the next request
                c.connect()
                return None
            words = rr.registers
            scan = _f32(words[SUB["scan_ir"]:SUB["scan_ir"] + 2])
            tap = _f32(words[SUB["tap_ir"]:SUB["tap_ir"] + 2])
            if math.isnan(scan) or math.isnan(tap):  # nothing delivered yet, or stale
                return None
            return scan, di.bits[0], round(tap)

        def status(register: int) -> str:
            names = {2: "success", 3: "failed", 4: "timeout"}
            end = time.monotonic() + DEADLINE_S
            while time.monotonic() < end:
                value = c.read_holding_registers(register, count=1).registers[0]
                if value in names:
                    return names[value]
                time.sleep(0.005)
            return "no outcome"

        while (first := image()) is None or not first[0] >= 60:  # NaN before the 1st scan
            time.sleep(0.01)
        self.tap0 = first[2]
        assert not c.write_coil(SUB["sw6_coil"], False).isError()
        self.outcome["switch"] = status(100 + SUB["sw6_coil"])
        assert not c.write_register(SUB["tap_hr"], (self.tap0 + 1) & 0xFFFF).isError()
        self.outcome["tap"] = status(100 + SUB["tap_hr"])
        bad = c.write_register(SUB["tap_hr"], 99)  # outside -9 .. 9
        self.bad_tap_refused = bad.isError() and bad.exception_code == 3  # ILLEGAL DATA VALUE
        while not self.stop.is_set():
            self._observe(image())
            time.sleep(0.01)
        c.close()

    # ------------------------------------------------------------------ IEC 104
    def _iec(self) -> None:
        iec = _Iec(self.port, SUB["ca"],
                   {SUB["scan_ioa"]: c104.Type.M_ME_NC_1, SUB["tap_ioa"]: c104.Type.M_ME_NC_1,
                    SUB["sw6_ioa"]: c104.Type.M_SP_NA_1},
                   {SUB["sw6_cmd_ioa"]: (c104.Type.C_DC_NA_1, True),
                    SUB["tap_cmd_ioa"]: (c104.Type.C_SE_NB_1, False)})
        try:
            self._iec_session(iec)
        finally:
            iec.stop()  # a c104 client left running reconnects for the rest of the session

    def _iec_session(self, iec: _Iec) -> None:
        assert iec.wait_open(30), "the IEC 104 endpoint never came up"

        def image():
            if not iec.wait_open(0.3) or not iec.interrogate():
                return None
            p = iec.points
            scan = p[SUB["scan_ioa"]]
            if c104.Quality.Invalid in scan.quality or c104.Quality.NonTopical in scan.quality:
                return None
            return scan.value, p[SUB["sw6_ioa"]].value, round(p[SUB["tap_ioa"]].value)

        while (first := image()) is None or not first[0] >= 60:
            time.sleep(0.01)
        self.tap0 = first[2]
        ok = iec.command(SUB["sw6_cmd_ioa"], c104.Double.OFF)
        self.outcome["switch"] = "success" if ok else "refused"
        ok = iec.command(SUB["tap_cmd_ioa"], c104.Int16(self.tap0 + 1))
        self.outcome["tap"] = "success" if ok else "refused"
        self.bad_tap_refused = not iec.command(SUB["tap_cmd_ioa"], c104.Int16(99))
        while not self.stop.is_set():
            self._observe(image())
            time.sleep(0.01)


class TieSwitch(threading.Thread):
    """A front end on the S1 RTU: reads S1 open, closes it, sees it closed."""

    def __init__(self, protocol: str, port: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.protocol, self.port, self.stop = protocol, port, stop
        self.states: list[tuple[bool, str]] = []  # (closed, how it was learnt)
        self.outcome: str | None = None
        self.error: str | None = None

    def run(self) -> None:
        try:
            (self._modbus if self.protocol == "modbus" else self._iec)()
        except BaseException as exc:
            self.error = "".join(traceback.format_exception(exc))

    def _modbus(self) -> None:
        c = ModbusTcpClient("127.0.0.1", port=self.port, timeout=1, retries=0)
        end = time.monotonic() + 30
        while not c.connect():
            assert time.monotonic() < end, "the Modbus endpoint never came up"
            time.sleep(0.05)
        self.states.append((c.read_discrete_inputs(S1["closed_di"], count=1).bits[0], "read"))
        assert not c.write_coil(S1["coil"], True).isError()
        while (status := c.read_holding_registers(100 + S1["coil"], count=1).registers[0]) \
                in (0, 1):
            time.sleep(0.005)
        self.outcome = {2: "success", 3: "failed", 4: "timeout"}[status]
        while not self.stop.is_set() and not self.states[-1][0]:
            self.states.append((c.read_discrete_inputs(S1["closed_di"], count=1).bits[0],
                                "read"))
            time.sleep(0.01)
        c.close()

    def _iec(self) -> None:
        iec = _Iec(self.port, S1["ca"], {S1["closed_ioa"]: c104.Type.M_SP_NA_1},
                   {S1["cmd_ioa"]: (c104.Type.C_DC_NA_1, True)})
        try:
            self._iec_session(iec)
        finally:
            iec.stop()

    def _iec_session(self, iec: _Iec) -> None:
        assert iec.wait_open(30), "the IEC 104 endpoint never came up"
        end = time.monotonic() + 30
        while not iec.interrogate():
            assert time.monotonic() < end, "no answer to the general interrogation"
        self.states.append((bool(iec.points[S1["closed_ioa"]].value), "INTERROGATED"))
        self.outcome = "success" if iec.command(S1["cmd_ioa"], c104.Double.ON) else "refused"
        with iec.cond:  # reported by exception once closed
            spont = dict(type=c104.Type.M_SP_NA_1, cot=c104.Cot.SPONTANEOUS)
            if iec.cond.wait_for(lambda: iec._n(**spont) > 0, DEADLINE_S):
                self.states.append((bool(iec.points[S1["closed_ioa"]].value), "SPONTANEOUS"))
        self.stop.wait()


@pytest.fixture(scope="module", params=[("modbus", "iec104"), ("iec104", "modbus")],
                ids=["substation-modbus", "substation-iec104"])
def live_run(request, tmp_path_factory):
    import yaml

    from tests.conftest import DEFAULT_SCENARIO

    sub_protocol, s1_protocol = request.param
    data = yaml.safe_load(DEFAULT_SCENARIO.read_text())
    sub_port, s1_port = _free_port(), _free_port()
    data.update(name="endpoints", start="2026-06-21T11:00:00Z", duration="10min",
                dms={"enabled": False})
    rtus = {r["name"]: r for r in data["rtus"]}
    rtus["RTU Substation"]["endpoint"] = {"protocol": sub_protocol, "port": sub_port}
    rtus["RTU Substation"]["link"] = {"preset": "fibre", "outages": [
        {"after": f"{OUTAGE_S[0]:g}s", "duration": f"{OUTAGE_S[1] - OUTAGE_S[0]:g}s"}]}
    rtus["RTU S1"]["endpoint"] = {"protocol": s1_protocol, "port": s1_port}
    tmp = tmp_path_factory.mktemp("endpoints")
    path = tmp / "endpoints.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    stop = threading.Event()
    sub, tie = Substation(sub_protocol, sub_port, stop), TieSwitch(s1_protocol, s1_port, stop)
    sub.start()
    tie.start()
    try:
        summary = run_scenario(path, out=tmp / "run", speed=SPEED)
    finally:
        stop.set()
        sub.join(10)
        tie.join(10)
    return summary, sub, tie


def _seconds(times: pd.Series) -> np.ndarray:
    return (times - T0).dt.total_seconds().to_numpy()


def _cmd(store) -> pd.DataFrame:
    cmd = read_measurement(store, "command")
    cmd["t_s"] = _seconds(cmd.time)
    return cmd


def _source(protocol: str) -> str:
    return "modbus 127.0.0.1:" if protocol == "modbus" else "iec104 OA"


def test_client_reads_telemetry_and_commands_the_grid(live_run):
    summary, sub, _ = live_run
    assert sub.error is None, sub.error
    assert sub.outcome == {"switch": "success", "tap": "success"}
    assert sub.bad_tap_refused  # Modbus exception 3 / negative ACTCON; the run went on
    store = summary.run_dir / "store"
    cmd = _cmd(store)
    ours = cmd[cmd.source.str.startswith(_source(sub.protocol))
               & (cmd.via == "RTU Substation")]
    assert sorted(ours.action) == ["open", "set_tap"]
    assert (ours.status == "success").all()
    assert 0.004 < ours.applied_delay_s.max() < 0.05  # the fibre link's downlink latency
    sw = ours[ours.action == "open"].iloc[0]
    tap = ours[ours.action == "set_tap"].iloc[0]
    assert sw.element == "switch:switch_6" and tap.value == sub.tap0 + 1

    # the grid: switch_6 open and the tap one up from the command on, to the end
    grid_sw = read_measurement(store, "switch").query("element == 'switch_6'")
    t = _seconds(grid_sw.time)
    assert grid_sw[t < sw.t_s - 1].closed.astype(bool).all()
    assert not grid_sw[t > sw.t_s + 60].closed.astype(bool).any()
    trafo = read_measurement(store, "trafo").query("element == 'Trafo 0-1'")
    assert (trafo[_seconds(trafo.time) > tap.t_s + 60].tap_pos == sub.tap0 + 1).all()

    # and the client saw both in the RTU's telemetry, in values scanned after the commands:
    # the switch reported by exception (the next scan at most), the tap position with the
    # next regular scan (every 10 s)
    applied = {c.action: c.t_s - c.result_delay_s + c.applied_delay_s for c in (sw, tap)}
    tick = 0.01
    assert applied["open"] - tick <= sub.sw6_open_seen_at <= max(sw.t_s + 10, sub.log[0][1])
    assert applied["set_tap"] - tick <= sub.tap_seen_at <= max(tap.t_s + 10, sub.log[0][1])


def test_outage_window_takes_the_rtu_off_the_air(live_run):
    _, sub, _ = live_run
    kinds = [k for k, _ in sub.log]
    assert "timeout" in kinds, "the RTU answered all through its outage"
    first = kinds.index("timeout")
    back = kinds.index("scan", first)  # answers again (timeouts at the very end: run over)
    before = [t for k, t in sub.log[:first] if k == "scan"]
    after = [t for k, t in sub.log[back:] if k == "scan"]
    # the last values before it were scanned before the window (scans every 10 s); the
    # first after it, after it
    assert max(before) < OUTAGE_S[0] and OUTAGE_S[0] - max(before) <= 10 + 1
    assert min(after) >= OUTAGE_S[1]
    # nothing scanned in the window ever shows
    assert not [t for k, t in sub.log if k == "scan" and OUTAGE_S[0] <= t < OUTAGE_S[1]]


def test_client_closes_the_tie_switch(live_run):
    summary, _, tie = live_run
    assert tie.error is None, tie.error
    assert tie.outcome == "success"
    # open first (the interrogation's answer or a read), then closed (IEC 104: reported
    # by exception)
    assert tie.states[0][0] is False and tie.states[-1][0] is True
    if tie.protocol == "iec104":
        assert [how for _, how in tie.states] == ["INTERROGATED", "SPONTANEOUS"]

    cmd = _cmd(summary.run_dir / "store")
    s1 = cmd[cmd.element == "switch:S1"]
    assert len(s1) == 1 and s1.iloc[0].status == "success" and s1.iloc[0].action == "close"
    assert s1.iloc[0].source.startswith(_source(tie.protocol)) and s1.iloc[0].via == "RTU S1"
    grid_sw = read_measurement(summary.run_dir / "store", "switch").query("element == 'S1'")
    closed = np.asarray(grid_sw.closed.astype(bool))
    assert not closed[_seconds(grid_sw.time) < s1.iloc[0].t_s - 1].any() and closed[-1]
