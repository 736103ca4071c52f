"""Synthetic telemetry for DMS tests and benchmarks: a solved net read by noisy meters.

Meter σ as in distribution SCADA: voltage 0.5 % of the value, P/Q 1 % of the branch
rating (lines: √3·V_n·I_max, trafos: sn_mva), current 1 % of I_max.
"""

from __future__ import annotations

import numpy as np
import pandapower as pp
import pandas as pd

from twin.grid.build import build_net
from twin.grid.names import element_names
from twin.scenario import GridSpec

V_SIGMA_FRACTION = 0.005
PQ_SIGMA_FRACTION_OF_RATING = 0.01


def cigre_truth() -> pp.pandapowerNet:
    """The project's CIGRE MV net, solved: its results are the truth."""
    net = build_net(GridSpec(builtin="cigre_mv"))
    pp.runpp(net)
    return net


def line_rating_mva(net: pp.pandapowerNet) -> pd.Series:
    vn_kv = net.bus.loc[net.line["from_bus"], "vn_kv"].to_numpy()
    return pd.Series(np.sqrt(3) * vn_kv * net.line["max_i_ka"].to_numpy(), index=net.line.index)


def full_metering(net: pp.pandapowerNet, rng: np.random.Generator, t_s: float = 0.0,
                  buses=None, lines=None, trafos=None, currents: bool = False) -> pd.DataFrame:
    """Telemetry rows: |V| at ``buses``, P/Q at the from side of ``lines`` and the hv side
    of ``trafos`` (default: all), each with Gaussian noise of the meter's σ, plus every
    switch's state."""
    rows = []
    bus_names = dict(zip(net.bus.index, element_names(net, "bus")))
    line_names = dict(zip(net.line.index, element_names(net, "line")))
    trafo_names = dict(zip(net.trafo.index, element_names(net, "trafo")))
    buses = net.bus.index if buses is None else buses
    lines = net.line.index if lines is None else lines
    trafos = net.trafo.index if trafos is None else trafos

    def add(element, quantity, true_value, sigma):
        rows.append({"element": element, "quantity": quantity,
                     "value": float(true_value + sigma * rng.standard_normal()),
                     "source_t_s": t_s, "delivery_t_s": t_s + 1.0, "sigma": float(sigma)})

    for b in buses:
        vm = net.res_bus.at[b, "vm_pu"]
        add(f"bus:{bus_names[b]}", "vm_pu", vm, V_SIGMA_FRACTION * vm)
    rating = line_rating_mva(net)
    for i in lines:
        s = PQ_SIGMA_FRACTION_OF_RATING * rating[i]
        add(f"line:{line_names[i]}", "p_mw", net.res_line.at[i, "p_from_mw"], s)
        add(f"line:{line_names[i]}", "q_mvar", net.res_line.at[i, "q_from_mvar"], s)
        if currents:
            add(f"line:{line_names[i]}", "i_ka", net.res_line.at[i, "i_from_ka"],
                PQ_SIGMA_FRACTION_OF_RATING * net.line.at[i, "max_i_ka"])
    for i in trafos:
        s = PQ_SIGMA_FRACTION_OF_RATING * net.trafo.at[i, "sn_mva"]
        add(f"trafo:{trafo_names[i]}", "p_mw", net.res_trafo.at[i, "p_hv_mw"], s)
        add(f"trafo:{trafo_names[i]}", "q_mvar", net.res_trafo.at[i, "q_hv_mvar"], s)
    for i, name in zip(net.switch.index, element_names(net, "switch")):
        rows.append({"element": f"switch:{name}", "quantity": "closed",
                     "value": float(net.switch.at[i, "closed"]), "source_t_s": t_s,
                     "delivery_t_s": t_s + 1.0, "sigma": np.nan})
    return pd.DataFrame(rows)
