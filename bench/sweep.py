"""A sweep serially and on a local Dask cluster: the same study's runs, the same results.

    python bench/sweep.py [STUDY] [--workers 2]

The serial reference runs ``run_job`` in a loop in this process, warmed first (the runner
imported, numba's kernels compiled by one power flow, one step of the first run) as the Dask
workers are. The cluster's
time is printed with and without its start-up (workers spawned and warmed). Prints both wall
times, the speed-ups (target ≥ 1.8 with 2 workers on 2 cores) and whether both gave the
same KPIs (they must: same scenario and seed ⇒ same result). Figures only, no assertions.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from twin.study.executor import run_jobs, warm_up
from twin.study.jobs import run_job
from twin.study.sweep import load_study, make_jobs

ROOT = Path(__file__).resolve().parents[1]


def _spin(n: int = 20_000_000) -> float:
    """A pure-Python loop's wall time [s]: CPU only, no memory traffic to speak of."""
    t0, s = time.perf_counter(), 0
    for i in range(n):
        s += i * i % 7
    return time.perf_counter() - t0


def machine_ceiling(workers: int) -> float:
    """The speed-up this machine gives ``workers`` processes of pure CPU work right now:
    ``workers`` × (one loop alone) / (the slowest of ``workers`` side by side). On a VM whose
    virtual cores share hardware or neighbours, it is below ``workers``; no sweep beats it."""
    import multiprocessing as mp

    alone = _spin()
    with mp.get_context("spawn").Pool(workers) as pool:
        side_by_side = pool.map(_spin, [20_000_000] * workers)
    return workers * alone / max(side_by_side)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("study", nargs="?", default=str(ROOT / "studies" / "volt_var_modes.yaml"))
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    study = load_study(args.study)
    with tempfile.TemporaryDirectory() as tmp:
        jobs_serial = make_jobs(study, Path(tmp) / "serial")
        jobs_dask = make_jobs(study, Path(tmp) / "dask")
        print(f"study {args.study}: {len(jobs_serial)} runs of {study.scenario.name}"
              f" (until {study.until or 'the end'})")

        t0 = time.perf_counter()
        warm_up(jobs_serial[0])
        warm_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        serial = [run_job(job) for job in jobs_serial]
        serial_s = time.perf_counter() - t0
        print(f"serial, one process:        {serial_s:7.1f} s  (warm-up {warm_s:.1f} s "
              f"before, not counted; {serial_s / len(serial):.1f} s a run)")

        ready: list[float] = []
        t0 = time.perf_counter()
        rows = run_jobs(jobs_dask, workers=args.workers,
                        on_ready=lambda: ready.append(time.perf_counter()))
        end = time.perf_counter()
        total_s, jobs_s = end - t0, end - ready[0]
        print(f"Dask, {args.workers} workers, with start-up: {total_s:7.1f} s  "
              f"(cluster start and warm-up {ready[0] - t0:.1f} s)")
        print(f"Dask, {args.workers} workers, runs only:     {jobs_s:7.1f} s  "
              f"({sum(r['wall_time_s'] for r in rows) / len(rows):.1f} s a run, "
              f"{args.workers} at a time)")
        print(f"speed-up with start-up:    {serial_s / total_s:5.2f}")
        print(f"speed-up without start-up: {serial_s / jobs_s:5.2f}  (target ≥ 1.8 with 2 "
              "workers on 2 cores)")
        print(f"this machine's ceiling now: {machine_ceiling(args.workers):5.2f}  ({args.workers} "
              "pure-Python loops side by side against one alone)")
        statuses = sorted({r["status"] for r in serial + rows})
        same = all(a["kpis"] == b["kpis"] for a, b in zip(serial, rows))
        print(f"statuses {', '.join(statuses)}; same KPIs serially and on Dask: "
              f"{'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
