"""Volt/Var control: keep every bus voltage inside the band with OLTC taps, capacitor banks and
DER reactive power, with as few operations and as low losses as possible.

The method is a greedy what-if search, the way a DMS's "VVC" application proposes switching:
each round tries every single move (one tap step, one capacitor step, a DER's Q at its
limit or back to zero) with a power flow on a copy of the DMS's network model, and keeps the
move that reduces the voltage violation most (ties: lower losses); rounds stop when every
voltage is inside the target band or no move helps. Anti-hunting: the target band lies a
dead-band inside the limit band, so a corrected voltage does not sit on the edge; an OLTC
may not move again within ``min_tap_interval_s``; actions only start when a voltage is
outside the limit band.

References
----------
.. [1] J. Momoh, "Electric Power Distribution, Automation, Protection, and Control",
   CRC Press, 2008, ch. 6 (Volt/Var control).
.. [2] The DMS paper beside DESIGN.md, section on control actions (Volt/Var).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandapower as pp
import pandas as pd

from twin.dms.decisions import Decision, Mode
from twin.grids import element_names


@dataclass(frozen=True)
class VoltVarSettings:
    band_pu: tuple[float, float] = (0.95, 1.05)
    deadband_pu: float = 0.005        # target band = limit band narrowed by this
    min_tap_interval_s: float = 300.0
    max_actions: int = 3              # per cycle
    loss_weight: float = 0.02         # [violation p.u. per MW of losses]
    min_loss_gain_mw: float = 0.005   # inside the band, a move must save at least this
    loss_check_every_s: float = 900.0  # how often to look for such a move
    der: tuple[str, ...] = ()         # sgen names whose Q the DMS may set


@dataclass(frozen=True)
class VoltVarState:
    """What the controller remembers between cycles."""

    last_tap_s: dict[str, float] = field(default_factory=dict)  # trafo name -> time
    last_loss_check_s: float = -math.inf


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


def _solve(net: pp.pandapowerNet) -> tuple[np.ndarray, float] | None:
    try:
        pp.runpp(net, numba=True)
    except pp.LoadflowNotConverged:
        return None
    vm = net.res_bus.vm_pu.to_numpy(dtype=float)
    loss = float(net.res_line.pl_mw.sum() + net.res_trafo.pl_mw.sum())
    return vm, loss


def _violation(vm: np.ndarray, low: float, high: float) -> float:
    finite = vm[np.isfinite(vm)]
    return float(np.sum(np.clip(finite - high, 0, None)) + np.sum(np.clip(low - finite, 0, None)))


def _moves(net: pp.pandapowerNet, t_s: float, s: VoltVarSettings, state: VoltVarState
           ) -> list[_Move]:
    moves: list[_Move] = []
    trafo_names = element_names(net, "trafo")
    for (idx, row), name in zip(net.trafo.iterrows(), trafo_names):
        if not np.isfinite(row.get("tap_pos", np.nan)) or not np.isfinite(row.get("tap_max", np.nan)):
            continue
        if t_s - state.last_tap_s.get(name, -math.inf) < s.min_tap_interval_s:
            continue  # anti-hunting: this OLTC moved a moment ago
        for d in (-1, 1):
            pos = int(row.tap_pos) + d
            if row.tap_min <= pos <= row.tap_max:
                moves.append(_Move("set_tap", "trafo", int(idx), f"trafo:{name}", float(pos),
                                   f"moving the {name} tap from {int(row.tap_pos)} to {pos}"))
    for (idx, row), name in zip(net.shunt.iterrows(), element_names(net, "shunt")):
        for d in (-1, 1):
            step = int(row.step) + d
            if 0 <= step <= int(row.max_step):
                moves.append(_Move("set_capacitor_step", "shunt", int(idx), f"shunt:{name}",
                                   float(step), f"switching capacitor {name} from step "
                                   f"{int(row.step)} to {step}"))
    sgen_names = element_names(net, "sgen")
    for name in s.der:
        if name not in sgen_names:
            raise ValueError(f"volt_var: DER {name!r} is not an sgen of the net")
        idx = int(net.sgen.index[sgen_names.index(name)])
        p = float(net.sgen.at[idx, "p_mw"])
        s_mva = float(net.sgen.at[idx, "sn_mva"])
        q_lim = math.sqrt(max(s_mva**2 - p**2, 0.0))
        q_now = float(net.sgen.at[idx, "q_mvar"])
        for q in (-q_lim, 0.0, q_lim):
            if abs(q - q_now) > 1e-6:
                word = "absorb" if q < 0 else "inject" if q > 0 else "return to"
                moves.append(_Move("set_der_q", "sgen", idx, f"sgen:{name}", q,
                                   f"letting {name} {word} {abs(q):.3f} Mvar" if q else
                                   f"returning {name} to zero reactive power"))
    return moves


_COLUMN = {"set_tap": "tap_pos", "set_capacitor_step": "step", "set_der_q": "q_mvar"}


def _apply(net: pp.pandapowerNet, m: _Move) -> None:
    net[m.table].at[m.idx, _COLUMN[m.action]] = m.value


def _what_if(net: pp.pandapowerNet, m: _Move) -> tuple[np.ndarray, float] | None:
    """Voltages and losses with move ``m``, on ``net`` itself and undone afterwards (a
    copy of the net per move would cost as much as the power flow)."""
    column = _COLUMN[m.action]
    old = net[m.table].at[m.idx, column]
    net[m.table].at[m.idx, column] = m.value
    try:
        return _solve(net)
    finally:
        net[m.table].at[m.idx, column] = old


def _save_losses(work, t_s, settings, state, mode, vm, loss, offset, t_low, t_high,
                 bus_names) -> VoltVarResult:
    """Inside the band: one capacitor or DER-Q move per cycle if it saves losses and keeps
    every voltage inside the target band (an operation must pay for itself)."""
    vm_min, vm_max = float(np.nanmin(vm)), float(np.nanmax(vm))
    if t_s - state.last_loss_check_s < settings.loss_check_every_s:
        return VoltVarResult([], state, vm_min, vm_max, vm_min, vm_max, loss, loss)
    state = replace(state, last_loss_check_s=t_s)
    best = None
    for move in _moves(work, t_s, settings, state):
        if move.action == "set_tap":
            continue  # taps are for voltage; their wear is not worth a few kW
        solved = _what_if(work, move)
        if solved is None:
            continue
        v_trial, loss_trial = solved[0] + offset, solved[1]
        inside = _violation(v_trial, t_low, t_high) == 0.0
        if inside and loss - loss_trial >= settings.min_loss_gain_mw and (
                best is None or loss_trial < best[1]):
            best = (move, loss_trial, v_trial)
    if best is None:
        return VoltVarResult([], state, vm_min, vm_max, vm_min, vm_max, loss, loss)
    move, loss_new, v_new = best
    reason = (f"All voltages are inside the band ({vm_min:.3f}–{vm_max:.3f} p.u.); "
              f"{move.describe} lowers the losses from {loss * 1000:.0f} kW to "
              f"{loss_new * 1000:.0f} kW and keeps them inside.")
    decision = Decision(t_s=t_s, function="volt_var", action=move.action, target=move.target,
                        value=move.value, mode=mode, reason=reason,
                        inputs={"p_loss_mw": round(loss, 5), "vm_min_pu": round(vm_min, 5),
                                "vm_max_pu": round(vm_max, 5)})
    return VoltVarResult([decision], state, vm_min, vm_max, float(np.nanmin(v_new)),
                         float(np.nanmax(v_new)), loss, loss_new)


def volt_var(net: pp.pandapowerNet, t_s: float, settings: VoltVarSettings = VoltVarSettings(),
             state: VoltVarState = VoltVarState(), mode: Mode = "direct",
             vm_estimate_pu: pd.Series | None = None) -> VoltVarResult:
    """Decide the Volt/Var moves for the state in ``net`` (the DMS's model; not changed).

    Parameters
    ----------
    net : pandapowerNet
        The DMS's network model with its estimated injections, taps, capacitor steps.
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
    work = copy.deepcopy(net)
    base = _solve(work)
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
    decisions: list[Decision] = []
    last_tap = dict(state.last_tap_s)
    if _violation(vm, low, high) == 0.0:
        return _save_losses(work, t_s, settings, state, mode, vm, loss, offset, t_low, t_high,
                            bus_names)
    for _round in range(settings.max_actions):
        current = _violation(vm, t_low, t_high)
        if current == 0.0:
            break
        best: tuple[float, float, _Move, np.ndarray] | None = None
        for move in _moves(work, t_s, settings, VoltVarState(last_tap)):
            solved = _what_if(work, move)
            if solved is None:
                continue
            v_trial, loss_trial = solved
            v_trial = v_trial + offset
            score = _violation(v_trial, t_low, t_high) + settings.loss_weight * loss_trial
            if best is None or score < best[0]:
                best = (score, loss_trial, move, v_trial)
        if best is None or best[0] >= current + settings.loss_weight * loss - 1e-6:
            break  # no move helps
        _, loss, move, v_new = best
        worst = int(np.nanargmax(np.abs(vm - (low + high) / 2)))
        above = vm[worst] > high - settings.deadband_pu
        reason = (f"{bus_names[worst]} voltage {vm[worst]:.3f} p.u. is "
                  f"{'above' if above else 'below'} the "
                  f"{(t_high if above else t_low):.3f} p.u. target; {move.describe} brings "
                  f"the voltages to {np.nanmin(v_new):.3f}–{np.nanmax(v_new):.3f} p.u.")
        decisions.append(Decision(
            t_s=t_s, function="volt_var", action=move.action, target=move.target,
            value=move.value, mode=mode, reason=reason,
            inputs={"bus": bus_names[worst], "vm_pu": round(float(vm[worst]), 5),
                    "vm_min_pu": round(float(np.nanmin(vm)), 5),
                    "vm_max_pu": round(float(np.nanmax(vm)), 5)}))
        _apply(work, move)
        if move.action == "set_tap":
            last_tap[move.target.split(":", 1)[1]] = t_s
        vm = v_new
    return VoltVarResult(decisions, replace(state, last_tap_s=last_tap), vm0_min, vm0_max,
                         float(np.nanmin(vm)), float(np.nanmax(vm)), loss0, loss)
