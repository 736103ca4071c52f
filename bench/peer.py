"""The twin beside the stock mosaik + mosaik-pandapower-2 stack, on one SimBench grid.

    python bench/peer.py [--code 1-MV-rural--0-sw] [--steps 96]

Peer: mosaik with mosaik-pandapower-2's simulator on the SimBench grid, its SimBench
profiles applied by that simulator, 15-min steps from the profile year's start, and a
collector connected to every bus's ``Vm[pu]`` and every line's ``loading[%]``. Twin:
the same grid, profiles and horizon through ``twin run`` with ``recording.elements: all``
(every element at every step into the file store). Each runs in its own process; printed:
set-up time, steps/s and the ratio twin / peer (DESIGN.md's targets: >= 3x at 97 buses,
>= 12x on 1-MVLV-urban-all-0-sw). Figures only, no timed assertions.

mosaik-pandapower-2 is not a dependency of the twin: it is installed with
``pip install --target`` into a directory of its own (under the system's temp directory,
kept for later runs) and put on the peer process's path only. Its SimBench grids build a
year of absolute profiles for every element: on 1-MVLV-urban-all-0-sw that process needs
~14 GB of memory. Wrap the bench in ``flock /tmp/sim.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mosaik_api_v3

ROOT = Path(__file__).resolve().parents[1]
PEER_PACKAGE = "mosaik-pandapower-2==1.1.1"
STEP_S = 900  # SimBench's profile step; mosaik-pandapower-2 assumes it (time // 900)


# ----------------------------------------------------------------------------- the peer
class Collector(mosaik_api_v3.Simulator):
    """Keeps every value it receives, per step (the peer's counterpart of a recorder)."""

    def __init__(self) -> None:
        super().__init__({"api_version": "3.0", "type": "time-based", "models": {
            "Collector": {"public": True, "params": [], "attrs": ["Vm[pu]", "loading[%]"],
                          "any_inputs": True}}})
        self.steps: list[tuple[int, list[float], list[float]]] = []

    def create(self, num, model):
        return [{"eid": "collector", "type": model, "rel": []}]

    def step(self, time, inputs, max_advance):
        data = inputs.get("collector", {})
        vm = [float(v) for v in data.get("Vm[pu]", {}).values()]
        loading = [float(v) for v in data.get("loading[%]", {}).values()]
        self.steps.append((time, vm, loading))
        return time + STEP_S

    def get_data(self, outputs):
        return {}


def peer_child(code: str, steps: int) -> None:
    """The peer world (runs in the child process that has mosaik-pandapower-2)."""
    import mosaik

    t0 = time.perf_counter()
    world = mosaik.World({"Grid": {"python": "mosaik_components.pandapower:Simulator"},
                          "Collector": {"python": "__main__:Collector"}},
                         skip_greetings=True, configure_logging=False)
    grid = world.start("Grid", step_size=STEP_S).Grid(simbench=code)
    collector = world.start("Collector").Collector()
    n_bus = n_line = 0
    for child in grid.children:
        if child.type == "Bus":
            world.connect(child, collector, "Vm[pu]")
            n_bus += 1
        elif child.type == "Line":
            world.connect(child, collector, "loading[%]")
            n_line += 1
    setup_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    world.run(until=steps * STEP_S, print_progress=False)
    run_s = time.perf_counter() - t1
    print(json.dumps({"setup_s": setup_s, "run_s": run_s, "steps": steps, "buses": n_bus,
                      "lines": n_line}))


def peer_target() -> Path:
    """mosaik-pandapower-2 in a directory of its own (installed once, then reused)."""
    target = Path(tempfile.gettempdir()) / "dms-twin-peer" / PEER_PACKAGE.replace("==", "-")
    if not (target / "mosaik_components" / "pandapower").is_dir():
        # --no-deps: mosaik, pandapower and simbench are the twin's own, so both sides run
        # the same versions
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--target", str(target), PEER_PACKAGE], check=True)
    return target


def run_peer(code: str, steps: int) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(peer_target()), str(ROOT),
                                         env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run([sys.executable, __file__, "--peer-child", "--code", code,
                           "--steps", str(steps)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"peer failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- the twin
SCENARIO = """\
name: peer_{name}
start: 2016-01-01T00:00:00Z
duration: {duration_s}
step: 15min
seed: 1
grid: {{simbench: {code}}}
profiles: {{source: simbench}}
pv: {{attach_existing: false}}
wind: {{attach_existing: false}}
batteries: {{attach_existing: false}}
recording: {{store: files, elements: all}}
"""


def run_twin(code: str, steps: int, tmp: Path) -> dict:
    scenario = tmp / "peer.yaml"
    name = "".join(c if c.isalnum() else "_" for c in code)
    scenario.write_text(SCENARIO.format(name=name, code=code, duration_s=steps * STEP_S),
                        encoding="utf-8")
    out = tmp / "twin"
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "twin.cli", "run", str(scenario), "--out",
                           str(out)], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"twin run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    return {"setup_s": info["prepare_wall_time_s"], "run_s": info["wall_time_s"],
            "steps": info["grid_steps"], "total_s": time.perf_counter() - t0,
            "points": info.get("points_recorded", 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--code", default="1-MV-rural--0-sw", help="SimBench grid code")
    ap.add_argument("--steps", type=int, default=96, help="15-min steps (96: a day)")
    ap.add_argument("--peer-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer_child:
        peer_child(args.code, args.steps)
        return
    peer = run_peer(args.code, args.steps)
    with tempfile.TemporaryDirectory(prefix="twin-peer-") as tmp:
        twin = run_twin(args.code, args.steps, Path(tmp))
    peer_rate = peer["steps"] / peer["run_s"]
    twin_rate = twin["steps"] / twin["run_s"]
    print(f"grid {args.code}: {peer['buses']:,} buses, {peer['lines']:,} lines; "
          f"{args.steps} steps of 15 min")
    print(f"peer  mosaik + {PEER_PACKAGE}: set-up {peer['setup_s']:.1f} s, "
          f"run {peer['run_s']:.1f} s, {peer_rate:.1f} steps/s (every bus Vm, line loading "
          "collected)")
    print(f"twin  recording.elements all:     preparation {twin['setup_s']:.1f} s, "
          f"run {twin['run_s']:.1f} s, {twin_rate:.1f} steps/s "
          f"({twin['points']:,} points into the file store)")
    print(f"ratio twin / peer: {twin_rate / peer_rate:.2f}x steps/s")


if __name__ == "__main__":
    main()
