"""Time of one DMS cycle's parts on CIGRE MV and on a ~100-bus SimBench grid.

    python bench/se_time.py [--repeat 15] [--big]

Full metering from synthetic telemetry (every bus voltage, P/Q at every line's from side
and every trafo's hv side); load estimation (pseudo-measurements scaled to the metered
infeed), WLS state estimation, and the estimation error against the power flow it came from.
Prints medians in ms: LE, and SE with pandapower's estimator (the old path, kept as the
reference backend) beside the numpy one on the cached model (the default), and the SE time
per bus of the latter. ``--big`` adds SimBench 1-MVLV-urban-all-0-sw (10,458 buses; the
old path is left out there: its dense covariance alone does not fit in memory).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandapower as pp

from twin.dms.load_estimation import pseudo_measurements
from twin.dms.state_estimation import estimate_state, estimation_error
from twin.dms.synthetic_telemetry import full_metering
from twin.grid.build import build_net
from twin.scenario import GridSpec


def median_ms(fn, repeat: int) -> tuple[float, object]:
    fn()  # warm-up (numba, caches)
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--big", action="store_true", help="add 1-MVLV-urban-all-0-sw")
    args = ap.parse_args()
    grids = {"CIGRE MV": GridSpec(builtin="cigre_mv"),
             "SimBench 1-MV-rural--0-sw": GridSpec(simbench="1-MV-rural--0-sw")}
    if args.big:
        grids["SimBench 1-MVLV-urban-all-0-sw"] = GridSpec(simbench="1-MVLV-urban-all-0-sw")
    print(f"{'grid':31s} {'buses':>5s} {'meas':>5s} {'LE ms':>7s} {'SE pp ms':>8s} "
          f"{'SE np ms':>8s} {'SE µs/bus':>9s} {'max|dV| p.u.':>12s}")
    for name, spec in grids.items():
        net = build_net(spec)
        pp.runpp(net)
        telemetry = full_metering(net, np.random.default_rng(1))
        infeed = float(net.res_ext_grid.p_mw.sum())
        le_ms, pseudo = median_ms(lambda: pseudo_measurements(net, 1.0, 1.0, infeed), args.repeat)
        times = {}
        for backend in ("pandapower", "numpy"):
            if backend == "pandapower" and len(net.bus) > 2000:
                times[backend] = float("nan")
                continue
            times[backend], se = median_ms(
                lambda b=backend: estimate_state(net, telemetry, pseudo, now_s=0.0, backend=b),
                args.repeat)
        err = estimation_error(se, net.res_bus.vm_pu)
        print(f"{name:31s} {len(net.bus):5d} {se.n_measurements:5d} {le_ms:7.1f} "
              f"{times['pandapower']:8.1f} {times['numpy']:8.1f} "
              f"{1000 * times['numpy'] / len(net.bus):9.1f} {err['max_abs_dv_pu']:12.5f}")


if __name__ == "__main__":
    main()
