"""The telemetry plan: the estimator's measurement rows of a point set, built once.

A DMS cycle's measurement table (telemetry rows, pseudo-measurements, the slack-voltage
anchor) has the same structure cycle after cycle: the same points on the same topology.
Building it as pandas tables costs more than the WLS solve on a small grid. The plan maps
each row of that table onto its source — a telemetry point, a pseudo-measurement row, an
ext_grid set-point — together with everything fixed about it (kind, model target, p.u.
conversion, names), so that a cycle only fills the ``value``/``σ`` arrays.

Plans are cached by the admittance model's structure key
(:func:`twin.dms.admittance.model_key`), the tuple of point identities
``(element, quantity)``, the stale points dropped, and the pseudo-measurements'
structure; :mod:`twin.dms.state_estimation` builds them from its own (pandas) path, so
both give the same rows in the same order.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np
import pandapower as pp
import pandas as pd

from twin.dms import wls
from twin.dms.admittance import GridModel
from twin.dms.object_cache import ObjectCache
from twin.grid.names import split_ref

#: Model branch side of a branch measurement's ``side``.
_FROM_SIDES = {"from": True, "hv": True, "to": False, "lv": False}
_SIDE_BUS = {("line", "from"): "from_bus", ("line", "to"): "to_bus",
             ("trafo", "hv"): "hv_bus", ("trafo", "lv"): "lv_bus"}


@dataclass(frozen=True)
class RowStructure:
    """What is fixed about measurement rows: model kind/target and the p.u. conversion."""

    kind: np.ndarray        # wls.KIND_* (−1: not a measurement the estimator uses)
    target: np.ndarray      # model bus or branch (−1: not in the model)
    current: np.ndarray     # bool: |I| [kA] → p.u. by ``factor``
    factor: np.ndarray      # √3 · vn_kv / base_mva at currents
    power: np.ndarray       # bool: p/q [MW, Mvar] → p.u. (÷ base_mva)
    bus_power: np.ndarray   # bool: a bus p/q (demand → injection: × −1)
    base_mva: float

    def take(self, mask: np.ndarray) -> RowStructure:
        return RowStructure(self.kind[mask], self.target[mask], self.current[mask],
                            self.factor[mask], self.power[mask], self.bus_power[mask],
                            self.base_mva)

    def arrays(self, value: np.ndarray, sigma: np.ndarray):
        """(kind, target, value, σ, row) in model indices and p.u., rows the model holds."""
        value = np.array(value, dtype=float)
        sigma = np.array(sigma, dtype=float)
        cur = self.current
        if cur.any():
            value[cur] *= self.factor[cur]
            sigma[cur] *= self.factor[cur]
        value[self.power] /= self.base_mva
        value[self.bus_power] *= -1.0
        sigma[self.power] /= self.base_mva
        keep = (self.kind >= 0) & (self.target >= 0)
        return (self.kind[keep], self.target[keep], value[keep], sigma[keep],
                np.flatnonzero(keep))


def row_structure(net: pp.pandapowerNet, model: GridModel, meas: pd.DataFrame) -> RowStructure:
    """The :class:`RowStructure` of a measurement table (``MEASUREMENT_COLUMNS``).

    Raises
    ------
    ValueError
        For a branch ``side`` or a measurement type the estimator does not know.
    """
    m = len(meas)
    mtype = meas["measurement_type"].to_numpy()
    etype = meas["element_type"].to_numpy()
    element = meas["element"].to_numpy(dtype=np.int64)
    side = meas["side"].to_numpy()
    kind = np.full(m, -1, dtype=np.int64)
    target = np.full(m, -1, dtype=np.int64)
    current = np.zeros(m, dtype=bool)
    factor = np.ones(m)

    on_bus = etype == "bus"
    target[on_bus] = model.model_bus(element[on_bus])
    for t, k in (("v", wls.KIND_V), ("p", wls.KIND_P_BUS), ("q", wls.KIND_Q_BUS)):
        kind[on_bus & (mtype == t)] = k
    for table, branch_of in (("line", model.line_branch), ("trafo", model.trafo_branch)):
        sel = np.flatnonzero(etype == table)
        if not len(sel):
            continue
        pos = net[table].index.get_indexer(element[sel])
        target[sel] = np.where(pos >= 0, branch_of[pos], -1)
        from_side = np.array([_FROM_SIDES.get(x, None) for x in side[sel]], dtype=object)
        if any(f is None for f in from_side):
            raise ValueError(f"measurement side: expected one of {list(_FROM_SIDES)} for a "
                             f"{table}; found {sorted(set(map(str, side[sel])))}")
        from_side = from_side.astype(bool)
        for t, (k_from, k_to) in (("p", (wls.KIND_P_FROM, wls.KIND_P_TO)),
                                  ("q", (wls.KIND_Q_FROM, wls.KIND_Q_TO)),
                                  ("i", (wls.KIND_I_FROM, wls.KIND_I_TO))):
            is_t = mtype[sel] == t
            kind[sel[is_t]] = np.where(from_side[is_t], k_from, k_to)
        currents = sel[mtype[sel] == "i"]
        if len(currents):
            # i [kA] → p.u. on the base of the metered side's bus, as pandapower converts
            columns = [_SIDE_BUS[(table, str(x))] for x in side[currents]]
            buses = np.array([net[table].at[e, c] for e, c in
                              zip(element[currents], columns)], dtype=np.int64)
            vn_kv = net.bus["vn_kv"].to_numpy(dtype=float)[net.bus.index.get_indexer(buses)]
            factor[currents] = np.sqrt(3) * vn_kv / model.base_mva
            current[currents] = True
    power = np.isin(mtype, ("p", "q"))
    unknown = (kind < 0) & (target >= 0)
    if unknown.any():
        shown = sorted({f"{e}/{t}" for e, t in zip(etype[unknown], mtype[unknown])})
        raise ValueError(f"measurement: the estimator uses v, p, q at buses and p, q, i at "
                         f"lines and trafos; found {shown}")
    return RowStructure(kind, target, current, factor, power, on_bus & power,
                        float(model.base_mva))


@dataclass(frozen=True)
class PlannedMeasurements:
    """A measurement table as arrays: what the estimate loop reads of it, and the values.

    Stands in for the pandas measurement table of :mod:`twin.dms.state_estimation` on the
    numpy backend; ``take`` keeps rows (renumbered 0…m−1, as ``reset_index`` does).
    """

    model: GridModel
    structure: RowStructure
    measurement_type: np.ndarray
    source: np.ndarray
    ref: np.ndarray
    quantity: np.ndarray
    value: np.ndarray       # in the quantity's unit
    std_dev: np.ndarray

    def __len__(self) -> int:
        return len(self.value)

    def take(self, mask: np.ndarray) -> PlannedMeasurements:
        return PlannedMeasurements(self.model, self.structure.take(mask),
                                   self.measurement_type[mask], self.source[mask],
                                   self.ref[mask], self.quantity[mask], self.value[mask],
                                   self.std_dev[mask])

    def arrays(self):
        return self.structure.arrays(self.value, self.std_dev)


@dataclass(frozen=True)
class TelemetryPlan:
    """Rows of one point set on one model: telemetry, then pseudo, then slack rows."""

    template: PlannedMeasurements   # value/std_dev of the cycle it was built in
    elements: frozenset             # element names already checked against the net
    n_telemetry: int                # rows 0…n−1: the kept telemetry points, in order
    pseudo_rows: np.ndarray         # rows of the pseudo table kept (metered ones left out)
    slack_value: np.ndarray         # set-points of the slack-voltage rows (at the end)

    def fill(self, value: np.ndarray, sigma: np.ndarray, pseudo: pd.DataFrame | None,
             slack_sigma_pu: float) -> PlannedMeasurements:
        """This cycle's measurements: the plan's rows with the given values."""
        parts_v, parts_s = [value], [sigma]
        if len(self.pseudo_rows):
            parts_v.append(pseudo["value"].to_numpy(dtype=float)[self.pseudo_rows])
            parts_s.append(pseudo["std_dev"].to_numpy(dtype=float)[self.pseudo_rows])
        if len(self.slack_value):
            parts_v.append(self.slack_value)
            parts_s.append(np.full(len(self.slack_value), float(slack_sigma_pu)))
        return replace(self.template, value=np.concatenate(parts_v),
                       std_dev=np.concatenate(parts_s))


#: Plans kept (a few topologies and point sets alternate).
PLAN_CACHE_SIZE = 8
_PLANS: OrderedDict[tuple, TelemetryPlan] = OrderedDict()
#: Points → positions of those the estimator uses (SE_QUANTITIES), by point tuple.
_SE_POINTS: OrderedDict[tuple, np.ndarray] = OrderedDict()


def _remember(cache: OrderedDict, key, value) -> None:
    cache[key] = value
    while len(cache) > PLAN_CACHE_SIZE:
        cache.popitem(last=False)


def cached_plan(key: tuple) -> TelemetryPlan | None:
    plan = _PLANS.get(key)
    if plan is not None:
        _PLANS.move_to_end(key)
    return plan


def store_plan(key: tuple, plan: TelemetryPlan) -> None:
    _remember(_PLANS, key, plan)


def se_positions(points: tuple, se_quantities: dict) -> np.ndarray | None:
    """Positions in ``points`` ((element, quantity) pairs) of the estimator's quantities;
    None for a malformed element reference (the caller's full path reports it)."""
    pos = _SE_POINTS.get(points)
    if pos is None:
        try:
            pos = np.array([i for i, (e, q) in enumerate(points)
                            if (split_ref(e)[0], q) in se_quantities], dtype=np.int64)
        except ValueError:
            return None
        _remember(_SE_POINTS, points, pos)
    return pos


#: Structures of pseudo-measurement tables that their maker vouched for: (length, key).
_VOUCHED = ObjectCache(kept=8)


def vouch_pseudo_structure(pseudo: pd.DataFrame, token: tuple) -> None:
    """Declare that ``pseudo``'s structure (everything but value and σ) is the one
    ``token`` stands for: its maker built it from a plan of its own, unchanged since.
    :func:`pseudo_key` then needs no pass over its rows (~20k of them on the 10k-bus grid,
    every cycle). Only for a table nobody changes afterwards beyond value and σ."""
    _VOUCHED.put(pseudo, (len(pseudo), ("vouched", token, tuple(pseudo.columns))))


def pseudo_key(pseudo: pd.DataFrame | None, columns: tuple[str, ...]) -> tuple:
    """The structure of a pseudo-measurement table (everything but value and σ)."""
    if pseudo is None or len(pseudo) == 0:
        return ()
    hit = _VOUCHED.get(pseudo)
    if hit is not None and hit[0] == len(pseudo):
        return hit[1]
    present = [c for c in columns if c in pseudo.columns]
    return (tuple(pseudo.columns),
            tuple(zip(*(pseudo[c].to_numpy().tolist() for c in present))))


def clear_cache() -> None:
    """Forget every plan."""
    _PLANS.clear()
    _SE_POINTS.clear()
