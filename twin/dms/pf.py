"""The DMS's power flows: many small what-ifs on copies of one model.

Each what-if is solved by power-grid-model (:mod:`twin.grid.pgm`) on a model cached by the
net's *structure* — its parameters, switching, taps and service states, hashed — so the
copies a cycle makes of the DMS's model, and the same tap what-ifs cycle after cycle, reuse
one built model: a what-if costs well under a millisecond on CIGRE MV instead of a
pandapower power flow (6–20 ms, most of it converting the net). The first solve of a new
structure is pandapower's (it also provides the internal case the model is built from);
nets power-grid-model does not model stay with pandapower.

pandapower's default ``init="auto"`` looks up the slack voltages with several
``DataFrame.query`` calls on every run; after one converged run the previous results are the
better start anyway, and the first run starts from a DC power flow (``init="dc"``).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import pandapower as pp
import pandas as pd

from twin.grid.model import RESULT_SPEC
from twin.grid.pgm import PgmSolver, PgmUnsupported, PowerFlowFailed, unsupported_reason

#: Models kept (least recently used dropped): a DMS's model, its tap and capacitor
#: what-ifs and a few switching states.
_CACHE_SIZE = 32
_cache: OrderedDict[bytes, PgmSolver | None] = OrderedDict()  # None: not modelled

#: The columns whose values make the structure of a net (with each table's index).
_STRUCTURE = {
    "bus": ("vn_kv", "in_service"),
    "line": ("from_bus", "to_bus", "length_km", "r_ohm_per_km", "x_ohm_per_km", "c_nf_per_km",
             "g_us_per_km", "max_i_ka", "df", "parallel", "in_service"),
    "trafo": ("hv_bus", "lv_bus", "sn_mva", "vn_hv_kv", "vn_lv_kv", "vk_percent",
              "vkr_percent", "pfe_kw", "i0_percent", "shift_degree", "tap_pos", "tap_neutral",
              "tap_step_percent", "tap_step_degree", "parallel", "df", "in_service"),
    "switch": ("bus", "element", "closed", "z_ohm"),
    "ext_grid": ("bus",),
    "load": ("bus",), "sgen": ("bus",), "storage": ("bus",),
    "shunt": ("bus", "vn_kv"),
}
_TEXT = {"switch": ("et",), "trafo": ("tap_side",)}


def structure_key(net: pp.pandapowerNet) -> bytes:
    """A digest of what a power-flow model of ``net`` is built from (not its injections).

    Column by column: one float block of a mixed-dtype frame would make pandas consolidate
    (ten times slower). ``np.asarray(…, float)`` rather than ``to_numpy(dtype=float,
    na_value=nan)``: the same values (None becomes NaN) at a quarter of the time, and
    this runs for every what-if."""
    h = hashlib.blake2b(digest_size=16)
    for table, columns in _STRUCTURE.items():
        df = net[table]
        h.update(table.encode())
        h.update(np.asarray(df.index.to_numpy(), dtype=np.int64).tobytes())
        if not len(df):
            continue
        for col in columns:
            if col in df.columns:
                h.update(np.asarray(df[col].to_numpy(), dtype=float).tobytes())
        for col in _TEXT.get(table, ()):
            if col in df.columns:
                h.update("|".join(map(str, df[col].tolist())).encode())
    h.update(str(float(net.sn_mva)).encode() + str(float(net.f_hz)).encode())
    return h.digest()


def _solver_for(net: pp.pandapowerNet) -> tuple[PgmSolver | None, bool]:
    """The cached model of ``net``'s structure (None where power-grid-model does not model
    the net), and whether ``net`` is solved already: a miss builds the model after a
    pandapower power flow of the net, whose result stands."""
    key = structure_key(net)
    if key in _cache:
        return cached_solver(key), False
    solver: PgmSolver | None = None
    solved = False
    if not unsupported_reason(net):
        # the internal case to build from; without numba, whose compilation (seconds per
        # process) buys nothing for a solve per structure
        runpp_pandapower(net, numba=False)
        solved = True
        try:
            solver = PgmSolver(net)
        except PgmUnsupported:
            solver = None
        else:
            # this what-if's result is the model's, as on every later hit: the numbers of a
            # run must not depend on what an earlier run in the process left in the cache
            try:
                write_results(net, solver.solve(net))
            except PowerFlowFailed:
                pass  # pandapower's result stands
    _cache[key] = solver
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return solver, solved


def cached_solver(key: bytes) -> PgmSolver | None:
    """The model cached for the structure ``key`` (:func:`structure_key`), marked as just
    used; None when there is none or power-grid-model does not model that structure."""
    solver = _cache.get(key)
    if key in _cache:
        _cache.move_to_end(key)
    return solver


def runpp_warm(net: pp.pandapowerNet) -> None:
    """A power flow of ``net`` into its ``res_*`` tables (``net.converged`` set).

    power-grid-model on the cached model of the net's structure; pandapower for a new
    structure, for nets it does not model, and when it fails. Raises
    ``pp.LoadflowNotConverged`` when no solution is found.
    """
    solver, solved = _solver_for(net)
    if solved:
        return
    if solver is not None:
        try:
            write_results(net, solver.solve(net))
            return
        except PowerFlowFailed:
            pass  # pandapower tries from its own start; its verdict stands
    runpp_pandapower(net)


def runpp_pandapower(net: pp.pandapowerNet, numba: bool = True) -> None:
    # after switching, buses that were dead have no result to start from
    warm = (bool(getattr(net, "converged", False)) and len(net.res_bus) == len(net.bus)
            and bool(net.res_bus.vm_pu.notna().all()))
    try:
        pp.runpp(net, numba=numba, init="results" if warm else "dc")
    except pp.LoadflowNotConverged:
        if not warm:
            raise
        pp.runpp(net, numba=numba, init="dc")


def write_results(net: pp.pandapowerNet, res: dict[str, dict[str, np.ndarray]]) -> None:
    """power-grid-model's results into the net's ``res_*`` tables, as pandapower writes
    them (the columns of :data:`twin.grid.model.RESULT_SPEC`, and a few more)."""
    for table, (res_table, _attrs) in RESULT_SPEC.items():
        values = res.get(table)
        if values is None or not len(net[table]):
            continue
        net[res_table] = pd.DataFrame(values, index=net[table].index)
    net["converged"] = True


def p_loss_mw(net: pp.pandapowerNet) -> float:
    """Line and transformer losses of the last power flow [MW]."""
    return float(net.res_line.pl_mw.sum() + net.res_trafo.pl_mw.sum())


def clear_cache() -> None:
    """Forget every cached model (tests; a process that switches grids)."""
    _cache.clear()
