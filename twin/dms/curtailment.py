"""Central supervisory curtailment: the DSO relieves a congested line or trafo by remote
active-power limits on DER, least curtailed energy first.

Which units the DSO may limit (stage 2 of the DMS paper's supervisory control [1]_, after
the German feed-in law it cites [2]_):

* a unit **above 30 kWp** must have a remote-control interface: the DSO may always limit it;
* a unit of **30 kWp or less** either has such an interface (then it is limited like the
  large ones) or caps its own feed-in at **70 % of its peak** for good. That cap acts at the
  unit, not through the DMS: :func:`seventy_percent_cap_mw` only reports it.

The plan is a linear programme over the eligible units' curtailments ``c_i`` [MW]:
minimise ``Σ c_i`` (the curtailed energy of the step, ``Σ c_i · Δt``) such that every
congestion's flow falls to its limit, ``Σ_i S_ki · c_i ≥ flow_k − limit_k``, with
``0 ≤ c_i ≤ p_i``. ``S_ki`` is how much congestion ``k``'s flow falls per MW less
injected at unit ``i``'s bus (:func:`flow_sensitivities`). Solved with HiGHS
(:func:`scipy.optimize.linprog`). When no curtailment clears every congestion, a first
programme finds the most relief the units can give and a second the least curtailment
that gives it, and the plan reports the relief still missing.

Around the programme, :func:`plan_curtailment` checks the plan with a power flow and
corrects the relief aimed at by what the flow shows (the sensitivities are the slope at
the operating point; the loading falls a little less than that slope says as the flow
shrinks), until the congestion is within its limit.

Sign conventions are pandapower's: line flows at the from end, trafo flows at the HV side,
active power positive into the branch; a DER's ``p_mw`` is positive when it feeds in.

References
----------
.. [1] The DMS paper beside DESIGN.md, section III.F (scaling DMS for supervisory control),
   stage 2: active power management of DER units.
.. [2] Erneuerbare-Energien-Gesetz (EEG 2012), § 6 (technical requirements: remote power
   reduction for PV above 30 kWp; 70 % feed-in cap or remote reduction up to 30 kWp).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandapower as pp
from scipy.optimize import linprog

from twin.dms.decisions import Decision, DecisionMode
from twin.dms.netcopy import working_copy
from twin.grid.names import element_names, split_ref

#: Units above this installed power [MWp] must be remote-controllable (EEG § 6).
ELIGIBLE_MIN_MW = 0.030
#: Static feed-in cap of small PV without a remote-control interface [fraction of peak].
SEVENTY_PERCENT = 0.7

#: What a congestion limits: the result column per table and the sign that turns it into
#: the quantity. ``p_reverse_mw`` is active power leaving the branch at its from/HV end —
#: back-feed on a line, an interface trafo's export to the upstream grid.
QUANTITIES: dict[str, tuple[dict[str, str], float, str]] = {
    "loading_percent": ({"line": "loading_percent", "trafo": "loading_percent"}, 1.0, "%"),
    "p_mw": ({"line": "p_from_mw", "trafo": "p_hv_mw"}, 1.0, "MW"),
    "p_reverse_mw": ({"line": "p_from_mw", "trafo": "p_hv_mw"}, -1.0, "MW"),
    "i_ka": ({"line": "i_ka", "trafo": "i_hv_ka"}, 1.0, "kA"),
}

_TINY_MW = 1e-6  # curtailments below this are solver noise


@dataclass(frozen=True)
class DerUnit:
    """A DER unit the DMS knows.

    Attributes
    ----------
    target : str
        The reference a set-point decision carries. For the DMS that is the grid element,
        ``"sgen:PV 8"`` (as Volt/Var's ``set_der_q`` decisions; the cycle's ``device_refs``
        turns it into the field's ``"pv:PV 8"``). :func:`curtail` only names it;
        :func:`plan_curtailment` looks it up in the net, so there it must be ``sgen:…``.
    bus : int
        pandapower bus index of the connection point.
    p_mw : float
        Current output [MW].
    p_peak_mw : float
        Installed power [MWp].
    remote : bool
        Whether the unit has a remote-control interface (see :func:`eligible`).
    """

    target: str
    bus: int
    p_mw: float
    p_peak_mw: float
    remote: bool = False

    @property
    def name(self) -> str:
        return self.target.partition(":")[2] or self.target


@dataclass(frozen=True)
class Congestion:
    """A branch flow above its limit.

    Attributes
    ----------
    element : str
        ``"line:Line 3-4"`` or ``"trafo:Trafo 0-1"``.
    flow : float
        The flow now, in the unit of ``quantity``.
    limit : float
        Its limit, same unit.
    quantity : str
        A key of :data:`QUANTITIES`: ``loading_percent`` [%], ``p_mw`` / ``p_reverse_mw``
        [MW], ``i_ka`` [kA].
    """

    element: str
    flow: float
    limit: float
    quantity: str = "loading_percent"

    def __post_init__(self):
        if self.quantity not in QUANTITIES:
            raise ValueError(f"congestion quantity: expected one of {', '.join(QUANTITIES)}; "
                             f"found {self.quantity!r}")

    @property
    def relief(self) -> float:
        """How far the flow must fall [unit of ``quantity``] (≤ 0: within its limit)."""
        return self.flow - self.limit

    @property
    def unit(self) -> str:
        return QUANTITIES[self.quantity][2]

    def describe(self) -> str:
        """``"Line 3-4 at 112 % of rating (limit 100 %)"``."""
        name = split_ref(self.element)[1]
        if self.quantity == "loading_percent":
            return f"{name} at {self.flow:.0f} % of rating (limit {self.limit:.0f} %)"
        if self.quantity == "p_reverse_mw":
            return f"{name} feeding back {self.flow:.2f} MW (limit {self.limit:.2f} MW)"
        return f"{name} carrying {self.flow:.3g} {self.unit} (limit {self.limit:.3g} {self.unit})"


@dataclass(frozen=True)
class SetPoint:
    """A curtailed unit's new limit."""

    target: str
    p_mw: float           # output before [MW]
    p_limit_mw: float     # the limit sent [MW]
    curtailed_mw: float   # p_mw − p_limit_mw
    reason: str


@dataclass(frozen=True)
class CurtailmentPlan:
    """What :func:`curtail` (or :func:`plan_curtailment`) decided.

    Attributes
    ----------
    set_points : tuple of SetPoint
        The curtailed units only, in the order of the units given.
    curtailed_mw : float
        Total curtailment [MW]; times the step length it is the curtailed energy.
    congestions : tuple of Congestion
        As given (the flows before).
    flow_after : dict
        Element → flow after the plan: the linear prediction from the sensitivities, or
        a power flow's when ``verified``.
    residual : dict
        Element → relief still missing after the plan [unit of its quantity]; 0 for every
        element when the plan clears all congestions.
    feasible : bool
        Whether the eligible units can clear every congestion.
    reasons : dict
        Unit target → one sentence: why it is curtailed, left alone, or not controlled.
    reason : str
        One sentence for the whole plan.
    verified : bool
        ``flow_after`` and ``residual`` come from a power flow with the plan applied.
    power_flows : int
        Power flows run to make the plan.
    """

    set_points: tuple[SetPoint, ...]
    curtailed_mw: float
    congestions: tuple[Congestion, ...]
    flow_after: dict[str, float]
    residual: dict[str, float]
    feasible: bool
    reasons: dict[str, str]
    reason: str
    verified: bool = False
    power_flows: int = 0

    @property
    def p_limits_mw(self) -> dict[str, float]:
        """Unit target → new limit [MW], curtailed units only."""
        return {s.target: s.p_limit_mw for s in self.set_points}

    def decisions(self, t_s: float, mode: DecisionMode = "direct") -> list[Decision]:
        """One ``set_der_p_limit`` decision per curtailed unit."""
        worst = max(self.congestions, key=lambda c: c.relief / _scale(c), default=None)
        inputs = {} if worst is None else {"element": worst.element, "flow": round(worst.flow, 4),
                                           "limit": worst.limit, "quantity": worst.quantity}
        return [Decision(t_s, "curtailment", "set_der_p_limit", s.target, round(s.p_limit_mw, 6),
                         mode, s.reason, {**inputs, "p_mw": round(s.p_mw, 6)})
                for s in self.set_points]


def eligible(unit: DerUnit) -> bool:
    """Whether the DSO may limit ``unit`` remotely.

    Units above :data:`ELIGIBLE_MIN_MW` (30 kWp) must be remote-controllable, so they
    always are; a unit of 30 kWp or less only if it has a remote-control interface — the
    alternative the law allows it is the static 70 % cap (:func:`seventy_percent_cap_mw`),
    which the DMS cannot move. Exactly 30 kWp counts as small ("more than 30 kWp" [1]_).

    References
    ----------
    .. [1] The DMS paper, section III.F, stage 2.
    """
    return unit.p_peak_mw > ELIGIBLE_MIN_MW + 1e-9 or unit.remote


def seventy_percent_cap_mw(p_peak_mw: float) -> float:
    """The static feed-in cap of small PV without a remote-control interface [MW].

    Notes
    -----
    ``p_cap = 0.7 · p_peak``. It is applied by the unit's own inverter, not by the DMS;
    the DMS reports it (the paper's text says "reactive power" here; the law limits the
    active feed-in).
    """
    return SEVENTY_PERCENT * p_peak_mw


def units_from_net(net: pp.pandapowerNet, sgens: Iterable[str] | None = None, *,
                   remote: Iterable[str] = (), p_peak_mw: Mapping[str, float] | None = None
                   ) -> list[DerUnit]:
    """The net's static generators as :class:`DerUnit`, targets ``"sgen:<name>"``.

    Parameters
    ----------
    net : pandapowerNet
    sgens : iterable of str, optional
        Names of the sgens to take (default: all in service).
    remote : iterable of str
        Names of small units with a remote-control interface.
    p_peak_mw : mapping, optional
        Name → installed power [MWp]; default the sgen's ``sn_mva``.
    """
    names = element_names(net, "sgen")
    wanted = set(names) if sgens is None else set(sgens)
    unknown = wanted - set(names)
    if unknown:
        raise ValueError(f"units_from_net: expected sgen names of the net; found {sorted(unknown)}")
    remote, peaks = set(remote), dict(p_peak_mw or {})
    out = []
    for (idx, row), name in zip(net.sgen.iterrows(), names):
        if name in wanted and bool(row.in_service):
            p = float(row.p_mw) * float(row.get("scaling", 1.0))
            out.append(DerUnit(f"sgen:{name}", int(row.bus), p,
                               float(peaks.get(name, row.sn_mva)), name in remote))
    return out


def element_rows(net: pp.pandapowerNet, refs: Iterable[str]) -> list[tuple[str, int]]:
    """``"<table>:<name>"`` → ``(table, index)`` in the net, in order.

    Raises
    ------
    ValueError
        Naming the references the net does not hold.
    """
    lookup: dict[str, dict[str, int]] = {}
    out, missing = [], []
    for ref in refs:
        table, name = split_ref(ref)
        if table not in lookup:
            if table not in ("bus", "line", "trafo", "sgen", "load", "storage", "shunt"):
                raise ValueError(f"expected a line, trafo, sgen, storage or shunt; found {ref!r}")
            lookup[table] = dict(zip(element_names(net, table), map(int, net[table].index)))
        idx = lookup[table].get(name)
        if idx is None:
            missing.append(ref)
        else:
            out.append((table, idx))
    if missing:
        raise ValueError(f"expected elements of the net; found unknown {', '.join(missing)}")
    return out


def read_flows(net: pp.pandapowerNet, refs: Sequence[str],
               quantity: str | Sequence[str] = "loading_percent") -> np.ndarray:
    """The flows of ``refs`` from the net's last power flow [unit of each quantity]."""
    quantities = _quantities(quantity, len(refs))
    out = np.empty(len(refs))
    for k, ((table, idx), q) in enumerate(zip(element_rows(net, refs), quantities)):
        columns, sign, _unit = QUANTITIES[q]
        out[k] = sign * float(net[f"res_{table}"].at[idx, columns[table]])
    return out


def find_congestions(net: pp.pandapowerNet, max_loading_percent: float = 100.0
                     ) -> list[Congestion]:
    """Lines and trafos above ``max_loading_percent`` in the net's last power flow, worst
    first."""
    found = []
    for table in ("line", "trafo"):
        loading = net[f"res_{table}"]["loading_percent"]
        for name, idx in zip(element_names(net, table), net[table].index):
            value = float(loading.get(idx, math.nan))
            if value > max_loading_percent:
                found.append(Congestion(f"{table}:{name}", value, max_loading_percent))
    return sorted(found, key=lambda c: -c.flow)


def flow_sensitivities(net: pp.pandapowerNet, branches: Sequence[str], buses: Sequence[int],
                       quantity: str | Sequence[str] = "loading_percent",
                       delta_mw: float = 0.05) -> np.ndarray:
    """How each branch's flow changes per MW injected at each bus.

    Parameters
    ----------
    net : pandapowerNet
        The operating point (injections, switches, taps); not changed.
    branches : sequence of str
        ``"line:…"`` / ``"trafo:…"`` references.
    buses : sequence of int
        Bus indices; a bus may repeat (one column per entry, one power flow per bus).
    quantity : str or sequence of str
        A key of :data:`QUANTITIES`, for all branches or one per branch.
    delta_mw : float
        The finite-difference step [MW].

    Returns
    -------
    numpy.ndarray
        Shape ``(len(branches), len(buses))`` [unit of the quantity per MW injected].

    Raises
    ------
    pandapower.LoadflowNotConverged
        If the operating point has no power-flow solution.

    Notes
    -----
    ``S_kb = (f_k(P_b − Δ) − f_k(P_b)) / (−Δ)``: one AC power flow (pandapower
    ``runpp``) per bus with ``Δ`` MW less injected there, the direction a curtailment
    moves. Finite differences on the AC model rather than a DC PTDF because the limits
    are in loading [% of the current rating], which depends on the reactive flow and the
    voltage a DC model leaves out, and because losses make a distant unit relieve a
    congested line a little less than a near one — the difference the least-energy
    choice turns on.
    """
    quantities = _quantities(quantity, len(branches))
    work = working_copy(net, ("sgen",))
    start = int(buses[0]) if len(buses) else int(work.bus.index[0])
    probe = pp.create_sgen(work, start, p_mw=0.0, q_mvar=0.0, name="sensitivity probe")
    pp.runpp(work)
    base = read_flows(work, branches, quantities)
    column: dict[int, np.ndarray] = {}
    for bus in dict.fromkeys(int(b) for b in buses):
        work.sgen.at[probe, "bus"] = bus
        work.sgen.at[probe, "p_mw"] = -delta_mw
        pp.runpp(work, init="results")
        column[bus] = (read_flows(work, branches, quantities) - base) / -delta_mw
    if not len(buses):
        return np.zeros((len(branches), 0))
    return np.column_stack([column[int(b)] for b in buses])


def curtail(units: Sequence[DerUnit], congestions: Sequence[Congestion],
            sensitivities: np.ndarray, relief: Sequence[float] | None = None
            ) -> CurtailmentPlan:
    """The least curtailment of eligible units that clears every congestion.

    Parameters
    ----------
    units : sequence of DerUnit
    congestions : sequence of Congestion
        Also elements within their limit may be listed: the plan then keeps them there.
    sensitivities : numpy.ndarray
        Shape ``(len(congestions), len(units))``: congestion ``k``'s flow change per MW
        injected at unit ``i``'s bus (:func:`flow_sensitivities` with the units' buses).
    relief : sequence of float, optional
        The flow reduction to aim at per congestion; default ``flow − limit``.
        :func:`plan_curtailment` passes corrected values after checking a plan.

    Returns
    -------
    CurtailmentPlan
        Not verified: ``flow_after`` is the linear prediction.

    Notes
    -----
    With ``x_i = c_i`` the curtailment of eligible unit ``i`` [MW] and ``s_k ≥ 0`` the
    relief congestion ``k`` still misses::

        1.  s* = argmin Σ_k s_k / |limit_k|
        2.  min Σ_i x_i
        s.t. Σ_i S_ki x_i + s_k ≥ relief_k,   0 ≤ x_i ≤ p_i,   s_k ≤ s*_k

    Step 1 is zero when the units can clear every congestion; otherwise it is the most
    relief they can give (every useful unit curtailed as far as that helps) and step 2
    the least curtailment that gives it. Both with HiGHS.
    """
    sens = np.atleast_2d(np.asarray(sensitivities, dtype=float))
    n_c, n_u = len(congestions), len(units)
    if sens.shape != (n_c, n_u):
        raise ValueError(f"curtail: expected sensitivities of shape ({n_c}, {n_u}) "
                         f"(congestions × units); found {sens.shape}")
    need = np.array([c.relief for c in congestions] if relief is None else relief, dtype=float)
    free = [i for i, u in enumerate(units) if eligible(u) and u.p_mw > _TINY_MW]
    cut = np.zeros(n_u)
    if n_c and free:
        cut[free] = _solve(sens[:, free], need, np.array([units[i].p_mw for i in free]),
                           np.array([max(abs(c.limit), 1e-9) for c in congestions]))
    p_mw = np.array([u.p_mw for u in units])
    cut[cut < _TINY_MW] = 0.0
    off = (cut > 0.0) & (p_mw - cut < _TINY_MW)
    cut[off] = p_mw[off]  # switched off: a limit of exactly 0 MW
    gain = sens @ cut
    after = {c.element: c.flow - g for c, g in zip(congestions, gain)}
    missing = np.clip(need - gain, 0.0, None)
    scale = np.array([_scale(c) for c in congestions])
    feasible = bool(np.all(missing <= 1e-6 * scale))
    residual = {c.element: float(m) if not feasible else 0.0
                for c, m in zip(congestions, missing)}
    return _plan(units, congestions, sens, cut, after, residual, feasible)


def plan_curtailment(net: pp.pandapowerNet, units: Sequence[DerUnit],
                     congestions: Sequence[Congestion] | None = None, *,
                     max_loading_percent: float = 100.0, tolerance: float = 0.001,
                     max_corrections: int = 4, delta_mw: float = 0.05) -> CurtailmentPlan:
    """Curtail to clear the net's congestions, checked and corrected with power flows.

    Parameters
    ----------
    net : pandapowerNet
        The operating point (the DMS's model with the estimated injections); not changed.
    units : sequence of DerUnit
        Targets ``"sgen:<name>"`` of the net (:func:`units_from_net`).
    congestions : sequence of Congestion, optional
        Default: every line and trafo above ``max_loading_percent`` (:func:`find_congestions`).
    max_loading_percent : float
        Limit for the default congestions [%].
    tolerance : float
        The plan aims at ``limit · (1 − tolerance / 2)`` so that the flow it brings about
        lands within the limit, and stops once it does [fraction of the limit].
    max_corrections : int
        Power-flow checks after the first plan.
    delta_mw : float
        Finite-difference step of the sensitivities [MW].

    Returns
    -------
    CurtailmentPlan
        Verified: ``flow_after`` and ``residual`` from a power flow with the plan applied.

    Notes
    -----
    Fixed-point correction: after the plan ``x(r)`` for the relief ``r``, a power flow
    gives the flows ``f(x)``; ``r ← r + f(x) − f_aim`` for every congestion above its aim,
    then a new plan. The sensitivities stay those of the operating point, so the plans
    differ only in how far they go, and each stays the least-energy one for its relief.
    """
    work = working_copy(net, ("sgen",))
    pp.runpp(work)
    runs = 1
    if congestions is None:
        congestions = find_congestions(work, max_loading_percent)
    congestions = tuple(congestions)
    if not congestions:
        return _plan(units, (), np.zeros((0, len(units))), np.zeros(len(units)), {}, {}, True,
                     verified=True, power_flows=runs)
    refs = [c.element for c in congestions]
    quantities = [c.quantity for c in congestions]
    sens = flow_sensitivities(net, refs, [u.bus for u in units], quantities, delta_mw)
    runs += 1 + len({u.bus for u in units})
    sgen_rows = [idx for _table, idx in element_rows(work, [u.target for u in units])]
    scaling = work.sgen["scaling"].reindex(sgen_rows).fillna(1.0).to_numpy(dtype=float)
    limit = np.array([c.limit for c in congestions])
    aim = limit - np.abs(limit) * tolerance / 2
    relief = np.array([c.flow for c in congestions]) - aim
    for _round in range(max_corrections + 1):
        plan = curtail(units, congestions, sens, relief)
        p_out = np.array([u.p_mw for u in units])
        for s in plan.set_points:
            p_out[[u.target for u in units].index(s.target)] = s.p_limit_mw
        work.sgen.loc[sgen_rows, "p_mw"] = p_out / scaling
        pp.runpp(work, init="results")
        runs += 1
        flows = read_flows(work, refs, quantities)
        if not plan.feasible or np.all(flows <= limit):
            break
        relief = relief + np.where(flows > aim, flows - aim, 0.0)
    over = np.clip(flows - limit, 0.0, None)
    cut = np.array([u.p_mw for u in units]) - p_out
    out = _plan(units, congestions, sens, cut, dict(zip(refs, map(float, flows))),
                dict(zip(refs, map(float, over))), bool(np.all(over == 0.0)), verified=True,
                power_flows=runs)
    if plan.feasible and not out.feasible:  # the corrections ran out, not the units
        worst = congestions[int(np.argmax(over / np.maximum(np.abs(limit), 1e-9)))]
        out = replace(out, reason=(
            f"After {max_corrections} corrections {split_ref(worst.element)[1]} is still "
            f"{over.max():.3g} {worst.unit} above its limit with {out.curtailed_mw:.3f} MW "
            f"curtailed; the plan needs another cycle."))
    return out


# --------------------------------------------------------------------------- helpers
def _quantities(quantity: str | Sequence[str], n: int) -> list[str]:
    out = [quantity] * n if isinstance(quantity, str) else list(quantity)
    if len(out) != n:
        raise ValueError(f"expected one quantity per branch ({n}); found {len(out)}")
    for q in out:
        if q not in QUANTITIES:
            raise ValueError(f"quantity: expected one of {', '.join(QUANTITIES)}; found {q!r}")
    return out


def _scale(c: Congestion) -> float:
    return max(abs(c.limit), 1e-9)


def _solve(sens: np.ndarray, need: np.ndarray, p_mw: np.ndarray, scale: np.ndarray
           ) -> np.ndarray:
    """The two linear programmes of :func:`curtail` (see its Notes); returns ``x``."""
    n_c, n_u = sens.shape
    # variables [x_1 … x_n, s_1 … s_m]; Σ S x + s ≥ need  ⇔  −S x − s ≤ −need
    a_ub = np.hstack([-sens, -np.eye(n_c)])
    bounds = [(0.0, float(p)) for p in p_mw] + [(0.0, None)] * n_c
    first = linprog(np.concatenate([np.zeros(n_u), 1.0 / scale]), A_ub=a_ub, b_ub=-need,
                    bounds=bounds, method="highs")
    if first.status != 0:  # cannot happen with the slacks; keep the units untouched
        return np.zeros(n_u)
    slack = first.x[n_u:]
    bounds = bounds[:n_u] + [(0.0, float(s) + 1e-9 * float(k)) for s, k in zip(slack, scale)]
    second = linprog(np.concatenate([np.ones(n_u), np.zeros(n_c)]), A_ub=a_ub, b_ub=-need,
                     bounds=bounds, method="highs")
    x = second.x if second.status == 0 else first.x
    return np.clip(x[:n_u], 0.0, p_mw)


def _main_congestion(congestions, sens_i: np.ndarray, cut_i: float) -> int:
    """The congestion a unit's curtailment relieves most (share of its relief); among
    elements within their limit only if no listed one is congested."""
    share = [sens_i[k] / c.relief if c.relief > 0 else -math.inf
             for k, c in enumerate(congestions)]
    if not np.isfinite(max(share)):
        share = list(sens_i)
    return int(np.argmax(share))


def _plan(units, congestions, sens, cut, after, residual, feasible, verified=False,
          power_flows=0) -> CurtailmentPlan:
    congestions = tuple(congestions)
    total = float(cut.sum())
    curtailed = [i for i in range(len(units)) if cut[i] > 0.0]
    set_points, reasons = [], {}
    for i, u in enumerate(units):
        if not eligible(u):
            cap = seventy_percent_cap_mw(u.p_peak_mw)
            reasons[u.target] = (
                f"{u.name} ({u.p_peak_mw * 1000:.0f} kWp, no remote-control interface) is not "
                f"limited by the DSO; its own static 70 % cap of {cap:.3f} MW applies at the unit.")
            continue
        if not congestions:
            reasons[u.target] = f"{u.name} not curtailed: no congestion."
            continue
        k = _main_congestion(congestions, sens[:, i], cut[i])
        c = congestions[k]
        if cut[i] > 0.0:
            limit_mw = u.p_mw - cut[i]
            others = len(curtailed) - 1
            if not feasible:
                why = ("every unit that relieves it is curtailed as far as that helps, and "
                       f"{residual.get(c.element, 0.0):.3g} {c.unit} of relief is still missing")
            elif others:
                why = (f"with {others} other unit{'s' if others > 1 else ''} "
                       f"({total:.2f} MW in all), the least curtailed energy that relieves it")
            else:
                why = "the unit that relieves it with least curtailed energy"
            text = (f"{c.describe()}: {u.name} limited to {limit_mw:.2f} MW "
                    f"(−{cut[i]:.2f} MW), {why}.")
            reasons[u.target] = text
            set_points.append(SetPoint(u.target, u.p_mw, float(limit_mw), float(cut[i]), text))
        elif u.p_mw <= _TINY_MW:
            reasons[u.target] = f"{u.name} not curtailed: it feeds in nothing."
        elif sens[k, i] <= 0.0:
            reasons[u.target] = f"{u.name} not curtailed: its output does not load {c.describe()}."
        else:
            reasons[u.target] = (f"{u.name} not curtailed: other units relieve "
                                 f"{split_ref(c.element)[1]} with less curtailed energy "
                                 f"({sens[k, i]:.3g} {c.unit} per MW here).")
    if not congestions:
        reason = "No congestion: nothing to curtail."
    elif feasible:
        reason = (f"{'; '.join(c.describe() for c in congestions if c.relief > 0)}: "
                  f"{len(set_points)} unit{'s' if len(set_points) != 1 else ''} curtailed by "
                  f"{total:.3f} MW in all, the least curtailed energy that clears it.")
    else:
        short = "; ".join(f"{split_ref(e)[1]} {r:.3g} {c.unit}"
                          for (e, r), c in zip(residual.items(), congestions) if r > 0)
        reason = (f"Curtailment cannot clear the congestion: with {total:.3f} MW curtailed "
                  f"(every eligible unit that helps) the relief still missing is {short}.")
    return CurtailmentPlan(tuple(set_points), total, congestions, dict(after), dict(residual),
                           feasible, reasons, reason, verified, power_flows)

