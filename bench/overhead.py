"""Whole twin vs a bare pandapower loop over the same load/generation states.

Runs the default day through the twin (file store), then replays the exact load and sgen
injections the twin recorded through a bare ``runpp`` loop on a fresh copy of the same net,
with the same recycle settings; bare runs before and after the twin, to see the noise.

    python bench/overhead.py [SCENARIO] [--until 6h] [--set KEY=VALUE ...]

Runs the twin twice — with the DMS as the scenario has it and with ``dms.enabled=false`` —
and prints wall times, the ratio twin / bare for each (target ≤ 1.0 on the default day with
the DMS every minute) and the DMS's cost per cycle (the difference of the two runs).
"""

from __future__ import annotations

import argparse
import copy
import json
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


def twin_run(scenario_path: str, until: str | None, overrides: list[str], tmp: Path,
             label: str):
    """One whole twin run (file store); its summary and wall times."""
    t0 = time.perf_counter()
    summary = run_scenario(scenario_path, out=tmp / label, until=until, overrides=overrides)
    return summary, summary.outcome.wall_time_s, time.perf_counter() - t0


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
    runs, solvers = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        # the twin with the DMS as the scenario has it, and without it (same states)
        for label, extra in (("as scenario", []), ("DMS off", ["dms.enabled=false"])):
            runs[label] = twin_run(args.scenario, args.until, [*args.overrides, *extra],
                                   Path(tmp), label.replace(" ", "_"))
            info = json.loads((runs[label][0].run_dir / "run.json").read_text())
            solvers[label] = (info.get("grid_solver") or {}).get("solver", "?")
        store = runs["as scenario"][0].run_dir / "store"
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
    for label, (summary, run_s, total_s) in runs.items():
        solver = solvers[label]
        cycles = summary.outcome.kpis.get("dms_cycles", 0) or 0
        print(f"twin, {label:<13} {run_s:7.2f} s world.run ({1000 * run_s / n:.2f} ms/step, "
              f"{summary.outcome.points_recorded:,} points, {cycles} DMS cycles, "
              f"solver {solver}); {total_s:.2f} s incl. preparation")
        print(f"  ratio twin/bare   {run_s / bare_s:7.2f}  (target ≤ 1.0 with the DMS every "
              f"minute); incl. preparation {total_s / bare_s:.2f}")
    (on, on_s, _), (_off, off_s, _) = runs["as scenario"], runs["DMS off"]
    cycles = on.outcome.kpis.get("dms_cycles", 0) or 0
    if cycles:
        print(f"DMS cycle           {1000 * (on_s - off_s) / cycles:7.2f} ms "
              f"(the run's time with the DMS minus without, per cycle; target ≤ 5 ms)")


if __name__ == "__main__":
    main()
