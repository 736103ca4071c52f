"""Volt/Var control: keep every bus voltage inside the band with OLTC taps, capacitor banks and
DER reactive power, with as few operations and as low losses as possible.

The method is a what-if search, the way a DMS's "VVC" application proposes switching: every
single move (one tap step, one capacitor step, a DER's Q one step of its capability up or
down, or back to zero) is tried with a power flow on the DMS's network model.

* **Outside the band** (a voltage beyond the limit band): each round keeps, among the moves
  that reduce the violation, the cheapest one that clears it (lowest losses); if none
  clears it, the one with the most violation removed per kW of extra losses (a move that
  also saves losses comes first). Rounds stop when every voltage is inside the target band
  or no move helps.
* **Inside the band**, every ``loss_check_every_s``: moves that lower the losses and keep
  every voltage inside the target band, best first — a tap or capacitor operation only if
  it saves at least ``min_loss_gain_mw`` (wear), a DER set-point for a tenth of that. This
  is also how an earlier correction is undone when it is no longer needed.

Anti-hunting: the target band lies a dead-band inside the limit band, so a corrected voltage
does not sit on the edge; a loss-saving tap move must keep a second dead-band of margin; an
OLTC may not move again within ``min_tap_interval_s``; in ``advisory`` mode a
recommendation stands for ``advice_hold_s`` before it is repeated.

References
----------
.. [1] J. Momoh, "Electric Power Distribution, Automation, Protection, and Control",
   CRC Press, 2008, ch. 6 (Volt/Var control).
.. [2] The DMS paper beside DESIGN.md, section on control actions (Volt/Var).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandapower as pp
import pandas as pd

from twin.dms.decisions import Decision, DecisionMode
from twin.dms.netcopy import working_copy
from twin.dms.pf_arrays import ArrayPowerFlow
from twin.grid.names import element_names, split_ref


@dataclass(frozen=True)
class VoltVarSettings:
    band_pu: tuple[float, float] = (0.95, 1.05)
    deadband_pu: float = 0.005        # target band = limit band narrowed by this
    min_tap_interval_s: float = 300.0
    max_actions: int = 3              # per cycle
    der_q_step: float = 0.25          # a DER Q move: this fraction of its Q capability
    min_loss_gain_mw: float = 0.002   # inside the band, a tap/capacitor move must save this
    loss_check_every_s: float = 900.0  # how often to look for such moves
    advice_hold_s: float = 900.0      # advisory: a recommendation stands this long
    der: tuple[str, ...] = ()         # sgen names whose Q the DMS may set


@dataclass(frozen=True)
class VoltVarState:
    """What the controller remembers between cycles."""

    last_tap_s: dict[str, float] = field(default_factory=dict)  # trafo name -> time
    last_loss_check_s: float = -math.inf
    last_advice_s: float = -math.inf  # advisory: when the standing recommendation was made


@dataclass(frozen=True)
class VoltVarResult:
    decisions: list[Decision]
    state: VoltVarState
    vm_min_pu: float            # before the decisions
    vm_max_pu: float
    vm_min_after_pu: float      # predicted after them
    vm_max_after_pu: float
    p_loss_mw: float
    p_loss_after_mw: float


@dataclass(frozen=True)
class _Move:
    action: str
    table: str
    idx: int
    target: str
    value: float
    describe: str


@dataclass(frozen=True)
class _Trial:
    move: _Move
    vm: np.ndarray      # predicted voltages (estimate + the move's modelled effect)
    loss_mw: float
    violation: float    # against the target band


def _solve(flows: ArrayPowerFlow) -> tuple[np.ndarray, float] | None:
    """Voltages [p.u.] and losses [MW] of the net of ``flows`` as it stands (read from the
    solver's arrays: a what-if's result tables are never read)."""
    try:
        flows.solve()
    except pp.LoadflowNotConverged:
        return None
    return np.array(flows.values("bus", "vm_pu"), dtype=float), flows.p_loss_mw()


def _violation(vm: np.ndarray, low: float, high: float) -> float:
    finite = vm[np.isfinite(vm)]
    return float(np.sum(np.clip(finite - high, 0, None)) + np.sum(np.clip(low - finite, 0, None)))


def _tap_moves(net, t_s, s, state) -> list[_Move]:
    moves = []
    for (idx, row), name in zip(net.trafo.iterrows(), element_names(net, "trafo")):
        if not (np.isfinite(row.get("tap_pos", np.nan))
                and np.isfinite(row.get("tap_max", np.nan))):
            continue
        if t_s - state.last_tap_s.get(name, -math.inf) < s.min_tap_interval_s:
            continue  # anti-hunting: this OLTC moved a moment ago
        for d in (-1, 1):
            pos = int(row.tap_pos) + d
            if row.tap_min <= pos <= row.tap_max:
                moves.append(_Move("set_tap", "trafo", int(idx), f"trafo:{name}", float(pos),
                                   f"moving the {name} tap from {int(row.tap_pos)} to {pos}"))
    return moves


def _capacitor_moves(net) -> list[_Move]:
    moves = []
    for (idx, row), name in zip(net.shunt.iterrows(), element_names(net, "shunt")):
        for d in (-1, 1):
            step = int(row.step) + d
            if 0 <= step <= int(row.max_step):
                moves.append(_Move("set_capacitor_step", "shunt", int(idx), f"shunt:{name}",
                                   float(step), f"switching capacitor {name} from step "
                                   f"{int(row.step)} to {step}"))
    return moves


def _der_moves(net, s) -> list[_Move]:
    moves = []
    sgen_names = element_names(net, "sgen")
    for name in s.der:
        if name not in sgen_names:
            raise ValueError(f"volt_var: DER {name!r} is not an sgen of the net")
        idx = int(net.sgen.index[sgen_names.index(name)])
        p = float(net.sgen.at[idx, "p_mw"])
        q_lim = math.sqrt(max(float(net.sgen.at[idx, "sn_mva"]) ** 2 - p**2, 0.0))
        q_now = float(net.sgen.at[idx, "q_mvar"])
        step = s.der_q_step * q_lim
        targets = {round(float(np.clip(q_now - step, -q_lim, q_lim)), 3),
                   round(float(np.clip(q_now + step, -q_lim, q_lim)), 3), 0.0}
        for q in sorted(targets):
            if abs(q - q_now) < 1e-3:
                continue
            word = "absorb" if q < 0 else "inject"
            moves.append(_Move("set_der_q", "sgen", idx, f"sgen:{name}", q,
                               f"letting {name} {word} {abs(q):.3f} Mvar" if q else
                               f"returning {name} to zero reactive power"))
    return moves


def _moves(net: pp.pandapowerNet, t_s: float, s: VoltVarSettings, state: VoltVarState
           ) -> list[_Move]:
    return _tap_moves(net, t_s, s, state) + _capacitor_moves(net) + _der_moves(net, s)


_COLUMN = {"set_tap": "tap_pos", "set_capacitor_step": "step", "set_der_q": "q_mvar"}
_MOVE_TABLES = ("trafo", "shunt", "sgen")


def _apply(net: pp.pandapowerNet, m: _Move, last_tap: dict[str, float], t_s: float) -> None:
    """Make move ``m`` on the working net; a tap move starts its OLTC's interval."""
    net[m.table].at[m.idx, _COLUMN[m.action]] = m.value
    if m.action == "set_tap":
        last_tap[split_ref(m.target)[1]] = t_s


def _what_if(flows: ArrayPowerFlow, m: _Move) -> tuple[np.ndarray, float] | None:
    """Voltages and losses with move ``m``, on the net itself and undone afterwards (a
    copy of the net per move would cost as much as the power flow)."""
    net = flows.net
    column = _COLUMN[m.action]
    old = net[m.table].at[m.idx, column]
    net[m.table].at[m.idx, column] = m.value
    try:
        return _solve(flows)
    finally:
        net[m.table].at[m.idx, column] = old


def _trials(flows, moves, offset, t_low, t_high) -> list[_Trial]:
    out = []
    for move in moves:
        solved = _what_if(flows, move)
        if solved is not None:
            vm = solved[0] + offset
            out.append(_Trial(move, vm, solved[1], _violation(vm, t_low, t_high)))
    return out


def _pick_correction(trials: list[_Trial], violation: float, loss_mw: float) -> _Trial | None:
    """The move to make while out of band (see the module notes)."""
    helping = [t for t in trials if t.violation < violation - 1e-6]
    if not helping:
        return None
    clearing = [t for t in helping if t.violation == 0.0]
    if clearing:
        return min(clearing, key=lambda t: t.loss_mw)
    # violation removed [p.u.] per MW of extra losses; a saving counts as a tiny cost
    return max(helping, key=lambda t: (violation - t.violation)
               / max(t.loss_mw - loss_mw, 1e-5))


def _save_losses(flows, t_s, settings, state, mode, vm, loss, offset, t_low, t_high
                 ) -> VoltVarResult:
    """Inside the band: moves that save losses and keep every voltage inside the target
    band (an operation must pay for itself), best first, up to ``max_actions``."""
    vm_min, vm_max = float(np.nanmin(vm)), float(np.nanmax(vm))
    if t_s - state.last_loss_check_s < settings.loss_check_every_s:
        return VoltVarResult([], state, vm_min, vm_max, vm_min, vm_max, loss, loss)
    state = replace(state, last_loss_check_s=t_s)
    margin = settings.deadband_pu  # a tap shifts a whole feeder: keep a second dead-band
    decisions: list[Decision] = []
    last_tap = dict(state.last_tap_s)
    loss0 = loss
    for _round in range(settings.max_actions):
        best: _Trial | None = None
        for trial in _trials(flows, _moves(flows.net, t_s, settings, VoltVarState(last_tap)),
                             offset, t_low, t_high):
            action = trial.move.action
            need = settings.min_loss_gain_mw * (0.1 if action == "set_der_q" else 1.0)
            inside = trial.violation == 0.0 and (action != "set_tap" or _violation(
                trial.vm, t_low + margin, t_high - margin) == 0.0)
            if inside and loss - trial.loss_mw >= need and (
                    best is None or trial.loss_mw < best.loss_mw):
                best = trial
        if best is None:
            break
        move = best.move
        reason = (f"All voltages are inside the band ({np.nanmin(vm):.3f}–"
                  f"{np.nanmax(vm):.3f} p.u.); {move.describe} lowers the losses from "
                  f"{loss * 1000:.1f} kW to {best.loss_mw * 1000:.1f} kW and keeps them inside.")
        decisions.append(Decision(
            t_s=t_s, function="volt_var", action=move.action, target=move.target,
            value=move.value, mode=mode, reason=reason,
            inputs={"p_loss_mw": round(loss, 5), "vm_min_pu": round(float(np.nanmin(vm)), 5),
                    "vm_max_pu": round(float(np.nanmax(vm)), 5)}))
        _apply(flows.net, move, last_tap, t_s)
        vm, loss = best.vm, best.loss_mw
    return VoltVarResult(decisions, replace(state, last_tap_s=last_tap), vm_min, vm_max,
                         float(np.nanmin(vm)), float(np.nanmax(vm)), loss0, loss)


def volt_var(net: pp.pandapowerNet, t_s: float, settings: VoltVarSettings = VoltVarSettings(),
             state: VoltVarState = VoltVarState(), mode: DecisionMode = "direct",
             vm_estimate_pu: pd.Series | None = None) -> VoltVarResult:
    """Decide the Volt/Var moves for the state in ``net`` (the DMS's model; not changed).

    Parameters
    ----------
    net : pandapowerNet
        The DMS's network model with its estimated injections, taps, capacitor steps and
        the DER reactive set-points it knows.
    t_s : float
        Decision time [s since start].
    settings, state : VoltVarSettings, VoltVarState
    mode : {'direct', 'advisory'}
        Written into the decisions; ``direct`` ones become commands.
    vm_estimate_pu : pandas.Series, optional
        The state estimator's bus voltages (by bus index). When given, they are what is
        judged: each move's effect comes from the model (a what-if power flow), added to the
        estimate — the model's injections are only a forecast, the estimate is what the
        meters say.

    Returns
    -------
    VoltVarResult
        Decisions in the order to apply them, predicted voltages and losses, new state.
    """
    low, high = settings.band_pu
    t_low, t_high = low + settings.deadband_pu, high - settings.deadband_pu
    if vm_estimate_pu is not None and t_s - state.last_loss_check_s < settings.loss_check_every_s:
        est = vm_estimate_pu.to_numpy(dtype=float)
        if np.isfinite(est).any() and _violation(est, low, high) == 0.0:
            # in the band and no loss check due: nothing to decide, no what-if needed
            vm_min, vm_max = float(np.nanmin(est)), float(np.nanmax(est))
            return VoltVarResult([], state, vm_min, vm_max, vm_min, vm_max, math.nan, math.nan)
    work = working_copy(net, _MOVE_TABLES)  # moves set taps, steps and DER Q only
    flows = ArrayPowerFlow(work)
    base = _solve(flows)
    if base is None:
        return VoltVarResult([], state, math.nan, math.nan, math.nan, math.nan, math.nan,
                             math.nan)
    vm, loss = base
    offset = np.zeros_like(vm)
    if vm_estimate_pu is not None:
        est = vm_estimate_pu.reindex(work.bus.index).to_numpy(dtype=float)
        offset = np.where(np.isfinite(est) & np.isfinite(vm), est - vm, 0.0)
    vm = vm + offset
    bus_names = element_names(work, "bus")
    vm0_min, vm0_max, loss0 = float(np.nanmin(vm)), float(np.nanmax(vm)), loss
    if _violation(vm, low, high) == 0.0:
        return _save_losses(flows, t_s, settings, state, mode, vm, loss, offset, t_low, t_high)
    if mode == "advisory" and t_s - state.last_advice_s < settings.advice_hold_s:
        # the recommendation made a moment ago still stands; nobody acted on it
        return VoltVarResult([], state, vm0_min, vm0_max, vm0_min, vm0_max, loss0, loss0)
    decisions: list[Decision] = []
    last_tap = dict(state.last_tap_s)
    for _round in range(settings.max_actions):
        current = _violation(vm, t_low, t_high)
        if current == 0.0:
            break
        best = _pick_correction(
            _trials(flows, _moves(work, t_s, settings, VoltVarState(last_tap)), offset, t_low,
                    t_high), current, loss)
        if best is None:
            break  # no move helps
        move = best.move
        worst = int(np.nanargmax(np.abs(vm - (low + high) / 2)))
        above = vm[worst] > high - settings.deadband_pu
        reason = (f"{bus_names[worst]} voltage {vm[worst]:.3f} p.u. is "
                  f"{'above' if above else 'below'} the "
                  f"{(t_high if above else t_low):.3f} p.u. target; {move.describe} brings "
                  f"the voltages to {np.nanmin(best.vm):.3f}–{np.nanmax(best.vm):.3f} p.u.")
        decisions.append(Decision(
            t_s=t_s, function="volt_var", action=move.action, target=move.target,
            value=move.value, mode=mode, reason=reason,
            inputs={"bus": bus_names[worst], "vm_pu": round(float(vm[worst]), 5),
                    "vm_min_pu": round(float(np.nanmin(vm)), 5),
                    "vm_max_pu": round(float(np.nanmax(vm)), 5)}))
        _apply(work, move, last_tap, t_s)
        vm, loss = best.vm, best.loss_mw
    new_state = replace(state, last_tap_s=last_tap)
    if mode == "advisory" and decisions:
        new_state = replace(new_state, last_advice_s=t_s)
    return VoltVarResult(decisions, new_state, vm0_min, vm0_max,
                         float(np.nanmin(vm)), float(np.nanmax(vm)), loss0, loss)
