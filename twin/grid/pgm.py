"""power-grid-model as the power-flow engine behind a pandapower net, built once, reused.

pandapower converts its tables into the solver's arrays on every ``runpp`` (about two thirds
of its time on CIGRE MV, more on big grids). Here the conversion is pandapower's own, run
once: the nodes and branches of power-grid-model's model are the buses and branches of
pandapower's internal case (``net._ppc``, after a pandapower power flow), so both solve the
same equations — the same fused buses, the same per-unit branch admittances, taps and phase
shifts (power-grid-model's ``generic_branch`` is MATPOWER's π branch). Between structural
changes only the injections, shunt steps and slack set-points are updated in place, and a
power flow on CIGRE MV takes a fraction of a millisecond.

What the caller must do: rebuild (:meth:`PgmSolver.rebuild`) after pandapower has solved a
changed structure (switching, a line in or out of service, a tap move, a new element).

Results come back as arrays in the net's table order, computed the way pandapower's result
functions compute them (loading, currents from the branch powers and the terminal voltages,
bus powers summed from the elements), so the two agree to the solver tolerance.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np
import pandapower as pp
from pandapower.pypower.idx_brch import (
    BR_B,
    BR_B_ASYM,
    BR_G,
    BR_G_ASYM,
    BR_R,
    BR_R_ASYM,
    BR_STATUS,
    BR_X,
    BR_X_ASYM,
    F_BUS,
    SHIFT,
    T_BUS,
    TAP,
)
from pandapower.pypower.idx_bus import BASE_KV, BS, GS
from power_grid_model import (
    CalculationMethod,
    ComponentType,
    DatasetType,
    LoadGenType,
    PowerGridModel,
    initialize_array,
)
from power_grid_model.errors import PowerGridError

_SQRT3 = math.sqrt(3.0)
#: A source this strong is an ideal voltage source to 1e-12 p.u.: pandapower's ext_grid is
#: one in a power flow (its short-circuit power matters only to short-circuit studies).
_SK_IDEAL_VA = 1e40
#: Newton-Raphson stops when no node voltage moves more than this [p.u.]: far below the
#: 1e-6 p.u. the results are compared at (pandapower stops at 1e-8 MVA mismatch).
ERROR_TOLERANCE_PU = 1e-10
MAX_ITERATIONS = 30

#: Tables with in-service rows the backend does not model; with any of them ``auto``
#: stays with pandapower.
_UNSUPPORTED_TABLES = ("gen", "ward", "xward", "impedance", "dcline", "trafo3w", "motor",
                       "asymmetric_load", "asymmetric_sgen", "svc", "tcsc", "ssc", "vsc")
_ZIP_COLUMNS = ("const_z_percent", "const_i_percent", "const_z_p_percent",
                "const_i_p_percent", "const_z_q_percent", "const_i_q_percent")
#: Injection tables and their power-grid-model component (sgens feed, the others draw).
_INJECTIONS = {"load": ComponentType.sym_load, "storage": ComponentType.sym_load,
               "sgen": ComponentType.sym_gen}

_logger = logging.getLogger(__name__)


class PgmUnsupported(ValueError):
    """The net has something the backend does not model (the message says what)."""


def unsupported_reason(net: pp.pandapowerNet) -> str:
    """Why the backend cannot solve ``net`` ("" when it can)."""
    for table in _UNSUPPORTED_TABLES:
        if table in net and len(net[table]) and bool(net[table]["in_service"].any()):
            return (f"the net has in-service {table} elements "
                    "(not modelled by power-grid-model here)")
    load = net.load
    for col in _ZIP_COLUMNS:
        if col in load.columns and bool((load[col].fillna(0) != 0).any()):
            return f"loads with voltage dependence ({col}) are not modelled here"
    if len(net.ext_grid) == 0 or not bool(net.ext_grid["in_service"].any()):
        return "the net has no in-service ext_grid"
    return ""


def _ids(start: int, n: int) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.int32)


class PgmSolver:
    """A power-grid-model model of a pandapower net, built from the net's last pandapower
    power flow (its internal case); :meth:`solve` takes the net's present injections."""

    def __init__(self, net: pp.pandapowerNet):
        reason = unsupported_reason(net)
        if reason:
            raise PgmUnsupported(reason)
        self.net = net
        self.n_builds = 0
        self.rebuild()

    # ------------------------------------------------------------------ build
    def rebuild(self) -> None:
        """(Re)build from ``net._ppc`` — call after pandapower solved the present structure."""
        net = self.net
        ppc = getattr(net, "_ppc", None)
        if ppc is None or "branch" not in ppc:
            raise PgmUnsupported("pandapower has not solved this net yet (no internal case)")
        bus, branch = ppc["bus"], ppc["branch"]
        if branch.shape[1] > BR_B_ASYM and np.any(branch[:, (BR_R_ASYM, BR_X_ASYM, BR_G_ASYM,
                                                             BR_B_ASYM)].real != 0):
            raise PgmUnsupported("asymmetric branch models (transformer T split other than "
                                 "half and half) are not modelled here")
        s_base_va = float(ppc["baseMVA"]) * 1e6
        base_kv = bus[:, BASE_KV].real
        n_node = len(bus)
        lookup = net._pd2ppc_lookups["bus"]
        self.node_of_bus = lookup[net.bus.index.to_numpy()].astype(np.int64)
        self.base_kv = base_kv

        next_id = 0
        node = initialize_array(DatasetType.input, ComponentType.node, n_node)
        node["id"] = _ids(next_id, n_node)
        node["u_rated"] = base_kv * 1e3
        next_id += n_node

        # branches: MATPOWER's π model in per unit; power-grid-model takes Ω and S referred
        # to the to-side's rated voltage, the tap ratio and shift on the from side
        n_br = len(branch)
        f = branch[:, F_BUS].real.astype(np.int64)
        t = branch[:, T_BUS].real.astype(np.int64)
        z_base_to = (base_kv[t] * 1e3) ** 2 / s_base_va
        br = initialize_array(DatasetType.input, ComponentType.generic_branch, n_br)
        br["id"] = _ids(next_id, n_br)
        next_id += n_br
        br["from_node"], br["to_node"] = f, t
        self._from_node, self._to_node = f, t
        status = (branch[:, BR_STATUS].real > 0).astype(np.int8)
        br["from_status"] = br["to_status"] = status
        br["r1"] = branch[:, BR_R].real * z_base_to
        br["x1"] = branch[:, BR_X].real * z_base_to
        br["g1"] = branch[:, BR_G].real / z_base_to
        br["b1"] = branch[:, BR_B].real / z_base_to
        tap = branch[:, TAP].real
        br["k"] = np.where(tap != 0, tap, 1.0)
        br["theta"] = np.deg2rad(branch[:, SHIFT].real)
        br["sn"] = np.nan
        self._branch_slices = net._pd2ppc_lookups["branch"]

        # sources: every in-service ext_grid as an ideal voltage source
        eg = net.ext_grid
        src = initialize_array(DatasetType.input, ComponentType.source, len(eg))
        src["id"] = _ids(next_id, len(eg))
        next_id += len(eg)
        src["node"] = self.node_of_bus[self._positions("bus", eg["bus"])]
        src["status"] = eg["in_service"].to_numpy(dtype=np.int8)
        src["u_ref"] = eg["vm_pu"].to_numpy(dtype=float)
        src["u_ref_angle"] = np.deg2rad(eg["va_degree"].to_numpy(dtype=float))
        src["sk"] = _SK_IDEAL_VA
        src["rx_ratio"] = 0.1
        src["z01_ratio"] = 1.0
        self._src = src

        data = {ComponentType.node: node, ComponentType.generic_branch: br,
                ComponentType.source: src}
        # injections: one component per element, updated in place every solve
        self._inj: dict[str, np.ndarray] = {}
        # each element's bus as a position in net.bus: pandapower sums results per bus
        self._bus_pos: dict[str, np.ndarray] = {"ext_grid": self._positions("bus", eg["bus"]),
                                                "shunt": self._positions("bus", net.shunt["bus"])}
        loads, gens = [], []
        for table, comp in _INJECTIONS.items():
            df = net[table]
            arr = initialize_array(DatasetType.input, comp, len(df))
            arr["id"] = _ids(next_id, len(df))
            next_id += len(df)
            self._bus_pos[table] = self._positions("bus", df["bus"])
            arr["node"] = self.node_of_bus[self._bus_pos[table]]
            arr["type"] = LoadGenType.const_power
            arr["status"] = 1
            arr["p_specified"] = arr["q_specified"] = 0.0
            self._inj[table] = arr
            (gens if comp == ComponentType.sym_gen else loads).append(arr)
        data[ComponentType.sym_load] = np.concatenate(loads)
        data[ComponentType.sym_gen] = np.concatenate(gens)

        # shunts: the shunt elements (their steps change), and whatever else pandapower put
        # on its buses' GS/BS as one fixed shunt per node
        sh = net.shunt
        shunt = initialize_array(DatasetType.input, ComponentType.shunt, len(sh))
        shunt["id"] = _ids(next_id, len(sh))
        next_id += len(sh)
        shunt["node"] = self.node_of_bus[self._positions("bus", sh["bus"])]
        shunt["status"] = 1
        shunt["g0"] = shunt["b0"] = 0.0
        self._shunt = shunt
        self._set_shunts(shunt)
        gs_mw, bs_mvar = bus[:, GS].real.copy(), bus[:, BS].real.copy()
        own_g = np.zeros(n_node)
        own_b = np.zeros(n_node)
        live = shunt["status"] > 0
        # the shunt elements' share of GS/BS at 1 p.u. of the bus's base voltage
        at = shunt["node"][live]
        np.add.at(own_g, at, shunt["g1"][live] * base_kv[at] ** 2)
        np.add.at(own_b, at, shunt["b1"][live] * base_kv[at] ** 2)
        rest_g, rest_b = gs_mw - own_g, bs_mvar - own_b
        fixed = np.flatnonzero((np.abs(rest_g) > 1e-12) | (np.abs(rest_b) > 1e-12))
        extra = initialize_array(DatasetType.input, ComponentType.shunt, len(fixed))
        extra["id"] = _ids(next_id, len(fixed))
        next_id += len(fixed)
        extra["node"] = fixed
        extra["status"] = 1
        extra["g1"] = rest_g[fixed] / base_kv[fixed] ** 2
        extra["b1"] = rest_b[fixed] / base_kv[fixed] ** 2
        extra["g0"] = extra["b0"] = 0.0
        data[ComponentType.shunt] = np.concatenate([shunt, extra])

        self._set_injections()
        self.model = PowerGridModel(data, system_frequency=float(net.f_hz))
        sizes = {ComponentType.sym_load: len(data[ComponentType.sym_load]),
                 ComponentType.sym_gen: len(data[ComponentType.sym_gen]),
                 ComponentType.shunt: len(sh), ComponentType.source: len(eg)}
        self._update = {comp: initialize_array(DatasetType.update, comp, n)
                        for comp, n in sizes.items()}
        for comp, arr in self._update.items():
            arr["id"] = data[comp]["id"][: len(arr)]
        self._sent: dict[ComponentType, bytes] = {}  # last update sent per component
        self.n_builds += 1

    def _positions(self, table: str, idx) -> np.ndarray:
        """Positions in ``net[table]`` of the index values ``idx``."""
        return self.net[table].index.get_indexer(np.asarray(idx))

    # ------------------------------------------------------------------ inputs
    def _set_injections(self, given: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None
                        ) -> None:
        """P and Q of every load, sgen and storage from the net [W, var] (pandapower's
        ppc: value × scaling, zero out of service); ``given`` tables' from their arrays
        instead (scaling applied already)."""
        for table, arr in self._inj.items():
            df = self.net[table]
            if not len(df):
                continue
            in_service = df["in_service"].to_numpy(dtype=bool)
            if given is not None and table in given:
                p_mw, q_mvar = given[table]
                arr["p_specified"] = np.where(in_service, p_mw, 0.0) * 1e6
                arr["q_specified"] = np.where(in_service, q_mvar, 0.0) * 1e6
                continue
            factor = df["scaling"].to_numpy(dtype=float) * in_service
            arr["p_specified"] = df["p_mw"].to_numpy(dtype=float) * factor * 1e6
            arr["q_specified"] = df["q_mvar"].to_numpy(dtype=float) * factor * 1e6

    def _set_shunts(self, shunt: np.ndarray) -> None:
        """Shunt admittances [S] from P/Q at rated voltage × step (pandapower's shunt)."""
        sh = self.net.shunt
        if not len(sh):
            return
        vn_kv = sh["vn_kv"].to_numpy(dtype=float)
        factor = sh["step"].to_numpy(dtype=float) * sh["in_service"].to_numpy(dtype=bool)
        shunt["g1"] = sh["p_mw"].to_numpy(dtype=float) * factor / vn_kv ** 2
        shunt["b1"] = -sh["q_mvar"].to_numpy(dtype=float) * factor / vn_kv ** 2

    # ------------------------------------------------------------------ solve
    def solve(self, net: pp.pandapowerNet | None = None,
              injections: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None
              ) -> dict[str, dict[str, np.ndarray]]:
        """Power flow on the net's present injections, shunt steps and slack set-points.

        ``net``: another net of the same structure (e.g. a copy) to take them from; it is
        the one solved from then on.
        ``injections``: ``{table: (p_mw, q_mvar)}`` arrays in table order (``load``,
        ``sgen``, ``storage``; pandapower's ``scaling`` applied) that replace those tables'
        columns for this solve: a what-if on injections needs no copy of the net.
        Returns results per table and column (pandapower's names), in the net's row order.
        Raises :class:`PowerFlowFailed` when the solver does not converge.
        """
        if net is not None:
            self.net = net
        self._set_injections(injections)
        upd = self._update
        for comp, parts in ((ComponentType.sym_load, ("load", "storage")),
                            (ComponentType.sym_gen, ("sgen",))):
            arr, k = upd[comp], 0
            for table in parts:
                src = self._inj[table]
                arr["p_specified"][k:k + len(src)] = src["p_specified"]
                arr["q_specified"][k:k + len(src)] = src["q_specified"]
                k += len(src)
        shunt = upd[ComponentType.shunt]
        if len(shunt):
            self._set_shunts(self._shunt)
            shunt["g1"], shunt["b1"] = self._shunt["g1"], self._shunt["b1"]
        source = upd[ComponentType.source]
        eg = self.net.ext_grid
        source["u_ref"] = eg["vm_pu"].to_numpy(dtype=float)
        source["u_ref_angle"] = np.deg2rad(eg["va_degree"].to_numpy(dtype=float))
        source["status"] = eg["in_service"].to_numpy(dtype=np.int8)
        # shunt steps and slack set-points seldom change: sent only when they did (an
        # update of them makes power-grid-model rebuild its admittance matrix; the model
        # holds the values it was last sent, so the result is the same)
        changed = {comp: arr for comp, arr in upd.items()
                   if comp in _INJECTION_COMPONENTS or self._sent.get(comp) != arr.tobytes()}
        self.model.update(update_data=changed)
        self._sent.update((comp, arr.tobytes()) for comp, arr in changed.items()
                          if comp not in _INJECTION_COMPONENTS)
        return self._results(self._calculate())

    def _calculate(self):
        """Iterative current first: on radial distribution grids it converges in a few
        iterations on a matrix factorised once (half of Newton-Raphson's time on the
        10k-bus SimBench grid, same result to 1e-11 p.u.); Newton-Raphson where it does not."""
        error = None
        for method in (CalculationMethod.iterative_current, CalculationMethod.newton_raphson):
            try:
                return self.model.calculate_power_flow(
                    symmetric=True, error_tolerance=ERROR_TOLERANCE_PU,
                    max_iterations=MAX_ITERATIONS, calculation_method=method,
                    output_component_types=_OUTPUT)
            except PowerGridError as exc:
                error = exc
        raise PowerFlowFailed(f"power-grid-model: {type(error).__name__}: {error}") from error

    # ------------------------------------------------------------------ results
    def _results(self, out) -> dict[str, dict[str, np.ndarray]]:
        net = self.net
        node = out[ComponentType.node]
        energized = node["energized"].astype(bool)
        vm_node = np.where(energized, node["u_pu"], np.nan)
        va_node = np.where(energized, np.rad2deg(node["u_angle"]), np.nan)
        nb = self.node_of_bus
        res: dict[str, dict[str, np.ndarray]] = {}
        res["bus"] = {"vm_pu": vm_node[nb], "va_degree": va_node[nb]}

        br = out[ComponentType.generic_branch]
        p_from, q_from = br["p_from"] / 1e6, br["q_from"] / 1e6
        p_to, q_to = br["p_to"] / 1e6, br["q_to"] / 1e6
        # pandapower divides by the terminal voltage, which is NaN at a dead bus
        i_from = np.where(energized[self._from_node], br["i_from"] / 1e3, np.nan)
        i_to = np.where(energized[self._to_node], br["i_to"] / 1e3, np.nan)
        slices = self._branch_slices
        if "line" in slices:
            a, b = slices["line"]
            line = net.line
            i_ka = np.maximum(i_from[a:b], i_to[a:b])  # NaN if either is (as np.max)
            i_max = (line["max_i_ka"].to_numpy(dtype=float) * line["df"].to_numpy(dtype=float)
                     * line["parallel"].to_numpy(dtype=float))
            res["line"] = {
                "p_from_mw": p_from[a:b], "q_from_mvar": q_from[a:b],
                "p_to_mw": p_to[a:b], "q_to_mvar": q_to[a:b],
                "pl_mw": p_from[a:b] + p_to[a:b], "ql_mvar": q_from[a:b] + q_to[a:b],
                "i_from_ka": i_from[a:b], "i_to_ka": i_to[a:b], "i_ka": i_ka,
                **self._terminal_voltages(vm_node, va_node, a, b, "from", "to"),
                "loading_percent": i_ka / i_max * 100.0,
            }
        if "trafo" in slices:
            a, b = slices["trafo"]
            tr = net.trafo
            ld = np.maximum(i_from[a:b] * tr["vn_hv_kv"].to_numpy(dtype=float),
                            i_to[a:b] * tr["vn_lv_kv"].to_numpy(dtype=float))
            ld = ld * _SQRT3 / tr["sn_mva"].to_numpy(dtype=float) * 100.0
            res["trafo"] = {
                "p_hv_mw": p_from[a:b], "q_hv_mvar": q_from[a:b],
                "p_lv_mw": p_to[a:b], "q_lv_mvar": q_to[a:b],
                "pl_mw": p_from[a:b] + p_to[a:b], "ql_mvar": q_from[a:b] + q_to[a:b],
                "i_hv_ka": i_from[a:b], "i_lv_ka": i_to[a:b],
                **self._terminal_voltages(vm_node, va_node, a, b, "hv", "lv"),
                "loading_percent": ld / tr["parallel"].to_numpy(dtype=float)
                / tr["df"].to_numpy(dtype=float),
            }

        # injections: as set, where the bus is energized (pandapower: zero elsewhere)
        n_bus = len(nb)
        bus_p = np.zeros(n_bus)
        bus_q = np.zeros(n_bus)
        for table, arr in self._inj.items():
            live = energized[arr["node"]]
            p = np.where(live, arr["p_specified"] / 1e6, 0.0)
            q = np.where(live, arr["q_specified"] / 1e6, 0.0)
            res[table] = {"p_mw": p, "q_mvar": q}
            sign = -1.0 if table == "sgen" else 1.0
            np.add.at(bus_p, self._bus_pos[table], sign * p)
            np.add.at(bus_q, self._bus_pos[table], sign * q)
        sh = out[ComponentType.shunt][: len(self._shunt)] if len(self._shunt) else []
        if len(sh):
            # a shunt's power as it consumes (load sign, as pandapower reports it)
            p_sh, q_sh = sh["p"] / 1e6, sh["q"] / 1e6
            res["shunt"] = {"p_mw": p_sh, "q_mvar": q_sh, "vm_pu": vm_node[self._shunt["node"]]}
            np.add.at(bus_p, self._bus_pos["shunt"], p_sh)
            np.add.at(bus_q, self._bus_pos["shunt"], q_sh)
        else:
            res["shunt"] = {"p_mw": np.zeros(0), "q_mvar": np.zeros(0), "vm_pu": np.zeros(0)}
        src = out[ComponentType.source]
        res["ext_grid"] = {"p_mw": src["p"] / 1e6, "q_mvar": src["q"] / 1e6}
        np.add.at(bus_p, self._bus_pos["ext_grid"], -src["p"] / 1e6)
        np.add.at(bus_q, self._bus_pos["ext_grid"], -src["q"] / 1e6)
        res["bus"]["p_mw"], res["bus"]["q_mvar"] = bus_p, bus_q
        return res


    def _terminal_voltages(self, vm_node, va_node, a: int, b: int, side_from: str,
                           side_to: str) -> dict[str, np.ndarray]:
        f, t = self._from_node[a:b], self._to_node[a:b]
        return {f"vm_{side_from}_pu": vm_node[f], f"va_{side_from}_degree": va_node[f],
                f"vm_{side_to}_pu": vm_node[t], f"va_{side_to}_degree": va_node[t]}


#: Components updated at every solve (the injections); the others when they changed.
_INJECTION_COMPONENTS = (ComponentType.sym_load, ComponentType.sym_gen)

#: The results read (:meth:`PgmSolver._results`): loads and generators are reported as set,
#: so their output arrays, allocated on every solve, are not asked for.
_OUTPUT = {ComponentType.node, ComponentType.generic_branch, ComponentType.source,
           ComponentType.shunt}


class PowerFlowFailed(RuntimeError):
    """power-grid-model did not converge or rejected the case."""
