"""Recording throughput: today's point path against the column path, back to back.

    python bench/recording.py --influx-url http://127.0.0.1:8086 [--buses 1000] [--steps 60]
    python bench/recording.py --scenario-only          # only the recorder cost per step

1. Points per second into a real InfluxDB 1.x (``--influx-url``, or ``INFLUX_URL``; start a
   throw-away server with ``scripts/influxd.sh start DIR``), for grid tables shaped like the
   grid simulator's snapshot (every table and field of :func:`twin.grid.model.snapshot_attrs`,
   ``--buses`` buses and as many lines, loads, …) over ``--steps`` steps, each path into a
   database of its own: the point path (``table_points`` + ``write``) and the column path
   (``column_batch`` + ``write_columns``). Formatting alone (no HTTP) is printed too, and the
   point count the server holds afterwards is checked against what was sent.
2. The recorder's cost per grid step on the default scenario (``RecorderSim.step``: store,
   KPIs, events; and the grid's ``get_data``, which makes the snapshot), from one run of the
   twin.

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

from twin.grid.model import snapshot_attrs
from twin.recording.lineprotocol import to_lines
from twin.recording.schema import GRID_TABLES, table_points

ROOT = Path(__file__).resolve().parents[1]
T0_NS = 1_704_067_200_000_000_000
#: Elements per table, relative to the buses (roughly a distribution grid's shape).
SHAPE = {"bus": 1.0, "line": 1.0, "trafo": 0.02, "load": 0.6, "sgen": 0.3, "storage": 0.01,
         "switch": 0.1, "ext_grid": 0.001, "shunt": 0.005}


def tables(buses: int, steps: int, seed: int = 1) -> list[tuple[int, dict]]:
    """Per step: its time and {table: (names, {field: numpy array})}; a few NaN."""
    rng = np.random.default_rng(seed)
    names = {t: [f"{t} {k}" for k in range(max(1, int(buses * SHAPE[t])))] for t in GRID_TABLES}
    out = []
    for step in range(steps):
        snap = {}
        for table in GRID_TABLES:
            n = len(names[table])
            columns = {}
            for attr in sorted(snapshot_attrs(table)):
                if attr in ("closed", "in_service", "tripped", "fault_passed", "supplied"):
                    columns[attr] = rng.random(n) > 0.05
                elif attr in ("tap_pos", "step"):  # whole positions, as floats
                    columns[attr] = rng.integers(-5, 5, n).astype(float)
                else:
                    values = rng.normal(1.0, 0.3, n)
                    values[rng.random(n) < 0.01] = np.nan
                    columns[attr] = values
            snap[table] = (names[table], columns)
        out.append((T0_NS + step * 60 * 10**9, snap))
    return out


def field_counts(url: str, database: str) -> dict[tuple[str, str], int]:
    """(table, field) -> values the server holds."""
    counts = {}
    for table in GRID_TABLES:
        body = requests.post(f"{url}/query", timeout=60, params={
            "db": database, "q": f'SELECT count(*) FROM "{table}"'}).json()
        for result in body.get("results", []):
            for series in result.get("series", []):
                for column, value in zip(series["columns"][1:], series["values"][0][1:]):
                    counts[(table, column.removeprefix("count_"))] = value
    return counts


def expected_counts(data: list) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for _t, snap in data:
        for table, (_names, columns) in snap.items():
            for attr, values in columns.items():
                finite = np.isfinite(values) if values.dtype.kind == "f" else np.ones(len(values))
                counts[(table, attr)] += int(np.count_nonzero(finite))
    return {k: v for k, v in counts.items() if v}


def influx_throughput(url: str, buses: int, steps: int, batch_size: int) -> None:
    from twin.recording.columns import column_batch
    from twin.recording.files import FileStore
    from twin.recording.influx_v1 import InfluxV1Store
    from twin.recording.lineprotocol import batch_lines
    from twin.recording.resilient import ResilientWriter

    data = tables(buses, steps)
    print(f"{steps} steps of {buses} buses' tables ({sum(len(v[0]) for v in data[0][1].values())}"
          f" elements a step), InfluxDB at {url}, {batch_size} points per request")

    def points_path(store):
        n = 0
        for t_ns, snap in data:
            points = []
            for table, (names, columns) in snap.items():
                lists = {k: v.tolist() for k, v in columns.items()}  # as today's snapshot
                points.extend(p for p in table_points(table, names, lists, "bench", t_ns)
                              if p.fields)
            if store is None:
                to_lines(points)
            else:
                store.write(points)
            n += len(points)
        return n

    def columns_path(store):
        n = 0
        for t_ns, snap in data:
            batches = [column_batch(table, names, columns, "bench", t_ns)
                       for table, (names, columns) in snap.items()]
            if store is None:
                for batch in batches:
                    batch_lines(batch)
            else:
                store.write_columns(batches)
            n += sum(b.n_rows for b in batches)
        return n

    expected = expected_counts(data)
    # the server's own ceiling: bodies formatted beforehand, only the requests timed
    lines = [line for t_ns, snap in data for table, (names, columns) in snap.items()
             for line in batch_lines(column_batch(table, names, columns, "bench", t_ns))]
    bodies = ["\n".join(lines[k:k + batch_size]).encode() for k in range(0, len(lines),
                                                                        batch_size)]
    for workers in (1, 2):
        database = f"bench_{uuid.uuid4().hex[:8]}"
        requests.post(f"{url}/query", params={"q": f'CREATE DATABASE "{database}"'}, timeout=60)
        sessions = [requests.Session() for _ in range(workers)]

        def post(k: int) -> None:
            response = sessions[k % workers].post(f"{url}/write", data=bodies[k], timeout=120,
                                                  params={"db": database, "precision": "ns"})
            response.raise_for_status()

        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(post, range(len(bodies))))
        post_s = time.perf_counter() - t0
        requests.post(f"{url}/query", params={"q": f'DROP DATABASE "{database}"'}, timeout=60)
        print(f"  server only, {workers} request(s) in flight: {len(lines) / post_s:,.0f} points/s")
    for workers in (1, 2):
        for label, path in (("points ", points_path), ("columns", columns_path)):
            t0 = time.perf_counter()
            n = path(None)
            format_s = time.perf_counter() - t0
            database = f"bench_{uuid.uuid4().hex[:8]}"
            # as a run writes: the resilient writer's background thread(s), one request each
            with tempfile.TemporaryDirectory() as spill:
                writer = ResilientWriter(
                    InfluxV1Store(url, database, batch_size=batch_size, timeout_s=120),
                    lambda: FileStore(spill), batch_size=batch_size, workers=workers)
                t0 = time.perf_counter()
                path(writer)
                report = writer.close()
                write_s = time.perf_counter() - t0
            held = field_counts(url, database)
            requests.post(f"{url}/query", params={"q": f'DROP DATABASE "{database}"'}, timeout=60)
            check = "all values held" if held == expected and not report.spilled else \
                f"MISMATCH (spilled {report.points_spilled})"
            print(f"  {label} {workers} request(s) in flight: {n:,} points; format only "
                  f"{n / format_s:,.0f} points/s; into InfluxDB {n / write_s:,.0f} points/s "
                  f"({write_s:.2f} s); {check}")


def recorder_cost(scenario: Path, until: str | None, overrides: list[str]) -> None:
    """Time RecorderSim.step and GridSim.get_data in one run of the scenario."""
    import simulators.grid
    import simulators.recorder
    from twin.runner import run_scenario

    spent: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)

    def timed(key, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - t0
                calls[key] += 1
        return wrapper

    recorder = simulators.recorder.RecorderSim
    grid = simulators.grid.GridSim
    recorder.step = timed("recorder step", recorder.step)
    grid.get_data = timed("grid get_data", grid.get_data)
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_scenario(str(scenario), out=Path(tmp) / "run", until=until,
                               overrides=overrides)
    steps = summary.outcome.grid_solves
    print(f"{scenario.stem} ({until or 'whole run'}{', ' if overrides else ''}"
          f"{' '.join(overrides)}): {summary.outcome.points_recorded:,} points, "
          f"{steps} grid steps, "
          f"{calls['recorder step']} recorder steps, world {summary.outcome.wall_time_s:.2f} s")
    for key in ("recorder step", "grid get_data"):
        print(f"  {key:14s} {spent[key]:6.3f} s  {1e3 * spent[key] / steps:6.3f} ms/step")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--influx-url", default=os.environ.get("INFLUX_URL"))
    ap.add_argument("--buses", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "cigre_mv_day.yaml"),
                    help="for the recorder cost (default: the default day)")
    ap.add_argument("--until", default=None, help="of the scenario, e.g. '6h'")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="override a key of the default scenario")
    ap.add_argument("--scenario-only", action="store_true")
    ap.add_argument("--influx-only", action="store_true")
    args = ap.parse_args()
    if not args.scenario_only:
        if not args.influx_url:
            raise SystemExit("--influx-url (or INFLUX_URL) is needed: scripts/influxd.sh start DIR")
        influx_throughput(args.influx_url.rstrip("/"), args.buses, args.steps, args.batch_size)
    if not args.influx_only:
        recorder_cost(Path(args.scenario), args.until, args.overrides)


if __name__ == "__main__":
    main()
