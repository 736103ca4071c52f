"""The twin on SimBench's 10,458-bus grid: preparation, speed, memory and store size.

    python bench/scale.py [--until 7d | --year] [--set recording.elements=all ...]

Runs ``scenarios/simbench_urban_year.yaml`` (1-MVLV-urban-all-0-sw with its own profiles,
15-min steps) through ``twin run`` in a child process, a week by default or the whole
profile year (35,136 steps) with ``--year``, and prints the preparation time, grid steps per
second, the child's peak RSS and the store's size. Figures only, no timed assertions
(targets in DESIGN.md: a year in < 10 min with peak RSS < 4 GB on 2 cores). Wrap it in
``flock /tmp/sim.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "simbench_urban_year.yaml"


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_child(scenario: Path, until: str | None, out: Path, overrides: list[str]) -> dict:
    """``twin run`` in its own process: its peak RSS is its own (RUSAGE_CHILDREN)."""
    cmd = [sys.executable, "-m", "twin.cli", "run", str(scenario), "--out", str(out)]
    cmd += ["--until", until] if until else []
    for item in overrides:
        cmd += ["--set", item]
    before_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    total_s = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"twin run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    return {"info": info, "total_s": total_s, "peak_rss_mb": peak_kb / 1024,
            "peak_is_this_child": peak_kb > before_kb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    span = ap.add_mutually_exclusive_group()
    span.add_argument("--until", default="7d", help="simulated span (default: a week)")
    span.add_argument("--year", action="store_true", help="the whole profile year")
    ap.add_argument("--scenario", type=Path, default=SCENARIO)
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="a scenario override, as in `twin run --set`")
    ap.add_argument("--keep", type=Path, default=None, help="run directory to keep")
    args = ap.parse_args()
    until = None if args.year else args.until
    with tempfile.TemporaryDirectory(prefix="twin-scale-") as tmp:
        out = args.keep or Path(tmp) / "run"
        r = run_child(args.scenario, until, out, args.overrides)
        info = r["info"]
        store = out / "store"
        steps, wall_s = info.get("grid_steps", 0), info.get("wall_time_s") or float("nan")
        prepare_s = info.get("prepare_wall_time_s", float("nan"))
        print(f"scenario        {info.get('scenario')} ({args.scenario.name}), "
              f"until {until or 'the whole year'}, overrides {args.overrides or 'none'}")
        print(f"status          {info.get('status')} {info.get('reason') or ''}".rstrip())
        print(f"grid steps      {steps:,} ({info.get('simulated_s', 0) / 86400:g} days)")
        print(f"preparation     {prepare_s:.1f} s")
        print(f"world run       {wall_s:.1f} s  ->  {steps / wall_s:.1f} steps/s")
        print(f"whole process   {r['total_s']:.1f} s (imports, world build, report included)")
        print(f"peak RSS        {r['peak_rss_mb']:,.0f} MB (the twin run's process)")
        print(f"points recorded {info.get('points_recorded', 0):,}")
        print(f"store           {tree_bytes(store) / 1e6:,.1f} MB"
              f"{'' if store.is_dir() else ' (no file store)'}")
        report = out / "report.html"
        if report.is_file():
            print(f"report.html     {report.stat().st_size / 1e6:,.1f} MB")
        if steps and wall_s == wall_s:
            print(f"a year at this pace: {35136 / (steps / wall_s) / 60:.1f} min of world run")


if __name__ == "__main__":
    main()
