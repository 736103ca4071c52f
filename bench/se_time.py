"""Time of one DMS cycle's parts on CIGRE MV and on a ~100-bus SimBench grid.

    python bench/se_time.py [--repeat 15]

Full metering from synthetic telemetry (every bus voltage, P/Q at every line's from side
and every trafo's hv side); load estimation (pseudo-measurements scaled to the metered
infeed), WLS state estimation, and the estimation error against the power flow it came from.
Prints medians in ms and the SE time per bus.
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
    args = ap.parse_args()
    grids = {"CIGRE MV": GridSpec(builtin="cigre_mv"),
             "SimBench 1-MV-rural--0-sw": GridSpec(simbench="1-MV-rural--0-sw")}
    print(f"{'grid':28s} {'buses':>5s} {'meas':>5s} {'LE ms':>7s} {'SE ms':>7s} "
          f"{'SE µs/bus':>9s} {'max|dV| p.u.':>12s}")
    for name, spec in grids.items():
        net = build_net(spec)
        pp.runpp(net)
        telemetry = full_metering(net, np.random.default_rng(1))
        infeed = float(net.res_ext_grid.p_mw.sum())
        le_ms, pseudo = median_ms(lambda: pseudo_measurements(net, 1.0, 1.0, infeed), args.repeat)
        se_ms, se = median_ms(lambda: estimate_state(net, telemetry, pseudo, now_s=0.0),
                              args.repeat)
        err = estimation_error(se, net.res_bus.vm_pu)
        print(f"{name:28s} {len(net.bus):5d} {se.n_measurements:5d} {le_ms:7.1f} {se_ms:7.1f} "
              f"{1000 * se_ms / len(net.bus):9.1f} {err['max_abs_dv_pu']:12.5f}")


if __name__ == "__main__":
    main()
