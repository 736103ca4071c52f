"""TSO–DSO coordination at the HV/MV interface: the DSO realises a reactive-power request
and keeps an active-power limit of the TSO at its interface transformer.

Stage 3 of the DMS paper's supervisory control [1]_: the DSO takes over part of the TSO's
reactive power management (as Swissgrid's coordinated voltage control lets distribution
grids take part [2]_), and, as in stage 2, limits the active power its grid exchanges.

* :func:`interface_q_capability` — the range of reactive power the DSO can realise at the
  interface with its DER inverters and capacitor banks, from two power flows at the
  extremes (the reactive losses of the feeders are not linear in the injections).
* :func:`meet_q_request` — capacitor steps for the bulk, DER reactive set-points pro rata
  to their capability for the rest, corrected with power flows until the interface meets
  the request; an on-load tap change where the voltages would leave the band. A request
  outside the capability is met as far as it goes, with the shortfall reported.
* :func:`meet_p_limit` — a maximum import or export: batteries first (they keep the
  energy), then DER curtailment with the interface trafo as the congestion
  (:func:`twin.dms.curtailment.plan_curtailment`).

Sign conventions are pandapower's: the interface flows are ``res_trafo.p_hv_mw`` /
``q_hv_mvar``, positive from the upstream (TSO) grid into the trafo — the DSO's import; a
DER's ``q_mvar`` is positive when it injects (over-excited); a capacitor is a shunt
consuming ``q_mvar < 0`` per step; a battery's ``p_mw`` is positive when it charges.

References
----------
.. [1] The DMS paper beside DESIGN.md, section III.F (scaling DMS for supervisory control),
   stages 2 and 3.
.. [2] Swissgrid, "Coordinated voltage control in the transmission system", concept for the
   participation of distribution grids in 220/380 kV voltage control.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandapower as pp
import pandapower.topology as top

from twin.dms.curtailment import (
    Congestion,
    CurtailmentPlan,
    DerUnit,
    element_rows,
    plan_curtailment,
)
from twin.dms.decisions import Decision, DecisionMode
from twin.dms.netcopy import working_copy
from twin.grid.names import split_ref


@dataclass(frozen=True)
class QCapability:
    """The reactive power the DSO can realise at an interface trafo (at its present tap
    and active powers).

    Attributes
    ----------
    trafo : str
        ``"trafo:<name>"``.
    q_min_mvar, q_max_mvar : float
        Interface import range [Mvar, HV side]: the minimum with every DER at its
        maximum injection and every capacitor step in, the maximum with every DER at its
        maximum absorption and every capacitor out.
    q_now_mvar, p_now_mw : float
        The interface flows now [Mvar, MW].
    vm_now_pu, vm_at_q_min_pu, vm_at_q_max_pu : tuple of float
        ``(min, max)`` bus voltage of the area behind the trafo now and at the extremes
        [p.u.]; the capability does not keep them in any band.
    """

    trafo: str
    q_min_mvar: float
    q_max_mvar: float
    q_now_mvar: float
    p_now_mw: float
    vm_now_pu: tuple[float, float]
    vm_at_q_min_pu: tuple[float, float]
    vm_at_q_max_pu: tuple[float, float]

    def contains(self, q_mvar: float) -> bool:
        return self.q_min_mvar <= q_mvar <= self.q_max_mvar


@dataclass(frozen=True)
class TsoDsoPlan:
    """How the DSO meets a reactive-power request at the interface.

    Attributes
    ----------
    trafo : str
    q_request_mvar, q_before_mvar, q_achieved_mvar : float
        Requested, before and after the plan (by power flow) [Mvar, HV side import].
    shortfall_mvar : float
        ``q_request − q_achieved`` [Mvar].
    met : bool
        ``|shortfall| ≤`` the tolerance.
    capability : QCapability
    der_q_mvar : dict
        DER ``"sgen:<name>"`` → reactive set-point [Mvar, positive injecting].
    capacitor_steps : dict
        ``"shunt:<name>"`` → step.
    tap_pos : dict
        ``"trafo:<name>"`` → tap position, for the OLTCs the plan may move.
    vm_min_pu, vm_max_pu : float
        Voltage range of the area after the plan [p.u.].
    within_band : bool
    power_flows : int
    reason : str
        One sentence for the operator (and the TSO).
    """

    trafo: str
    q_request_mvar: float
    q_before_mvar: float
    q_achieved_mvar: float
    shortfall_mvar: float
    met: bool
    capability: QCapability
    der_q_mvar: dict[str, float]
    capacitor_steps: dict[str, int]
    tap_pos: dict[str, int]
    vm_min_pu: float
    vm_max_pu: float
    within_band: bool
    power_flows: int
    reason: str
    before: dict[str, float] = field(default_factory=dict)  # set-points before, same keys

    def decisions(self, t_s: float, mode: DecisionMode = "direct") -> list[Decision]:
        """``set_der_q``, ``set_capacitor_step`` and ``set_tap`` decisions for what changes."""
        inputs = {"trafo": self.trafo, "q_request_mvar": round(self.q_request_mvar, 4),
                  "q_before_mvar": round(self.q_before_mvar, 4)}
        out = []
        for action, values, digits in (("set_capacitor_step", self.capacitor_steps, 0),
                                       ("set_tap", self.tap_pos, 0),
                                       ("set_der_q", self.der_q_mvar, 4)):
            for ref, value in values.items():
                if ref not in self.before or abs(value - self.before[ref]) > 10**-digits / 2:
                    out.append(Decision(t_s, "tso_dso", action, ref,
                                        float(round(value, digits)), mode, self.reason, inputs))
        return out


@dataclass(frozen=True)
class PLimitPlan:
    """How the DSO keeps an active-power limit at the interface.

    Attributes
    ----------
    trafo : str
    p_before_mw, p_after_mw : float
        Interface import before and after the plan (power flow) [MW, negative = export].
    max_import_mw, max_export_mw : float or None
        The limits [MW, both positive].
    battery_p_mw : dict
        ``"storage:<name>"`` → set-point [MW, positive charging], batteries given only.
    curtailment : CurtailmentPlan or None
        The DER curtailment, if batteries were not enough.
    residual_mw : float
        How far the interface is still beyond its limit [MW].
    met : bool
    power_flows : int
    reason : str
    """

    trafo: str
    p_before_mw: float
    p_after_mw: float
    max_import_mw: float | None
    max_export_mw: float | None
    battery_p_mw: dict[str, float]
    curtailment: CurtailmentPlan | None
    residual_mw: float
    met: bool
    power_flows: int
    reason: str

    def decisions(self, t_s: float, mode: DecisionMode = "direct") -> list[Decision]:
        """``set_battery_p`` per battery moved, then the curtailment's ``set_der_p_limit``."""
        inputs = {"trafo": self.trafo, "p_before_mw": round(self.p_before_mw, 4)}
        out = [Decision(t_s, "tso_dso", "set_battery_p", ref, round(p, 6), mode, self.reason,
                        inputs) for ref, p in self.battery_p_mw.items()]
        if self.curtailment is not None:
            out += self.curtailment.decisions(t_s, mode)
        return out


def inverter_q_ranges(net: pp.pandapowerNet, der: Iterable[str]) -> dict[str, tuple[float, float]]:
    """Each inverter's reactive range at its present active power [Mvar].

    Notes
    -----
    ``|q| ≤ sqrt(s_n² − p²)`` with ``s_n`` the sgen's ``sn_mva`` (the inverter rating): a
    unit at full output has no reactive margin unless its inverter is oversized.
    """
    der = list(der)
    out = {}
    for ref, (_table, idx) in zip(der, element_rows(net, der)):
        p = float(net.sgen.at[idx, "p_mw"]) * float(net.sgen.at[idx, "scaling"])
        q = math.sqrt(max(float(net.sgen.at[idx, "sn_mva"]) ** 2 - p**2, 0.0))
        out[ref] = (-q, q)
    return out


class _Interface:
    """A working copy of the net with the interface's controls and a counted power flow."""

    def __init__(self, net, trafo, der: Mapping[str, tuple[float, float]],
                 capacitors: Sequence[str], taps: Sequence[str] = (),
                 batteries: Sequence[str] = ()):
        self.net = working_copy(net, ("sgen", "shunt", "trafo", "storage"))
        self.trafo = element_rows(self.net, [trafo])[0][1]
        self.der_refs = list(der)
        self.der = [i for _t, i in element_rows(self.net, self.der_refs)]
        ranges = np.array([der[r] for r in self.der_refs], dtype=float).reshape(-1, 2)
        self.q_lo, self.q_hi = ranges[:, 0], ranges[:, 1]
        if np.any(self.q_lo > self.q_hi):
            raise ValueError("der: expected ranges (q_min_mvar, q_max_mvar) with q_min ≤ q_max")
        self.cap_refs = list(capacitors)
        self.caps = [i for _t, i in element_rows(self.net, self.cap_refs)]
        self.cap_max = [int(self.net.shunt.at[i, "max_step"]) for i in self.caps]
        self.tap_refs = list(taps)
        self.taps = [i for _t, i in element_rows(self.net, self.tap_refs)]
        self.bat_refs = list(batteries)
        self.bats = [i for _t, i in element_rows(self.net, self.bat_refs)]
        graph = top.create_nxgraph(self.net, include_trafos=False)
        lv = int(self.net.trafo.at[self.trafo, "lv_bus"])
        self.area = sorted(top.connected_component(graph, lv))
        self.runs = 0

    def solve(self) -> tuple[float, float, float, float]:
        """Interface ``(q_mvar, p_mw)`` and the area's ``(vm_min, vm_max)``."""
        pp.runpp(self.net, init="results" if self.runs else "auto")
        self.runs += 1
        res = self.net.res_trafo
        vm = self.net.res_bus.vm_pu.reindex(self.area).to_numpy(dtype=float)
        return (float(res.at[self.trafo, "q_hv_mvar"]), float(res.at[self.trafo, "p_hv_mw"]),
                float(np.nanmin(vm)), float(np.nanmax(vm)))

    def der_q(self) -> np.ndarray:
        return self.net.sgen.loc[self.der, "q_mvar"].to_numpy(dtype=float)

    def set_der_fraction(self, u: float) -> None:
        """Every DER at the same fraction ``u`` of its range: pro rata to capability."""
        if self.der:
            self.net.sgen.loc[self.der, "q_mvar"] = self.q_lo + u * (self.q_hi - self.q_lo)

    def steps(self) -> list[int]:
        return [int(self.net.shunt.at[i, "step"]) for i in self.caps]

    def set_steps(self, steps: Sequence[int]) -> None:
        for i, s in zip(self.caps, steps):
            self.net.shunt.at[i, "step"] = int(s)

    def tap_positions(self) -> list[int]:
        return [int(self.net.trafo.at[i, "tap_pos"]) for i in self.taps]


#: Power flows behind a :class:`QCapability`: now and the two extremes.
_CAPABILITY_RUNS = 3


def interface_q_capability(net: pp.pandapowerNet, trafo: str,
                           der: Mapping[str, tuple[float, float]],
                           capacitors: Sequence[str] = ()) -> QCapability:
    """The reactive-power range the DSO can realise at the HV side of ``trafo``.

    Parameters
    ----------
    net : pandapowerNet
        The operating point; not changed.
    trafo : str
        The interface trafo, ``"trafo:<name>"``.
    der : mapping
        ``"sgen:<name>"`` → ``(q_min_mvar, q_max_mvar)`` each DER can give
        (:func:`inverter_q_ranges`, or contracted ranges).
    capacitors : sequence of str
        Switchable capacitor banks, ``"shunt:<name>"`` (steps ``0 … max_step``).

    Returns
    -------
    QCapability

    Notes
    -----
    Three power flows: now, every DER at ``q_max`` and every capacitor in (→ ``q_min``
    at the interface), every DER at ``q_min`` and every capacitor out (→ ``q_max``). The
    feeders' reactive losses grow with the square of the current, so the extremes are
    measured, not extrapolated.
    """
    iface = _Interface(net, trafo, der, capacitors)
    q_now, p_now, *vm_now = iface.solve()
    iface.set_der_fraction(1.0)
    iface.set_steps(iface.cap_max)
    q_lo, _p, *vm_lo = iface.solve()
    iface.set_der_fraction(0.0)
    iface.set_steps([0] * len(iface.caps))
    q_hi, _p, *vm_hi = iface.solve()
    return QCapability(trafo, min(q_lo, q_now), max(q_hi, q_now), q_now, p_now, tuple(vm_now),
                       tuple(vm_lo), tuple(vm_hi))


def _step_ladder(max_steps: Sequence[int]) -> list[list[int]]:
    """Capacitor configurations with 0, 1, … steps in all, spread round-robin over the
    banks (a bulk in one bank would raise its feeder's voltage most)."""
    steps = [0] * len(max_steps)
    ladder = [list(steps)]
    while any(s < m for s, m in zip(steps, max_steps)):
        for k, m in enumerate(max_steps):
            if steps[k] < m:
                steps[k] += 1
                ladder.append(list(steps))
    return ladder


def _fit_der(iface: _Interface, target: float, tol: float, max_corrections: int
             ) -> tuple[float, float, float, float]:
    """Set the DER fraction so that the interface meets ``target``; returns the power
    flow at the set-points (:meth:`_Interface.solve`).

    Fixed point: ``u ← u + (target − q(u)) / (dq/du)`` with the slope measured from the
    last two power flows (first guess: the DER's total range, all absorbed as import).
    """
    span = float(np.sum(iface.q_hi - iface.q_lo))
    u = 0.5
    iface.set_der_fraction(u)
    state = iface.solve()
    if span <= 0.0:
        return state
    slope = -span
    for _k in range(max_corrections):
        q = state[0]
        if abs(target - q) <= tol:
            break
        u_new = float(np.clip(u + (target - q) / slope, 0.0, 1.0))
        if abs(u_new - u) < 1e-9:
            break  # at the end of the DER range
        iface.set_der_fraction(u_new)
        state = iface.solve()
        if abs(state[0] - q) > 1e-9:
            slope = (state[0] - q) / (u_new - u)
        u = u_new
    return state


def _violation(vm: tuple[float, float], band: tuple[float, float]) -> float:
    return max(band[0] - vm[0], 0.0) + max(vm[1] - band[1], 0.0)


def meet_q_request(net: pp.pandapowerNet, trafo: str, q_request_mvar: float,
                   der: Mapping[str, tuple[float, float]], capacitors: Sequence[str] = (),
                   taps: Sequence[str] | None = None,
                   band_pu: tuple[float, float] = (0.95, 1.05), tolerance_mvar: float = 0.05,
                   max_corrections: int = 6, max_tap_moves: int = 6) -> TsoDsoPlan:
    """Set capacitors, DER reactive power and taps so that the interface meets a request.

    Parameters
    ----------
    net : pandapowerNet
        The operating point; not changed.
    trafo : str
        The interface trafo, ``"trafo:<name>"``.
    q_request_mvar : float
        The TSO's request [Mvar, import at the HV side].
    der : mapping
        ``"sgen:<name>"`` → ``(q_min_mvar, q_max_mvar)`` (:func:`inverter_q_ranges`).
    capacitors : sequence of str
        ``"shunt:<name>"`` banks the DSO may switch.
    taps : sequence of str, optional
        Trafos whose OLTC may move for the voltages; default the interface trafo if it
        has a tap changer.
    band_pu : (float, float)
        Voltage band for the buses behind the interface [p.u.].
    tolerance_mvar : float
        The request counts as met within this [Mvar].
    max_corrections : int
        Power-flow corrections of the DER set-points per configuration.
    max_tap_moves : int
        Tap steps at most.

    Returns
    -------
    TsoDsoPlan

    Notes
    -----
    1. The capability (:func:`interface_q_capability`) bounds the target:
       ``q_target = clip(q_request, q_min, q_max)``.
    2. Capacitors take the bulk: of the configurations with 0, 1, … steps in all, the one
       whose interface Q with the DER mid-range is closest to the target (one power flow
       each), so that the DER keep the most margin either way.
    3. The DER take the rest, pro rata to capability: ``q_i = q_min,i + u (q_max,i −
       q_min,i)`` with one ``u`` for all, corrected with power flows (:func:`_fit_der`).
    4. While a voltage of the area is outside ``band_pu``, the tap step that reduces the
       violation most, then step 3 again.
    """
    cap = interface_q_capability(net, trafo, der, capacitors)
    if taps is None:
        row = net.trafo.loc[element_rows(net, [trafo])[0][1]]
        taps = [trafo] if np.isfinite(float(row.get("tap_pos", math.nan))) else []
    iface = _Interface(net, trafo, der, capacitors, taps)
    before = {**dict(zip(iface.der_refs, map(float, iface.der_q()))),
              **dict(zip(iface.cap_refs, map(float, iface.steps()))),
              **dict(zip(iface.tap_refs, map(float, iface.tap_positions())))}
    target = float(np.clip(q_request_mvar, cap.q_min_mvar, cap.q_max_mvar))
    # 2. capacitor configuration
    iface.set_der_fraction(0.5)
    current = iface.steps()
    best = None
    for steps in _step_ladder(iface.cap_max):
        iface.set_steps(steps)
        q = iface.solve()[0]
        key = (abs(target - q), sum(abs(a - b) for a, b in zip(steps, current)))
        if best is None or key < best[0]:
            best = (key, steps)
    iface.set_steps(best[1] if best else [])
    # 3. DER; 4. taps
    vm = _fit_der(iface, target, tolerance_mvar, max_corrections)[2:]
    moves = 0
    while _violation(vm, band_pu) > 0.0 and moves < max_tap_moves:
        trial = None
        for i in iface.taps:
            pos = int(iface.net.trafo.at[i, "tap_pos"])
            for d in (-1, 1):
                if iface.net.trafo.at[i, "tap_min"] <= pos + d <= iface.net.trafo.at[i, "tap_max"]:
                    iface.net.trafo.at[i, "tap_pos"] = pos + d
                    v = _violation(iface.solve()[2:], band_pu)
                    iface.net.trafo.at[i, "tap_pos"] = pos
                    if trial is None or v < trial[0]:
                        trial = (v, i, pos + d)
        if trial is None or trial[0] >= _violation(vm, band_pu) - 1e-9:
            break  # no tap step helps
        iface.net.trafo.at[trial[1], "tap_pos"] = trial[2]
        moves += 1
        vm = _fit_der(iface, target, tolerance_mvar, max_corrections)[2:]
    q, _p, *vm = iface.solve()  # the plan itself (the last flow may have been a tap trial)
    shortfall = q_request_mvar - q
    met = abs(shortfall) <= tolerance_mvar
    within = _violation(tuple(vm), band_pu) == 0.0
    der_q = dict(zip(iface.der_refs, map(float, iface.der_q())))
    steps = dict(zip(iface.cap_refs, iface.steps()))
    tap_pos = dict(zip(iface.tap_refs, iface.tap_positions()))
    reason = _q_reason(trafo, q_request_mvar, cap, q, shortfall, met, der_q, steps, tap_pos,
                       before, tuple(vm), within, band_pu)
    return TsoDsoPlan(trafo, q_request_mvar, cap.q_now_mvar, q, shortfall, met, cap, der_q,
                      steps, tap_pos, vm[0], vm[1], within, _CAPABILITY_RUNS + iface.runs,
                      reason, before)


def _q_reason(trafo, request, cap, q, shortfall, met, der_q, steps, tap_pos, before, vm,
              within, band) -> str:
    name = split_ref(trafo)[1]
    parts = [f"{split_ref(r)[1]} to step {s}" for r, s in steps.items() if s != before.get(r)]
    if der_q:
        total = sum(der_q.values())
        parts.append(f"{len(der_q)} DER at {total:+.2f} Mvar in all (pro rata to capability)")
    parts += [f"{split_ref(r)[1]} tap {int(before[r])} → {p}" for r, p in tap_pos.items()
              if p != before.get(r)]
    actions = ", ".join(parts) if parts else "no change"
    volts = (f"voltages {vm[0]:.3f}–{vm[1]:.3f} p.u." + ("" if within else
             f", outside the {band[0]:.2f}–{band[1]:.2f} p.u. band"))
    head = (f"TSO request {request:.2f} Mvar at {name} (now {cap.q_now_mvar:.2f} Mvar): "
            f"{actions}; the interface draws {q:.2f} Mvar, {volts}")
    if met:
        return head if head.endswith(".") else head + "."
    if not cap.contains(request):
        return (head + f" — the request is outside the {cap.q_min_mvar:.2f}–"
                f"{cap.q_max_mvar:.2f} Mvar the DSO can realise, {abs(shortfall):.2f} Mvar short.")
    return head + f" — {abs(shortfall):.2f} Mvar short of the request."


def meet_p_limit(net: pp.pandapowerNet, trafo: str, *, max_import_mw: float | None = None,
                 max_export_mw: float | None = None, units: Sequence[DerUnit] = (),
                 batteries: Mapping[str, tuple[float, float]] | None = None,
                 tolerance_mw: float = 0.01, max_corrections: int = 4) -> PLimitPlan:
    """Keep the interface's active power within a maximum import or export.

    Parameters
    ----------
    net : pandapowerNet
        The operating point; not changed.
    trafo : str
        The interface trafo, ``"trafo:<name>"``.
    max_import_mw, max_export_mw : float, optional
        Limits [MW, positive numbers] on ``p_hv_mw`` and on ``−p_hv_mw``.
    units : sequence of DerUnit
        DER the DSO may curtail (targets ``"sgen:<name>"``; eligibility as in
        :func:`twin.dms.curtailment.eligible`). Curtailment only lowers an export.
    batteries : mapping, optional
        ``"storage:<name>"`` → ``(p_min_mw, p_max_mw)`` [MW, positive charging].
    tolerance_mw : float
        The batteries aim ``tolerance_mw / 2`` inside the limit and stop within it [MW].
    max_corrections : int
        Power-flow corrections of the battery set-points (and of the curtailment).

    Returns
    -------
    PLimitPlan

    Notes
    -----
    Batteries first, since they keep the energy curtailment throws away: each moves by the
    same fraction of its headroom toward charging (export limit) or discharging (import
    limit), the total ``ΔP`` corrected with power flows,
    ``ΔP ← ΔP + (p_excess − tol/2) / (∂p_excess/∂ΔP)`` with the measured slope. What they
    cannot take of an export, DER curtailment takes: :func:`plan_curtailment` with the
    congestion ``Congestion(trafo, export, max_export_mw, "p_reverse_mw")``, the least
    curtailed energy with the sensitivities of the interface export to each unit.
    """
    batteries = dict(batteries or {})
    iface = _Interface(net, trafo, {}, (), (), list(batteries))
    p_bat0 = iface.net.storage.loc[iface.bats, "p_mw"].to_numpy(dtype=float)
    lo = np.array([batteries[r][0] for r in iface.bat_refs], dtype=float)
    hi = np.array([batteries[r][1] for r in iface.bat_refs], dtype=float)
    _q, p0, *_vm = iface.solve()

    def excess(p_hv: float) -> float:  # > 0: beyond a limit [MW]; sign says which
        if max_export_mw is not None and -p_hv > max_export_mw:
            return -p_hv - max_export_mw
        if max_import_mw is not None and p_hv > max_import_mw:
            return -(p_hv - max_import_mw)
        return 0.0

    first = excess(p0)
    p, moved = p0, 0.0
    if first != 0.0 and iface.bats:
        # export (first > 0): charge; import (first < 0): discharge
        room = np.clip(hi - p_bat0, 0, None) if first > 0 else np.clip(p_bat0 - lo, 0, None)
        total_room = float(room.sum())
        sign = 1.0 if first > 0 else -1.0
        need = abs(first) + tolerance_mw / 2
        slope = 1.0  # interface relief per MW of battery move, then measured
        delta, relief = 0.0, 0.0
        for k in range(max_corrections + 1):
            delta_new = float(np.clip(delta + (need - relief) / slope, 0.0, total_room))
            if abs(delta_new - delta) < 1e-9 and k:
                break
            share = room / total_room if total_room > 0 else room
            iface.net.storage.loc[iface.bats, "p_mw"] = p_bat0 + sign * delta_new * share
            p = iface.solve()[1]
            relief_new = sign * (p - p0)  # export: p_hv rises; import: it falls
            if abs(delta_new - delta) > 1e-9:
                slope = max((relief_new - relief) / (delta_new - delta), 1e-3)
            delta, relief = delta_new, relief_new
            if abs(need - relief) <= tolerance_mw / 2:
                break
        moved = delta
    curtailment = None
    runs = iface.runs
    if excess(p) > 0.0 and units:
        congestion = Congestion(trafo, -p, float(max_export_mw), "p_reverse_mw")
        curtailment = plan_curtailment(
            iface.net, units, [congestion], max_corrections=max_corrections,
            tolerance=tolerance_mw / max(abs(float(max_export_mw)), tolerance_mw))
        runs += curtailment.power_flows
        p = -curtailment.flow_after[trafo]
    residual = abs(excess(p))
    met = residual == 0.0
    bat = {r: float(v) for r, v in
           zip(iface.bat_refs, iface.net.storage.loc[iface.bats, "p_mw"].to_numpy(dtype=float))}
    if moved == 0.0:
        bat = {}
    reason = _p_reason(trafo, p0, p, max_import_mw, max_export_mw, bat, curtailment, residual)
    return PLimitPlan(trafo, p0, p, max_import_mw, max_export_mw, bat, curtailment, residual,
                      met, runs, reason)


def _flow(p_hv_mw: float) -> str:
    return f"exports {-p_hv_mw:.2f} MW" if p_hv_mw < 0 else f"imports {p_hv_mw:.2f} MW"


def _p_reason(trafo, p0, p, max_import, max_export, bat, curtailment, residual) -> str:
    name = split_ref(trafo)[1]
    flow = _flow
    limits = " and ".join(s for s in (
        f"max export {max_export:.2f} MW" if max_export is not None else "",
        f"max import {max_import:.2f} MW" if max_import is not None else "") if s)
    if p == p0 and residual == 0.0:
        return f"{name} {flow(p0)}, within the TSO's limit ({limits}): nothing to do."
    parts = []
    if bat:
        total = sum(bat.values())
        parts.append(f"{len(bat)} batter{'ies' if len(bat) > 1 else 'y'} "
                     f"{'charging' if total > 0 else 'discharging'} {abs(total):.2f} MW in all")
    if curtailment is not None and curtailment.curtailed_mw > 0:
        parts.append(f"{len(curtailment.set_points)} DER curtailed by "
                     f"{curtailment.curtailed_mw:.2f} MW (least curtailed energy)")
    actions = " and ".join(parts) or "no unit can help"
    tail = "." if residual == 0.0 else f", {residual:.2f} MW beyond the limit: " + (
        "curtailment cannot lower an import and no battery room is left." if p > 0 else
        "no eligible DER or battery room is left.")
    return f"{name} {flow(p0)} against the TSO's {limits}: {actions}; after that it {flow(p)}{tail}"
