"""Whole twin vs a bare pandapower loop over the same load/generation states.

Runs the default day through the twin (file store), then replays the exact load and sgen
injections the twin recorded through a bare ``runpp`` loop on a fresh copy of the same net,
with the same recycle settings; bare runs before and after the twin, to see the noise.

    python bench/overhead.py [SCENARIO] [--until 6h] [--set dms.enabled=true ...]

Prints wall times and the ratio twin / bare (target ≤ 1.5 on the default day). With the
DMS enabled, the twin's time includes its cycles (load estimation, state estimation,
Volt/Var) and the per-cycle cost is printed too.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import pandapower as pp

from twin.build.prepare import prepare
from twin.grid.model import GridModel
from twin.grid.names import element_names
from twin.recording.files import read_measurement
from twin.runner import run_scenario
from twin.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def injections(store: Path, table: str, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """[n_steps × n_elements] P and Q the twin applied, in the net's index order."""
    df = read_measurement(store, table)
    p = df.pivot_table(index="time", columns="element", values="p_mw", aggfunc="last")
    q = df.pivot_table(index="time", columns="element", values="q_mvar", aggfunc="last")
    return p[names].to_numpy(), q[names].to_numpy()


def bare_loop(net: pp.pandapowerNet, loads: tuple, sgens: tuple) -> tuple[float, int]:
    model = GridModel(copy.deepcopy(net))
    n = loads[0].shape[0]
    t0 = time.perf_counter()
    for i in range(n):
        model.net.load["p_mw"] = loads[0][i]
        model.net.load["q_mvar"] = loads[1][i]
        model.net.sgen["p_mw"] = sgens[0][i]
        model.net.sgen["q_mvar"] = sgens[1][i]
        pp.runpp(model.net, numba=True, **({"recycle": {"bus_pq": True, "gen": True, "trafo": False}} if i else {}))
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", nargs="?", default=str(ROOT / "scenarios" / "cigre_mv_day.yaml"))
    ap.add_argument("--until", default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="scenario override, as for `twin run`")
    args = ap.parse_args()

    scenario = load_scenario(args.scenario, args.overrides)
    net = prepare(scenario, Path(args.scenario)).net  # the net as the twin builds it
    # numba compiles pandapower's kernels on the first power flow of a process (seconds);
    # pay that once here so neither side of the comparison carries it.
    t0 = time.perf_counter()
    pp.runpp(copy.deepcopy(net), numba=True)
    warmup_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = run_scenario(args.scenario, out=Path(tmp) / "run", until=args.until,
                               overrides=args.overrides)
        twin_total_s = time.perf_counter() - t0
        twin_run_s = summary.outcome.wall_time_s
        store = summary.run_dir / "store"
        loads = injections(store, "load", element_names(net, "load"))
        sgens = injections(store, "sgen", element_names(net, "sgen"))
    bare_before_s, n = bare_loop(net, loads, sgens)
    bare_after_s, _ = bare_loop(net, loads, sgens)
    bare_s = (bare_before_s + bare_after_s) / 2

    print(f"scenario            {scenario.name} ({n} power-flow states)"
          + (f", --set {' '.join(args.overrides)}" if args.overrides else ""))
    print(f"first runpp (JIT)   {warmup_s:7.2f} s, paid once per process, excluded below")
    print(f"bare runpp loop     {bare_before_s:7.2f} s before, {bare_after_s:7.2f} s after "
          f"({1000 * bare_s / n:.2f} ms/step)")
    print(f"twin world.run      {twin_run_s:7.2f} s ({1000 * twin_run_s / n:.2f} ms/step, "
          f"{summary.outcome.points_recorded:,} points recorded)")
    print(f"twin incl. prepare  {twin_total_s:7.2f} s")
    print(f"ratio twin/bare     {twin_run_s / bare_s:7.2f}  (target ≤ 1.5)")
    print(f"ratio incl. prepare {twin_total_s / bare_s:7.2f}")
    cycles = summary.outcome.kpis.get("dms_cycles", 0)
    if cycles:
        print(f"DMS cycles          {cycles} (the twin's time beyond the bare loop: "
              f"{1000 * (twin_run_s - bare_s) / cycles:.0f} ms per cycle at most)")


if __name__ == "__main__":
    main()
