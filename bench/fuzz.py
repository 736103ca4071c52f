"""Wider fuzz run (off CI): seeded mutations of the shipped scenarios through
``twin validate`` and, for every case it accepts, ``twin run`` (shortened).

    python bench/fuzz.py [--cases 300] [--seed 1] [--until 10min] [--timeout 120]

Counts per outcome and per mutation kind:

* ``invalid`` — validate exit 2 with a message (good);
* ``ran`` — validate 0 and run 0 (good);
* ``crash`` — a traceback or an exit other than 0/2 (validate or run);
* ``hang`` — validate or run past the time limit;
* ``validate_ok_run_failed`` — validate accepted what run then rejected (exit 2) or failed on.

Each case is reproduced from (scenario, seed, case number); failing cases are written to
``--keep`` (default runs/fuzz-cases/) with what happened.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from twin.scenario.mutate import mutate

ROOT = Path(__file__).resolve().parents[1]
TWIN = [sys.executable, "-m", "twin.cli"]


def _twin(args: list[str], timeout_s: float) -> tuple[int | None, str]:
    try:
        done = subprocess.run(TWIN + args, capture_output=True, text=True, timeout=timeout_s,
                              cwd=ROOT, errors="replace")
    except subprocess.TimeoutExpired:
        return None, ""
    return done.returncode, done.stdout + done.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--until", default="10min", help="how much of an accepted case to run")
    ap.add_argument("--timeout", type=float, default=120.0, help="per command [s]")
    ap.add_argument("--keep", type=Path, default=ROOT / "runs" / "fuzz-cases")
    args = ap.parse_args()
    scenarios = sorted((ROOT / "scenarios").glob("*.yaml"))
    rng = np.random.default_rng(args.seed)
    outcomes: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = {}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.cases):
            source = scenarios[n % len(scenarios)]
            case = mutate(source.read_text(encoding="utf-8"), rng)
            path = Path(tmp) / f"case{n}.yaml"
            path.write_bytes(case.data)
            code, out = _twin(["validate", str(path)], args.timeout)
            outcome, detail = "invalid", out
            if code is None:
                outcome = "hang"
            elif code not in (0, 2) or "Traceback" in out:
                outcome = "crash"
            elif code == 0:
                run_code, run_out = _twin(["run", str(path), "--until", args.until,
                                           "--out", str(Path(tmp) / f"run{n}"),
                                           "--no-progress"], args.timeout)
                detail = run_out
                if run_code is None:
                    outcome = "hang"
                elif "Traceback" in run_out or run_code not in (0, 2):
                    outcome = "crash"
                elif run_code == 2:
                    outcome = "validate_ok_run_failed"
                else:
                    outcome = "ran"
            outcomes[outcome] += 1
            by_kind.setdefault(case.kind, Counter())[outcome] += 1
            if outcome not in ("invalid", "ran"):
                args.keep.mkdir(parents=True, exist_ok=True)
                stem = f"{source.stem}-seed{args.seed}-case{n}"
                (args.keep / f"{stem}.yaml").write_bytes(case.data)
                (args.keep / f"{stem}.txt").write_text(
                    f"{outcome}: {case.kind} at {case.where}\n\n{detail[-4000:]}",
                    encoding="utf-8")
            print(f"{n + 1:4d}/{args.cases} {source.stem:28s} {case.kind:15s} {outcome}",
                  flush=True)
    print(f"\n{args.cases} cases in {time.monotonic() - t0:.0f} s (seed {args.seed})")
    for outcome in ("invalid", "ran", "crash", "hang", "validate_ok_run_failed"):
        print(f"  {outcome:24s} {outcomes[outcome]}")
    print("\nby kind: " + "; ".join(
        f"{kind} " + ", ".join(f"{o} {c}" for o, c in sorted(counts.items()))
        for kind, counts in sorted(by_kind.items())))
    return 0 if not (outcomes["crash"] or outcomes["hang"]
                     or outcomes["validate_ok_run_failed"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
