"""Load estimation: bus-injection pseudo-measurements where the grid has no meters.

A distribution grid meters its substation and a few feeder points, not its loads. The
state estimator still needs two equations per bus, so the DMS supplies its best guess of
every unmetered injection — a *pseudo-measurement*: each load's and generator's nominal
power times a profile factor (the DMS's forecast, e.g. the synthetic daily shape of
:mod:`twin.build.profiles`), optionally rescaled so that the forecast matches the metered
feeder-head flows, with a large standard deviation that says how little it is trusted.
Buses with nothing connected carry *zero-injection* pseudo-measurements with a tiny
standard deviation: that zero is exact knowledge, not a guess.

Sign convention (checked against pandapower's estimator, which negates bus ``p``/``q``
measurements into injections): the value of a bus ``p``/``q`` measurement is the bus's
net *demand*, as ``res_bus.p_mw``: Σ load − Σ sgen + Σ storage (storage positive when
charging), positive when the bus consumes.

References
----------
.. [1] A. Abur, A. G. Expósito, "Power System State Estimation: Theory and
   Implementation", Marcel Dekker, 2004, ch. 4.7 (pseudo-measurements) and ch. 3
   (zero injections as exact measurements).
.. [2] M. E. Baran, A. W. Kelley, "State estimation for real-time monitoring of
   distribution systems", IEEE Trans. Power Systems 9(3), 1601–1609, 1994,
   :doi:`10.1109/59.336098` (load pseudo-measurements scaled to feeder-head meters).
"""

from __future__ import annotations

import copy
from typing import Mapping, Sequence

import networkx as nx
import numpy as np
import pandapower as pp
import pandapower.topology as top
import pandas as pd

from twin.dms.measurements import MEASUREMENT_COLUMNS, element_index
from twin.dms.pf import runpp_warm
from twin.grid.names import element_names, split_ref

FactorLike = float | Sequence[float] | np.ndarray | pd.Series

#: Standard deviation of a zero-injection pseudo-measurement [MW resp. Mvar]. Small, so
#: the zero is kept nearly exactly (its weight is 10³–10⁶ times a meter's), but ten times
#: pandapower's floor of 1e-5 p.u., so the gain matrix stays usable for the residual tests.
ZERO_INJECTION_SIGMA_MW = 1e-4

#: Floor of a load pseudo-measurement's standard deviation [MW resp. Mvar]: a forecast of
#: zero (a load at night, a PV plant in the dark) is not certain to be zero.
SIGMA_FLOOR_MW = 1e-3

#: Element tables whose injections a pseudo-measurement forecasts.
FORECAST_TABLES = ("load", "sgen", "storage")
#: Other injection tables: their buses get neither a forecast nor a zero injection.
OTHER_INJECTION_TABLES = ("gen", "ward", "xward", "motor", "asymmetric_load",
                          "asymmetric_sgen", "dcline")

#: Rescaling to metered flows: at most this many power flows, stop below this mismatch.
_SCALE_ITERATIONS = 5
_SCALE_TOLERANCE_MW = 1e-3  # far below any feeder meter's noise
#: Bounds of a feeder's load scaling factor [-]: a factor outside says the meter, the
#: forecast or the topology is wrong, and an extreme pseudo-measurement would only hide it.
SCALE_BOUNDS = (0.0, 5.0)


def pseudo_measurements(
    net: pp.pandapowerNet,
    load_factor: FactorLike,
    sgen_factor: FactorLike,
    metered_feeder_p_mw: float | Mapping[str, float] | None = None,
    sigma_pct: float = 30.0,
    *,
    storage_p_mw: FactorLike | None = None,
    known: Mapping[tuple[str, int, str], tuple[float, float]] | None = None,
    sigma_floor_mw: float = SIGMA_FLOOR_MW,
    zero_injection_sigma_mw: float = ZERO_INJECTION_SIGMA_MW,
) -> pd.DataFrame:
    """P/Q bus-injection pseudo-measurements from the DMS's load and generation forecast.

    Parameters
    ----------
    net : pandapower.pandapowerNet
        The DMS's net (with its current switch states when feeders are metered); its
        ``load``/``sgen`` ``p_mw``/``q_mvar`` times ``scaling`` are the nominal powers.
        Not modified.
    load_factor : float or array_like or pandas.Series
        Profile factor per load [-] (scalar for all; array in ``net.load`` order; Series
        by load index). Forecast load = nominal × factor.
    sgen_factor : float or array_like or pandas.Series
        Same for ``net.sgen`` [-].
    metered_feeder_p_mw : float or mapping of str to float, optional
        Metered active power to rescale the load forecast to [MW]. A float is the total
        infeed from the ext_grid(s) (positive into the net); a mapping gives feeder-head
        flows by element, ``{"trafo:Trafo 0-1": 19.9, "line:Line 12-13": 4.1}``, measured
        at the trafo's hv / the line's from side, positive into the feeder.
    sigma_pct : float
        Standard deviation of each forecast element as a percentage of its forecast
        value [%]; element errors are taken as independent, so a bus's σ is their
        root-sum-square, floored at ``sigma_floor_mw``.
    storage_p_mw : float or array_like or pandas.Series, optional
        The storage schedule the DMS knows [MW, positive charging]; default the
        ``net.storage.p_mw`` column. Its σ is ``sigma_pct`` % of the unit's rating (the
        largest of ``sn_mva``, ``|min_p_mw|``, ``|max_p_mw|`` and the scheduled value),
        not of the value: a battery may deviate from its schedule by much of its rating.
    known : mapping, optional
        Element powers the DMS knows rather than forecasts — a metered DER, battery or EV
        charging point, or a reactive set-point it commanded and saw acknowledged:
        ``{(table, index, quantity): (value, sigma)}`` with ``table`` one of ``load``,
        ``sgen``, ``storage``, ``quantity`` ``p_mw`` or ``q_mvar``, the value in that
        table's sign convention and ``sigma`` its standard deviation [MW resp. Mvar].
        They replace the forecast of those elements; a known load is not rescaled.
    sigma_floor_mw : float
        Smallest σ of a forecast bus injection [MW resp. Mvar].
    zero_injection_sigma_mw : float
        σ of a zero-injection pseudo-measurement [MW resp. Mvar].

    Returns
    -------
    pandas.DataFrame
        Columns :data:`twin.dms.measurements.MEASUREMENT_COLUMNS` plus ``scale`` (the
        load factor applied to that bus's loads by the metering rule, 1.0 if none);
        two rows (``p``, ``q``) per in-service bus with a load, sgen or storage
        (``source="pseudo"``) and per zero-injection bus (``source="zero_injection"``).
        Values are bus net demand (see the module notes) in MW/Mvar. ``attrs["scale"]``
        holds the factor per group of feeder heads (or ``"substation"``);
        ``attrs["message"]`` says why no scaling took place or which factor was clipped.

    Raises
    ------
    ValueError
        If a factor array has the wrong length, a feeder head is unknown or is not a
        feeder head (its downstream side reaches an ext_grid), or ``sigma_pct`` < 0.

    Notes
    -----
    Zero-injection buses are in-service buses with no in-service load, sgen, storage or
    other injection (:data:`OTHER_INJECTION_TABLES`) and no ext_grid, also on the buses
    fused with them by closed bus-bus switches; a shunt is fine, since the estimator
    models it in the admittance matrix. Buses fused with an ext_grid bus get no
    pseudo-measurement (:func:`slack_nodes`).

    Metering rule (one factor per feeder, applied to loads only, P and Q alike so each
    load keeps its power factor; generation is left to its own forecast):

    1. solve a power flow with the forecast injections;
    2. for each group of feeders — the buses behind a metered head, after removing all
       metered heads from the graph; heads whose feeders are joined by closed ties form
       one group — set ``k ← k + (P_metered − P_head) / P_load`` with ``P_head`` the
       head flow of step 1 and ``P_load`` the group's unscaled forecast load;
    3. repeat while the mismatch exceeds 1 kW (at most 5 power flows), with the slope
       ``P_load`` replaced by the secant of the last two solves, so the head flow
       includes the losses at the scaled loads (usually three power flows).

    With a float, the group is all loads and ``P_head`` is the ext_grid infeed, so total
    load + losses − generation matches the substation meter. ``k`` is clipped to
    :data:`SCALE_BOUNDS`; if the power flow fails, no scaling is applied.
    """
    if not sigma_pct >= 0:
        raise ValueError(f"sigma_pct: expected >= 0; found {sigma_pct}")
    frac = sigma_pct / 100.0
    load_p = _per_element(net, "load", load_factor) * _nominal(net, "load", "p_mw")
    load_q = _per_element(net, "load", load_factor) * _nominal(net, "load", "q_mvar")
    sgen_p = _per_element(net, "sgen", sgen_factor) * _nominal(net, "sgen", "p_mw")
    sgen_q = _per_element(net, "sgen", sgen_factor) * _nominal(net, "sgen", "q_mvar")
    if storage_p_mw is None:
        stor_p = _nominal(net, "storage", "p_mw")
    else:
        stor_p = _per_element(net, "storage", storage_p_mw)
    stor_q = _nominal(net, "storage", "q_mvar")
    values = {("load", "p_mw"): load_p, ("load", "q_mvar"): load_q,
              ("sgen", "p_mw"): sgen_p, ("sgen", "q_mvar"): sgen_q,
              ("storage", "p_mw"): stor_p, ("storage", "q_mvar"): stor_q}
    known_sigma: dict[tuple[str, int, str], float] = {}
    for (table, idx, quantity), (value, sigma) in (known or {}).items():
        if (table, quantity) not in values or int(idx) not in net[table].index:
            raise ValueError(f"known: expected (load|sgen|storage, index, p_mw|q_mvar) of "
                             f"the net; found {(table, idx, quantity)}")
        values[(table, quantity)][int(idx)] = float(value)
        known_sigma[(table, int(idx), quantity)] = float(sigma)
    fixed_loads = {i for (t, i, _q) in known_sigma if t == "load"}

    def sigma_of(table: str, idx, quantity: str, forecast_sigma: float) -> float:
        return known_sigma.get((table, int(idx), quantity), forecast_sigma)

    scale = pd.Series(1.0, index=net.load.index)
    attrs: dict = {"scale": {}, "message": ""}
    if metered_feeder_p_mw is not None and net.load["in_service"].astype(bool).any():
        scale, attrs = _metered_scale(net, metered_feeder_p_mw, load_p, load_q,
                                      sgen_p, sgen_q, stor_p, stor_q, fixed_loads)
    load_p = load_p * scale
    load_q = load_q * scale

    rows: list[dict] = []
    in_service = {t: net[t]["in_service"].astype(bool) for t in FORECAST_TABLES}
    demand = {"p": {}, "q": {}}
    var = {"p": {}, "q": {}}
    bus_scale: dict[int, float] = {}

    def add(bus: int, kind: str, value: float, sigma: float) -> None:
        demand[kind][bus] = demand[kind].get(bus, 0.0) + value
        var[kind][bus] = var[kind].get(bus, 0.0) + sigma * sigma

    for idx in net.load.index[in_service["load"]]:
        b = int(net.load.at[idx, "bus"])
        add(b, "p", load_p[idx], sigma_of("load", idx, "p_mw", frac * abs(load_p[idx])))
        add(b, "q", load_q[idx], sigma_of("load", idx, "q_mvar", frac * abs(load_q[idx])))
        if idx not in fixed_loads:
            bus_scale[b] = float(scale[idx])
    for idx in net.sgen.index[in_service["sgen"]]:
        b = int(net.sgen.at[idx, "bus"])
        add(b, "p", -sgen_p[idx], sigma_of("sgen", idx, "p_mw", frac * abs(sgen_p[idx])))
        add(b, "q", -sgen_q[idx], sigma_of("sgen", idx, "q_mvar", frac * abs(sgen_q[idx])))
    for idx in net.storage.index[in_service["storage"]]:
        b = int(net.storage.at[idx, "bus"])
        rating = _storage_rating_mva(net.storage.loc[idx], stor_p[idx])
        add(b, "p", stor_p[idx], sigma_of("storage", idx, "p_mw", frac * rating))
        add(b, "q", stor_q[idx], sigma_of("storage", idx, "q_mvar", frac * rating))

    bus_ref = dict(zip(net.bus.index, (f"bus:{n}" for n in element_names(net, "bus"))))
    live = set(int(i) for i in net.bus.index[net.bus["in_service"].astype(bool)])
    for b in sorted((set(demand["p"]) & live) - slack_nodes(net)):
        for kind, quantity in (("p", "p_mw"), ("q", "q_mvar")):
            rows.append(_row(b, bus_ref[b], kind, quantity, demand[kind][b],
                             max(np.sqrt(var[kind][b]), sigma_floor_mw), "pseudo",
                             bus_scale.get(b, 1.0)))
    for b in zero_injection_buses(net):
        for kind, quantity in (("p", "p_mw"), ("q", "q_mvar")):
            rows.append(_row(b, bus_ref[b], kind, quantity, 0.0, zero_injection_sigma_mw,
                             "zero_injection", 1.0))
    out = pd.DataFrame(rows, columns=list(MEASUREMENT_COLUMNS) + ["scale"])
    out.attrs.update(attrs)
    return out


def zero_injection_buses(net: pp.pandapowerNet) -> list[int]:
    """In-service buses whose node has no injection of any kind and no ext_grid.

    A node is a set of buses joined by closed bus-bus switches (:func:`bus_nodes`):
    the estimator fuses them, so a bus is zero-injection only if its whole node is.
    """
    busy: set[int] = set()
    for table in FORECAST_TABLES + OTHER_INJECTION_TABLES + ("ext_grid",):
        if table not in net or not len(net[table]):
            continue
        df = net[table]
        active = df["in_service"].astype(bool) if "in_service" in df.columns else True
        for column in ("bus", "from_bus", "to_bus"):
            if column in df.columns:
                busy.update(int(b) for b in df.loc[active, column])
    node = bus_nodes(net)
    busy_nodes = {node[b] for b in busy if b in node}
    live = net.bus.index[net.bus["in_service"].astype(bool)]
    return sorted(int(b) for b in live if node[int(b)] not in busy_nodes)


def slack_nodes(net: pp.pandapowerNet) -> set[int]:
    """Buses fused with an ext_grid bus by closed bus-bus switches (ext_grid buses too).

    Their measured injection includes the unknown infeed from the upstream grid, so they
    get no pseudo-measurement at all: a forecast of their loads alone would pin the
    infeed to zero.
    """
    node = bus_nodes(net)
    slack = {node[int(b)] for b in net.ext_grid.loc[net.ext_grid["in_service"].astype(bool),
                                                     "bus"]}
    return {b for b, n in node.items() if n in slack}


def bus_nodes(net: pp.pandapowerNet) -> dict[int, int]:
    """Bus index → smallest bus index of its node: the buses joined by closed,
    zero-impedance bus-bus switches, which pandapower fuses into one."""
    graph = nx.Graph()
    graph.add_nodes_from(int(b) for b in net.bus.index)
    sw = net.switch
    if len(sw):
        fused = (sw["et"] == "b") & sw["closed"].astype(bool)
        if "z_ohm" in sw.columns:
            fused &= ~(sw["z_ohm"].fillna(0.0) > 0)
        graph.add_edges_from((int(a), int(b)) for a, b in
                             sw.loc[fused, ["bus", "element"]].to_numpy())
    node: dict[int, int] = {}
    for component in nx.connected_components(graph):
        rep = min(component)
        node.update((b, rep) for b in component)
    return node


def _row(bus: int, ref: str, kind: str, quantity: str, value: float, sigma: float,
         source: str, scale: float) -> dict:
    return {"name": f"{ref}/{quantity} ({source})", "measurement_type": kind,
            "element_type": "bus", "element": bus, "value": float(value),
            "std_dev": float(sigma), "side": None, "ref": ref, "quantity": quantity,
            "source": source, "source_t_s": np.nan, "stale": False, "scale": scale}


def _per_element(net: pp.pandapowerNet, table: str, factor: FactorLike) -> pd.Series:
    """A factor (or value) per row of ``net[table]``, indexed like it."""
    index = net[table].index
    if isinstance(factor, pd.Series):
        missing = index.difference(factor.index)
        if len(missing):
            raise ValueError(f"{table} factor: a Series must cover every {table} index; "
                             f"missing {list(missing)[:6]}")
        return factor.reindex(index).astype(float)
    values = np.asarray(factor, dtype=float)
    if values.ndim == 0:
        return pd.Series(float(values), index=index)
    if values.shape != (len(index),):
        raise ValueError(f"{table} factor: expected a scalar or {len(index)} values "
                         f"(one per {table}); found shape {values.shape}")
    return pd.Series(values, index=index)


def _nominal(net: pp.pandapowerNet, table: str, column: str) -> pd.Series:
    """``net[table][column]`` times pandapower's ``scaling`` (what a power flow uses)."""
    df = net[table]
    values = df[column].astype(float)
    if "scaling" in df.columns:
        values = values * df["scaling"].fillna(1.0).astype(float)
    return values


def _storage_rating_mva(row: pd.Series, p_mw: float) -> float:
    candidates = [row.get("sn_mva"), row.get("max_p_mw"), row.get("min_p_mw"), p_mw]
    values = [abs(float(c)) for c in candidates if c is not None and np.isfinite(float(c))]
    return max(values) if values else 0.0


def _metered_scale(net, metered, load_p, load_q, sgen_p, sgen_q, stor_p, stor_q,
                   fixed_loads=frozenset()):
    """Load factors per load so the forecast matches the metered head flows (loads in
    ``fixed_loads`` are metered themselves: they keep factor 1)."""
    groups = [(heads, p, loads.difference(list(fixed_loads)))
              for heads, p, loads in _feeder_groups(net, metered)]
    scale = pd.Series(1.0, index=net.load.index)
    work = copy.deepcopy(net)
    # The forecasts already include pandapower's scaling; the copy must not apply it twice.
    for table, p, q in (("sgen", sgen_p, sgen_q), ("storage", stor_p, stor_q)):
        if len(work[table]):
            work[table]["p_mw"] = p
            work[table]["q_mvar"] = q
            work[table]["scaling"] = 1.0
    work.load["scaling"] = 1.0
    clipped: set[str] = set()
    last: dict[int, tuple[float, float]] = {}  # group -> (k, head flow) of the last solve
    for _ in range(_SCALE_ITERATIONS):
        work.load["p_mw"] = load_p * scale
        work.load["q_mvar"] = load_q * scale
        try:
            runpp_warm(work)
        except Exception as exc:  # pandapower raises several kinds for a failed solve
            return pd.Series(1.0, index=net.load.index), {"scale": {}, "message": (
                f"load scaling skipped: the power flow of the forecast failed "
                f"({type(exc).__name__}: {exc})")}
        worst_mw = 0.0
        for g, (heads, p_metered, loads) in enumerate(groups):
            p_nominal = float(load_p[loads].sum())
            if abs(p_nominal) < 1e-9:
                continue  # nothing to scale behind these heads
            flow = sum(_head_flow_mw(work, h) for h in heads)
            mismatch = p_metered - flow
            worst_mw = max(worst_mw, abs(mismatch))
            # All loads of a group share one factor k. First step k ← k + ΔP / P_load; then
            # secant steps, whose slope includes the losses' share of a change in load.
            k = float(scale[loads].iloc[0])
            slope = p_nominal
            if g in last and abs(k - last[g][0]) > 1e-12:
                secant = (flow - last[g][1]) / (k - last[g][0])
                if secant * p_nominal > 0:
                    slope = secant
            last[g] = (k, flow)
            k = k + mismatch / slope
            if not SCALE_BOUNDS[0] <= k <= SCALE_BOUNDS[1]:
                clipped.add(" + ".join(heads))
            scale[loads] = float(np.clip(k, *SCALE_BOUNDS))
        if worst_mw < _SCALE_TOLERANCE_MW:
            break
    attrs: dict = {"scale": {" + ".join(heads): (float(scale[loads].iloc[0]) if len(loads)
                                                 else 1.0) for heads, _p, loads in groups},
                   "message": ""}
    if clipped:
        attrs["message"] = (f"load scaling clipped to {SCALE_BOUNDS} for "
                            f"{', '.join(sorted(clipped))}: check meter, forecast, topology")
    return scale, attrs


def _head_flow_mw(net: pp.pandapowerNet, head: str) -> float:
    if head == "substation":
        return float(net.res_ext_grid["p_mw"].sum())
    table, _name = split_ref(head)
    idx = element_index(net, [head])[head]
    column = "p_hv_mw" if table == "trafo" else "p_from_mw"
    return float(net[f"res_{table}"].at[idx, column])


def _feeder_groups(net, metered) -> list[tuple[list[str], float, pd.Index]]:
    """(heads, metered P [MW], load indices) per group of feeders."""
    live_loads = net.load.index[net.load["in_service"].astype(bool)]
    if not isinstance(metered, Mapping):
        return [(["substation"], float(metered), live_loads)]
    heads = dict(metered)
    index = element_index(net, heads)
    graph = top.create_nxgraph(net, respect_switches=True)
    downstream: dict[str, int] = {}
    for head, idx in index.items():
        table, _name = split_ref(head)
        if table == "trafo":
            downstream[head] = int(net.trafo.at[idx, "lv_bus"])
        elif table == "line":
            downstream[head] = int(net.line.at[idx, "to_bus"])
        else:
            raise ValueError(f"metered_feeder_p_mw: a feeder head is a 'trafo:…' or "
                             f"'line:…'; found {head!r}")
        key = (table, idx)
        for u, v, k in list(graph.edges(keys=True)):
            if k == key:
                graph.remove_edge(u, v, k)
    slack_buses = set(int(b) for b in net.ext_grid.loc[net.ext_grid["in_service"]
                                                       .astype(bool), "bus"])
    by_component: dict[frozenset, list[str]] = {}
    for head, bus in downstream.items():
        if bus not in graph:
            continue  # head's downstream bus out of service: nothing to scale
        component = frozenset(nx.node_connected_component(graph, bus))
        if component & slack_buses:
            raise ValueError(f"metered_feeder_p_mw: {head!r} is not a feeder head: its "
                             f"downstream side reaches an ext_grid bus")
        by_component.setdefault(component, []).append(head)
    groups = []
    for component, group_heads in by_component.items():
        loads = live_loads[net.load.loc[live_loads, "bus"].isin(component).to_numpy()]
        groups.append((group_heads, float(sum(heads[h] for h in group_heads)), loads))
    return groups
