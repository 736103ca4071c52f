"""An EV fleet over time: charging and V2G step by step, for every EV at once.

:meth:`EVFleet.step` runs once per simulation step for all EVs, so it works on whole arrays
(no Python loop over EVs) and aggregates per charging point with :func:`numpy.bincount`.
The charging strategies (uncontrolled, limited by least laxity, V2G dispatch) and the
minimum-SOC-trajectory guarantee are stated on :class:`EVFleet` and :meth:`EVFleet.step`.

Which bus a charging point sits on is the caller's business: aggregate the per-point
results with :func:`sum_by`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from twin.models.ev.sessions import NO_EVENTS, SessionEvents, Sessions, concat_events
from twin.models.ev.spec import SECONDS_PER_HOUR, ArrayLike, EVFleetSpec
from twin.models.validate import per_element

Strategy = Literal["uncontrolled", "limited", "v2g"]

#: Energy below which a remaining gap to a SOC bound counts as closed [MWh] (1 µWh). Without
#: it, rounding leaves gaps of ~1e-17 MWh that would keep chargers at ~1e-14 MW for ever.
E_TOL_MWH = 1e-12
STRATEGIES = ("uncontrolled", "limited", "v2g")


@dataclass(frozen=True, eq=False)
class EVStepResult:
    """What :meth:`EVFleet.step` did in the step ``[t_s, t_s + dt_s)``.

    Per charging point (arrays of length ``n_charge_points``):

    Attributes
    ----------
    p_mw : numpy.ndarray
        Power drawn from the grid [MW]; negative = fed in (V2G).
    n_connected : numpy.ndarray of int
        EVs plugged in during the step.
    soc_mean : numpy.ndarray
        Mean SOC at the step's end of the EVs plugged in during the step [-]; NaN if none.
    p_min_next_mw, p_max_next_mw : numpy.ndarray
        Feasible power range for the next step [MW] (same length of step assumed), for the
        EVs plugged in at its start: the most the point can consume (every EV at full power
        up to its target) and the least (V2G-capable EVs discharging down to their minimum
        SOC trajectory, the others charging only what their trajectory forces).
    flex_up_mw : numpy.ndarray
        ``max(p_max_next − p, 0)`` [MW]: how much more the point could consume next step.
    flex_down_mw : numpy.ndarray
        ``max(p − p_min_next, 0)`` [MW]: how much less it could consume (V2G included)
        without any EV missing its target.

    Per EV (arrays of length ``n``):

    ev_p_mw : numpy.ndarray
        Power of each EV [MW]; 0 when not plugged in.
    ev_soc : numpy.ndarray
        SOC at the step's end [-]; NaN for EVs not plugged in during the step.

    Events and fleet totals:

    arrivals, departures : SessionEvents
        Sessions that plugged in at the step's end (they take part from the next step)
        and sessions that left at its end (see :class:`EVFleet` for the timing).
    e_grid_in_mwh, e_grid_out_mwh : float
        Energy drawn from / fed into the grid by the whole fleet in the step [MWh], ≥ 0.
    e_loss_mwh : float
        Conversion losses in the step [MWh], ≥ 0.
    """

    t_s: float
    dt_s: float
    p_mw: np.ndarray
    n_connected: np.ndarray
    soc_mean: np.ndarray
    p_min_next_mw: np.ndarray
    p_max_next_mw: np.ndarray
    flex_up_mw: np.ndarray
    flex_down_mw: np.ndarray
    ev_p_mw: np.ndarray
    ev_soc: np.ndarray
    arrivals: SessionEvents
    departures: SessionEvents
    e_grid_in_mwh: float
    e_grid_out_mwh: float
    e_loss_mwh: float


# --------------------------------------------------------------------------- the fleet
class EVFleet:
    """State of an EV fleet over time: who is plugged in, how full, at what power.

    Parameters
    ----------
    spec : EVFleetSpec
    sessions : Sessions
        The fleet's sessions (e.g. from :func:`draw_sessions`); ``sessions.ev`` indexes
        ``spec``.
    t_start_s : float
        Time of the first step [s]. Sessions that ended by then are ignored; EVs whose
        session spans it are plugged in from the start.
    history : {"uncontrolled", "none"}
        SOC at ``t_start_s`` of EVs plugged in before it: ``"uncontrolled"`` (default)
        assumes they charged at full power since arrival (capped at the target), as an
        uncontrolled fleet would have; ``"none"`` keeps their arrival SOC.

    Notes
    -----
    **Timing.** A step ``[t, t + dt)`` holds every EV's power constant. An EV takes part
    in it iff it is plugged in at ``t``: an arrival inside the step plugs in at the step's
    end (reported in that step's ``arrivals``, taking part from the next step); a
    departure inside the step takes effect at the step's end (reported in ``departures``),
    so the EV stays up to one step longer than planned and never leaves mid-step. Energy
    accounting is thereby exact: an EV's energy changes only by its constant step power. A
    session that both begins and ends between two step starts never plugs in; it appears in
    ``arrivals`` and ``departures`` of the same step with unchanged energy.

    **Energy.** Per EV, ``e`` [MWh] changes in a step by ``dt_h · (eta_charge · p⁺ −
    p⁻ / eta_discharge)`` with ``p⁺ = max(p, 0)``, ``p⁻ = max(−p, 0)``,
    ``dt_h = dt / 3600``.
    Hence, over any run,

    .. math::

        \\sum (E_{in} - E_{out} - E_{loss}) = E_{end} - E_{start}
            + \\sum E_{departures} - \\sum E_{arrivals}

    with the fleet totals of :class:`EVStepResult`, ``E_start`` / ``E_end`` =
    :attr:`e_stored_mwh` before the first and after the last step, and the ``e_mwh`` of
    the step's ``departures`` / ``arrivals``.

    **Minimum SOC trajectory.** An EV plugged in until ``t_dep`` can still reach its
    target energy ``E_tgt`` from energy ``e`` at time ``t`` iff
    ``e ≥ E_tgt − p_charge_max · eta_charge · (t_dep − t) / 3600``. Every strategy keeps
    the energy at each step's end above this line where the EV is above it at the step's
    start, if the strategy's limits leave it the power; V2G in addition never discharges
    below ``soc_min · capacity``. Because an EV leaves at the end of the step that contains
    its departure, the real remaining time is never shorter than ``t_dep − t`` and the
    guarantee holds however ``t_dep`` falls on the step grid, for steps of any length as
    long as each starts where the last ended.
    """

    def __init__(
        self,
        spec: EVFleetSpec,
        sessions: Sessions,
        t_start_s: float = 0.0,
        history: Literal["uncontrolled", "none"] = "uncontrolled",
    ) -> None:
        if len(sessions) and sessions.ev.max() >= len(spec):
            raise ValueError(
                f"EVFleet: sessions refer to EV {int(sessions.ev.max())} but the spec has "
                f"{len(spec)} EVs"
            )
        if history not in ("uncontrolled", "none"):
            raise ValueError(
                f"EVFleet: history must be 'uncontrolled' or 'none'; found {history!r}"
            )
        self.spec = spec
        self.sessions = sessions
        n = len(spec)
        self._n_cp = spec.n_charge_points
        self._cp = spec.charge_point
        self._cap = spec.capacity_mwh
        self._pc = spec.p_charge_max_mw
        self._pd = spec.p_discharge_max_mw
        self._eta_c = spec.eta_charge
        self._eta_d = spec.eta_discharge
        self._e_min = spec.soc_min * spec.capacity_mwh
        self._e_rate = self._pc * self._eta_c  # stored energy per hour at full charge [MWh/h]
        self._v2g = self._pd > 0
        self._s_e_arr = sessions.soc_arrival * spec.capacity_mwh[sessions.ev]
        self._s_e_tgt = sessions.soc_target * spec.capacity_mwh[sessions.ev]

        # Per-EV state; an EV that is not plugged in has e = e_tgt = dep = 0, which makes
        # its power range [0, 0] without masking on the hot path.
        self._connected = np.zeros(n, dtype=bool)
        self._session = np.full(n, -1, dtype=np.intp)
        self._e = np.zeros(n)
        self._e_tgt = np.zeros(n)
        self._dep = np.zeros(n)
        self._p = np.zeros(n)
        self._range_cache: tuple[float, float, np.ndarray, np.ndarray] | None = None

        t0 = float(t_start_s)
        self.t_s = t0
        self._next = int(np.searchsorted(sessions.arrival_s, t0, side="right"))
        rows = np.flatnonzero(sessions.departure_s[: self._next] > t0)
        ev = sessions.ev[rows]
        e = self._s_e_arr[rows]
        if history == "uncontrolled":
            charged = self._e_rate[ev] * (t0 - sessions.arrival_s[rows]) / SECONDS_PER_HOUR
            e = np.maximum(e, np.minimum(e + charged, self._s_e_tgt[rows]))
        self._plug_in(rows, e)

    # ------------------------------------------------------------------ state
    @property
    def e_stored_mwh(self) -> float:
        """Energy stored in the plugged-in EVs now [MWh]."""
        return float(self._e.sum())

    @property
    def connected(self) -> np.ndarray:
        """Which EVs are plugged in now (a copy)."""
        return self._connected.copy()

    @property
    def soc(self) -> np.ndarray:
        """SOC of each EV now [-]; NaN for EVs not plugged in."""
        return np.where(self._connected, self._e / self._cap, np.nan)

    @property
    def n_charge_points(self) -> int:
        return self._n_cp

    # ------------------------------------------------------------------ stepping
    def step(
        self,
        t_s: float,
        dt_s: float,
        p_limit_mw: ArrayLike | None = None,
        p_request_mw: ArrayLike | None = None,
        strategy: Strategy = "uncontrolled",
        p_offset_mw: ArrayLike | None = None,
    ) -> EVStepResult:
        """Advance from ``t_s`` to ``t_s + dt_s`` with constant power per EV.

        Parameters
        ----------
        t_s : float
            Step start [s]; not before the end of the previous step. A gap is allowed:
            the EVs idle through it and its arrivals and departures are reported here; as
            nobody charges in it, it can make EVs leave short.
        dt_s : float
            Step length [s], > 0.
        p_limit_mw : array_like, optional
            ``"limited"``: maximum consumption per charging point [MW]; NaN = no limit,
            negative counts as 0. A scalar applies to every point.
        p_request_mw : array_like, optional
            ``"v2g"``: requested power per charging point [MW], positive = charge, negative
            = discharge; NaN = no request (the point charges uncontrolled). A scalar
            applies to every point.
        strategy : {"uncontrolled", "limited", "v2g"}
            ``"uncontrolled"``: every plugged-in EV charges at full power until its
            target; the last step's power is reduced so that it lands exactly on the
            target. ``"limited"``: the same wishes, but each point's limit is handed out by
            least laxity first — EVs sorted by laxity ``(t_dep − t) − (E_tgt − e) /
            (p_charge_max · eta_charge)`` (the time they could still wait), each taking its
            full wish while the limit lasts, the next one the remainder, the rest nothing;
            ties go to the lower EV index. The limit overrides the targets: EVs may leave
            short. ``"v2g"``: each point's request is met as far as its EVs' feasible
            ranges allow (see Notes).
        p_offset_mw : array_like, optional
            Added to each point's power after the strategy (e.g. its frequency response,
            negative = less charging or discharging), then met as a V2G request would be:
            within every EV's feasible range, so no EV is left short by it.

        Returns
        -------
        EVStepResult

        Notes
        -----
        **V2G.** Each EV's feasible range for the step is ``[p_lo, p_hi]``: ``p_hi`` charges
        at full power up to the target; ``p_lo`` discharges (V2G-capable EVs only) down to
        ``max(trajectory, soc_min · capacity)`` at the step's end, where the trajectory is
        the minimum SOC line of :class:`EVFleet`, or, for an EV below its trajectory,
        charges as much as needed to get back onto it (at most ``p_hi``). From the neutral
        point ``p_0 = max(p_lo, 0)`` — nobody discharges to charge a neighbour unless the
        request forces it — a request above ``Σ p_0`` moves every EV the same fraction of
        the way to its ``p_hi``, one below moves every EV the same fraction towards its
        ``p_lo``; requests beyond ``Σ p_hi`` or below ``Σ p_lo`` are clipped there.
        """
        if strategy not in STRATEGIES:
            raise ValueError(f"EVFleet.step: unknown strategy {strategy!r}; "
                             f"known: {', '.join(STRATEGIES)}")
        t = float(t_s)
        dt = float(dt_s)
        if not dt > 0:
            raise ValueError(f"EVFleet.step: dt_s must be > 0; found {dt_s}")
        if t < self.t_s:
            raise ValueError(
                f"EVFleet.step: t_s ({t}) lies before the end of the previous step ({self.t_s})"
            )
        arrivals_gap, departures_gap = (NO_EVENTS, NO_EVENTS)
        if t > self.t_s:
            arrivals_gap, departures_gap = self._advance(t)

        p_lo, p_hi = self._power_range(t, dt)
        if strategy == "uncontrolled":
            p = p_hi
        elif strategy == "limited":
            p = self._limited(t, p_hi, p_limit_mw)
        else:
            p = self._v2g_dispatch(p_lo, p_hi, p_request_mw)
        if p_offset_mw is not None:
            offset = self._per_point(p_offset_mw, "p_offset_mw")
            offset = np.nan_to_num(offset)
            if offset.any():
                target = _per_cp(self._cp, p, minlength=self._n_cp) + offset
                moved = (offset != 0.0)[self._cp]  # other points keep their strategy's split
                p = np.where(moved, self._v2g_dispatch(p_lo, p_hi, target), p)

        dt_h = dt / SECONDS_PER_HOUR
        p_in = np.maximum(p, 0.0)
        p_out = np.maximum(-p, 0.0)
        self._e = self._e + dt_h * (self._eta_c * p_in - p_out / self._eta_d)
        self._p = p.copy()  # unplugging zeroes the state in place; the result keeps p
        connected = self._connected
        cp = self._cp
        n_cp = self._n_cp
        p_cp = _per_cp(cp, p, minlength=n_cp)
        n_conn = np.bincount(cp[connected], minlength=n_cp)
        ev_soc = np.where(connected, self._e / self._cap, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            soc_mean = _per_cp(cp, np.where(connected, ev_soc, 0.0),
                                   minlength=n_cp) / n_conn
        e_in = float(p_in.sum()) * dt_h
        e_out = float(p_out.sum()) * dt_h
        e_loss = dt_h * float(
            np.dot(p_in, 1.0 - self._eta_c) + np.dot(p_out, 1.0 / self._eta_d - 1.0)
        )

        self.t_s = t + dt
        arrivals, departures = self._advance(self.t_s)
        if len(arrivals_gap):
            arrivals = concat_events(arrivals_gap, arrivals)
        if len(departures_gap):
            departures = concat_events(departures_gap, departures)

        # Ranges for the next step, assuming it has the same length; cached for it.
        lo_next, hi_next = self._power_range(self.t_s, dt)
        p_min_next = _per_cp(cp, lo_next, minlength=n_cp)
        p_max_next = _per_cp(cp, hi_next, minlength=n_cp)
        return EVStepResult(
            t_s=t,
            dt_s=dt,
            p_mw=p_cp,
            n_connected=n_conn,
            soc_mean=soc_mean,
            p_min_next_mw=p_min_next,
            p_max_next_mw=p_max_next,
            flex_up_mw=np.maximum(p_max_next - p_cp, 0.0),
            flex_down_mw=np.maximum(p_cp - p_min_next, 0.0),
            ev_p_mw=p,
            ev_soc=ev_soc,
            arrivals=arrivals,
            departures=departures,
            e_grid_in_mwh=e_in,
            e_grid_out_mwh=e_out,
            e_loss_mwh=e_loss,
        )

    def droop_capability_mw_per_hz(
        self, f_band_hz: float = 0.2, hold_s: float = 900.0
    ) -> np.ndarray:
        """Frequency droop the V2G-capable EVs can provide now, per charging point [MW/Hz].

        Parameters
        ----------
        f_band_hz : float
            Frequency deviation at which the response is fully activated [Hz]; 0.2 Hz is
            the full-activation deviation of frequency containment reserve in Continental
            Europe [1]_.
        hold_s : float
            How long the full response must be sustainable [s]. The default 15 min is the
            lower bound for the full-activation period of energy-limited FCR providers in
            [1]_.

        Returns
        -------
        numpy.ndarray
            ``min(up, down) / f_band_hz`` per point: ``up`` = Σ ``(p_hi − p)`` and ``down`` =
            Σ ``(p − p_lo)`` over its plugged-in V2G-capable EVs, with ``p`` each EV's power
            in the last step and ``[p_lo, p_hi]`` its feasible range held for ``hold_s``
            from now (so the response respects the targets and ``soc_min`` as in
            :meth:`step`). The minimum makes the droop symmetric, as FCR is.

        References
        ----------
        .. [1] Commission Regulation (EU) 2017/1485 (System Operation Guideline), Art. 156
           and Annex V.
        """
        if not f_band_hz > 0:
            raise ValueError(
                f"droop_capability_mw_per_hz: f_band_hz must be > 0; found {f_band_hz}"
            )
        if not hold_s > 0:
            raise ValueError(f"droop_capability_mw_per_hz: hold_s must be > 0; found {hold_s}")
        inject, absorb = self.fcr_capability_mw(hold_s)
        return np.minimum(inject, absorb) / f_band_hz

    def fcr_capability_mw(self, hold_s: float = 900.0) -> tuple[np.ndarray, np.ndarray]:
        """What the plugged-in V2G-capable EVs can hold for ``hold_s`` from now, per
        charging point [MW]: (more injection — charging less or discharging —, more
        consumption), from each EV's last power within its feasible range held that long
        (departure targets and ``soc_min`` kept as in :meth:`step`)."""
        if not hold_s > 0:
            raise ValueError(f"fcr_capability_mw: hold_s must be > 0; found {hold_s}")
        p_lo, p_hi = self._power_range(self.t_s, float(hold_s), use_cache=False)
        v2g = self._v2g & self._connected
        p = np.clip(self._p, p_lo, p_hi)  # an EV's last power may lie outside the longer-held range
        absorb = _per_cp(self._cp, np.where(v2g, p_hi - p, 0.0), minlength=self._n_cp)
        inject = _per_cp(self._cp, np.where(v2g, p - p_lo, 0.0), minlength=self._n_cp)
        return inject, absorb

    # ------------------------------------------------------------------ internals
    def _power_range(self, t: float, dt: float,
                     use_cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Feasible power ``[p_lo, p_hi]`` per EV for a step ``[t, t + dt)`` [MW]."""
        cache = self._range_cache
        if use_cache and cache is not None and cache[0] == t and cache[1] == dt:
            return cache[2], cache[3]
        dt_h = dt / SECONDS_PER_HOUR
        e = self._e
        e_tgt = self._e_tgt
        room = e_tgt - e
        room = np.where(room > E_TOL_MWH, room, 0.0)
        p_hi = np.minimum(self._pc, room / (self._eta_c * dt_h))
        # Lowest energy at the step's end from which full power still reaches the target.
        remaining_h = np.maximum(self._dep - (t + dt), 0.0) / SECONDS_PER_HOUR
        e_trajectory = e_tgt - self._e_rate * remaining_h
        deficit = e_trajectory - e
        surplus = e - np.maximum(e_trajectory, self._e_min)
        surplus = np.where(surplus > E_TOL_MWH, surplus, 0.0)
        p_lo = np.where(
            deficit > E_TOL_MWH,
            np.minimum(deficit / (self._eta_c * dt_h), p_hi),
            -np.minimum(self._pd, surplus * self._eta_d / dt_h),
        )
        if use_cache:
            self._range_cache = (t, dt, p_lo, p_hi)
        return p_lo, p_hi

    def _limited(self, t: float, p_want: np.ndarray, p_limit_mw: ArrayLike | None) -> np.ndarray:
        limit = self._per_point(p_limit_mw, "p_limit_mw")
        limit = np.where(np.isnan(limit), np.inf, np.maximum(limit, 0.0))
        cp = self._cp
        if np.isinf(limit[cp]).all():
            return p_want
        laxity_s = (self._dep - t) - (self._e_tgt - self._e) / self._e_rate * SECONDS_PER_HOUR
        order = np.lexsort((laxity_s, cp))  # by point, then least laxity first
        cp_sorted = cp[order]
        want = p_want[order]
        before = np.cumsum(want) - want  # all wishes before this EV, across points
        first = np.searchsorted(cp_sorted, cp_sorted)  # first position of each EV's point
        before_in_point = before - before[first]
        got = np.clip(limit[cp_sorted] - before_in_point, 0.0, want)
        p = np.empty_like(p_want)
        p[order] = got
        return p

    def _v2g_dispatch(self, p_lo: np.ndarray, p_hi: np.ndarray,
                      p_request_mw: ArrayLike | None) -> np.ndarray:
        request = self._per_point(p_request_mw, "p_request_mw")
        cp = self._cp
        n_cp = self._n_cp
        p0 = np.maximum(p_lo, 0.0)
        sum0 = _per_cp(cp, p0, minlength=n_cp)
        sum_hi = _per_cp(cp, p_hi, minlength=n_cp)
        sum_lo = _per_cp(cp, p_lo, minlength=n_cp)
        no_request = np.isnan(request)
        request = np.where(no_request, sum_hi, request)
        with np.errstate(invalid="ignore", divide="ignore"):
            up = np.where(request > sum0, (request - sum0) / (sum_hi - sum0), 0.0)
            down = np.where(request < sum0, (sum0 - request) / (sum0 - sum_lo), 0.0)
        # 0/0 (no room in that direction) gives NaN: nothing to move.
        up = np.clip(np.nan_to_num(up, nan=0.0), 0.0, 1.0)
        down = np.clip(np.nan_to_num(down, nan=0.0), 0.0, 1.0)
        up[no_request] = 1.0
        return p0 + up[cp] * (p_hi - p0) - down[cp] * (p0 - p_lo)

    def _per_point(self, value: ArrayLike | None, name: str) -> np.ndarray:
        if value is None:
            return np.full(self._n_cp, np.nan)
        return per_element(value, self._n_cp, f"EVFleet.step: {name}", "charging point")

    def _plug_in(self, rows: np.ndarray, e: np.ndarray) -> None:
        ev = self.sessions.ev[rows]
        self._connected[ev] = True
        self._session[ev] = rows
        self._e[ev] = e
        self._e_tgt[ev] = self._s_e_tgt[rows]
        self._dep[ev] = self.sessions.departure_s[rows]
        self._p[ev] = 0.0
        self._range_cache = None

    def _advance(self, t: float) -> tuple[SessionEvents, SessionEvents]:
        """Unplug EVs due by ``t``, then plug in sessions arrived by ``t``."""
        departures = NO_EVENTS
        leaving = np.flatnonzero(self._connected & (self._dep <= t))
        if leaving.size:
            e = self._e[leaving]
            departures = SessionEvents(
                session=self._session[leaving],
                ev=leaving,
                charge_point=self._cp[leaving],
                soc=e / self._cap[leaving],
                e_mwh=e,
                energy_short_mwh=_short(self._e_tgt[leaving] - e),
            )
            self._connected[leaving] = False
            self._session[leaving] = -1
            for state in (self._e, self._e_tgt, self._dep, self._p):
                state[leaving] = 0.0
            self._range_cache = None

        arrivals = NO_EVENTS
        end = int(np.searchsorted(self.sessions.arrival_s, t, side="right"))
        if end > self._next:
            rows = np.arange(self._next, end)
            self._next = end
            s = self.sessions
            ev = s.ev[rows]
            e = self._s_e_arr[rows]
            need = _short(self._s_e_tgt[rows] - e)
            arrivals = SessionEvents(
                session=rows, ev=ev, charge_point=self._cp[ev],
                soc=s.soc_arrival[rows], e_mwh=e, energy_short_mwh=need,
            )
            # Sessions over before any step could start with them never plug in.
            missed = s.departure_s[rows] <= t
            self._plug_in(rows[~missed], e[~missed])
            if missed.any():
                gone = SessionEvents(
                    session=rows[missed], ev=ev[missed], charge_point=self._cp[ev[missed]],
                    soc=s.soc_arrival[rows[missed]], e_mwh=e[missed],
                    energy_short_mwh=need[missed],
                )
                departures = concat_events(departures, gone)
        return arrivals, departures


def _per_cp(cp: np.ndarray, values: np.ndarray, minlength: int) -> np.ndarray:
    # bincount returns integers for an empty fleet; the results are powers.
    return np.bincount(cp, weights=values, minlength=minlength).astype(float, copy=False)


def _short(gap_mwh: np.ndarray) -> np.ndarray:
    return np.where(gap_mwh > E_TOL_MWH, gap_mwh, 0.0)


# --------------------------------------------------------------------------- helpers
def sum_by(index: ArrayLike, values: ArrayLike, n: int) -> np.ndarray:
    """Sum ``values`` into ``n`` bins by ``index`` (e.g. charging-point powers per bus).

    Parameters
    ----------
    index : array_like of int
        Bin of each value, in ``[0, n)``.
    values : array_like
        Values, same length as ``index``; NaN propagates into its bin.
    n : int
        Number of bins; bins without values are 0.

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)``.
    """
    idx = np.asarray(index)
    vals = np.asarray(values, dtype=float)
    if idx.shape != vals.shape or idx.ndim != 1:
        raise ValueError(
            f"sum_by: index and values must be 1-D of equal length; found shapes "
            f"{idx.shape} and {vals.shape}"
        )
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"sum_by: index must lie in [0, {n})")
    return _per_cp(idx.astype(np.intp), vals, int(n))



@dataclass
class EVPlan:
    """The fleet as the EV simulator runs it (built by :mod:`twin.build.storage`)."""

    fleet: EVFleet
    points: list[str]          # charging point names = bus names
    load_idx: list[int]        # the net's load per charging point
    strategy: str
