"""Loopback latency of an RTU's IEC 104 endpoint (twin.protocols.iec104), with c104's Client.

    python bench/iec104_latency.py [--n 200] [--measurands 20] [--busy]

One RTU with ``--measurands`` short-float measurands, a status point, a switch with
select-before-operate and a tap set-point, on 127.0.0.1. Prints, over ``--n`` rounds each,
the mean and percentiles in µs of:

* publish of a status change → the client's ``on_receive`` for it (cause SPONTANEOUS);
* a general interrogation round trip (``Connection.interrogation``, which returns on the
  ACTTERM, after every point);
* a tap set-point (direct execute): from the client's ``transmit`` until ``on_command``
  sees the CommandRequest, and ``transmit``'s round trip (to the ACTCON);
* a switch command with select-before-operate: ``transmit`` → CommandRequest;
* ``command_done(id, "success")`` → the ACTTERM in the client's raw-frame callback.

Each figure is taken twice: through the endpoint's guard (what clients use) and straight
to its c104 server (the guard's loopback port, private), so the guard's share shows.
``--busy`` keeps a pure-Python thread spinning meanwhile, as the simulation does in a run:
every c104 callback and the guard need the GIL (Python's switch interval is 5 ms).
Figures only, no timed assertions. Needs c104 (``pip install 'dms-twin[iec104]'``).
"""

# No ``from __future__ import annotations``: c104 checks callback annotations by their text.

import argparse
import queue
import statistics
import threading
import time

import c104

from twin.protocols.iec104 import CommandRequest, Iec104Endpoint
from twin.protocols.pointmap import MappedPoint

RTU = "bench"
CA = 1


def point(name: str, quantity: str, direction: str, value_type: str, ioa: int, kind: str,
          low: float = -1e6, high: float = 1e6, sbo: bool = False) -> MappedPoint:
    return MappedPoint(rtu=RTU, name=name, element=name.rsplit("/", 1)[0], quantity=quantity,
                       direction=direction, value_type=value_type, unit="-",
                       modbus_table="input_register", modbus_address=0, modbus_count=2,
                       iec104_ca=CA, iec104_ioa=ioa, iec104_type=kind, low=low, high=high,
                       select_before_operate=sbo)


def summary(label: str, seconds: list[float]) -> str:
    us = sorted(1e6 * s for s in seconds)
    q = statistics.quantiles(us, n=100)
    return (f"{label:52s} {statistics.fmean(us):8.0f} {q[49]:8.0f} {q[89]:8.0f} "
            f"{q[98]:8.0f} {us[-1]:8.0f}")


class Client:
    """c104's Client on one connection, timestamping what the bench waits for."""

    def __init__(self, port: int):
        self.client = c104.Client(tick_rate_ms=50, command_timeout_ms=5000)
        self.con = self.client.add_connection(ip="127.0.0.1", port=port, init=c104.Init.NONE)
        self.station = self.con.add_station(common_address=CA)
        self.status_seen: "queue.Queue[float]" = queue.Queue()
        self.actterm_seen: dict[int, "queue.Queue[float]"] = {46: queue.Queue(),
                                                              49: queue.Queue()}
        self.con.on_receive_raw(callable=self._on_raw)
        status = self.station.add_point(io_address=1, type=c104.Type.M_SP_NA_1)
        status.on_receive(callable=self._on_status)
        self.tap = self.station.add_point(io_address=3001, type=c104.Type.C_SE_NB_1)
        self.switch = self.station.add_point(io_address=2001, type=c104.Type.C_DC_NA_1,
                                             command_mode=c104.CommandMode.SELECT_AND_EXECUTE)
        self.client.start()
        end = time.monotonic() + 5
        while self.con.state != c104.ConnectionState.OPEN:
            if time.monotonic() > end:
                raise RuntimeError(f"no connection: {self.con.state}")
            if self.con.state == c104.ConnectionState.OPEN_MUTED:
                time.sleep(0.3)
                if self.con.state == c104.ConnectionState.OPEN_MUTED:
                    self.con.unmute()  # c104's Client now and then drops its own STARTDT
            time.sleep(0.01)

    def _on_status(self, point: c104.Point, previous_info: c104.Information,
                   message: c104.IncomingMessage) -> c104.ResponseState:
        if message.cot == c104.Cot.SPONTANEOUS:
            self.status_seen.put(time.perf_counter())
        return c104.ResponseState.SUCCESS

    def _on_raw(self, connection: c104.Connection, data: bytes) -> None:
        # I-frame, C_DC_NA_1 (46) or C_SE_NB_1 (49), cause ACTTERM (10), S/E 0 (the last
        # octet's top bit): the termination of an execution.
        if (len(data) > 15 and data[2] & 1 == 0 and data[6] in self.actterm_seen
                and data[8] & 0x3F == 10 and not data[-1] & 0x80):
            self.actterm_seen[data[6]].put(time.perf_counter())

    def stop(self) -> None:
        self.client.stop()


def measure(endpoint: Iec104Endpoint, port: int, requests: "queue.Queue[tuple]",
            n: int) -> dict[str, list[float]]:
    client = Client(port)
    out: dict[str, list[float]] = {k: [] for k in (
        "publish", "gi", "tap_request", "tap_round_trip", "sbo_request", "actterm",
        "sbo_failed")}
    try:
        for i in range(n):
            t0 = time.perf_counter()
            endpoint.publish({"switch:S1/closed": i % 2 == 0})
            out["publish"].append(client.status_seen.get(timeout=5) - t0)
        for _ in range(n):
            t0 = time.perf_counter()
            assert client.con.interrogation(common_address=CA)
            out["gi"].append(time.perf_counter() - t0)
        for i in range(n):
            client.tap.value = c104.Int16(i % 10)
            t0 = time.perf_counter()
            assert client.tap.transmit(cause=c104.Cot.ACTIVATION)
            out["tap_round_trip"].append(time.perf_counter() - t0)
            request, seen = requests.get(timeout=5)
            out["tap_request"].append(seen - t0)
            t1 = time.perf_counter()
            assert endpoint.command_done(request.id, "success")
            out["actterm"].append(client.actterm_seen[49].get(timeout=5) - t1)
        for i in range(n):
            client.switch.value = c104.Double.ON if i % 2 else c104.Double.OFF
            t0 = time.perf_counter()
            client.switch.transmit(cause=c104.Cot.ACTIVATION)
            try:
                request, seen = requests.get(timeout=1)
            except queue.Empty:
                # c104's Client matches answers by type and IOA only: now and then it
                # takes the previous command's late ACTTERM for this select's answer.
                out["sbo_failed"].append(0.0)
                continue
            out["sbo_request"].append(seen - t0)
            assert endpoint.command_done(request.id, "success")
            client.actterm_seen[46].get(timeout=5)
            time.sleep(0.02)
    finally:
        client.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--measurands", type=int, default=20)
    ap.add_argument("--busy", action="store_true")
    args = ap.parse_args()
    spinning = threading.Event()
    if args.busy:
        def spin() -> None:
            x = 0
            while not spinning.is_set():
                x = (x * 31 + 7) % 1_000_003
        spinner = threading.Thread(target=spin, daemon=True)
        spinner.start()
    points = [point(f"bus:B{i}/vm_pu", "vm_pu", "telemetry", "float", 1001 + i, "M_ME_NC_1")
              for i in range(args.measurands)]
    points += [point("switch:S1/closed", "closed", "telemetry", "bool", 1, "M_SP_NA_1"),
               point("switch:S1/switch", "switch", "command", "bool", 2001, "C_DC_NA_1",
                     sbo=True),
               point("trafo:T1/set_tap", "set_tap", "command", "int", 3001, "C_SE_NB_1",
                     -20, 20)]
    requests: "queue.Queue[tuple[CommandRequest, float]]" = queue.Queue()

    def on_command(request: CommandRequest) -> None:
        requests.put((request, time.perf_counter()))

    endpoint = Iec104Endpoint(RTU, points, on_command=on_command)
    endpoint.start()
    try:
        endpoint.publish({f"bus:B{i}/vm_pu": 1.0 + i / 1000 for i in range(args.measurands)})
        routes = {"guard": endpoint.port,
                  "c104 direct": endpoint._server.port}  # private: the bench's comparison
        results = {name: measure(endpoint, port, requests, args.n)
                   for name, port in routes.items()}
    finally:
        endpoint.stop()
        spinning.set()
    labels = {"publish": "publish -> on_receive (spontaneous)",
              "gi": f"general interrogation round trip ({args.measurands + 1} points)",
              "tap_request": "set-point transmit -> CommandRequest",
              "tap_round_trip": "set-point transmit round trip (ACTCON)",
              "sbo_request": "switch select+execute -> CommandRequest",
              "actterm": "command_done -> ACTTERM at the client"}
    print(f"{args.n} rounds each; µs{'; a Python thread spinning' if args.busy else ''}")
    for name, out in results.items():
        print(f"\n[{name}] {'':44s} {'mean':>8s} {'p50':>8s} {'p90':>8s} {'p99':>8s} "
              f"{'max':>8s}")
        for key, label in labels.items():
            print(summary(label, out[key]))
        if out["sbo_failed"]:
            print(f"(switch commands the c104 Client failed on its side: "
                  f"{len(out['sbo_failed'])})")


if __name__ == "__main__":
    main()
