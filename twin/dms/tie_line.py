"""Tie-line deviation control of one cell: keep the cell's export at its schedule.

In the ELECTRA web of cells each cell's operator keeps the cell's balance (the DMS paper
[1]_, section III.F, "distributed" control): the export over the tie branches
(:func:`twin.dms.cells.cell_export_mw`) is held at the schedule within a tolerance. The
control is the secondary control of a control area [2]_ brought to a cell: a PI controller
on the deviation, its output dispatched over the cell's flexible resources in merit order.

Rules:

* The deviation is ``e = export − schedule`` [MW]; ``e > 0``: the cell exports too much, so
  its injection must fall (batteries charge more or discharge less, EVs charge more, DER
  curtail); ``e < 0`` the other way round.
* Outside the dead band (``|e| > tolerance_mw`` of the cell) the PI output is
  ``u = −(kp·e + ki·∫e dt)``: the cell's total change of injection relative to what its
  resources would do without the controller (positive = more injection).
* Inside the dead band nothing moves: the set-points are held and the integral is re-seated
  on what the resources hold, so that leaving the band again is bumpless.
* Anti-windup: the integral alone never asks more than the resources can give now; what
  they cannot give is reported as ``residual_mw`` (for the inter-cell layer or the operator).
* Merit order: ``u`` is dispatched from the resources' un-activated state, cheapest first,
  each within its headroom; resources of equal cost share pro rata to their headroom. As
  ``u`` shrinks, the most expensive activation (usually DER curtailment) is released first.

Power is in the generator convention throughout: a resource's ``p_mw`` is positive when it
injects into the grid (a battery discharging, a V2G EV feeding back, a DER producing),
negative when it consumes (a battery or EVs charging).

References
----------
.. [1] The DMS paper beside DESIGN.md, section III.F (web of cells, distributed control).
.. [2] ENTSO-E (UCTE), "Operation Handbook, Policy 1: Load-Frequency Control", appendix
   A1-D (secondary controller: PI, proportional factor 0–0.5, integral time 50–200 s).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Literal

from twin.dms.cells import Cell
from twin.grid.names import split_ref

ResourceKind = Literal["battery", "ev", "der"]

#: Merit-order costs when a resource states none [EUR/MWh]: battery cycling wear, then EV
#: owners' compensation for shifted charging, then curtailed DER feed-in (lost energy at
#: the feed-in price). Illustrative figures; the order is what matters.
DEFAULT_COST_EUR_MWH: dict[str, float] = {"battery": 20.0, "ev": 40.0, "der": 100.0}

_EPS_MW = 1e-9  # below this a move or a shortfall is rounding


@dataclass(frozen=True)
class FlexResource:
    """A resource the cell's controller may move, as it stands now.

    Attributes
    ----------
    target : str
        Element reference: ``"battery:B1"``, ``"pv:PV 3"``, ``"ev:Bus 5"``.
    kind : {"battery", "ev", "der"}
    p_mw : float
        Active power now [MW], generator convention (positive = injection).
    up_mw : float
        How much more it can inject now [MW] (≥ 0): discharge more, charge less, release a
        curtailment.
    down_mw : float
        How much less it can inject now [MW] (≥ 0): charge more, discharge less, curtail.
    cost_eur_mwh : float, optional
        Merit-order cost of moving it [EUR/MWh]; ``None``: :data:`DEFAULT_COST_EUR_MWH` of
        its kind.
    """

    target: str
    kind: ResourceKind
    p_mw: float
    up_mw: float
    down_mw: float
    cost_eur_mwh: float | None = None

    def __post_init__(self) -> None:
        split_ref(self.target)
        if self.kind not in DEFAULT_COST_EUR_MWH:
            raise ValueError(f"{self.target}: kind must be one of "
                             f"{', '.join(DEFAULT_COST_EUR_MWH)}; found {self.kind!r}")
        for name in ("up_mw", "down_mw"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0.0):
                raise ValueError(f"{self.target}: {name} must be a finite number >= 0; "
                                 f"found {v!r}")
        if not math.isfinite(self.p_mw):
            raise ValueError(f"{self.target}: p_mw must be finite; found {self.p_mw!r}")
        if self.cost_eur_mwh is None:
            object.__setattr__(self, "cost_eur_mwh", DEFAULT_COST_EUR_MWH[self.kind])


@dataclass(frozen=True)
class TieLineAction:
    """What one control step decides for a cell.

    Attributes
    ----------
    cell : str
    deviation_mw : float
        ``export − schedule`` the step acted on [MW].
    set_points_mw : dict
        Target → new active power set-point [MW, generator convention], every resource.
    delta_mw : dict
        Target → set-point minus ``p_mw`` now [MW], only the resources that move.
    correction_mw : float
        The controller's output ``u``: the change of the cell's injection it asks of its
        resources relative to their un-activated state [MW], positive = more injection.
    residual_mw : float
        The further change of injection the cell would need to reach its schedule but its
        resources cannot give [MW], same sign as the correction (what to ask of neighbour
        cells); 0 when not saturated, NaN without a measurement.
    reason : str
        One sentence for the operator.
    """

    cell: str
    deviation_mw: float
    set_points_mw: dict[str, float] = field(default_factory=dict)
    delta_mw: dict[str, float] = field(default_factory=dict)
    correction_mw: float = 0.0
    residual_mw: float = 0.0
    reason: str = ""


def deviation_mw(cell: Cell, export_mw: float) -> float:
    """The cell's deviation from schedule, ``export − tie_schedule_mw`` [MW]."""
    return export_mw - cell.tie_schedule_mw


class TieLineController:
    """PI control of one cell's tie-line deviation, dispatched in merit order.

    Parameters
    ----------
    cell : Cell
        Its ``tie_schedule_mw`` and ``tolerance_mw`` (the dead band).
    kp : float
        Proportional gain [MW/MW], default 0.1.
    ki_per_s : float
        Integral gain [1/s], default 0.01 (integral time 100 s). With the DMS's one-minute
        cycle and resources that follow within a cycle, a step settles in about four cycles
        without overshoot.

    Attributes
    ----------
    integral_mw_s : float
        ∫e dt [MW·s].
    offsets_mw : dict
        Target → the controller's activation of that resource as last dispatched [MW].
    """

    def __init__(self, cell: Cell, kp: float = 0.1, ki_per_s: float = 0.01) -> None:
        if not (math.isfinite(kp) and kp >= 0.0):
            raise ValueError(f"kp must be a finite number >= 0; found {kp!r}")
        if not (math.isfinite(ki_per_s) and ki_per_s > 0.0):
            raise ValueError(f"ki_per_s must be a finite number > 0; found {ki_per_s!r}")
        self.cell, self.kp, self.ki_per_s = cell, kp, ki_per_s
        self.integral_mw_s = 0.0
        self.offsets_mw: dict[str, float] = {}

    def step(self, deviation_mw: float, resources: Sequence[FlexResource],
             dt_s: float) -> TieLineAction:
        """One control step.

        Parameters
        ----------
        deviation_mw : float
            ``export − schedule`` [MW] (:func:`deviation_mw`); NaN holds everything.
        resources : sequence of FlexResource
            What the cell may move, as it stands now; a resource no longer listed (an EV
            gone) is dropped, its share falls to the others through the deviation.
        dt_s : float
            Time since the previous step [s], > 0.

        Returns
        -------
        TieLineAction

        Notes
        -----
        Outside the dead band, with headroom limits :math:`lo_i = o_i - down_i`,
        :math:`hi_i = o_i + up_i` around the last activation :math:`o_i`:

        .. math:: I \\leftarrow \\mathrm{clip}\\left(I + e\\,\\Delta t,\\;
                  -\\tfrac{\\sum hi_i}{k_i},\\; -\\tfrac{\\sum lo_i}{k_i}\\right), \\qquad
                  u = -(k_p e + k_i I)

        and the new set-point of resource *i* is :math:`p_i + o_i' - o_i` with
        :math:`o_i'` its share of *u* in merit order.
        """
        if not (math.isfinite(dt_s) and dt_s > 0.0):
            raise ValueError(f"dt_s must be a finite number > 0; found {dt_s!r}")
        targets = [r.target for r in resources]
        twice = sorted({t for t in targets if targets.count(t) > 1})
        if twice:
            raise ValueError(f"resources listed twice: {', '.join(twice)}")
        cell, e = self.cell, float(deviation_mw)
        last = {r.target: self.offsets_mw.get(r.target, 0.0) for r in resources}
        self.offsets_mw = dict(last)
        hold = {r.target: r.p_mw for r in resources}
        held_mw = sum(last.values())

        if not math.isfinite(e):
            return TieLineAction(cell.name, e, hold, {}, held_mw, math.nan,
                                 f"Cell {cell.name}: no export measured (a tie flow is "
                                 f"missing); set-points held.")
        said = (f"Cell {cell.name} exports {cell.tie_schedule_mw + e:.2f} MW against a "
                f"schedule of {cell.tie_schedule_mw:.2f} MW")
        if abs(e) <= cell.tolerance_mw:
            self.integral_mw_s = -held_mw / self.ki_per_s  # leave the band bumplessly
            return TieLineAction(cell.name, e, hold, {}, held_mw, 0.0,
                                 f"{said}: within the {cell.tolerance_mw:.2f} MW tolerance, "
                                 f"set-points held.")

        lo = {r.target: last[r.target] - r.down_mw for r in resources}
        hi = {r.target: last[r.target] + r.up_mw for r in resources}
        # anti-windup: the integral alone asks no more than the resources can give now
        cap_lo, cap_hi = min(sum(lo.values()), 0.0), max(sum(hi.values()), 0.0)
        self.integral_mw_s = min(max(self.integral_mw_s + e * dt_s, -cap_hi / self.ki_per_s),
                                 -cap_lo / self.ki_per_s)
        u = -(self.kp * e + self.ki_per_s * self.integral_mw_s)
        offsets = _merit_order(u, resources, lo, hi)
        self.offsets_mw = offsets
        achieved = sum(offsets.values())

        set_points = {r.target: r.p_mw + offsets[r.target] - last[r.target] for r in resources}
        delta = {t: set_points[t] - hold[t] for t in targets
                 if abs(set_points[t] - hold[t]) > _EPS_MW}
        residual = 0.0
        short = u - achieved
        left = -(e + achieved - held_mw)  # injection change still needed after this step
        if abs(short) > _EPS_MW and left * short > 0.0:
            residual = left
        by_target = {r.target: r for r in resources}
        moves = [_describe(by_target[t], set_points[t])
                 for t in sorted(delta, key=lambda t: -abs(delta[t]))]
        text = ", ".join(moves[:3]) + (f" and {len(moves) - 3} more" if len(moves) > 3 else "")
        if not moves:
            text = "no resource can move"
        if residual:
            text += f"; {abs(residual):.2f} MW cannot be covered in the cell"
        return TieLineAction(cell.name, e, set_points, delta, u, residual, f"{said}: {text}.")


def _merit_order(u_mw: float, resources: Sequence[FlexResource], lo: Mapping[str, float],
                 hi: Mapping[str, float]) -> dict[str, float]:
    """Activation per resource summing to ``u_mw`` as far as ``[lo, hi]`` allow, cheapest
    first, from the un-activated state (0 where the headroom allows it)."""
    offsets = {t: min(max(0.0, lo[t]), hi[t]) for t in lo}
    rest = u_mw - sum(offsets.values())
    ranked = sorted(resources, key=lambda r: r.cost_eur_mwh)
    for _, group in groupby(ranked, key=lambda r: r.cost_eur_mwh):
        if abs(rest) <= _EPS_MW:
            break
        edge = hi if rest > 0 else lo
        room = {r.target: edge[r.target] - offsets[r.target] for r in group}
        total = sum(room.values())
        share = 1.0 if abs(total) <= abs(rest) else rest / total
        for t, room_mw in room.items():
            offsets[t] += room_mw * share
        rest -= total * share
    return offsets


def _describe(r: FlexResource, new_mw: float) -> str:
    """``battery B1 charges 0.92 MW more``, ``PV 3 is curtailed by 0.40 MW``."""
    name = split_ref(r.target)[1]
    old, d = r.p_mw, new_mw - r.p_mw
    if r.kind == "der":
        return f"{name} is curtailed by {-d:.2f} MW" if d < 0 else f"{name} gives {d:.2f} MW more"
    noun, s = (f"battery {name}", "s") if r.kind == "battery" else (f"EVs at {name}", "")
    if old * new_mw < 0.0:
        way = {True: "discharging", False: "charging"}
        return (f"{noun} turn{s} from {way[old > 0]} {abs(old):.2f} MW to "
                f"{way[new_mw > 0]} {abs(new_mw):.2f} MW")
    verb = "discharge" if (new_mw if new_mw != 0.0 else old) > 0 else "charge"
    return f"{noun} {verb}{s} {abs(d):.2f} MW {'more' if abs(new_mw) > abs(old) else 'less'}"
