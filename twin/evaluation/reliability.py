"""Reliability indices per IEEE Std 1366 from a stream of supply states.

A :class:`ReliabilityLedger` is told, at each update, which loads are supplied and what each
would draw. It records every interruption of every load and, at the run end, returns the
customer-based indices (SAIFI, SAIDI, CAIDI, MAIFI) and the energy not supplied. Times are
float seconds since the run start.

Rules
-----
States
    An update holds from its time until the next update (piecewise constant). Times never
    decrease; at equal times the later update wins, so a load switched off and on again at the
    same instant was never interrupted, and one restored and lost again at the same instant
    had one unbroken interruption.
Interruptions
    An interruption of a load starts at the first update where it is unsupplied and ends at
    the update where it is supplied again (or at the run end). It is sustained when it lasts
    longer than ``momentary_s`` (IEEE 1366: 5 min), momentary otherwise.
Energy not supplied
    ∫ max(demand, 0) dt over the unsupplied time, demand piecewise constant as given;
    counted over all interruptions, momentary ones included.

Notes
-----
With N_T the customers served and, over sustained interruptions *i* with N_i customers and
duration r_i [min]:

- CI = Σ N_i (a customer interrupted twice counts twice), CMI = Σ N_i · r_i [min]
- SAIFI = CI / N_T, SAIDI = CMI / N_T [min], CAIDI = SAIDI / SAIFI [min]
- MAIFI = Σ N_j / N_T over momentary interruptions *j*

References
----------
.. [1] IEEE Std 1366-2022, "IEEE Guide for Electric Power Distribution Reliability Indices",
   :doi:`10.1109/IEEESTD.2022.9955493`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Mapping

MOMENTARY_S = 300.0  # IEEE 1366: interruptions of 5 minutes or less are momentary

KW_PER_CUSTOMER = 4.0  # nominal active power behind one customer [kW]


def default_customers(p_mw: float) -> int:
    """Customers behind a load when the scenario gives none, from the load's size.

    One customer per 4 kW of nominal active power: a household's after-diversity peak
    demand lies around 1.5–4 kW, so 4 kW is the conservative end (fewer customers per MW).

    Parameters
    ----------
    p_mw : float
        Nominal active power of the load [MW], positive when consuming.

    Returns
    -------
    int
        Number of customers, at least 1; 1 when ``p_mw`` is ≤ 0 or NaN.
    """
    p_mw = float(p_mw)
    if math.isnan(p_mw) or p_mw <= 0:
        return 1
    if math.isinf(p_mw):
        raise ValueError(f"default_customers: load power must be finite; found {p_mw}")
    # round, not floor: 4.004 MW is 1001 customers though 4.004·1000/4 is 1000.999…
    return max(1, round(p_mw * 1000.0 / KW_PER_CUSTOMER))


@dataclass(frozen=True)
class Interruption:
    """One interruption of the supply to one load. Times [s].

    ``end_t_s`` is None when the load was not restored by the end of the run; its duration
    then counts up to ``run_end_t_s``, the run end given to
    :meth:`ReliabilityLedger.finish`.
    """

    load: str
    start_t_s: float
    end_t_s: float | None
    customers: int
    energy_not_supplied_mwh: float
    sustained: bool  # lasted longer than the ledger's momentary_s
    run_end_t_s: float | None = None

    @property
    def duration_s(self) -> float:
        """From the start to the restoration, or to the run end if never restored [s]."""
        end_t_s = self.end_t_s if self.end_t_s is not None else self.run_end_t_s
        if end_t_s is None:
            raise ValueError(f"interruption of load {self.load!r} has neither an end "
                             f"nor a run end")
        return end_t_s - self.start_t_s


class _Open:
    """An interruption in progress: its start and the energy not supplied so far."""

    __slots__ = ("start_t_s", "energy_mwh")

    def __init__(self, start_t_s: float):
        self.start_t_s = start_t_s
        self.energy_mwh = 0.0


class ReliabilityLedger:
    """Records interruptions from supply states; :meth:`finish` returns the indices.

    Parameters
    ----------
    customers : dict of str to int
        Customers behind each load, integers ≥ 1 (see :func:`default_customers`). Every
        load starts supplied.
    momentary_s : float
        Interruptions lasting this long or less are momentary [s].
    """

    def __init__(self, customers: dict[str, int], momentary_s: float = MOMENTARY_S):
        self._customers = {load: _customer_count(load, n) for load, n in customers.items()}
        if not (math.isfinite(momentary_s) and momentary_s >= 0):
            raise ValueError(f"momentary_s must be >= 0; found {momentary_s}")
        self.momentary_s = float(momentary_s)
        self._supplied = dict.fromkeys(self._customers, True)
        self._demand_mw = dict.fromkeys(self._customers, 0.0)
        self._open: dict[str, _Open] = {}
        self._closed: list[Interruption] = []
        # closed at the current time, kept to be resumed if lost again at that same time
        self._closed_now: dict[str, tuple[_Open, Interruption]] = {}
        self._t_s: float | None = None
        self._at_end: list[Interruption] | None = None

    @property
    def interruptions(self) -> list[Interruption]:
        """Closed interruptions so far, then (after :meth:`finish`) those open at the run end."""
        return self._closed + (self._at_end or [])

    def update(self, t_s: float, supplied: Mapping[str, bool],
               demand_mw: Mapping[str, float]) -> None:
        """The state valid from ``t_s`` [s] until the next update.

        Parameters
        ----------
        t_s : float
            Time [s], not before the previous update's.
        supplied : mapping of str to bool
            Loads whose supply state is known now; the others keep theirs.
        demand_mw : mapping of str to float
            Active power each load would draw if supplied [MW]; the others keep theirs.
            Negative or NaN demand counts as 0.
        """
        if self._at_end is not None:
            raise RuntimeError("ReliabilityLedger.update after finish")
        t_s = float(t_s)
        if math.isnan(t_s):
            raise ValueError("ReliabilityLedger.update: time is NaN")
        if self._t_s is not None and t_s < self._t_s:
            raise ValueError(f"ReliabilityLedger.update: time went back from {self._t_s} s "
                             f"to {t_s} s")
        for name, mapping in (("supplied", supplied), ("demand_mw", demand_mw)):
            unknown = [load for load in mapping if load not in self._customers]
            if unknown:
                raise ValueError(f"ReliabilityLedger.update: {name} names loads without "
                                 f"customers: {', '.join(map(repr, unknown))}")

        if self._t_s is not None and t_s > self._t_s:
            self._integrate(t_s)
            self._closed_now.clear()
        self._t_s = t_s

        for load, p_mw in demand_mw.items():
            p_mw = float(p_mw)
            self._demand_mw[load] = p_mw if p_mw > 0 else 0.0  # NaN > 0 is False
        for load, state in supplied.items():
            state = bool(state)
            if state == self._supplied[load]:
                continue
            self._supplied[load] = state
            if state:
                self._restore(load, t_s)
            else:
                self._interrupt(load, t_s)

    def finish(self, end_t_s: float) -> dict[str, object]:
        """Close the integration at the run end ``end_t_s`` [s] and return the indices.

        Returns
        -------
        dict
            JSON-serialisable, floats rounded to 9 digits: ``customers_served`` (N_T),
            ``customers_interrupted`` (CI), ``customer_minutes_interrupted`` (CMI),
            ``saifi``, ``saidi_min``, ``caidi_min`` (None when SAIFI is 0),
            ``momentary_interruptions`` (customer momentary interruptions), ``maifi``,
            ``energy_not_supplied_mwh`` (all interruptions), ``interruptions`` (sustained
            ones) and ``interruptions_momentary``. The ratios are None without customers.
        """
        if self._at_end is not None:
            raise RuntimeError("ReliabilityLedger.finish called twice")
        end_t_s = float(end_t_s)
        if math.isnan(end_t_s) or (self._t_s is not None and end_t_s < self._t_s):
            raise ValueError(f"ReliabilityLedger.finish: run end {end_t_s} s is before the "
                             f"last update at {self._t_s} s")
        if self._t_s is not None:
            self._integrate(end_t_s)
        self._at_end = [
            Interruption(load, o.start_t_s, None, self._customers[load], o.energy_mwh,
                         sustained=end_t_s - o.start_t_s > self.momentary_s,
                         run_end_t_s=end_t_s)
            for load, o in sorted(self._open.items(), key=lambda item: (item[1].start_t_s,
                                                                        item[0]))]
        self._open.clear()
        return self._indices()

    def _integrate(self, t_s: float) -> None:
        """Energy not supplied of the open interruptions up to ``t_s``."""
        dt_h = (t_s - self._t_s) / 3600.0
        for load, o in self._open.items():
            o.energy_mwh += self._demand_mw[load] * dt_h

    def _interrupt(self, load: str, t_s: float) -> None:
        resumed = self._closed_now.pop(load, None)
        if resumed is not None:
            # restored and lost at the same instant: no supplied time, one interruption
            o, record = resumed
            self._closed.remove(record)
            self._open[load] = o
        else:
            self._open[load] = _Open(t_s)

    def _restore(self, load: str, t_s: float) -> None:
        o = self._open.pop(load)
        if t_s == o.start_t_s:
            return  # lost and restored at the same instant: never interrupted
        record = Interruption(load, o.start_t_s, t_s, self._customers[load], o.energy_mwh,
                              sustained=t_s - o.start_t_s > self.momentary_s)
        self._closed.append(record)
        self._closed_now[load] = (o, record)

    def _indices(self) -> dict[str, object]:
        n_total = sum(self._customers.values())
        ci = cmo = n_sustained = n_momentary = 0
        cmi = 0.0
        ens_mwh = 0.0
        for i in self.interruptions:
            ens_mwh += i.energy_not_supplied_mwh
            if i.sustained:
                n_sustained += 1
                ci += i.customers
                cmi += i.customers * i.duration_s / 60.0
            else:
                n_momentary += 1
                cmo += i.customers

        def ratio(num: float, den: float) -> float | None:
            return round(num / den, 9) if den else None

        return {
            "customers_served": n_total,
            "customers_interrupted": ci,
            "customer_minutes_interrupted": round(cmi, 9),
            "saifi": ratio(ci, n_total),
            "saidi_min": ratio(cmi, n_total),
            "caidi_min": ratio(cmi, ci),  # SAIDI / SAIFI without the rounding of either
            "momentary_interruptions": cmo,
            "maifi": ratio(cmo, n_total),
            "energy_not_supplied_mwh": round(ens_mwh, 9),
            "interruptions": n_sustained,
            "interruptions_momentary": n_momentary,
        }


def _customer_count(load: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Real) or not math.isfinite(n) \
            or int(n) != n or n < 1:
        raise ValueError(f"customers of load {load!r} must be an integer >= 1; found {n!r}")
    return int(n)
