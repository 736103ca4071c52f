"""The network model of the DMS's estimator: admittance matrices and lookups, cached.

Building pandapower's internal model (``_pd2ppc``) costs more than the estimate itself,
yet between DMS cycles it changes only when the topology or a parameter does: a switch,
a tap, a capacitor step, an element taken out of service. :func:`grid_model` builds it
once per such state — through pandapower's own conversion, so buses, auxiliary buses,
fused busbars and branch models are exactly those of pandapower's estimator — and keeps
it in a small cache keyed by a fingerprint of the tables it depends on.

Indices: *ppci* buses and branches are the in-service ones pandapower solves for (its
``ppci``); pandapower buses map to them through ``bus_lookup`` (a bus whose entry is
outside ``0 … n_bus − 1`` is not energised), lines and trafos through ``line_branch`` and
``trafo_branch`` (−1: not in the model).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandapower as pp
import pandas as pd
import scipy.sparse as sp
from pandapower.estimation.ppc_conversion import _init_ppc
from pandapower.pypower.idx_brch import F_BUS, T_BUS
from pandapower.pypower.idx_bus import BASE_KV, BUS_TYPE, REF, VA, VM
from pandapower.pypower.makeYbus import makeYbus

#: Tables and columns the model depends on: the cache key is built from their values.
#: Switch states, taps, steps and in_service are what changes between cycles; the rest
#: tells one grid from another.
_KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "bus": ("vn_kv", "in_service"),
    "line": ("from_bus", "to_bus", "length_km", "r_ohm_per_km", "x_ohm_per_km",
             "c_nf_per_km", "g_us_per_km", "parallel", "in_service"),
    "trafo": ("hv_bus", "lv_bus", "sn_mva", "vn_hv_kv", "vn_lv_kv", "vk_percent",
              "vkr_percent", "pfe_kw", "i0_percent", "shift_degree", "tap_pos",
              "tap_neutral", "tap_step_percent", "tap_step_degree", "parallel",
              "in_service"),
    "trafo3w": ("hv_bus", "mv_bus", "lv_bus", "tap_pos", "in_service"),
    "switch": ("bus", "element", "closed", "z_ohm", "in_service"),
    "shunt": ("bus", "p_mw", "q_mvar", "step", "in_service"),
    "ext_grid": ("bus", "vm_pu", "va_degree", "in_service"),
    "gen": ("bus", "vm_pu", "in_service"),
    "impedance": ("from_bus", "to_bus", "rft_pu", "xft_pu", "in_service"),
    "ward": ("bus", "pz_mw", "qz_mvar", "in_service"),
    "xward": ("bus", "pz_mw", "qz_mvar", "r_ohm", "x_ohm", "in_service"),
}

#: Models kept at once (a few topologies alternate, e.g. during FLISR).
CACHE_SIZE = 8

#: σ of pandapower's virtual zero injections [p.u.]: at auxiliary buses (trafo3w stars,
#: ``ZERO_INJECTION_STD_DEV``) and at buses made for open line switches (1e-6, which its
#: estimator floors to 1e-5 like every σ).
AUX_ZERO_INJECTION_SIGMA_PU = 1e-3
OPEN_SWITCH_BUS_SIGMA_PU = 1e-6


@dataclass(frozen=True)
class GridModel:
    """pandapower's estimator model of one topology, as arrays.

    Attributes
    ----------
    base_mva : float
        System base [MVA].
    n_bus : int
        Buses in the model (auxiliary ones included).
    Ybus, Yf, Yt : scipy.sparse.csr_matrix
        Bus admittance matrix and branch from/to-side admittance rows [p.u.].
    f_bus, t_bus : numpy.ndarray
        From and to bus of each model branch.
    base_kv : numpy.ndarray
        Nominal voltage of each model bus [kV].
    slack : numpy.ndarray of bool
        Reference buses (their angle is not a state).
    vm0_pu, va0_rad : numpy.ndarray
        Start of the Gauss–Newton iterations: pandapower's (flat, with the angles of a DC
        power flow when trafos shift the phase).
    bus_lookup : numpy.ndarray
        Model bus of each pandapower bus index (≥ ``n_bus`` or < 0: not in the model).
    line_branch, trafo_branch : numpy.ndarray
        Model branch of each row of ``net.line`` / ``net.trafo`` in table order (−1: none).
    virtual_bus, virtual_sigma_pu : numpy.ndarray
        Model buses with pandapower's virtual zero-injection measurements (P and Q) and
        their σ [p.u.].
    """

    base_mva: float
    n_bus: int
    Ybus: sp.csr_matrix
    Yf: sp.csr_matrix
    Yt: sp.csr_matrix
    f_bus: np.ndarray
    t_bus: np.ndarray
    base_kv: np.ndarray
    slack: np.ndarray
    vm0_pu: np.ndarray
    va0_rad: np.ndarray
    bus_lookup: np.ndarray
    line_branch: np.ndarray
    trafo_branch: np.ndarray
    virtual_bus: np.ndarray
    virtual_sigma_pu: np.ndarray

    def model_bus(self, buses: np.ndarray) -> np.ndarray:
        """Model bus of pandapower bus indices; −1 where not in the model."""
        buses = np.asarray(buses, dtype=np.int64)
        out = np.full(len(buses), -1, dtype=np.int64)
        ok = (buses >= 0) & (buses < len(self.bus_lookup))
        pos = self.bus_lookup[buses[ok]]
        out[ok] = np.where((pos >= 0) & (pos < self.n_bus), pos, -1)
        return out


_CACHE: OrderedDict[bytes, GridModel] = OrderedDict()


def grid_model(net: pp.pandapowerNet) -> GridModel:
    """The model of ``net`` as it stands, from the cache or built (``net`` not modified)."""
    key = model_key(net)
    model = _CACHE.get(key)
    if model is None:
        model = build_grid_model(net)
        _CACHE[key] = model
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return model


def clear_cache() -> None:
    """Forget every cached model (after changing a parameter the key does not cover)."""
    _CACHE.clear()


def model_key(net: pp.pandapowerNet) -> bytes:
    """Fingerprint of the values the model depends on (:data:`_KEY_COLUMNS`)."""
    parts = [np.float64(net.get("sn_mva", 1.0)).tobytes()]
    for table, columns in _KEY_COLUMNS.items():
        df = net.get(table)
        if not isinstance(df, pd.DataFrame) or not len(df):
            parts.append(b"|0")
            continue
        parts.append(f"|{table}{len(df)}".encode())
        parts.append(df.index.to_numpy().tobytes())
        for column in columns:
            if column in df.columns:
                parts.append(np.asarray(df[column].to_numpy(), dtype=np.float64).tobytes())
    if len(net.switch):
        parts.append("".join(map(str, net.switch["et"].tolist())).encode())
    return b"".join(parts)


def build_grid_model(net: pp.pandapowerNet) -> GridModel:
    """pandapower's estimator model of ``net`` (converted on a copy: ``net`` is not changed)."""
    work = copy.deepcopy(net)
    # pandapower's estimator does the same: flat start, DC angles behind phase shifters
    _ppc, ppci = _init_ppc(work, None, None, True)
    bus = ppci["bus"]
    branch = ppci["branch"]
    base_mva = float(ppci["baseMVA"])
    Ybus, Yf, Yt = makeYbus(base_mva, bus, branch)
    n_bus = bus.shape[0]
    lookups = work["_pd2ppc_lookups"]
    bus_lookup = np.asarray(lookups["bus"], dtype=np.int64)
    branch_is = np.asarray(ppci["internal"]["branch_is"], dtype=bool)
    ppci_row = np.cumsum(branch_is) - 1

    def branch_map(table: str) -> np.ndarray:
        out = np.full(len(net[table]), -1, dtype=np.int64)
        span = lookups["branch"].get(table) if "branch" in lookups else None
        if span is None:
            return out
        rows = np.arange(span[0], span[1])
        return np.where(branch_is[rows], ppci_row[rows], -1)

    virtual = np.full(n_bus, np.nan)
    aux = {k: v for k, v in (lookups.get("aux") or {}).items() if k != "xward"}
    if aux:
        aux_bus = bus_lookup[np.concatenate(list(aux.values())).astype(np.int64)]
        virtual[aux_bus[(aux_bus >= 0) & (aux_bus < n_bus)]] = AUX_ZERO_INJECTION_SIGMA_PU
    mapped = bus_lookup[bus_lookup >= 0]
    virtual[np.setdiff1d(np.arange(n_bus), mapped)] = OPEN_SWITCH_BUS_SIGMA_PU
    virtual_bus = np.flatnonzero(np.isfinite(virtual))

    return GridModel(
        base_mva=base_mva, n_bus=n_bus,
        Ybus=sp.csr_matrix(Ybus), Yf=sp.csr_matrix(Yf), Yt=sp.csr_matrix(Yt),
        f_bus=branch[:, F_BUS].real.astype(np.int64),
        t_bus=branch[:, T_BUS].real.astype(np.int64),
        base_kv=bus[:, BASE_KV].real.astype(float),
        slack=bus[:, BUS_TYPE].real == REF,
        vm0_pu=bus[:, VM].real.astype(float).copy(),
        va0_rad=np.radians(bus[:, VA].real.astype(float)),
        bus_lookup=bus_lookup,
        line_branch=branch_map("line"), trafo_branch=branch_map("trafo"),
        virtual_bus=virtual_bus, virtual_sigma_pu=virtual[virtual_bus],
    )
