"""Energy storage monitoring: where the storage is, what it holds, plans and costs, and what
it could do now — for a cell and for its neighbour cells.

The DMS paper asks that the operator see "the battery schedules, location and the related
energy prices in such a way to enable the operator to use energy storage systems available
within the cell as well as energy storage systems from neighbor cells" [1]_.
:func:`storage_rows` puts each battery or EV charging point into one :class:`StorageRow`;
:func:`storage_view` picks a cell's rows and its neighbours' and adds them up.

Sign convention: ``p_mw`` and ``p_schedule_mw`` follow the load convention of pandapower's
storage, :mod:`twin.models.battery`, :mod:`twin.models.ev.fleet` and the storage simulator
(positive = charging, taking power from the grid; negative = discharging, feeding in), so
the values the simulators report go in unchanged. ``up_mw`` / ``down_mw`` follow
:mod:`twin.models.frequency_response`: ``up`` = more injection (less charging), ``down`` =
less injection (more charging), both ≥ 0.

References
----------
.. [1] DMS paper, section III.D "Energy storage monitoring".
.. [2] Commission Regulation (EU) 2017/1485 (System Operation Guideline), Art. 156: energy-
   limited FCR providers hold full activation for at least 15 minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import numpy as np

from twin.models.battery import ArrayLike
from twin.models.frequency_response import FCR_HOLD_S, energy_limited_mw
from twin.models.validate import per_element

StorageKind = Literal["battery", "ev"]
KINDS = ("battery", "ev")


@dataclass(frozen=True)
class StorageRow:
    """One storage unit (a battery, or an EV charging point) as the operator sees it.

    Attributes
    ----------
    name : str
    kind : {"battery", "ev"}
    bus : str
        The bus it is connected to (its location).
    cell : str
        The cell of that bus.
    soc : float
        State of charge [-].
    capacity_mwh : float
        Energy capacity [MWh].
    e_mwh : float
        Stored energy, ``soc · capacity_mwh`` [MWh].
    p_mw : float
        Power now [MW]; positive = charging, negative = feeding in.
    p_schedule_mw : float
        Scheduled power for the next interval [MW], same sign; NaN if none.
    price_eur_mwh : float
        Price of energy from / to the unit [EUR/MWh]; NaN if none.
    up_mw : float
        How much more it can feed in (or less charge) than ``p_mw`` and hold for the FCR
        hold time, within its power limits and its SOC window [MW], ≥ 0.
    down_mw : float
        How much less it can feed in (or more charge), likewise [MW], ≥ 0.
    """

    name: str
    kind: StorageKind
    bus: str
    cell: str
    soc: float
    capacity_mwh: float
    e_mwh: float
    p_mw: float
    p_schedule_mw: float
    price_eur_mwh: float
    up_mw: float
    down_mw: float


@dataclass(frozen=True)
class StorageTotals:
    """Sums over a set of storage rows.

    Attributes
    ----------
    n : int
        Number of units.
    e_mwh, capacity_mwh : float
        Stored energy and capacity [MWh].
    p_mw : float
        Power now [MW], positive = charging.
    up_mw, down_mw : float
        Σ of the units' ``up_mw`` / ``down_mw`` [MW].
    """

    n: int
    e_mwh: float
    capacity_mwh: float
    p_mw: float
    up_mw: float
    down_mw: float


@dataclass(frozen=True)
class StorageView:
    """The storage of one cell and of its neighbours.

    Attributes
    ----------
    cell : str
    neighbours : tuple of str
        The neighbour cells, as given.
    own, neighbour : tuple of StorageRow
        Rows in the cell / in any of its neighbours, in the order given.
    own_total, neighbour_total : StorageTotals
        Their sums.
    per_neighbour : dict of str to StorageTotals
        The sums per neighbour cell (every neighbour, also one without storage).
    """

    cell: str
    neighbours: tuple[str, ...]
    own: tuple[StorageRow, ...]
    neighbour: tuple[StorageRow, ...]
    own_total: StorageTotals
    neighbour_total: StorageTotals
    per_neighbour: dict[str, StorageTotals] = field(default_factory=dict)


def storage_rows(names: Sequence[str], kinds: str | Sequence[str], buses: Sequence[str],
                 soc: ArrayLike, capacity_mwh: ArrayLike, p_mw: ArrayLike,
                 p_schedule_mw: ArrayLike, price_eur_mwh: ArrayLike,
                 cell_of_bus: Mapping[str, str], *, p_charge_max_mw: ArrayLike,
                 p_discharge_max_mw: ArrayLike, soc_min: ArrayLike = 0.0,
                 soc_max: ArrayLike = 1.0, eta_charge: ArrayLike = 1.0,
                 eta_discharge: ArrayLike = 1.0, hold_s: float = FCR_HOLD_S) -> list[StorageRow]:
    """One :class:`StorageRow` per unit, with the power it can add or withhold now.

    Every numeric argument is a scalar (for all units) or one value per unit.

    Parameters
    ----------
    names : sequence of str
        Unit names; their number is the number of units.
    kinds : {"battery", "ev"} or sequence of them
    buses : sequence of str
        Bus of each unit.
    soc : array_like
        State of charge [-], in [0, 1].
    capacity_mwh : array_like
        Energy capacity [MWh], > 0.
    p_mw, p_schedule_mw : array_like
        Power now and scheduled next [MW]; positive = charging.
    price_eur_mwh : array_like
        Energy price [EUR/MWh].
    cell_of_bus : mapping of str to str
        Cell of each bus; every unit's bus must be in it.
    p_charge_max_mw, p_discharge_max_mw : array_like
        Grid-side power limits [MW], ≥ 0 (0 discharge for an EV without V2G).
    soc_min, soc_max : array_like
        The SOC window the unit may use [-]. For an EV pass as ``soc_min`` the SOC it must
        hold at the end of the hold time to still reach its departure target (the minimum
        SOC trajectory of :class:`twin.models.ev.fleet.EVFleet`).
    eta_charge, eta_discharge : array_like
        Conversion efficiencies [-], in (0, 1].
    hold_s : float
        How long the changed power must be held [s]; default :data:`FCR_HOLD_S`.

    Returns
    -------
    list of StorageRow
        In the order of ``names``.

    Raises
    ------
    ValueError
        Mismatched lengths, an unknown kind, a bus without a cell, a SOC outside [0, 1], a
        capacity ≤ 0, negative power limits or efficiencies outside (0, 1].

    Notes
    -----
    With stored energy :math:`E = soc \\cdot C`, :math:`E_{min} = soc_{min} C`,
    :math:`E_{max} = soc_{max} C`, hold time :math:`T` and
    :func:`~twin.models.frequency_response.energy_limited_mw` as :math:`L(E, P_{max})
    = \\min(P_{max}, E / T)`, the range of power the unit can hold for :math:`T` is

    .. math::

        p_{hi} = L((E_{max} - E) / \\eta_c, P_c)

        p_{lo} = -L((E - E_{min}) \\eta_d, P_d) \\quad (E \\ge E_{min}), \\qquad
        p_{lo} = \\min((E_{min} - E) / (\\eta_c T), P_c) \\quad (E < E_{min})

    (below its floor the unit must charge back to it within :math:`T`), and
    ``up = max(p − p_lo, 0)``, ``down = max(p_hi − p, 0)``. Stopping a charge costs no
    stored energy, so a charging unit at its floor still offers its charging power as up.
    Self-discharge is neglected over :math:`T`.
    """
    n = len(names)
    label = "storage_rows"

    def arr(value, what: str) -> np.ndarray:
        return np.array(per_element(value, n, f"{label}: {what}", "unit"))

    kind = [kinds] * n if isinstance(kinds, str) else list(kinds)
    if len(kind) != n or len(buses) != n:
        raise ValueError(f"{label}: kinds and buses need one value per unit ({n}); found "
                         f"{len(kind)} and {len(buses)}")
    bad = sorted({k for k in kind if k not in KINDS})
    if bad:
        raise ValueError(f"{label}: kind must be one of {KINDS}; found {', '.join(bad)}")
    missing = sorted({b for b in buses if b not in cell_of_bus})
    if missing:
        raise ValueError(f"{label}: no cell for bus {', '.join(missing)}")
    soc_ = arr(soc, "soc")
    cap = arr(capacity_mwh, "capacity_mwh")
    p = arr(p_mw, "p_mw")
    pc, pd = arr(p_charge_max_mw, "p_charge_max_mw"), arr(p_discharge_max_mw,
                                                          "p_discharge_max_mw")
    eta_c, eta_d = arr(eta_charge, "eta_charge"), arr(eta_discharge, "eta_discharge")
    for what, ok in (("soc must lie in [0, 1]", (soc_ >= 0) & (soc_ <= 1)),
                     ("capacity_mwh must be > 0", cap > 0),
                     ("power limits must be >= 0", (pc >= 0) & (pd >= 0)),
                     ("efficiencies must lie in (0, 1]",
                      (eta_c > 0) & (eta_c <= 1) & (eta_d > 0) & (eta_d <= 1))):
        if not ok.all():
            first = names[int(np.flatnonzero(~ok)[0])]
            raise ValueError(f"{label}: {what}; not so for {first!r}")
    if not hold_s > 0:
        raise ValueError(f"{label}: hold_s must be > 0; found {hold_s}")

    e = soc_ * cap
    e_min = arr(soc_min, "soc_min") * cap
    e_max = arr(soc_max, "soc_max") * cap
    hold_h = hold_s / 3600.0
    p_hi = energy_limited_mw((e_max - e) / eta_c, pc, hold_s)
    # below its floor a unit must charge back up within the hold time
    p_lo = np.where(e >= e_min, -energy_limited_mw((e - e_min) * eta_d, pd, hold_s),
                    np.minimum((e_min - e) / (eta_c * hold_h), pc))
    up = np.maximum(p - p_lo, 0.0)
    down = np.maximum(p_hi - p, 0.0)
    sched = arr(p_schedule_mw, "p_schedule_mw")
    price = arr(price_eur_mwh, "price_eur_mwh")
    return [StorageRow(name=names[i], kind=kind[i], bus=buses[i], cell=cell_of_bus[buses[i]],
                       soc=float(soc_[i]), capacity_mwh=float(cap[i]), e_mwh=float(e[i]),
                       p_mw=float(p[i]), p_schedule_mw=float(sched[i]),
                       price_eur_mwh=float(price[i]), up_mw=float(up[i]),
                       down_mw=float(down[i]))
            for i in range(n)]


def storage_totals(rows: Sequence[StorageRow]) -> StorageTotals:
    """Sums of energy, capacity, power and up / down capability over ``rows``."""
    return StorageTotals(n=len(rows),
                         e_mwh=sum(r.e_mwh for r in rows),
                         capacity_mwh=sum(r.capacity_mwh for r in rows),
                         p_mw=sum(r.p_mw for r in rows),
                         up_mw=sum(r.up_mw for r in rows),
                         down_mw=sum(r.down_mw for r in rows))


def storage_view(rows: Sequence[StorageRow], cell: str,
                 neighbours: Mapping[str, Sequence[str]]) -> StorageView:
    """The storage of ``cell`` and of its neighbour cells, with their sums.

    Parameters
    ----------
    rows : sequence of StorageRow
        All storage rows (e.g. from :func:`storage_rows`).
    cell : str
        The cell to look from.
    neighbours : mapping of str to sequence of str
        Neighbour cells of each cell; ``cell`` must be a key.

    Returns
    -------
    StorageView

    Raises
    ------
    ValueError
        ``cell`` not in ``neighbours``.
    """
    if cell not in neighbours:
        raise ValueError(f"storage_view: unknown cell {cell!r}; known: "
                         f"{', '.join(neighbours)}")
    near = tuple(n for n in neighbours[cell] if n != cell)
    own = tuple(r for r in rows if r.cell == cell)
    theirs = tuple(r for r in rows if r.cell in near)
    return StorageView(
        cell=cell, neighbours=near, own=own, neighbour=theirs,
        own_total=storage_totals(own), neighbour_total=storage_totals(theirs),
        per_neighbour={n: storage_totals([r for r in theirs if r.cell == n]) for n in near})
