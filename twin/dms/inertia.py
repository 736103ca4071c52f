"""Inertia monitoring per cell: what a cell holds, could give its neighbours, could get.

The DMS paper asks for "the total available amount of inertia response within the cell,
the available amount that could be delivered to neighbor cells and the available amount
that could be received from neighbor cells" [1]_. :func:`inertia_per_cell` answers the
three for every cell from the inertia units (rotating machines and converter-coupled
units emulating inertia) and the spare capacity of the tie lines between cells.

Rules:

- Inertia is stated as kinetic energy at nominal speed, ``H · S`` [MWs]. A synchronous
  machine's counts in full. A synthetic unit (a wind turbine's rotor, a battery's converter)
  counts only as far as its headroom can pay for it at the reference RoCoF: its
  ``H_em · S`` is capped at ``up · f0 / (2 · RoCoF_ref)``, so a unit without headroom adds
  nothing and one with a little adds a little.
- The figures are for a falling frequency (a loss of infeed, the case inertia is sized
  for): synthetic units inject, using ``up_mw``; the power flows out of a cell over its
  ties' spare *export* capacity and into a cell over their spare *import* capacity.
- A cell's whole response — rotating and synthetic — is deliverable: in one synchronous
  system a machine's inertial response does not know where the imbalance is, and when the
  imbalance is in a neighbour it flows there over the ties.
- Only direct neighbours count; no transit through a third cell.

References
----------
.. [1] DMS paper, section III.C "Synthetic inertia".
.. [2] ENTSO-E, "Rate of change of frequency (RoCoF) withstand capability", 2018: system
   splits may produce RoCoF of the order of 1 Hz/s and more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import numpy as np

from twin.models.frequency_response import synthetic_inertia_mw

InertiaKind = Literal["rotating", "synthetic"]
KINDS = ("rotating", "synthetic")


@dataclass(frozen=True)
class InertiaUnit:
    """One source of inertia response.

    Attributes
    ----------
    name : str
        The unit's name (as in the grid model).
    cell : str
        The cell it lies in.
    kind : {"rotating", "synthetic"}
        A synchronous machine, or a converter-coupled unit emulating inertia.
    h_s : float
        Inertia constant [s] on ``s_mva``; emulated for a synthetic unit. ≥ 0.
    s_mva : float
        Rated apparent power [MVA], ≥ 0.
    up_mw, down_mw : float
        Headroom of a synthetic unit [MW], ≥ 0: power it can add above / withhold below its
        output for the inertial response. Rotating units need none (left 0, unused).
        ``down_mw`` serves a rising frequency and is not used by :func:`inertia_per_cell`.
    """

    name: str
    cell: str
    kind: InertiaKind
    h_s: float
    s_mva: float
    up_mw: float = 0.0
    down_mw: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"InertiaUnit {self.name!r}: kind must be one of {KINDS}; "
                             f"found {self.kind!r}")
        for attr in ("h_s", "s_mva", "up_mw", "down_mw"):
            value = getattr(self, attr)
            if not value >= 0:  # also rejects NaN
                raise ValueError(f"InertiaUnit {self.name!r}: {attr} must be >= 0; "
                                 f"found {value}")


@dataclass(frozen=True)
class CellInertia:
    """Inertia of one cell, and what it could give to / get from its neighbours.

    Powers are at the reference RoCoF; an amount in MWs is the power times
    ``f0 / (2 · RoCoF_ref)``, i.e. the ``H · S`` a machine giving that power would have.

    Attributes
    ----------
    cell : str
    rotating_mws : float
        Σ ``H · S`` of the cell's rotating units [MWs].
    synthetic_mws : float
        Σ over its synthetic units of ``min(H_em · S, up · f0 / (2 · RoCoF_ref))`` [MWs]:
        the emulated inertia their headroom can honour.
    total_mws : float
        ``rotating_mws + synthetic_mws`` [MWs].
    synthetic_up_mw : float
        Σ headroom ``up_mw`` of its synthetic units [MW].
    response_mw : float
        Power the cell's inertia gives at the reference RoCoF, ``2 · total_mws / f0 ·
        RoCoF_ref`` [MW].
    deliverable_mw, deliverable_mws : float
        What it could deliver to its neighbours together: ``response_mw``, at most the sum
        of its ties' spare export capacity [MW]; and as inertia [MWs].
    receivable_mw, receivable_mws : float
        What it could receive from its neighbours together [MW]; and as inertia [MWs]. See
        :func:`inertia_per_cell` for how a neighbour's deliverable is shared.
    deliverable_to_mws, receivable_from_mws : dict of str to float
        The same per neighbour [MWs]: ``min(response, spare export to it)`` and
        ``min(its deliverable toward this cell, spare import from it)``.
    """

    cell: str
    rotating_mws: float
    synthetic_mws: float
    total_mws: float
    synthetic_up_mw: float
    response_mw: float
    deliverable_mw: float
    deliverable_mws: float
    receivable_mw: float
    receivable_mws: float
    deliverable_to_mws: dict[str, float] = field(default_factory=dict)
    receivable_from_mws: dict[str, float] = field(default_factory=dict)


def inertia_per_cell(units: Sequence[InertiaUnit], cells: Mapping[str, Sequence[str]],
                     spare_export_mw: Mapping[str, Mapping[str, float]],
                     spare_import_mw: Mapping[str, Mapping[str, float]],
                     f0_hz: float = 50.0,
                     rocof_ref_hz_s: float = 1.0) -> dict[str, CellInertia]:
    """Inertia per cell, and what each could deliver to / receive from its neighbours.

    Parameters
    ----------
    units : sequence of InertiaUnit
        Every inertia unit; each names its cell.
    cells : mapping of str to sequence of str
        Every cell and its neighbours (cell → neighbour cells); the relation must be
        symmetric. A cell without units still gets a result.
    spare_export_mw, spare_import_mw : mapping of str to mapping of str to float
        Per cell and neighbour, the spare capacity of the ties between them [MW] for power
        leaving / entering the cell (rating minus present flow in that direction; a
        negative value, an overloaded tie, counts as 0). One entry for every neighbour.
    f0_hz : float
        Nominal frequency [Hz].
    rocof_ref_hz_s : float
        Reference rate of change of frequency [Hz/s], > 0, at which synthetic headroom and
        tie capacities are weighed against the inertia. 1 Hz/s is ENTSO-E's order for
        system splits [2]_.

    Returns
    -------
    dict of str to CellInertia
        One entry per cell of ``cells``, in its order.

    Raises
    ------
    ValueError
        A unit in a cell not in ``cells``; a neighbour not in ``cells`` or not listing the
        cell back; a missing, extra or NaN tie capacity; non-positive ``f0_hz`` or
        ``rocof_ref_hz_s``.

    Notes
    -----
    With :math:`k = 2 \\cdot RoCoF_{ref} / f_0` the power per MWs of inertia [MW/MWs]:

    .. math::

        P_c = k \\sum_{rot} H S + \\sum_{syn} \\min(k H_{em} S, up)

        D_{c \\to n} = \\min(P_c, X_{c,n}), \\qquad D_c = \\min(P_c, \\sum_n X_{c,n})

        R_{c \\leftarrow n} = \\min(D_{n \\to c}, M_{c,n}), \\qquad
        R_c = \\sum_n R_{c \\leftarrow n}

    with :math:`X` the spare export and :math:`M` the spare import capacity; MWs are the
    powers divided by :math:`k`.

    **Sharing.** :math:`R_c` counts each neighbour's full response toward this cell
    (within the ties), whatever it might also give to its other neighbours. That is right
    for the question :math:`R_c` answers — how much could come in if the imbalance is in
    this cell — since one imbalance hits one cell at a time; it is an upper bound for
    events that hit several cells at once, and the :math:`R_c` of different cells must not
    be added up.
    """
    if not f0_hz > 0:
        raise ValueError(f"inertia_per_cell: f0_hz must be > 0; found {f0_hz}")
    if not rocof_ref_hz_s > 0:
        raise ValueError(f"inertia_per_cell: rocof_ref_hz_s must be > 0; found "
                         f"{rocof_ref_hz_s}")
    _check_cells(cells, spare_export_mw, spare_import_mw)
    k = 2.0 * rocof_ref_hz_s / f0_hz  # MW per MWs at the reference RoCoF

    rotating = dict.fromkeys(cells, 0.0)
    synthetic = dict.fromkeys(cells, 0.0)
    up = dict.fromkeys(cells, 0.0)
    for u in units:
        if u.cell not in cells:
            raise ValueError(f"inertia_per_cell: unit {u.name!r} lies in cell {u.cell!r}, "
                             f"which is not among the cells ({', '.join(cells)})")
    syn = [u for u in units if u.kind == "synthetic"]
    # the same headroom cap the frequency model applies, at a falling RoCoF_ref
    p_syn = synthetic_inertia_mw(-rocof_ref_hz_s, [u.h_s for u in syn],
                                 [u.s_mva for u in syn], [u.up_mw for u in syn],
                                 [u.down_mw for u in syn], f0_hz)
    for u, p in zip(syn, np.atleast_1d(p_syn)):
        synthetic[u.cell] += float(p) / k
        up[u.cell] += u.up_mw
    for u in units:
        if u.kind == "rotating":
            rotating[u.cell] += u.h_s * u.s_mva

    response = {c: k * (rotating[c] + synthetic[c]) for c in cells}
    export = {c: {n: max(float(x), 0.0) for n, x in spare_export_mw[c].items()} for c in cells}
    imp = {c: {n: max(float(x), 0.0) for n, x in spare_import_mw[c].items()} for c in cells}
    out = {}
    for c, neighbours in cells.items():
        to = {n: min(response[c], export[c][n]) for n in neighbours}
        came = {n: min(response[n], export[n][c], imp[c][n]) for n in neighbours}
        deliverable = min(response[c], sum(export[c].values()))
        receivable = sum(came.values())
        out[c] = CellInertia(
            cell=c, rotating_mws=rotating[c], synthetic_mws=synthetic[c],
            total_mws=rotating[c] + synthetic[c], synthetic_up_mw=up[c],
            response_mw=response[c],
            deliverable_mw=deliverable, deliverable_mws=deliverable / k,
            receivable_mw=receivable, receivable_mws=receivable / k,
            deliverable_to_mws={n: p / k for n, p in to.items()},
            receivable_from_mws={n: p / k for n, p in came.items()})
    return out


def _check_cells(cells: Mapping[str, Sequence[str]],
                 spare_export_mw: Mapping[str, Mapping[str, float]],
                 spare_import_mw: Mapping[str, Mapping[str, float]]) -> None:
    for label, spare in (("spare_export_mw", spare_export_mw),
                         ("spare_import_mw", spare_import_mw)):
        extra = [c for c in spare if c not in cells]
        if extra:
            raise ValueError(f"inertia_per_cell: {label} names cells not among the cells: "
                             f"{', '.join(extra)}")
    for c, neighbours in cells.items():
        for n in neighbours:
            if n not in cells:
                raise ValueError(f"inertia_per_cell: cell {c!r} has neighbour {n!r}, which "
                                 f"is not among the cells")
            if c not in cells[n]:
                raise ValueError(f"inertia_per_cell: cell {c!r} lists {n!r} as neighbour "
                                 f"but {n!r} does not list {c!r}")
        for label, spare in (("spare_export_mw", spare_export_mw),
                             ("spare_import_mw", spare_import_mw)):
            given = spare.get(c, {})
            if set(given) != set(neighbours):
                raise ValueError(
                    f"inertia_per_cell: {label}[{c!r}] must have one entry per neighbour "
                    f"({', '.join(sorted(neighbours)) or 'none'}); found "
                    f"{', '.join(sorted(given)) or 'none'}")
            bad = [n for n, x in given.items() if math.isnan(float(x))]
            if bad:
                raise ValueError(f"inertia_per_cell: {label}[{c!r}] is NaN toward "
                                 f"{', '.join(bad)}")
