"""V2G in primary frequency control: what the connected EVs could give, and who gives what.

The DMS paper asks the operator to "take advantage of the connected EVs to the grid and the
relative percentage of power that could participate in the primary frequency control" [1]_.
:func:`v2g_participation` states, per charging point, the FCR it could hold in each
direction and which share of its connected V2G power that is; :func:`assign_fcr` spreads a
requested reserve over the points.

Rules:

- FCR is held for :data:`~twin.models.frequency_response.FCR_HOLD_S` (15 min, energy-limited
  providers [2]_): a point offers only the power it can keep up that long.
- Up never spends energy an EV needs for its departure: discharging draws only on the
  margin above the minimum SOC trajectory of :class:`twin.models.ev.fleet.EVFleet` (the
  rule by which an EV is never left short of its target).
- FCR is symmetric, so a point's participation is ``min(up, down)``, as in
  :meth:`EVFleet.droop_capability_mw_per_hz`.

Sign convention: ``p_mw`` is the EV simulator's (:class:`twin.models.ev.fleet.EVStepResult`,
:mod:`simulators.storage`): positive = charging, negative = feeding in (V2G). ``up_mw`` /
``down_mw`` are those of :mod:`twin.models.frequency_response`: ``up`` = more injection
(less charging, or discharging), ``down`` = less injection (more charging), both ≥ 0.

References
----------
.. [1] DMS paper, section III.E "Vehicles to grid".
.. [2] Commission Regulation (EU) 2017/1485 (System Operation Guideline), Art. 156.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from twin.models.battery import ArrayLike
from twin.models.frequency_response import FCR_HOLD_S, energy_limited_mw
from twin.models.validate import frozen, per_element


@dataclass(frozen=True, eq=False)
class V2GParticipation:
    """What the charging points could give to FCR now; arrays have one value per point.

    Attributes
    ----------
    points : tuple of str
        Charging point names.
    n_connected : numpy.ndarray of int or None
        Connected V2G-capable EVs per point, if given.
    p_max_mw : numpy.ndarray
        Connected V2G-capable power [MW].
    p_mw : numpy.ndarray
        Power now [MW], positive = charging.
    up_mw, down_mw : numpy.ndarray
        Injection the point can add / withhold and hold for the hold time [MW], ≥ 0.
    symmetric_mw : numpy.ndarray
        ``min(up_mw, down_mw)`` [MW]: the FCR it can offer.
    share : numpy.ndarray
        ``symmetric_mw / p_max_mw`` [-], in [0, 1]; 0 where nothing is connected.
    p_max_total_mw, up_total_mw, down_total_mw, symmetric_total_mw : float
        Sums over the points [MW].
    share_total : float
        ``symmetric_total_mw / p_max_total_mw`` [-]; 0 if nothing is connected.
    """

    points: tuple[str, ...]
    n_connected: np.ndarray | None
    p_max_mw: np.ndarray
    p_mw: np.ndarray
    up_mw: np.ndarray
    down_mw: np.ndarray
    symmetric_mw: np.ndarray
    share: np.ndarray
    p_max_total_mw: float
    up_total_mw: float
    down_total_mw: float
    symmetric_total_mw: float
    share_total: float


@dataclass(frozen=True, eq=False)
class V2GAssignment:
    """A requested FCR reserve spread over the charging points.

    Attributes
    ----------
    points : tuple of str
    reserve_mw : numpy.ndarray
        Reserve assigned to each point [MW], within its ``symmetric_mw``.
    requested_mw, assigned_mw, unassigned_mw : float
        The request, the sum assigned and what is left for other providers [MW].
    reason : str
        One sentence for the operator.
    """

    points: tuple[str, ...]
    reserve_mw: np.ndarray
    requested_mw: float
    assigned_mw: float
    unassigned_mw: float
    reason: str


def v2g_participation(points: Sequence[str], p_max_mw: ArrayLike, p_mw: ArrayLike,
                      e_margin_mwh: ArrayLike, e_room_mwh: ArrayLike, *,
                      n_connected: ArrayLike | None = None, eta_charge: ArrayLike = 1.0,
                      eta_discharge: ArrayLike = 1.0,
                      hold_s: float = FCR_HOLD_S) -> V2GParticipation:
    """FCR capability of the V2G-capable EVs per charging point.

    Every numeric argument is a scalar (for all points) or one value per point; a row may
    also be a single EV.

    Parameters
    ----------
    points : sequence of str
        Charging point names; their number is the number of points.
    p_max_mw : array_like
        Connected V2G-capable power [MW], ≥ 0: charger rating times connected V2G-capable
        EVs; the limit in both directions.
    p_mw : array_like
        Power of those EVs now [MW]; positive = charging.
    e_margin_mwh : array_like
        Stored energy above what the EVs must hold at the end of the hold time to still
        reach their departure targets [MWh] — ``e − max(trajectory(t + hold), soc_min ·
        capacity)`` per EV, the surplus of :meth:`EVFleet.droop_capability_mw_per_hz`.
        For a point, sum the EVs' surpluses clipped at 0 and leave out EVs behind their
        trajectory (they charge at full power and offer nothing). Negative (one EV behind)
        means it must charge that much back within the hold time.
    e_room_mwh : array_like
        Stored energy the EVs can still take [MWh], ≥ 0 (to full, or to their targets if
        they should not charge beyond).
    n_connected : array_like of int, optional
        Connected V2G-capable EVs per point, carried into the result for display.
    eta_charge, eta_discharge : array_like
        Conversion efficiencies [-], in (0, 1].
    hold_s : float
        How long the FCR must be held [s], > 0.

    Returns
    -------
    V2GParticipation

    Notes
    -----
    With hold time :math:`T` and :math:`L(E, P) = \\min(P, E / T)`
    (:func:`~twin.models.frequency_response.energy_limited_mw`), each point can hold any
    power in :math:`[p_{lo}, p_{hi}]` for :math:`T`:

    .. math::

        p_{hi} = L(E_{room} / \\eta_c, P_{max}), \\qquad
        p_{lo} = -L(E_{margin} \\eta_d, P_{max}) \\quad (E_{margin} \\ge 0)

    and :math:`p_{lo} = \\min(-E_{margin} / (\\eta_c T), P_{max})` for a negative margin;
    ``up = max(p − p_lo, 0)``, ``down = max(p_hi − p, 0)``. Stopping a charge spends no
    stored energy, so a charging EV without margin still offers its charging power as up
    (it ends the hold on its trajectory); an idle one offers none. Since
    :math:`p_{lo} \\ge -P_{max}` and :math:`p_{hi} \\le P_{max}`, ``min(up, down) ≤
    P_max`` and the share lies in [0, 1].
    """
    n = len(points)

    def arr(value: ArrayLike, what: str) -> np.ndarray:
        return np.array(per_element(value, n, f"v2g_participation: {what}", "charging point"))

    p_max = arr(p_max_mw, "p_max_mw")
    p = arr(p_mw, "p_mw")
    margin = arr(e_margin_mwh, "e_margin_mwh")
    room = arr(e_room_mwh, "e_room_mwh")
    eta_c, eta_d = arr(eta_charge, "eta_charge"), arr(eta_discharge, "eta_discharge")
    for what, ok in (("p_max_mw must be >= 0", p_max >= 0),
                     ("e_room_mwh must be >= 0", room >= 0),
                     ("p_mw and e_margin_mwh must not be NaN", ~np.isnan(p) & ~np.isnan(margin)),
                     ("efficiencies must lie in (0, 1]",
                      (eta_c > 0) & (eta_c <= 1) & (eta_d > 0) & (eta_d <= 1))):
        if not ok.all():
            first = points[int(np.flatnonzero(~ok)[0])]
            raise ValueError(f"v2g_participation: {what}; not so for {first!r}")
    if not hold_s > 0:
        raise ValueError(f"v2g_participation: hold_s must be > 0; found {hold_s}")

    hold_h = hold_s / 3600.0
    p_hi = energy_limited_mw(room / eta_c, p_max, hold_s)
    # discharge only from the margin; behind the trajectory the EV must charge back
    p_lo = np.where(margin >= 0, -energy_limited_mw(margin * eta_d, p_max, hold_s),
                    np.minimum(-margin / (eta_c * hold_h), p_max))
    up = np.maximum(p - p_lo, 0.0)
    down = np.maximum(p_hi - p, 0.0)
    sym = np.minimum(up, down)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(p_max > 0, sym / p_max, 0.0)
    total_max = float(p_max.sum())
    total_sym = float(sym.sum())
    conn = None if n_connected is None else frozen(
        per_element(n_connected, n, "v2g_participation: n_connected", "charging point",
                    dtype=int))
    return V2GParticipation(
        points=tuple(points), n_connected=conn, p_max_mw=frozen(p_max), p_mw=frozen(p),
        up_mw=frozen(up), down_mw=frozen(down), symmetric_mw=frozen(sym),
        share=frozen(share), p_max_total_mw=total_max, up_total_mw=float(up.sum()),
        down_total_mw=float(down.sum()), symmetric_total_mw=total_sym,
        share_total=total_sym / total_max if total_max > 0 else 0.0)


def assign_fcr(reserve_mw: float, capability: V2GParticipation) -> V2GAssignment:
    """Spread a requested FCR reserve over the points, pro rata to their capability.

    Parameters
    ----------
    reserve_mw : float
        Requested symmetric reserve [MW], ≥ 0.
    capability : V2GParticipation

    Returns
    -------
    V2GAssignment

    Notes
    -----
    With :math:`S_i` the points' ``symmetric_mw`` and :math:`S = \\sum S_i`, point
    :math:`i` gets :math:`R \\cdot S_i / S` when :math:`R \\le S` (every point at the
    same fraction of its capability, so none runs out first), else :math:`S_i`, leaving
    :math:`R - S` unassigned.
    """
    if not reserve_mw >= 0:
        raise ValueError(f"assign_fcr: reserve_mw must be >= 0; found {reserve_mw}")
    sym = np.asarray(capability.symmetric_mw, dtype=float)
    total = float(sym.sum())
    if total <= 0:
        per = np.zeros_like(sym)
        reason = (f"No connected EV can hold FCR now; none of the {reserve_mw:.3f} MW "
                  f"requested is assigned.")
    elif reserve_mw <= total:
        # the same fraction of every point's capability; capped against rounding
        per = np.minimum(reserve_mw * sym / total, sym)
        reason = (f"{reserve_mw:.3f} MW of FCR assigned over {int((sym > 0).sum())} charging "
                  f"points pro rata to their symmetric capability ({total:.3f} MW), "
                  f"{100.0 * reserve_mw / total:.0f} % of each.")
    else:
        per = sym.copy()
        reason = (f"Only {total:.3f} of the {reserve_mw:.3f} MW of FCR requested can be held "
                  f"by the connected EVs: every point is at its symmetric capability, "
                  f"{reserve_mw - total:.3f} MW are left for other providers.")
    assigned = float(per.sum())
    return V2GAssignment(points=capability.points, reserve_mw=frozen(per),
                         requested_mw=float(reserve_mw), assigned_mw=assigned,
                         unassigned_mw=max(float(reserve_mw) - assigned, 0.0), reason=reason)
