"""Loopback latency of an RTU's Modbus TCP endpoint (twin.protocols.modbus).

    python bench/modbus_latency.py [--n 200] [--measurands 20]

One RTU with ``--measurands`` float32 measurands (two input registers each), a switch
command and its status register, on 127.0.0.1. Prints, over ``--n`` requests each, the mean
and percentiles in µs of:

* a read of all input registers (function 4) with pymodbus's ModbusTcpClient, and with a
  bare socket (the server's share without the client library's);
* a switch command: from the client's write_coil call until ``on_command`` sees the
  CommandRequest (in the endpoint's thread), and the write's full round trip.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import struct
import time

from pymodbus.client import ModbusTcpClient

from twin.protocols.modbus import CommandRequest, ModbusEndpoint
from twin.protocols.pointmap import MappedPoint

RTU = "bench"


def point(name: str, quantity: str, direction: str, value_type: str, table: str,
          address: int) -> MappedPoint:
    return MappedPoint(rtu=RTU, name=name, element=name.rsplit("/", 1)[0], quantity=quantity,
                       direction=direction, value_type=value_type, unit="-",
                       modbus_table=table, modbus_address=address,
                       modbus_count=2 if value_type == "float" else 1, iec104_ca=1,
                       iec104_ioa=1, iec104_type="-", low=-1e6, high=1e6)


def summary(label: str, seconds: list[float]) -> str:
    us = sorted(1e6 * s for s in seconds)
    q = statistics.quantiles(us, n=100)
    return (f"{label:44s} {statistics.fmean(us):8.0f} {q[49]:8.0f} {q[89]:8.0f} "
            f"{q[98]:8.0f} {us[-1]:8.0f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--measurands", type=int, default=20)
    args = ap.parse_args()
    points = [point(f"bus:B{i}/vm_pu", "vm_pu", "telemetry", "float", "input_register", 2 * i)
              for i in range(args.measurands)]
    points += [point("switch:S1/switch", "switch", "command", "bool", "coil", 0),
               point("switch:S1/switch/status", "status", "status", "int",
                     "holding_register", 100)]
    seen: list[float] = []

    def on_command(_request: CommandRequest) -> None:
        seen.append(time.perf_counter())

    count = 2 * args.measurands
    with ModbusEndpoint(RTU, points, on_command=on_command) as ep:
        ep.publish({p.name: 1.0 + i / 1000 for i, p in enumerate(points[:args.measurands])})
        client = ModbusTcpClient("127.0.0.1", port=ep.port, timeout=2, retries=0)
        assert client.connect()
        reads = []
        for _ in range(args.n + 10):
            t0 = time.perf_counter()
            rr = client.read_input_registers(0, count=count)
            reads.append(time.perf_counter() - t0)
            assert not rr.isError() and len(rr.registers) == count
        reads = reads[10:]  # warm-up

        raw = []
        frame = struct.pack(">HHHBBHH", 1, 0, 6, 1, 4, 0, count)
        with socket.create_connection(("127.0.0.1", ep.port)) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            size = 9 + 2 * count
            for _ in range(args.n + 10):
                t0 = time.perf_counter()
                s.sendall(frame)
                got = b""
                while len(got) < size:
                    got += s.recv(size - len(got))
                raw.append(time.perf_counter() - t0)
        raw = raw[10:]

        to_request, round_trip = [], []
        for i in range(args.n + 10):
            seen.clear()
            t0 = time.perf_counter()
            assert not client.write_coil(0, i % 2 == 0).isError()
            t1 = time.perf_counter()
            to_request.append(seen[0] - t0)
            round_trip.append(t1 - t0)
        client.close()
    to_request, round_trip = to_request[10:], round_trip[10:]

    print(f"{args.n} requests each; {count} input registers read; µs")
    print(f"{'':44s} {'mean':>8s} {'p50':>8s} {'p90':>8s} {'p99':>8s} {'max':>8s}")
    print(summary("read all input registers (pymodbus client)", reads))
    print(summary("read all input registers (bare socket)", raw))
    print(summary("write coil -> CommandRequest seen", to_request))
    print(summary("write coil round trip (pymodbus client)", round_trip))


if __name__ == "__main__":
    main()
