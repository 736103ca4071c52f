"""Stationary batteries, many at once: energy, power limits, losses; and how they are driven.

:class:`Battery` advances ``m`` batteries by one step at a time on whole arrays. What they
are asked to do comes from one of three modes, each a pure function producing the request:
:func:`schedule_request` (a piecewise-constant timetable), :func:`setpoint_request` (a given
value) and :func:`price_request` (day-ahead price arbitrage, planned by
:func:`price_schedule`).

Sign convention (pandapower's load convention, as for the EVs): power is positive when the
battery takes power from the grid (charging) and negative when it feeds in (discharging).
Powers are on the grid side of the converter; the cells store ``eta_charge · p`` while
charging and give up ``|p| / eta_discharge`` while discharging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from twin.models.validate import frozen, per_element, require, require_range

ArrayLike = float | Sequence[float] | np.ndarray

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, eq=False)
class BatterySpec:
    """Static data of ``m`` batteries; each field is an array of length ``m``.

    Scalars apply to every battery; the number of batteries is the broadcast length of
    the fields.

    Parameters
    ----------
    capacity_mwh : array_like
        Energy capacity [MWh], > 0; the SOC is stored energy over this.
    p_charge_max_mw, p_discharge_max_mw : array_like
        Grid-side power limits [MW], ≥ 0.
    eta_charge, eta_discharge : array_like
        Conversion efficiencies [-], in (0, 1].
    soc_min, soc_max : array_like
        Operating window of the state of charge [-], ``0 ≤ soc_min < soc_max ≤ 1``.
    self_discharge_per_h : array_like
        Fraction of the stored energy lost per hour at rest [1/h], in [0, 1).
    soc_init : array_like
        State of charge at the start [-], within the operating window.
    """

    capacity_mwh: np.ndarray
    p_charge_max_mw: np.ndarray
    p_discharge_max_mw: np.ndarray
    eta_charge: np.ndarray = 0.95  # type: ignore[assignment]
    eta_discharge: np.ndarray = 0.95  # type: ignore[assignment]
    soc_min: np.ndarray = 0.1  # type: ignore[assignment]
    soc_max: np.ndarray = 0.9  # type: ignore[assignment]
    self_discharge_per_h: np.ndarray = 1e-4  # type: ignore[assignment]
    soc_init: np.ndarray = 0.5  # type: ignore[assignment]

    _FIELDS = ("capacity_mwh", "p_charge_max_mw", "p_discharge_max_mw", "eta_charge",
               "eta_discharge", "soc_min", "soc_max", "self_discharge_per_h", "soc_init")

    def __post_init__(self) -> None:
        shapes = [np.shape(getattr(self, name)) for name in self._FIELDS]
        try:
            shape = np.broadcast_shapes(*shapes)
        except ValueError:
            raise ValueError(
                "BatterySpec: fields must be scalars or arrays of one common length; found "
                + ", ".join(f"{name} {sh}" for name, sh in zip(self._FIELDS, shapes))
            ) from None
        if len(shape) > 1:
            raise ValueError(f"BatterySpec: fields must be 1-D; found shape {shape}")
        m = shape[0] if shape else 1
        for name in self._FIELDS:
            value = per_element(getattr(self, name), m, f"BatterySpec.{name}", "battery")
            object.__setattr__(self, name, frozen(value))
        require_range(self.capacity_mwh, "BatterySpec", "capacity_mwh", 0, lo_open=True)
        require_range(self.p_charge_max_mw, "BatterySpec", "p_charge_max_mw", 0)
        require_range(self.p_discharge_max_mw, "BatterySpec", "p_discharge_max_mw", 0)
        require_range(self.eta_charge, "BatterySpec", "eta_charge", 0, 1, lo_open=True)
        require_range(self.eta_discharge, "BatterySpec", "eta_discharge", 0, 1, lo_open=True)
        require((self.soc_min >= 0) & (self.soc_min < self.soc_max) & (self.soc_max <= 1),
                "BatterySpec", "need 0 <= soc_min < soc_max <= 1")
        require_range(self.self_discharge_per_h, "BatterySpec", "self_discharge_per_h", 0, 1,
                      hi_open=True)
        require((self.soc_init >= self.soc_min) & (self.soc_init <= self.soc_max),
                "BatterySpec", "soc_init must lie in [soc_min, soc_max]", self.soc_init)

    def __len__(self) -> int:
        return int(self.capacity_mwh.size)


@dataclass(frozen=True, eq=False)
class BatteryStepResult:
    """What :meth:`Battery.step` did; every field has one value per battery.

    Attributes
    ----------
    p_mw : numpy.ndarray
        Actual grid-side power [MW]; positive = charging.
    soc : numpy.ndarray
        State of charge at the step's end [-].
    e_mwh : numpy.ndarray
        Stored energy at the step's end [MWh].
    p_min_mw, p_max_mw : numpy.ndarray
        Feasible power range for the next step of the same length [MW]: exactly the
        bounds the next :meth:`Battery.step` clips the request to. ``p_min_mw`` is positive
        only at ``soc_min`` with self-discharge (see :class:`Battery`).
    p_charge_avail_mw : numpy.ndarray
        ``max(p_max_mw, 0)`` [MW]: charging power available next step.
    p_discharge_avail_mw : numpy.ndarray
        ``max(−p_min_mw, 0)`` [MW]: discharging power available next step.
    e_loss_mwh : numpy.ndarray
        Energy lost in the step [MWh]: conversion plus self-discharge.
    e_self_discharge_mwh : numpy.ndarray
        The self-discharge part of ``e_loss_mwh`` [MWh].
    """

    p_mw: np.ndarray
    soc: np.ndarray
    e_mwh: np.ndarray
    p_min_mw: np.ndarray
    p_max_mw: np.ndarray
    p_charge_avail_mw: np.ndarray
    p_discharge_avail_mw: np.ndarray
    e_loss_mwh: np.ndarray
    e_self_discharge_mwh: np.ndarray


class Battery:
    """State of ``m`` batteries over time.

    Parameters
    ----------
    spec : BatterySpec

    Notes
    -----
    Within a step of length :math:`\\Delta t` the grid power :math:`p` is constant, so the
    cells see the constant power :math:`P_s = \\eta_c p` (charging) or :math:`p / \\eta_d`
    (discharging), and self-discharge at the rate :math:`\\lambda = -\\ln(1 - s)` for
    ``self_discharge_per_h`` :math:`s` (so that a battery at rest loses exactly the
    fraction :math:`s` in an hour):

    .. math::

        \\dot E = P_s - \\lambda E
        \\quad\\Rightarrow\\quad
        E(\\Delta t) = a E_0 + g P_s, \\qquad
        a = e^{-\\lambda \\Delta t}, \\quad g = \\frac{1 - a}{\\lambda}\\ (= \\Delta t
        \\text{ for } \\lambda = 0)

    The self-discharge in the step is :math:`(1 - a) E_0 + (\\Delta t - g) P_s`, so
    :math:`E(\\Delta t) = E_0 + P_s \\Delta t - \\text{self-discharge}` exactly.

    The request is clipped to the power limits and to the powers that land exactly on
    ``soc_max`` / ``soc_min`` at the step's end, :math:`P_s = (E_{lim} - a E_0) / g`; when
    such a SOC bound is what clips, the energy is set to the bound itself, so the SOC hits
    it exactly. A NaN request counts as 0.

    Self-discharge would drag a battery resting at ``soc_min`` below it; instead the
    battery then draws the small charging power that holds the floor (as a battery
    management system keeping its reserve does), so ``p_min_mw`` and the actual power can
    be slightly positive even for a request of 0 or a discharge.
    """

    def __init__(self, spec: BatterySpec) -> None:
        self.spec = spec
        self._cap = spec.capacity_mwh
        self._e_min = spec.soc_min * spec.capacity_mwh
        self._e_max = spec.soc_max * spec.capacity_mwh
        self._pc = spec.p_charge_max_mw
        self._pd = spec.p_discharge_max_mw
        self._eta_c = spec.eta_charge
        self._eta_d = spec.eta_discharge
        self._rate_per_h = -np.log1p(-spec.self_discharge_per_h)
        self.e_mwh = spec.soc_init * spec.capacity_mwh

    @property
    def soc(self) -> np.ndarray:
        """State of charge now [-]."""
        return self.e_mwh / self._cap

    def power_range_mw(self, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Feasible grid power ``(p_min, p_max)`` for a step of ``dt_s`` from now [MW]."""
        p_min, p_max, *_ = self._range(float(dt_s))
        return p_min, p_max

    def _range(self, dt_s: float):
        if not dt_s > 0:
            raise ValueError(f"Battery.step: dt_s must be > 0; found {dt_s}")
        dt_h = dt_s / SECONDS_PER_HOUR
        lam = self._rate_per_h
        a = np.exp(-lam * dt_h)
        with np.errstate(invalid="ignore", divide="ignore"):
            g = np.where(lam > 0, -np.expm1(-lam * dt_h) / lam, dt_h)
        e_rest = a * self.e_mwh  # energy at the step's end at zero power
        ps_up = (self._e_max - e_rest) / g  # cell power landing on soc_max, ≥ 0
        ps_down = (self._e_min - e_rest) / g  # cell power landing on soc_min
        p_up = ps_up / self._eta_c
        p_max = np.minimum(self._pc, p_up)
        p_down = np.where(ps_down > 0, ps_down / self._eta_c, ps_down * self._eta_d)
        p_min = np.minimum(np.maximum(-self._pd, p_down), self._pc)
        # Which bound is set by the SOC window rather than by the power limit.
        soc_binds_max = p_up <= self._pc
        soc_binds_min = (p_down >= -self._pd) & (p_down <= self._pc)
        return p_min, p_max, a, g, dt_h, soc_binds_min, soc_binds_max

    def step(self, dt_s: float, p_request_mw: ArrayLike) -> BatteryStepResult:
        """Advance every battery by ``dt_s`` at the requested power, as far as feasible.

        Parameters
        ----------
        dt_s : float
            Step length [s], > 0.
        p_request_mw : array_like
            Requested grid-side power per battery [MW], positive = charge; a scalar applies
            to all. NaN = 0.

        Returns
        -------
        BatteryStepResult
            With ``p_min_mw`` … ``p_discharge_avail_mw`` computed for a next step of the
            same length.
        """
        p_min, p_max, a, g, dt_h, binds_min, binds_max = self._range(float(dt_s))
        request = per_element(np.nan_to_num(np.asarray(p_request_mw, dtype=float), nan=0.0),
                              p_max.size, "Battery.step: p_request_mw", "battery")
        p = np.clip(request, p_min, p_max)
        p_in = np.maximum(p, 0.0)
        p_out = np.maximum(-p, 0.0)
        ps = self._eta_c * p_in - p_out / self._eta_d
        e0 = self.e_mwh
        e1 = a * e0 + g * ps
        e1 = np.where(binds_max & (p >= p_max), self._e_max, e1)
        e1 = np.where(binds_min & (p <= p_min), self._e_min, e1)
        e_self = (1.0 - a) * e0 + (dt_h - g) * ps
        e_conv = dt_h * (p_in * (1.0 - self._eta_c) + p_out * (1.0 / self._eta_d - 1.0))
        self.e_mwh = e1
        p_min_next, p_max_next, *_ = self._range(float(dt_s))
        return BatteryStepResult(
            p_mw=p,
            soc=e1 / self._cap,
            e_mwh=e1.copy(),
            p_min_mw=p_min_next,
            p_max_mw=p_max_next,
            p_charge_avail_mw=np.maximum(p_max_next, 0.0),
            p_discharge_avail_mw=np.maximum(-p_min_next, 0.0),
            e_loss_mwh=e_conv + e_self,
            e_self_discharge_mwh=e_self,
        )


# --------------------------------------------------------------------------- modes
def setpoint_request(p_setpoint_mw: ArrayLike, n: int | None = None) -> np.ndarray:
    """The set-point mode: the request is the given power [MW] (broadcast to ``n``)."""
    p = np.asarray(p_setpoint_mw, dtype=float)
    return np.array(np.broadcast_to(p, (n,)) if n is not None else p)


def schedule_request(
    t_s: float | np.ndarray, schedule_times_s: ArrayLike, schedule_p_mw: ArrayLike
) -> np.ndarray:
    """Piecewise-constant timetable: the power of the last entry at or before ``t_s``.

    Parameters
    ----------
    t_s : float or array_like
        Time(s) [s].
    schedule_times_s : array_like
        Entry times [s], strictly increasing.
    schedule_p_mw : array_like
        Power from each entry on [MW], shape ``(n_times,)`` or ``(n_times, m)`` for one
        column per battery.

    Returns
    -------
    numpy.ndarray
        ``schedule_p_mw[i]`` for the last ``i`` with ``schedule_times_s[i] <= t_s``; 0
        before the first entry. Shape ``np.shape(t_s) + schedule_p_mw.shape[1:]``.
    """
    times = np.asarray(schedule_times_s, dtype=float)
    p = np.asarray(schedule_p_mw, dtype=float)
    if times.ndim != 1 or p.shape[:1] != times.shape:
        raise ValueError(
            "schedule_request: schedule_times_s must be 1-D and schedule_p_mw have one row "
            f"per time; found shapes {times.shape} and {p.shape}"
        )
    if not (np.diff(times) > 0).all():
        raise ValueError("schedule_request: schedule_times_s must be strictly increasing")
    i = np.searchsorted(times, t_s, side="right") - 1
    padded = np.concatenate([np.zeros((1,) + p.shape[1:]), p])  # row 0: before the first entry
    return padded[np.asarray(i) + 1]


def price_schedule(
    price_times_s: ArrayLike,
    prices: ArrayLike,
    spec: BatterySpec,
    *,
    horizon_s: float = 86400.0,
    start_hour_local: float = 0.0,
) -> np.ndarray:
    """Requests per price interval of the day-ahead arbitrage heuristic [MW].

    Parameters
    ----------
    price_times_s : array_like
        Start of each price interval [s from the run start], strictly increasing; an
        interval lasts until the next start, the last one as long as the one before (or
        ``horizon_s`` if alone).
    prices : array_like
        Price of each interval (any currency per MWh).
    spec : BatterySpec
    horizon_s : float
        Length of the planning windows [s]; windows start at local midnight (for the
        default of one day) and the plan for a window uses only that window's prices, as
        with a day-ahead market.
    start_hour_local : float
        Local clock time at ``t = 0`` [h].

    Returns
    -------
    numpy.ndarray
        Shape ``(n_intervals, m)``: ``+p_charge_max``, ``−p_discharge_max`` or 0 per interval
        and battery; feed it to :func:`schedule_request`.

    Notes
    -----
    Per window and battery:

    1. Hours to fill the operating window at full power, :math:`h_c = (soc_{max} -
       soc_{min}) C / (\\eta_c P_c)`, and to empty it, :math:`h_d = (soc_{max} - soc_{min})
       C \\eta_d / P_d`.
    2. Charge in the cheapest intervals, cheapest first, until their total length reaches
       :math:`h_c`; discharge in the dearest, dearest first, until :math:`h_d` (ties go to
       the earlier interval). An interval picked for both is left idle.
    3. Only if the spread pays for the round trip — duration-weighted mean price of the
       discharge intervals times :math:`\\eta_c \\eta_d` above that of the charge
       intervals — otherwise the battery idles all window.

    The heuristic ignores the order of the intervals: a discharge slot before the cheap
    hours discharges what the battery holds, and :meth:`Battery.step` clips whatever the
    SOC window does not allow.
    """
    times = np.asarray(price_times_s, dtype=float)
    price = np.asarray(prices, dtype=float)
    if times.ndim != 1 or times.shape != price.shape or times.size == 0:
        raise ValueError(
            "price_schedule: price_times_s and prices must be 1-D, non-empty, of equal "
            f"length; found shapes {times.shape} and {price.shape}"
        )
    if not (np.diff(times) > 0).all():
        raise ValueError("price_schedule: price_times_s must be strictly increasing")
    if not np.isfinite(price).all():
        raise ValueError("price_schedule: prices must be finite")
    if not horizon_s > 0:
        raise ValueError(f"price_schedule: horizon_s must be > 0; found {horizon_s}")
    duration_s = np.diff(times, append=times[-1] + (times[-1] - times[-2] if times.size > 1
                                                      else horizon_s))
    window = np.floor((times + start_hour_local * SECONDS_PER_HOUR) / horizon_s)
    usable_mwh = (spec.soc_max - spec.soc_min) * spec.capacity_mwh
    with np.errstate(divide="ignore"):
        fill_s = usable_mwh / (spec.eta_charge * spec.p_charge_max_mw) * SECONDS_PER_HOUR
        empty_s = usable_mwh * spec.eta_discharge / spec.p_discharge_max_mw * SECONDS_PER_HOUR
    plan = np.zeros((times.size, len(spec)))
    for w in np.unique(window):
        rows = np.flatnonzero(window == w)
        cheap_first = rows[np.argsort(price[rows], kind="stable")]
        dear_first = rows[np.argsort(-price[rows], kind="stable")]
        cum_cheap = np.cumsum(duration_s[cheap_first])
        cum_dear = np.cumsum(duration_s[dear_first])
        for b in range(len(spec)):
            if spec.p_charge_max_mw[b] == 0 or spec.p_discharge_max_mw[b] == 0:
                continue
            # Smallest prefix whose length reaches the hours needed.
            n_c = min(int(np.searchsorted(cum_cheap, fill_s[b], side="left")) + 1, rows.size)
            n_d = min(int(np.searchsorted(cum_dear, empty_s[b], side="left")) + 1, rows.size)
            charge = np.setdiff1d(cheap_first[:n_c], dear_first[:n_d])
            discharge = np.setdiff1d(dear_first[:n_d], cheap_first[:n_c])
            if not charge.size or not discharge.size:
                continue
            mean_charge = np.average(price[charge], weights=duration_s[charge])
            mean_discharge = np.average(price[discharge], weights=duration_s[discharge])
            if mean_discharge * spec.eta_charge[b] * spec.eta_discharge[b] <= mean_charge:
                continue
            plan[charge, b] = spec.p_charge_max_mw[b]
            plan[discharge, b] = -spec.p_discharge_max_mw[b]
    return plan


def price_request(
    t_s: float | np.ndarray,
    price_times_s: ArrayLike,
    prices: ArrayLike,
    spec: BatterySpec,
    *,
    horizon_s: float = 86400.0,
    start_hour_local: float = 0.0,
) -> np.ndarray:
    """The price mode's request at ``t_s`` [MW], one value per battery.

    Plans with :func:`price_schedule` and looks up ``t_s`` with :func:`schedule_request`
    (0 before the first price). Planning sorts the prices of every window, so a caller that
    asks every simulation step should call :func:`price_schedule` once and then
    :func:`schedule_request`.
    """
    plan = price_schedule(price_times_s, prices, spec, horizon_s=horizon_s,
                          start_hour_local=start_hour_local)
    return schedule_request(t_s, price_times_s, plan)


@dataclass
class BatteryPlan:
    """The batteries as the battery simulator runs them (built by :mod:`twin.build.storage`)."""

    names: list[str]
    storage_idx: list[int]
    spec: BatterySpec
    modes: list[str]
    schedule_times_s: np.ndarray   # requests for "schedule" and "price" batteries
    schedule_p_mw: np.ndarray      # (n_times, n_batteries)
    price_times_s: np.ndarray
    prices_eur_mwh: np.ndarray
