"""Run time of the loss-minimising reconfiguration (twin.dms.reconfiguration).

    python bench/reconfiguration.py

CIGRE MV as built (only its three ties are switchable), CIGRE MV with a switch on every
line, the 97-bus SimBench rural feeder with its loop switches, and the paper's overloaded
three-grid case (load management: the overload goes first). Prints losses and max loading
before and after, the power flows spent and the wall time (numba compile paid
beforehand).
"""

from __future__ import annotations

import copy
import time

import pandapower as pp

from twin.dms.reconfiguration import minimize_losses, with_line_switches
from twin.grid.build import build_net
from twin.grid.paper import create_paper_load_management_net
from twin.scenario import GridSpec


def main() -> None:
    cigre = build_net(GridSpec(builtin="cigre_mv"))
    pp.runpp(copy.deepcopy(cigre), numba=True)  # numba compile, once per process
    cases = [("CIGRE MV as built", cigre),
             ("CIGRE MV, every line switchable", with_line_switches(cigre)),
             ("SimBench 1-MV-rural--0-sw", build_net(GridSpec(simbench="1-MV-rural--0-sw"))),
             ("paper three grids, overloaded", create_paper_load_management_net())]
    print(f"{'net':34s} {'buses':>5s} {'switchable':>10s} {'loss before':>11s} "
          f"{'after kW':>8s} {'load %':>13s} {'moves':>5s} {'PFs':>5s} {'time s':>7s} "
          f"{'ms/PF':>6s}")
    for name, net in cases:
        before = copy.deepcopy(net)
        pp.runpp(before, numba=True)
        loading = max(before.res_line.loading_percent.max(), before.res_trafo.loading_percent.max())
        t0 = time.perf_counter()
        plan = minimize_losses(net)
        dt = time.perf_counter() - t0
        n_sw = net.switch[net.switch.et == "l"].element.nunique()
        print(f"{name:34s} {len(net.bus):5d} {n_sw:10d} {1000 * plan.p_loss_before_mw:11.1f} "
              f"{1000 * plan.p_loss_mw:8.1f} {loading:6.1f}→{plan.max_loading_percent:5.1f} "
              f"{len(plan.open):5d} {plan.n_power_flows:5d} "
              f"{dt:7.2f} {1000 * dt / max(plan.n_power_flows, 1):6.1f}")


if __name__ == "__main__":
    main()
