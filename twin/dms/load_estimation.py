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

import dataclasses
import itertools
import weakref
from dataclasses import dataclass
from typing import Mapping, Sequence

import networkx as nx
import numpy as np
import pandapower as pp
import pandapower.topology as top
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from twin.dms import pf
from twin.dms import telemetry_plan as tplan
from twin.dms.measurements import MEASUREMENT_COLUMNS, element_index
from twin.dms.netcopy import INJECTION_TABLES, working_copy
from twin.dms.pf_arrays import ArrayPowerFlow
from twin.grid.names import element_names, split_ref
from twin.grid.pgm import PowerFlowFailed

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
    plan = _plan(net)
    # arrays in table order (numpy, not Series: this runs every cycle)
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
    # σ of known powers by (table, quantity): position in the table → σ
    known_sigma: dict[tuple[str, str], dict[int, float]] = {}
    for (table, idx, quantity), (value, sigma) in (known or {}).items():
        pos = plan.position(table, idx) if (table, quantity) in values else -1
        if pos < 0:
            raise ValueError(f"known: expected (load|sgen|storage, index, p_mw|q_mvar) of "
                             f"the net; found {(table, idx, quantity)}")
        values[(table, quantity)][pos] = float(value)
        known_sigma.setdefault((table, quantity), {})[pos] = float(sigma)
    fixed_loads = sorted({int(net.load.index[p]) for (t, _q), sig in known_sigma.items()
                          if t == "load" for p in sig})

    scale = np.ones(len(net.load))
    attrs: dict = {"scale": {}, "message": ""}
    if metered_feeder_p_mw is not None and len(plan.element_pos["load"]):
        scale, attrs = _metered_scale(net, plan, metered_feeder_p_mw, load_p, load_q,
                                      sgen_p, sgen_q, stor_p, stor_q, fixed_loads)
    load_p = load_p * scale
    load_q = load_q * scale

    # each in-service element's demand and σ, loads then sgens then storage (the order
    # the sums per bus take: np.bincount adds in input order)
    parts = {"p": [], "q": []}
    sigmas = {"p": [], "q": []}
    for table, sign in (("load", 1.0), ("sgen", -1.0), ("storage", 1.0)):
        pos = plan.element_pos[table]
        if not len(pos):
            continue
        for kind, quantity in (("p", "p_mw"), ("q", "q_mvar")):
            value = values[(table, quantity)] if table != "load" else \
                (load_p if kind == "p" else load_q)
            if table == "storage":
                forecast_sigma = frac * _storage_ratings_mva(net.storage, stor_p)
            else:
                forecast_sigma = frac * np.abs(value)
            sigma = forecast_sigma.copy()
            for p, s in known_sigma.get((table, quantity), {}).items():
                sigma[p] = s
            parts[kind].append(-value[pos] if sign < 0 else value[pos])
            sigmas[kind].append(sigma[pos])
    n_slot = len(plan.slot_bus)
    slots = plan.element_slot
    demand = {k: np.bincount(slots, weights=np.concatenate(parts[k]) if parts[k] else None,
                             minlength=n_slot) if len(slots) else np.zeros(0)
              for k in ("p", "q")}
    var = {k: np.bincount(slots, weights=np.concatenate(sigmas[k]) ** 2, minlength=n_slot)
           if len(slots) else np.zeros(0) for k in ("p", "q")}
    # the scale of a bus's loads: its last unmetered in-service load's (index order)
    bus_scale = np.ones(n_slot)
    load_pos = plan.element_pos["load"]
    free = ~np.isin(net.load.index.to_numpy()[load_pos], fixed_loads) if len(load_pos) \
        else np.zeros(0, dtype=bool)
    if free.any():
        load_slots = slots[:len(load_pos)][free]
        last = len(load_slots) - 1 - np.unique(load_slots[::-1], return_index=True)[1]
        bus_scale[load_slots[last]] = scale[load_pos[free][last]]

    rows = plan.rows
    n_pseudo = 2 * len(rows)
    value = np.zeros(n_pseudo + 2 * len(plan.zero_bus))
    std = np.full(len(value), float(zero_injection_sigma_mw))
    row_scale = np.ones(len(value))
    for k, (kind, _q) in enumerate((("p", "p_mw"), ("q", "q_mvar"))):
        value[k:n_pseudo:2] = demand[kind][rows]
        std[k:n_pseudo:2] = np.maximum(np.sqrt(var[kind][rows]), sigma_floor_mw)
        row_scale[k:n_pseudo:2] = bus_scale[rows]
    columns = dict(plan.columns)
    columns["value"], columns["std_dev"], columns["scale"] = value, std, row_scale
    # the dict in column order: DataFrame(dict, columns=…) reindexes, twice the time
    out = pd.DataFrame({name: columns[name] for name in _RESULT_COLUMNS})
    out.attrs.update(attrs)
    # the rows are the plan's: the estimator's plan lookup needs no pass over them
    tplan.vouch_pseudo_structure(out, ("load_estimation", plan.token))
    return out


_RESULT_COLUMNS = tuple(MEASUREMENT_COLUMNS) + ("scale",)


@dataclass(frozen=True)
class _Plan:
    """What the pseudo-measurements of one net structure are made of (see :func:`_plan`).

    ``element_pos[table]``: positions of the in-service loads, sgens, storage units;
    ``element_slot``: each of those (loads, sgens, storage in turn) → its bus's slot;
    ``slot_bus``: the buses with an in-service element, sorted; ``rows``: the slots that
    get a pseudo-measurement (live, not fused with a slack bus); ``zero_bus``: the
    zero-injection buses; ``columns``: the columns of the result that do not change
    with the values.
    """

    element_pos: dict[str, np.ndarray]
    element_slot: np.ndarray
    slot_bus: np.ndarray
    rows: np.ndarray
    zero_bus: np.ndarray
    columns: dict[str, np.ndarray]
    index_of: dict[str, dict[int, int]]
    key: bytes  # of the structure it was made for (:func:`_plan_key`)
    token: int = dataclasses.field(default_factory=lambda: next(_PLAN_TOKENS))  # unique

    def position(self, table: str, idx) -> int:
        return self.index_of.get(table, {}).get(int(idx), -1)


_PLAN_TOKENS = itertools.count()

#: Plans of the last few structures, by :func:`_plan_key`; each with a weak reference to
#: the bus table it named its rows from (names are not part of the key).
_PLANS: dict[bytes, tuple[weakref.ref, _Plan]] = {}
_PLANS_KEPT = 8


def _plan_key(net: pp.pandapowerNet) -> bytes:
    """The values the plan and the feeder groups depend on: buses in service, the
    elements' buses and service states, switches (fused nodes, open lines), lines and
    trafos (the feeders' graph) and the ext_grids."""
    parts = [net.bus.index.to_numpy(dtype=np.int64).tobytes(),
             net.bus["in_service"].to_numpy(dtype=bool).tobytes()]
    for table in _PLAN_TABLES:
        df = net.get(table)
        if not isinstance(df, pd.DataFrame) or not len(df):
            parts.append(b"|")
            continue
        parts.append(f"|{table}".encode() + df.index.to_numpy(dtype=np.int64).tobytes())
        for column in _PLAN_COLUMNS:
            if column in df.columns:
                # not to_numpy(na_value=…): ten times slower, and None becomes NaN anyway
                parts.append(np.asarray(df[column].to_numpy(), dtype=float).tobytes())
        if table == "switch":
            parts.append("".join(map(str, df["et"].tolist())).encode())
    return b"".join(parts)


_PLAN_TABLES = FORECAST_TABLES + OTHER_INJECTION_TABLES + (
    "ext_grid", "switch", "line", "trafo", "trafo3w", "impedance")
_PLAN_COLUMNS = ("bus", "from_bus", "to_bus", "hv_bus", "mv_bus", "lv_bus", "element",
                 "in_service", "closed", "z_ohm")


def _plan(net: pp.pandapowerNet) -> _Plan:
    key = _plan_key(net)
    hit = _PLANS.get(key)
    if hit is not None and hit[0]() is net.bus:
        return hit[1]
    plan = _build_plan(net, key)
    _PLANS.pop(key, None)
    while len(_PLANS) >= _PLANS_KEPT:
        del _PLANS[next(iter(_PLANS))]
    _PLANS[key] = (weakref.ref(net.bus), plan)
    return plan


def _build_plan(net: pp.pandapowerNet, key: bytes) -> _Plan:
    element_pos, buses, index_of = {}, [], {}
    for table in FORECAST_TABLES:
        df = net[table]
        index_of[table] = {int(i): p for p, i in enumerate(df.index)}
        pos = np.flatnonzero(df["in_service"].to_numpy(dtype=bool)) if len(df) \
            else np.zeros(0, dtype=np.int64)
        element_pos[table] = pos
        buses.append(df["bus"].to_numpy(dtype=np.int64)[pos] if len(df)
                     else np.zeros(0, dtype=np.int64))
    slot_bus, element_slot = np.unique(np.concatenate(buses), return_inverse=True)
    live = set(int(i) for i in net.bus.index[net.bus["in_service"].astype(bool)])
    slack = slack_nodes(net)
    rows = np.array([k for k, b in enumerate(slot_bus.tolist()) if b in live and b not in slack],
                    dtype=np.int64)
    zero = np.asarray(zero_injection_buses(net), dtype=np.int64)
    bus_ref = dict(zip(net.bus.index, (f"bus:{n}" for n in element_names(net, "bus"))))

    def repeat2(items) -> list:
        return [x for x in items for _k in (0, 1)]

    row_bus = repeat2(slot_bus[rows].tolist()) + repeat2(zero.tolist())
    n_pseudo = 2 * len(rows)
    source = ["pseudo"] * n_pseudo + ["zero_injection"] * (len(row_bus) - n_pseudo)
    quantity = ["p_mw", "q_mvar"] * (len(row_bus) // 2)
    refs = [bus_ref[b] for b in row_bus]
    columns = {
        "name": np.array([f"{r}/{q} ({s})" for r, q, s in zip(refs, quantity, source)],
                         dtype=object),
        "measurement_type": np.array(["p", "q"] * (len(row_bus) // 2), dtype=object),
        "element_type": np.full(len(row_bus), "bus", dtype=object),
        "element": np.array(row_bus, dtype=np.int64),
        "side": np.full(len(row_bus), None, dtype=object),
        "ref": np.array(refs, dtype=object),
        "quantity": np.array(quantity, dtype=object),
        "source": np.array(source, dtype=object),
        "source_t_s": np.full(len(row_bus), np.nan),
        "stale": np.zeros(len(row_bus), dtype=bool),
    }
    for array in columns.values():
        array.flags.writeable = False  # shared by every cycle's result
    return _Plan(element_pos, element_slot.astype(np.int64), slot_bus, rows, zero, columns,
                 index_of, key)


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
    buses = net.bus.index.to_numpy(dtype=np.int64)
    sw = net.switch
    pairs = np.empty((0, 2), dtype=np.int64)
    if len(sw):
        fused = (sw["et"] == "b") & sw["closed"].astype(bool)
        if "z_ohm" in sw.columns:
            fused &= ~(sw["z_ohm"].fillna(0.0) > 0)
        pairs = sw.loc[fused, ["bus", "element"]].to_numpy(dtype=np.int64)
    # the same switching every cycle: the components are computed once per state
    key = (buses.tobytes(), pairs.tobytes())
    node = _BUS_NODES.get(key)
    if node is None:
        node = _bus_nodes(buses, pairs)
        if len(_BUS_NODES) >= 8:
            del _BUS_NODES[next(iter(_BUS_NODES))]
        _BUS_NODES[key] = node
    return dict(node)


_BUS_NODES: dict[tuple[bytes, bytes], dict[int, int]] = {}


def _bus_nodes(buses: np.ndarray, pairs: np.ndarray) -> dict[int, int]:
    n = len(buses)
    ends = pd.Index(buses).get_indexer(pairs.ravel()).reshape(-1, 2)
    ends = ends[(ends >= 0).all(axis=1)]
    graph = sp.coo_matrix((np.ones(len(ends)), (ends[:, 0], ends[:, 1])), shape=(n, n))
    _n, label = connected_components(graph, directed=False)
    # each component's representative: its smallest bus index
    rep = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(rep, label, buses)
    return dict(zip(buses.tolist(), rep[label].tolist()))


def _per_element(net: pp.pandapowerNet, table: str, factor: FactorLike) -> np.ndarray:
    """A factor (or value) per row of ``net[table]``, in table order (a new array)."""
    index = net[table].index
    if isinstance(factor, pd.Series):
        missing = index.difference(factor.index)
        if len(missing):
            raise ValueError(f"{table} factor: a Series must cover every {table} index; "
                             f"missing {list(missing)[:6]}")
        return factor.reindex(index).to_numpy(dtype=float, copy=True)
    values = np.asarray(factor, dtype=float)
    if values.ndim == 0:
        return np.full(len(index), float(values))
    if values.shape != (len(index),):
        raise ValueError(f"{table} factor: expected a scalar or {len(index)} values "
                         f"(one per {table}); found shape {values.shape}")
    return values.copy()


def _nominal(net: pp.pandapowerNet, table: str, column: str) -> np.ndarray:
    """``net[table][column]`` times pandapower's ``scaling`` (what a power flow uses),
    in table order (a new array: callers write into it)."""
    df = net[table]
    values = df[column].to_numpy(dtype=float, copy=True)
    if "scaling" in df.columns:
        scaling = df["scaling"].to_numpy(dtype=float)
        values = values * np.where(np.isnan(scaling), 1.0, scaling)
    return values


def _storage_ratings_mva(storage: pd.DataFrame, p_mw: np.ndarray) -> np.ndarray:
    """Per storage unit the largest finite of |sn_mva|, |max_p_mw|, |min_p_mw|, |p| [MVA]
    (0 if none is)."""
    candidates = [storage[c].to_numpy(dtype=float) for c in ("sn_mva", "max_p_mw", "min_p_mw")
                  if c in storage.columns] + [np.asarray(p_mw, dtype=float)]
    stacked = np.abs(np.vstack(candidates))
    return np.max(np.where(np.isfinite(stacked), stacked, 0.0), axis=0)


def _metered_scale(net, plan: _Plan, metered, load_p_mw, load_q_mvar, sgen_p, sgen_q,
                   stor_p, stor_q, fixed_loads=()):
    """Load factors per load (array in table order) so the forecast matches the metered
    head flows (loads in ``fixed_loads`` are metered themselves: they keep factor 1)."""
    groups, at = _scaling_groups(net, plan, metered, fixed_loads)
    k = np.ones(len(net.load))
    flows = _ForecastFlows(net, {"sgen": (sgen_p, sgen_q), "storage": (stor_p, stor_q)})
    clipped: set[str] = set()
    last: dict[int, tuple[float, float]] = {}  # group -> (k, head flow) of the last solve
    for _iteration in range(_SCALE_ITERATIONS):
        try:
            flows.solve(load_p_mw * k, load_q_mvar * k)
        except Exception as exc:  # pandapower raises several kinds for a failed solve
            return np.ones(len(net.load)), {"scale": {}, "message": (
                f"load scaling skipped: the power flow of the forecast failed "
                f"({type(exc).__name__}: {exc})")}
        worst_mw = 0.0
        for g, ((heads, p_metered), (pos, readers)) in enumerate(zip(groups, at)):
            p_nominal = float(load_p_mw[pos].sum())
            if abs(p_nominal) < 1e-9:
                continue  # nothing to scale behind these heads
            flow = sum(_head_flow(flows, reader) for reader in readers)
            mismatch = p_metered - flow
            worst_mw = max(worst_mw, abs(mismatch))
            # All loads of a group share one factor k. First step k ← k + ΔP / P_load; then
            # secant steps, whose slope includes the losses' share of a change in load.
            k_g = float(k[pos[0]])
            slope = p_nominal
            if g in last and abs(k_g - last[g][0]) > 1e-12:
                secant = (flow - last[g][1]) / (k_g - last[g][0])
                if secant * p_nominal > 0:
                    slope = secant
            last[g] = (k_g, flow)
            k_g = k_g + mismatch / slope
            if not SCALE_BOUNDS[0] <= k_g <= SCALE_BOUNDS[1]:
                clipped.add(" + ".join(heads))
            k[pos] = float(np.clip(k_g, *SCALE_BOUNDS))
        if worst_mw < _SCALE_TOLERANCE_MW:
            break
    attrs: dict = {"scale": {" + ".join(heads): (float(k[pos[0]]) if len(pos) else 1.0)
                             for (heads, _p), (pos, _r) in zip(groups, at)},
                   "message": ""}
    if clipped:
        attrs["message"] = (f"load scaling clipped to {SCALE_BOUNDS} for "
                            f"{', '.join(sorted(clipped))}: check meter, forecast, topology")
    return k, attrs


class _ForecastFlows:
    """Power flows of ``net`` with its injections replaced by forecast arrays (pandapower's
    ``scaling`` applied already), for the load scaling's iterations.

    On the cached power-grid-model of the net's structure (:mod:`twin.dms.pf`) the arrays
    go straight into the solver: no copy of the net, no table written. Otherwise (a new
    structure, a net it does not model, a failed solve) on a working copy whose injection
    tables are set, solved by :class:`ArrayPowerFlow`: pandapower where needed.
    """

    def __init__(self, net: pp.pandapowerNet, fixed: dict[str, tuple[np.ndarray, np.ndarray]]):
        self.net, self.fixed = net, fixed
        self.solver = pf.cached_solver(pf.structure_key(net))
        self.res: dict[str, dict[str, np.ndarray]] | None = None
        self.work: pp.pandapowerNet | None = None
        self.flows: ArrayPowerFlow | None = None

    def solve(self, load_p_mw: np.ndarray, load_q_mvar: np.ndarray) -> None:
        if self.solver is not None:
            try:
                self.res = self.solver.solve(
                    self.net, {**self.fixed, "load": (load_p_mw, load_q_mvar)})
                return
            except PowerFlowFailed:
                self.solver = None  # pandapower from here on, from its own start
        self.res = None
        first = self.work is None
        if first:
            self.work = working_copy(self.net, INJECTION_TABLES)  # only injections change
            # the arrays include pandapower's scaling: the copy must not apply it twice
            for table, (p, q) in self.fixed.items():
                if len(self.work[table]):
                    self.work[table]["p_mw"] = p
                    self.work[table]["q_mvar"] = q
                    self.work[table]["scaling"] = 1.0
            self.work.load["scaling"] = 1.0
            self.flows = ArrayPowerFlow(self.work)
        self.work.load["p_mw"] = load_p_mw
        self.work.load["q_mvar"] = load_q_mvar
        self.flows.solve(same_structure=not first)

    def values(self, table: str, column: str) -> np.ndarray:
        """``res_<table>[column]`` of the last solve, in table order."""
        if self.res is not None:
            return self.res[table][column]
        return self.flows.values(table, column)


#: Feeder groups of the last few (structure, heads, metered loads): the graph search
#: behind them costs more than the rest of the load estimation.
_GROUPS: dict[tuple, tuple[weakref.ref, list, list]] = {}
_GROUPS_KEPT = 8


def _scaling_groups(net, plan: _Plan, metered, fixed_loads):
    """(heads, metered P [MW]) per group and (load positions, head readers) per group."""
    if not isinstance(metered, Mapping):
        metered_p = {"substation": float(metered)}
        key = ("substation", tuple(fixed_loads), plan.key)
    else:
        metered_p = dict(metered)
        index = element_index(net, metered_p)
        key = (tuple(index.items()), tuple(fixed_loads), plan.key)
    hit = _GROUPS.get(key)
    if hit is None or hit[0]() is not net.bus:
        groups = _feeder_groups(net, metered)
        # positions in net.load and where each head's flow is read: arrays, not Series,
        # in the loop (each pandas lookup costs more than the arithmetic)
        heads_of = [heads for heads, _p, _loads in groups]
        at = [(net.load.index.get_indexer(loads.difference(list(fixed_loads))),
               [_head_reader(net, h) for h in heads]) for heads, _p, loads in groups]
        _GROUPS.pop(key, None)
        while len(_GROUPS) >= _GROUPS_KEPT:
            del _GROUPS[next(iter(_GROUPS))]
        _GROUPS[key] = hit = (weakref.ref(net.bus), heads_of, at)
    _ref, heads_of, at = hit
    groups = [(heads, float(sum(metered_p[h] for h in heads))) for heads in heads_of]
    return groups, at


def _head_reader(net: pp.pandapowerNet, head: str) -> tuple[str, int, str]:
    """Where a head's active power flow [MW] is read: (table, position, column)."""
    if head == "substation":
        return ("ext_grid", -1, "p_mw")
    table, _name = split_ref(head)
    idx = element_index(net, [head])[head]
    column = "p_hv_mw" if table == "trafo" else "p_from_mw"
    return (table, int(net[table].index.get_loc(idx)), column)


def _head_flow(flows: _ForecastFlows, reader: tuple[str, int, str]) -> float:
    table, pos, column = reader
    values = flows.values(table, column)
    if pos < 0:  # the substation: all ext_grids (pandas' sum skips NaN)
        return float(np.nansum(values))
    return float(values[pos])


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
