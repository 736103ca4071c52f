"""The grid model: a pandapower net that takes injections, switching and taps, and solves.

Plain Python over pandapower; the mosaik adapter is :mod:`simulators.grid`.

Sign convention as pandapower: loads and storage positive when consuming, sgens positive
when producing; line/trafo flows positive from the from/hv side into the element.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandapower as pp
import pandapower.topology as top

from twin.grid.iec60909 import live_buses
from twin.grid.pgm import PgmSolver, PgmUnsupported, PowerFlowFailed, unsupported_reason
from twin.models.protection import Fault, Protection, ProtectionEvent

#: Per element table: the result table and, for each output attribute, its result column.
RESULT_SPEC: dict[str, tuple[str, dict[str, str]]] = {
    "bus": ("res_bus", {"vm_pu": "vm_pu", "va_degree": "va_degree", "p_mw": "p_mw", "q_mvar": "q_mvar"}),
    "line": ("res_line", {
        "loading_percent": "loading_percent", "i_ka": "i_ka",
        "p_from_mw": "p_from_mw", "q_from_mvar": "q_from_mvar",
        "p_to_mw": "p_to_mw", "q_to_mvar": "q_to_mvar", "pl_mw": "pl_mw",
    }),
    "trafo": ("res_trafo", {
        "loading_percent": "loading_percent", "i_hv_ka": "i_hv_ka", "i_lv_ka": "i_lv_ka",
        "p_hv_mw": "p_hv_mw", "q_hv_mvar": "q_hv_mvar",
        "p_lv_mw": "p_lv_mw", "q_lv_mvar": "q_lv_mvar", "pl_mw": "pl_mw",
    }),
    "load": ("res_load", {"p_mw": "p_mw", "q_mvar": "q_mvar"}),
    "sgen": ("res_sgen", {"p_mw": "p_mw", "q_mvar": "q_mvar"}),
    "storage": ("res_storage", {"p_mw": "p_mw", "q_mvar": "q_mvar"}),
    "ext_grid": ("res_ext_grid", {"p_mw": "p_mw", "q_mvar": "q_mvar"}),
    "shunt": ("res_shunt", {"p_mw": "p_mw", "q_mvar": "q_mvar", "vm_pu": "vm_pu"}),
}

#: State attributes the snapshot carries besides results: (table, attr, net column, dtype).
STATE_ATTRS = (("switch", "closed", "closed", bool), ("line", "in_service", "in_service", bool),
               ("trafo", "tap_pos", "tap_pos", float), ("shunt", "step", "step", float))
#: What the grid knows besides the power flow: protection flags (a breaker tripped, fault
#: current passed an indicator) and supply (a load connected to a source, and its demand,
#: which it draws only when supplied).
FLAG_ATTRS = (("switch", "tripped"), ("line", "fault_passed"), ("trafo", "fault_passed"),
              ("load", "supplied"))


def snapshot_attrs(table: str) -> set[str]:
    """Attributes of ``table`` in :meth:`GridModel.snapshot`."""
    results = set(RESULT_SPEC[table][1]) if table in RESULT_SPEC else set()
    extra = {a for t, a in FLAG_ATTRS if t == table}
    if table == "load":
        extra.add("p_demand_mw")
    return results | extra | {a for t, a, _c, _d in STATE_ATTRS if t == table}


#: Whole-network summary attributes.
SUMMARY_ATTRS = (
    "converged", "p_loss_mw", "q_loss_mvar", "p_load_mw", "p_sgen_mw", "p_storage_mw",
    "p_ext_grid_mw", "vm_min_pu", "vm_max_pu", "pf_message",
)

# Reuse pandapower's internal structures between solves where only injections change
# (about 3× faster on CIGRE MV); taps need the admittance matrix rebuilt ("trafo").
_RECYCLE_INJECTIONS = {"bus_pq": True, "gen": True, "trafo": False}
_RECYCLE_TAPS = {"bus_pq": True, "gen": True, "trafo": True}


class CommandRejected(ValueError):
    """A command value the grid cannot apply (not a number, not finite); the state stays."""


def _whole(value: float, what: str) -> int:
    """``value`` rounded to a whole number; CommandRejected when it is not a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CommandRejected(f"{what}: expected a number; found {value!r}") from None
    if not np.isfinite(number):
        raise CommandRejected(f"{what}: expected a finite number; found {number!r}")
    return round(number)


#: Tables whose injections the power flow takes, checked for non-finite values first.
_INJECTION_TABLES = ("load", "sgen", "storage")


@dataclass(frozen=True)
class SolveOutcome:
    converged: bool
    message: str = ""


#: The power-flow backends (scenario ``grid.solver``).
SOLVERS = ("auto", "pandapower", "power-grid-model")


@dataclass(frozen=True)
class SolverChoice:
    """The backend a run uses, and why (``run.json`` names both)."""

    requested: str
    solver: str
    reason: str


def choose_solver(net: pp.pandapowerNet, requested: str = "auto") -> SolverChoice:
    """``auto`` takes power-grid-model where it models every element of the net (it solves
    a step 10–20× faster on CIGRE MV, see bench/overhead.py), pandapower elsewhere."""
    if requested not in SOLVERS:
        raise ValueError(f"grid.solver: expected one of {', '.join(SOLVERS)}; found {requested!r}")
    if requested == "pandapower":
        return SolverChoice(requested, "pandapower", "requested")
    why_not = unsupported_reason(net)
    if requested == "power-grid-model":
        if why_not:
            raise ValueError(f"grid.solver: power-grid-model cannot solve this grid: {why_not}")
        return SolverChoice(requested, "power-grid-model", "requested")
    if why_not:
        return SolverChoice(requested, "pandapower", why_not)
    return SolverChoice(requested, "power-grid-model",
                        "supports every element of the grid; fastest")


class GridModel:
    """Holds the net and the latest results as arrays, keyed like the net's tables.

    Solves with pandapower, or with power-grid-model (:mod:`twin.grid.pgm`) between
    structural changes: pandapower solves the first state and each change of switching,
    taps or service, and power-grid-model's model is rebuilt from that solve.
    """

    def __init__(self, net: pp.pandapowerNet, recycle: bool = True,
                 protection: Protection | None = None, solver: str = "pandapower"):
        self.net = net
        self.recycle = recycle
        self.protection = protection
        self.choice = choose_solver(net, solver)
        self._pgm: PgmSolver | None = None  # built after the first pandapower solve
        self.n_pgm_solves = 0
        self.n_fallbacks = 0  # steps power-grid-model failed and pandapower solved
        self._needs_full = True  # first solve, and after topology changes or failures
        self._live_buses: set[int] | None = None  # None: to be found (topology changed)
        self._supplied = np.zeros(0, bool)          # per load, with _live_buses
        self._no_flags: dict[str, np.ndarray] = {}  # all-False flags (none set, or no protection)
        self._taps_changed = False
        self._shunts_changed = False
        self.positions = {t: {int(i): k for k, i in enumerate(net[t].index)} for t in
                          (*RESULT_SPEC, "switch")}
        self.results: dict[str, dict[str, np.ndarray]] = {}
        self.summary: dict[str, float | int | str] = {}
        self.outcome = SolveOutcome(False, "not solved yet")
        self.n_solves = 0
        self.n_failed = 0

    # ---------------------------------------------------------------- inputs
    def set_injection(self, table: str, idx: int, p: float | None, q: float | None) -> None:
        self.set_injections(table, {idx: (p, q)})

    def set_injections(self, table: str, values: dict[int, tuple[float | None, float | None]]) -> None:
        """P [MW] and Q [Mvar] for several elements of ``table``; None leaves a value as is.

        One column assignment per quantity: per-cell pandas writes would cost more than the
        power flow itself.
        """
        if not values:
            return
        df = self.net[table]
        pos = self.positions[table]
        for k, col in ((0, "p_mw"), (1, "q_mvar")):
            column = df[col].to_numpy(dtype=float, copy=True)
            changed = False
            for idx, pq in values.items():
                if pq[k] is not None:
                    column[pos[idx]] = pq[k]
                    changed = True
            if changed:
                df[col] = column

    def injection_columns(self, table: str) -> tuple[np.ndarray, np.ndarray]:
        """P [MW] and Q [Mvar] of every element of ``table``, in row order, as copies to
        change and hand back to :meth:`set_injection_columns`."""
        df = self.net[table]
        return (df["p_mw"].to_numpy(dtype=float, copy=True),
                df["q_mvar"].to_numpy(dtype=float, copy=True))

    def set_injection_columns(self, table: str, p_mw: np.ndarray | None,
                              q_mvar: np.ndarray | None) -> None:
        """Whole P [MW] and Q [Mvar] columns of ``table`` in row order (None: unchanged):
        one pandas assignment per quantity and step, whatever the number of sources."""
        df = self.net[table]
        if p_mw is not None:
            df["p_mw"] = p_mw
        if q_mvar is not None:
            df["q_mvar"] = q_mvar

    def set_switch(self, idx: int, closed: bool) -> bool:
        """Returns True when the state changed (the topology must then be rebuilt)."""
        if bool(self.net.switch.at[idx, "closed"]) == bool(closed):
            return False
        self.net.switch.at[idx, "closed"] = bool(closed)
        if closed and self.protection is not None:
            self.protection.switch_closed(idx)
        self._topology_changed()
        return True

    def _topology_changed(self) -> None:
        self._needs_full = True
        self._live_buses = None

    # ---------------------------------------------------------------- faults
    def inject_fault(self, fault: Fault, t_s: float) -> list[ProtectionEvent]:
        """A fault appears on a line; the protection clears it (switching the net)."""
        assert self.protection is not None, "a grid without protection takes no faults"
        return self._protect(lambda: self.protection.inject(self.net, fault, t_s), t_s)

    def repair(self, line: int, t_s: float) -> list[ProtectionEvent]:
        assert self.protection is not None
        return self._protect(lambda: self.protection.repair(line, t_s), t_s)

    def protect(self, t_s: float) -> list[ProtectionEvent]:
        """Let the protection act on the present topology and what is due by ``t_s``
        (reclose shots, indicator resets, a breaker closed onto a fault)."""
        if self.protection is None:
            return []
        p = self.protection
        return self._protect(lambda: p.advance(self.net, t_s) + (
            p.settle(self.net, t_s) if self._live_buses is None and p.faults else []), t_s)

    def _protect(self, act, t_s: float) -> list[ProtectionEvent]:
        before = self.net.switch["closed"].to_numpy(copy=True)
        try:
            events = act()
        except Exception as exc:  # e.g. a short-circuit calculation that fails: an event
            events = [ProtectionEvent(t_s, "protection_failed", "grid:0", {
                "reason": f"{type(exc).__name__}: {exc}"})]
        if (self.net.switch["closed"].to_numpy() != before).any():
            self._topology_changed()
        return events

    def next_protection_s(self) -> float:
        return self.protection.next_event_s() if self.protection is not None else float("inf")

    def apply_command(self, table: str, idx: int, value: object) -> str | None:
        """A commanded value for a switch (``closed``), trafo (``tap_pos``) or shunt
        (``step``). Returns a note when the value was limited to the device's range;
        CommandRejected (the state unchanged) when it is not a finite number."""
        if table == "switch":
            if isinstance(value, float) and not np.isfinite(value):
                raise CommandRejected(f"closed: expected true or false; found {value!r}")
            self.set_switch(idx, bool(value))
            return None
        if table == "trafo":
            wanted = _whole(value, "tap_pos")
            self.set_tap(idx, wanted)
            got = int(self.net.trafo.at[idx, "tap_pos"])
            what = "tap position"
        elif table == "shunt":
            wanted = _whole(value, "step")
            self.set_shunt_step(idx, wanted)
            got = int(self.net.shunt.at[idx, "step"])
            what = "capacitor step"
        else:
            raise CommandRejected(f"{table} takes no commands")
        if got != wanted:
            return f"{what} {wanted} is out of range; limited to {got}"
        return None

    def set_tap(self, idx: int, tap_pos: int) -> bool:
        """Move the tap to ``tap_pos`` (clipped to tap_min…tap_max)."""
        tap_pos = _whole(tap_pos, "tap_pos")
        trafo = self.net.trafo
        if "tap_min" in trafo.columns and np.isfinite(trafo.at[idx, "tap_min"]):
            tap_pos = int(np.clip(tap_pos, trafo.at[idx, "tap_min"], trafo.at[idx, "tap_max"]))
        if trafo.at[idx, "tap_pos"] == tap_pos:
            return False
        trafo.at[idx, "tap_pos"] = tap_pos
        self._taps_changed = True
        return True

    # ---------------------------------------------------------------- solve
    def set_shunt_step(self, idx: int, step: int) -> bool:
        """Switch a capacitor bank to ``step`` (clipped to 0…max_step)."""
        shunt = self.net.shunt
        step = int(np.clip(_whole(step, "step"), 0, shunt.at[idx, "max_step"]))
        if shunt.at[idx, "step"] == step:
            return False
        shunt.at[idx, "step"] = step
        # shunts are not part of pandapower's recycled injections: its next solve is a
        # full one (power-grid-model updates them in place, and stays on its model)
        self._shunts_changed = True
        return True

    def solve(self) -> SolveOutcome:
        """Run the power flow; a failure is an outcome, not an exception."""
        self.n_solves += 1
        bad = self._non_finite_injection()
        if bad:
            self.outcome = SolveOutcome(False, f"power flow not run: {bad}")
        elif self._pgm is not None and not (self._needs_full or self._taps_changed):
            try:
                raw = self._pgm.solve()
                self.n_pgm_solves += 1
                self.outcome = SolveOutcome(True)
                self._collect(raw)
                return self.outcome
            except PowerFlowFailed:
                # pandapower tries the same state from scratch; its result stands
                self.n_fallbacks += 1
                self._needs_full = True
        if not bad:
            self._solve_pandapower()
        self._taps_changed = False
        if self.outcome.converged:
            self._shunts_changed = False  # pandapower's case has the steps now
        if not self.outcome.converged:
            self.n_failed += 1
            self._needs_full = True  # recycled structures may be stale
            self._pgm = None
        self._collect(None)
        return self.outcome

    def _solve_pandapower(self) -> None:
        kwargs: dict = {}
        if self.recycle and not (self._needs_full or self._shunts_changed):
            kwargs["recycle"] = _RECYCLE_TAPS if self._taps_changed else _RECYCLE_INJECTIONS
        # numba pays off over many pandapower solves; with power-grid-model pandapower only
        # solves structural changes, and numba's compilation (2–4 s a process) would not
        numba = self.choice.solver == "pandapower"
        try:
            pp.runpp(self.net, numba=numba, **kwargs)
            self.outcome = SolveOutcome(True)
            self._needs_full = False
            if self.choice.solver == "power-grid-model":
                self._rebuild_pgm()
        except pp.LoadflowNotConverged as exc:
            self.outcome = SolveOutcome(False, f"power flow did not converge ({exc})")
        except Exception as exc:
            # pandapower raises ValueError, IndexError, LinAlgError, … for singular or
            # degenerate nets; a failing power flow is an event the run survives.
            self.outcome = SolveOutcome(False, f"power flow failed: {type(exc).__name__}: {exc}")

    def _rebuild_pgm(self) -> None:
        """power-grid-model's model of the structure pandapower just solved."""
        try:
            if self._pgm is None:
                self._pgm = PgmSolver(self.net)
            else:
                self._pgm.rebuild()
        except PgmUnsupported:  # e.g. a structure it cannot take: pandapower goes on
            self._pgm = None

    def _non_finite_injection(self) -> str:
        """The first in-service injection that is not a finite number, described; "" if none."""
        for table in _INJECTION_TABLES:
            df = self.net[table]
            if not len(df):
                continue
            for col in ("p_mw", "q_mvar"):
                values = df[col].to_numpy(dtype=float)
                # one sum tells whether all are finite (an overflow only takes the long way)
                if math.isfinite(np.add.reduce(values)):
                    continue
                finite = np.isfinite(values)
                bad = ~finite & df["in_service"].to_numpy(dtype=bool)
                if bad.any():
                    k = int(np.flatnonzero(bad)[0])
                    return (f"{table} {df.index[k]} ({df['name'].iloc[k]}) has {col} = "
                            f"{values[k]}")
        return ""

    def _collect(self, raw: dict[str, dict[str, np.ndarray]] | None) -> None:
        """Results into ``self.results``: from power-grid-model's arrays (``raw``) or, when
        None, from pandapower's result tables."""
        ok = self.outcome.converged
        for table, (res_table, attrs) in RESULT_SPEC.items():
            n = len(self.net[table])
            if ok and raw is not None:
                got = raw.get(table)
                self.results[table] = {a: got[c] if got is not None else np.full(n, np.nan)
                                       for a, c in attrs.items()}
            elif ok:
                # one block read per table, then columns by position: far fewer pandas
                # calls than a Series per attribute
                res = self.net[res_table]
                block = res.to_numpy(dtype=float)
                where = {c: k for k, c in enumerate(res.columns)}
                self.results[table] = {a: block[:, where[c]] for a, c in attrs.items()}
            else:
                self.results[table] = {a: np.full(n, np.nan) for a in attrs}
        for table, attr, column, dtype in STATE_ATTRS:
            self.results.setdefault(table, {})[attr] = self.net[table][column].to_numpy(dtype=dtype)
        self._collect_flags()
        r = self.results
        nan = float("nan")
        self.summary = {
            "converged": int(ok),
            "p_loss_mw": float(np.sum(r["line"]["pl_mw"]) + np.sum(r["trafo"]["pl_mw"])) if ok else nan,
            "q_loss_mvar": self._q_loss_mvar(raw) if ok else nan,
            "p_load_mw": float(np.sum(r["load"]["p_mw"])) if ok else nan,
            "p_sgen_mw": float(np.sum(r["sgen"]["p_mw"])) if ok else nan,
            "p_storage_mw": float(np.sum(r["storage"]["p_mw"])) if ok else nan,
            "p_ext_grid_mw": float(np.sum(r["ext_grid"]["p_mw"])) if ok else nan,
            "vm_min_pu": float(np.nanmin(r["bus"]["vm_pu"])) if ok else nan,
            "vm_max_pu": float(np.nanmax(r["bus"]["vm_pu"])) if ok else nan,
            "pf_message": self.outcome.message,
        }

    def _q_loss_mvar(self, raw: dict[str, dict[str, np.ndarray]] | None) -> float:
        if raw is not None:
            return float(sum(np.sum(raw[t]["ql_mvar"]) for t in ("line", "trafo") if t in raw))
        return float(self.net.res_line["ql_mvar"].to_numpy().sum()
                     + self.net.res_trafo["ql_mvar"].to_numpy().sum())

    def _collect_flags(self) -> None:
        net, r, p = self.net, self.results, self.protection
        for table, attr in FLAG_ATTRS[:3]:
            index = net[table].index
            # nothing tripped and no indicator set (nearly every solve): no loop over elements
            if p is None or not (p.tripped if table == "switch" else p.fpi_since):
                r[table][attr] = self._no_flags.setdefault(table, np.zeros(len(index), bool))
            elif table == "switch":
                r[table][attr] = np.fromiter((int(i) in p.tripped for i in index), bool, len(index))
            else:
                r[table][attr] = np.fromiter((p.fpi_flag(table, int(i)) for i in index), bool,
                                             len(index))
        load = net.load
        if self._live_buses is None:  # the topology changed: whose supply did?
            graph = top.create_nxgraph(net, respect_switches=True, include_out_of_service=False)
            self._live_buses = live_buses(net, graph)
            self._supplied = load["in_service"].to_numpy(dtype=bool) & np.fromiter(
                (int(b) in self._live_buses for b in load["bus"]), bool, len(load))
        r["load"]["supplied"] = self._supplied
        # what each load would draw: its energy is not supplied while it is cut off
        r["load"]["p_demand_mw"] = (load["p_mw"].to_numpy(dtype=float)
                                    * load["scaling"].to_numpy(dtype=float)
                                    * load["in_service"].to_numpy(dtype=bool))

    def snapshot(self) -> dict[str, dict[str, np.ndarray]]:
        """All element results as numpy arrays, per table and attribute, in the net's index
        order: handed over in-process without a Python object per value (the recorder's
        column batches), as copies of their own, since the model reuses or overwrites its
        arrays (and pandas columns) at the next solve or switching."""
        return {table: {attr: np.array(values, copy=True) for attr, values in attrs.items()}
                for table, attrs in self.results.items()}

    def value(self, table: str, idx: int, attr: str) -> float | bool:
        v = self.results[table][attr][self.positions[table][idx]]
        return v.item()
