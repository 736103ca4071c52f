"""Where the twin's time goes beyond the power flow, on the default day.

Times, in one run of the twin, every simulator's ``step`` and ``get_data`` and every
``pandapower.runpp`` call (recycled and full solves apart); what is left of the world's
wall time is mosaik's own scheduling. Then a bare ``runpp`` loop over the same states (as
``bench/overhead.py``) for the per-solve comparison.

    python bench/overhead_parts.py [SCENARIO] [--until 6h] [--set KEY=VALUE ...]

Prints seconds, ms per grid step and the share of the world's wall time. The timers cost
a few µs per call, so the total is a little above an untimed run.
"""

from __future__ import annotations

import argparse
import copy
import functools
import inspect
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandapower as pp
from overhead import bare_loop, injections  # noqa: E402  (same folder)

import simulators
from twin.build.prepare import prepare
from twin.grid.names import element_names
from twin.runner import run_scenario
from twin.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
SIM_MODULES = ("grid", "recorder", "field", "der", "storage", "timeseries", "dms", "scripted")


def _timed(spent: dict, key: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[key] += time.perf_counter() - t0
    return wrapper


def instrument(spent: dict, solves: list) -> None:
    """Wrap every simulator class's step/get_data and pandapower.runpp (this process)."""
    import importlib

    for name in SIM_MODULES:
        mod = importlib.import_module(f"{simulators.__name__}.{name}")
        for cls_name, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ != mod.__name__:
                continue
            for method in ("step", "get_data"):
                if method in cls.__dict__:
                    setattr(cls, method, _timed(spent, f"{name}.{cls_name}.{method}",
                                                cls.__dict__[method]))
    runpp = pp.runpp

    def timed_runpp(net, **kwargs):
        t0 = time.perf_counter()
        try:
            return runpp(net, **kwargs)
        finally:
            solves.append((time.perf_counter() - t0, "recycle" in kwargs))
    pp.runpp = timed_runpp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", nargs="?", default=str(ROOT / "scenarios" / "cigre_mv_day.yaml"))
    ap.add_argument("--until", default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()

    scenario = load_scenario(args.scenario, args.overrides)
    net = prepare(scenario, Path(args.scenario)).net
    pp.runpp(copy.deepcopy(net), numba=True)  # numba's compile, paid before either side
    spent: dict[str, float] = defaultdict(float)
    solves: list[tuple[float, bool]] = []
    instrument(spent, solves)
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_scenario(args.scenario, out=Path(tmp) / "run", until=args.until,
                               overrides=args.overrides)
        world_s = summary.outcome.wall_time_s
        store = summary.run_dir / "store"
        loads = injections(store, "load", element_names(net, "load"))
        sgens = injections(store, "sgen", element_names(net, "sgen"))
    twin_solves = list(solves)
    bare_s, n = bare_loop(net, loads, sgens)

    dur = np.array([d for d, _ in twin_solves])
    recycled = np.array([r for _, r in twin_solves])
    runpp_s = float(dur.sum())
    sims_s = sum(spent.values())
    grid_key = "grid.GridSim.step"
    rows = [(f"runpp, {recycled.sum()} recycled (median {1e3 * np.median(dur[recycled]):.2f} ms)"
             f" + {(~recycled).sum()} full", runpp_s)]
    rows.append((f"{grid_key} beyond runpp", spent.pop(grid_key, 0.0) - runpp_s))
    rows += sorted(((k, v) for k, v in spent.items() if v > 0), key=lambda kv: -kv[1])
    rows.append(("mosaik (the rest of the world's wall time)", world_s - sims_s))
    print(f"scenario {scenario.name}: {n} grid steps, world {world_s:.2f} s, "
          f"bare runpp loop {bare_s:.2f} s ({1e3 * bare_s / n:.2f} ms/step), "
          f"ratio {world_s / bare_s:.2f}")
    print(f"{'part':62s} {'s':>7s} {'ms/step':>8s} {'share':>6s}")
    for name, s in rows:
        print(f"{name:62s} {s:7.2f} {1e3 * s / n:8.2f} {100 * s / world_s:5.1f}%")
    print(f"{'twin beyond the bare loop':62s} {world_s - bare_s:7.2f} "
          f"{1e3 * (world_s - bare_s) / n:8.2f} {100 * (world_s - bare_s) / world_s:5.1f}%")


if __name__ == "__main__":
    main()
