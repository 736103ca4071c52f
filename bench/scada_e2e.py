"""End-to-end latency of the RTUs' endpoints in a running twin, as a SCADA front end sees it.

    python bench/scada_e2e.py [--speed 4] [--until 2min] [--commands 10]

Runs ``scenarios/cigre_mv_day.yaml`` live at ``--speed`` × real time with the Substation RTU
on Modbus TCP and the Bus 6 RTU on IEC 104 (DMS off, so only the bench commands), and,
while it runs, from client threads (pymodbus, c104):

* reads: the Substation's whole image (input registers and discrete inputs, one request
  each) and an IEC 104 station interrogation to its termination;
* commands: a tap change on Trafo 0-1 (Modbus write, then the status register polled
  until success) and a capacitor step on Cap 6 (IEC 104 set-point, from transmit until the
  ACTTERM), ``--commands`` of each, alternating up and down.

The same reads are then timed against the same endpoints with no simulation running (the
reference, same process). Prints mean and percentiles in ms, wall clock. A command's time
includes the wait for the field's next poll (about 0.1 s of wall time in live mode), the
simulated link's latency at the run's pace (fibre: ~6 ms × 1/speed) and the acknowledgement.
"""

# No ``from __future__ import annotations``: c104 checks a callback's signature by its text.

import argparse
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

import c104
from pymodbus.client import ModbusTcpClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twin.build.endpoints import start_gateway  # noqa: E402
from twin.build.prepare import prepare  # noqa: E402
from twin.protocols.pointmap import point_map  # noqa: E402
from twin.runner import run_scenario  # noqa: E402
from twin.scenario import load_scenario  # noqa: E402

SCENARIO = ROOT / "scenarios" / "cigre_mv_day.yaml"
CAP6_CA, CAP6_IOA = 2, 3001  # RTU Bus 6: shunt:Cap 6/set_step (twin points)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ms(label: str, seconds: list[float]) -> str:
    if len(seconds) < 2:
        return f"{label:48s} (n={len(seconds)})"
    x = sorted(1e3 * s for s in seconds)
    q = statistics.quantiles(x, n=20)
    return (f"{label:48s} n={len(x):4d} mean {statistics.fmean(x):7.2f}  p50 {q[9]:7.2f}  "
            f"p95 {q[18]:7.2f}  max {x[-1]:7.2f}")


class ModbusSide:
    def __init__(self, port: int):
        self.c = ModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
        end = time.monotonic() + 60
        while not self.c.connect():
            if time.monotonic() > end:
                raise RuntimeError("Modbus endpoint not up")
            time.sleep(0.05)

    def read(self) -> float:
        t0 = time.perf_counter()
        rr = self.c.read_input_registers(0, count=22)
        di = self.c.read_discrete_inputs(0, count=2)
        assert not rr.isError() and not di.isError()
        return time.perf_counter() - t0

    def scan_t_s(self) -> float:
        return struct.unpack(">f", struct.pack(
            ">HH", *self.c.read_input_registers(20, count=2).registers))[0]

    def tap(self, value: int) -> float:
        t0 = time.perf_counter()
        assert not self.c.write_register(2, value & 0xFFFF).isError()
        while self.c.read_holding_registers(102, count=1).registers[0] != 2:
            time.sleep(0.0005)
        return time.perf_counter() - t0


class IecSide:
    def __init__(self, port: int):
        self.client = c104.Client(tick_rate_ms=50, command_timeout_ms=3000)
        self.con = self.client.add_connection(ip="127.0.0.1", port=port, init=c104.Init.NONE)
        self.station = self.con.add_station(common_address=CAP6_CA)
        self.cap = self.station.add_point(io_address=CAP6_IOA, type=c104.Type.C_SE_NB_1)
        self.cond = threading.Condition()
        self.gi_done = 0
        self.terms = 0
        self.con.on_receive_raw(callable=self._on_raw)
        self.client.start()
        end = time.monotonic() + 60
        while self.con.state != c104.ConnectionState.OPEN:
            if time.monotonic() > end:
                raise RuntimeError(f"IEC 104 connection {self.con.state}")
            if self.con.state == c104.ConnectionState.OPEN_MUTED:
                self.con.unmute()
            time.sleep(0.01)

    def _on_raw(self, connection: c104.Connection, data: bytes) -> None:
        if len(data) > 8 and data[0] == 0x68 and not data[2] & 1 and data[8] & 0x3F == 10:
            with self.cond:
                if data[6] == 100:
                    self.gi_done += 1
                elif data[6] == 49:
                    self.terms += 1
                self.cond.notify_all()

    def interrogate(self) -> float:
        with self.cond:
            n = self.gi_done
        t0 = time.perf_counter()
        assert self.con.interrogation(common_address=CAP6_CA, cause=c104.Cot.ACTIVATION,
                                      qualifier=c104.Qoi.STATION)
        with self.cond:
            assert self.cond.wait_for(lambda: self.gi_done > n, 5)
        return time.perf_counter() - t0

    def step(self, value: int) -> float:
        with self.cond:
            n = self.terms
        t0 = time.perf_counter()
        self.cap.value = c104.Int16(value)
        assert self.cap.transmit(cause=c104.Cot.ACTIVATION)
        with self.cond:
            assert self.cond.wait_for(lambda: self.terms > n, 10), "no ACTTERM"
        return time.perf_counter() - t0

    def stop(self) -> None:
        self.client.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--speed", type=float, default=4.0)
    ap.add_argument("--until", default="2min")
    ap.add_argument("--commands", type=int, default=10)
    ap.add_argument("--reads", type=int, default=200)
    ap.add_argument("--switch-interval-ms", type=float, default=None,
                    help="sys.setswitchinterval for the whole bench (the run itself sets "
                    "twin.build.wiring.ENDPOINT_SWITCH_INTERVAL_S unless given)")
    args = ap.parse_args()
    if args.switch_interval_ms:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    mb_port, iec_port = free_port(), free_port()
    overrides = ["dms.enabled=false",
                 f"rtus[0].endpoint={{protocol: modbus, port: {mb_port}}}",
                 f"rtus[1].endpoint={{protocol: iec104, port: {iec_port}}}"]
    res: dict[str, list[float]] = {k: [] for k in (
        "mb_read", "iec_gi", "mb_tap", "iec_step", "mb_read_idle", "iec_gi_idle")}
    done = threading.Event()
    errors: list[BaseException] = []
    sides: dict[str, object] = {}

    def clients() -> None:
        try:
            mb, iec = ModbusSide(mb_port), IecSide(iec_port)
            sides.update(mb=mb, iec=iec)
            while mb.scan_t_s() != mb.scan_t_s() or mb.scan_t_s() < 10:  # NaN: no scan yet
                time.sleep(0.01)
            for _ in range(args.reads):
                res["mb_read"].append(mb.read())
                res["iec_gi"].append(iec.interrogate())
            for k in range(args.commands):
                res["mb_tap"].append(mb.tap(1 if k % 2 == 0 else 0))
                res["iec_step"].append(iec.step(1 if k % 2 == 0 else 2))
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    # the reference: the same endpoints and clients, no simulation running
    sc = load_scenario(SCENARIO, overrides)
    prep = prepare(sc, SCENARIO, check_only=True)
    gateway = start_gateway(sc, prep.field, prep.endpoints, point_map(prep.field, prep.net))
    try:
        mb, iec = ModbusSide(mb_port), IecSide(iec_port)
        for _ in range(args.reads):
            res["mb_read_idle"].append(mb.read())
            res["iec_gi_idle"].append(iec.interrogate())
        mb.c.close()
        iec.stop()
    finally:
        gateway.stop()

    thread = threading.Thread(target=clients, daemon=True)
    thread.start()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = run_scenario(SCENARIO, out=Path(tmp) / "run", until=args.until,
                               speed=args.speed, overrides=overrides)
        wall = time.perf_counter() - t0
    done.wait(5)
    if errors:
        raise errors[0]
    if len(res["mb_tap"]) < args.commands:
        print(f"warning: the run ({wall:.0f} s) ended before all commands; use a longer "
              "--until", file=sys.stderr)
    from twin.build.wiring import ENDPOINT_SWITCH_INTERVAL_S
    during = (args.switch_interval_ms / 1000 if args.switch_interval_ms
              else ENDPOINT_SWITCH_INTERVAL_S)
    print(f"switch interval during the run {during * 1000:g} ms; "
          f"cigre_mv_day live at {args.speed:g}x for {args.until} ({wall:.1f} s wall), "
          f"lag p99 {summary.run_info.get('live', {}).get('lag_p99_s', float('nan'))} s")
    print(ms("Modbus: read image (IR 0-21 + DI 0-1), no sim", res["mb_read_idle"]))
    print(ms("Modbus: read image (IR 0-21 + DI 0-1), sim running", res["mb_read"]))
    print(ms("IEC 104: station interrogation, no sim", res["iec_gi_idle"]))
    print(ms("IEC 104: station interrogation, sim running", res["iec_gi"]))
    print(ms("Modbus: tap command -> status success", res["mb_tap"]))
    print(ms("IEC 104: set-point -> ACTTERM", res["iec_step"]))
    sides["iec"].stop()  # type: ignore[union-attr]


if __name__ == "__main__":
    main()
