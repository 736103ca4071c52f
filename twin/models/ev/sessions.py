"""EV charging sessions: daily habits, seeded draws, and the events of plugging in and out.

* :class:`Sessions` — a table of plug-in sessions (EV, arrival, departure, SOC);
* :func:`draw_sessions` — seeded daily sessions from the ``"home"`` and ``"work"``
  patterns of :data:`PATTERNS` or any :class:`SessionPattern`;
* :class:`SessionEvents` — the sessions that began or ended in a step of the fleet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.models.ev.spec import SECONDS_PER_HOUR, ArrayLike, EVFleetSpec
from twin.models.validate import frozen, per_element

HOURS_PER_DAY = 24.0


# --------------------------------------------------------------------------- sessions
@dataclass(frozen=True, eq=False)
class Sessions:
    """Plug-in sessions, one row per session, rows sorted by arrival (then EV).

    Scalars for the fields other than ``ev`` apply to every session.

    Parameters
    ----------
    ev : array_like of int
        Index of the EV.
    arrival_s, departure_s : array_like
        Plug-in and plug-out times [s from the run start]; ``departure_s > arrival_s``.
        Arrival may lie before the run start (an EV already plugged in).
    soc_arrival : array_like
        State of charge at arrival [-], in [0, 1].
    soc_target : array_like
        State of charge the driver wants at departure [-], in [0, 1].

    Notes
    -----
    One EV's sessions must not overlap (each departure ≤ the EV's next arrival). The energy
    the EV needs is ``(soc_target − soc_arrival) · capacity`` (:meth:`energy_need_mwh`).
    """

    ev: np.ndarray
    arrival_s: np.ndarray
    departure_s: np.ndarray
    soc_arrival: np.ndarray
    soc_target: np.ndarray

    def __post_init__(self) -> None:
        ev = np.atleast_1d(np.asarray(self.ev))
        if ev.size and not np.issubdtype(ev.dtype, np.integer):
            raise ValueError(f"Sessions.ev must hold integers; found dtype {ev.dtype}")
        ev = ev.astype(np.intp)
        n = ev.size
        arrays = {"ev": ev}
        for name in ("arrival_s", "departure_s", "soc_arrival", "soc_target"):
            arrays[name] = per_element(getattr(self, name), n, f"Sessions.{name}", "session")
        if n:
            if ev.min() < 0:
                raise ValueError("Sessions: ev must be >= 0")
            if not (np.isfinite(arrays["arrival_s"]).all()
                    and np.isfinite(arrays["departure_s"]).all()):
                raise ValueError("Sessions: arrival_s and departure_s must be finite")
            if not (arrays["departure_s"] > arrays["arrival_s"]).all():
                raise ValueError("Sessions: every departure_s must be later than its arrival_s")
            for name in ("soc_arrival", "soc_target"):
                if not ((arrays[name] >= 0) & (arrays[name] <= 1)).all():
                    raise ValueError(f"Sessions: {name} must lie in [0, 1]")
            # Per EV in time order, each session must end before the next begins.
            by_ev = np.lexsort((arrays["arrival_s"], ev))
            same_ev = ev[by_ev][1:] == ev[by_ev][:-1]
            overlap = same_ev & (arrays["departure_s"][by_ev][:-1] > arrays["arrival_s"][by_ev][1:])
            if overlap.any():
                bad = int(ev[by_ev][:-1][overlap][0])
                raise ValueError(f"Sessions: sessions of EV {bad} overlap in time")
        order = np.lexsort((ev, arrays["arrival_s"]))
        for name, value in arrays.items():
            object.__setattr__(self, name, frozen(value[order]))

    def __len__(self) -> int:
        return int(self.ev.size)

    def energy_need_mwh(self, spec: EVFleetSpec) -> np.ndarray:
        """Energy to store per session [MWh]: ``max(soc_target − soc_arrival, 0) · capacity``."""
        return np.maximum(self.soc_target - self.soc_arrival, 0.0) * spec.capacity_mwh[self.ev]

    @classmethod
    def concatenate(cls, *parts: "Sessions") -> "Sessions":
        """All sessions of ``parts`` in one table (e.g. home-charging and work-charging EVs)."""
        if not parts:
            raise ValueError("Sessions.concatenate: give at least one Sessions")
        return cls(**{
            name: np.concatenate([getattr(part, name) for part in parts])
            for name in ("ev", "arrival_s", "departure_s", "soc_arrival", "soc_target")
        })


@dataclass(frozen=True)
class SessionPattern:
    """Distributions of one daily charging habit.

    Parameters
    ----------
    arrival_mean_h, arrival_std_h : float
        Local clock time of plugging in [h] and its spread [h]: a normal distribution,
        truncated at ``± truncate_sigma`` standard deviations.
    departure_mean_h, departure_std_h : float
        Local clock time of plugging out [h] and its spread [h], likewise.
    departure_next_day : bool
        Whether the EV leaves on the day after it arrived (overnight charging).
    e_drive_mean_kwh, e_drive_std_kwh : float
        Energy driven since the last charge [kWh]: lognormal with this mean and standard
        deviation.
    p_daily : float
        Probability that the EV has the session on a given day [-]; the default 1 means
        every day (no weekends).
    truncate_sigma : float
        Truncation of the time distributions [standard deviations]. It keeps every stay
        positive and one day's departure before the next day's arrival; the constructor
        checks that the windows allow this. Truncating at 3 σ narrows the spread by 1.3 %
        and leaves the mean unchanged.
    """

    arrival_mean_h: float
    arrival_std_h: float
    departure_mean_h: float
    departure_std_h: float
    departure_next_day: bool
    e_drive_mean_kwh: float
    e_drive_std_kwh: float
    p_daily: float = 1.0
    truncate_sigma: float = 3.0

    def __post_init__(self) -> None:
        for name in ("arrival_mean_h", "departure_mean_h"):
            if not 0 <= getattr(self, name) < HOURS_PER_DAY:
                raise ValueError(f"SessionPattern.{name} must lie in [0, 24) h")
        for name in ("arrival_std_h", "departure_std_h", "e_drive_std_kwh"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"SessionPattern.{name} must be >= 0")
        if not self.e_drive_mean_kwh > 0:
            raise ValueError("SessionPattern.e_drive_mean_kwh must be > 0")
        if not 0 <= self.p_daily <= 1:
            raise ValueError("SessionPattern.p_daily must lie in [0, 1]")
        if not self.truncate_sigma > 0:
            raise ValueError("SessionPattern.truncate_sigma must be > 0")
        k = self.truncate_sigma
        arrival_latest = self.arrival_mean_h + k * self.arrival_std_h
        arrival_earliest_next = self.arrival_mean_h - k * self.arrival_std_h + HOURS_PER_DAY
        departure_h = self.departure_mean_h + HOURS_PER_DAY * self.departure_next_day
        if not departure_h - k * self.departure_std_h > arrival_latest:
            raise ValueError(
                "SessionPattern: the earliest departure "
                f"({departure_h - k * self.departure_std_h:g} h) must come after the latest "
                f"arrival ({arrival_latest:g} h); narrow the spreads or set departure_next_day"
            )
        if not departure_h + k * self.departure_std_h <= arrival_earliest_next:
            raise ValueError(
                "SessionPattern: the latest departure "
                f"({departure_h + k * self.departure_std_h:g} h) must come before the next "
                f"day's earliest arrival ({arrival_earliest_next:g} h); narrow the spreads"
            )


#: The two default habits. A daily 8 kWh is ≈ 40 km at ≈ 0.2 kWh/km, the order of the
#: average daily distance of a private car in Germany [1]_; at work only the commute is
#: recharged, hence less.
#:
#: .. [1] infas, DLR, IVT, infas 360, "Mobilität in Deutschland – MiD Ergebnisbericht",
#:    study for the Federal Ministry of Transport, Bonn/Berlin, 2018.
PATTERNS: dict[str, SessionPattern] = {
    "home": SessionPattern(
        arrival_mean_h=18.0, arrival_std_h=1.5,
        departure_mean_h=7.5, departure_std_h=1.0, departure_next_day=True,
        e_drive_mean_kwh=8.0, e_drive_std_kwh=4.0,
    ),
    "work": SessionPattern(
        arrival_mean_h=8.5, arrival_std_h=1.0,
        departure_mean_h=17.0, departure_std_h=1.0, departure_next_day=False,
        e_drive_mean_kwh=6.0, e_drive_std_kwh=3.0,
    ),
}


def draw_sessions(
    rng: np.random.Generator,
    spec_or_n: EVFleetSpec | int,
    start_s: float,
    end_s: float,
    pattern: str | SessionPattern = "home",
    *,
    start_hour_local: float = 0.0,
    soc_target: float = 0.9,
    evs: ArrayLike | None = None,
    capacity_mwh: float = 0.06,
    soc_min: float | None = None,
) -> Sessions:
    """Seeded daily sessions of the EVs between ``start_s`` and ``end_s``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random number; the same generator state gives the same sessions.
    spec_or_n : EVFleetSpec or int
        The fleet (for capacities and ``soc_min``), or just the number of EVs.
    start_s, end_s : float
        Time span [s from the run start]; returned are the sessions that overlap it,
        including those that began before ``start_s`` (EVs plugged in overnight).
    pattern : str or SessionPattern
        ``"home"``, ``"work"`` (see :data:`PATTERNS`) or a custom pattern.
    start_hour_local : float
        Local clock time at ``t = 0`` [h]; the patterns follow local time.
    soc_target : float
        State of charge every driver wants at departure [-]. A fixed 0.9 is the default:
        it is what most charge managers default to, keeps the top 10 % free for battery
        life, and, with ~8 kWh a day against ~60 kWh, always leaves enough for the next
        trip.
    evs : array_like of int, optional
        Draw for these EVs only (default: all); concatenate the results of several calls
        (:meth:`Sessions.concatenate`) for a fleet with mixed habits.
    capacity_mwh : float
        Capacity of every EV [MWh] when ``spec_or_n`` is a number. Default 60 kWh.
    soc_min : float, optional
        Lowest arrival SOC [-]; default the spec's ``soc_min``, or 0.2.

    Returns
    -------
    Sessions

    Notes
    -----
    For every local day and EV: arrival and departure clock times from the pattern's
    truncated normals, driven energy from its lognormal (parameters
    :math:`\\sigma^2 = \\ln(1 + s^2/m^2)`, :math:`\\mu = \\ln m - \\sigma^2/2` for mean
    :math:`m` and standard deviation :math:`s`), and whether the session happens at all
    from ``p_daily``. The EV is assumed to have left its previous session at the target,
    so it arrives with ``soc_target − e_drive / capacity``, clipped to
    ``[soc_min, soc_target]`` (an EV does not come home emptier than the V2G floor; that
    clip binds only for a drive of more than ``(soc_target − soc_min) · capacity``, 42 kWh
    for the defaults). The energy need is then the driven energy.

    The draws are made day by day over a span padded by two days on each side, always in
    the same order, so a given generator state and span give identical sessions.
    """
    if isinstance(pattern, str):
        if pattern not in PATTERNS:
            raise ValueError(f"draw_sessions: unknown pattern {pattern!r}; "
                             f"known: {', '.join(PATTERNS)}")
        pattern = PATTERNS[pattern]
    if isinstance(spec_or_n, EVFleetSpec):
        n_ev = len(spec_or_n)
        capacity = spec_or_n.capacity_mwh
        soc_floor = spec_or_n.soc_min if soc_min is None else float(soc_min)
    else:
        n_ev = int(spec_or_n)
        if n_ev < 0:
            raise ValueError(f"draw_sessions: the number of EVs must be >= 0; found {n_ev}")
        if not capacity_mwh > 0:
            raise ValueError("draw_sessions: capacity_mwh must be > 0")
        capacity = np.full(n_ev, float(capacity_mwh))
        soc_floor = 0.2 if soc_min is None else float(soc_min)
    if not end_s > start_s:
        raise ValueError(f"draw_sessions: end_s ({end_s}) must be later than start_s ({start_s})")
    if not 0 <= soc_floor < soc_target <= 1:
        raise ValueError(
            f"draw_sessions: need 0 <= soc_min ({soc_floor}) < soc_target ({soc_target}) <= 1"
        )
    ev = np.arange(n_ev) if evs is None else np.atleast_1d(np.asarray(evs, dtype=np.intp))
    if ev.size and (ev.min() < 0 or ev.max() >= n_ev):
        raise ValueError(f"draw_sessions: evs must lie in [0, {n_ev})")

    hour0 = start_hour_local + start_s / SECONDS_PER_HOUR
    hour1 = start_hour_local + end_s / SECONDS_PER_HOUR
    days = np.arange(np.floor(hour0 / HOURS_PER_DAY) - 2, np.floor(hour1 / HOURS_PER_DAY) + 2)
    shape = (days.size, ev.size)
    k = pattern.truncate_sigma
    arrival_h = pattern.arrival_mean_h + pattern.arrival_std_h * _truncated_normal(rng, shape, k)
    departure_h = (pattern.departure_mean_h + HOURS_PER_DAY * pattern.departure_next_day
                   + pattern.departure_std_h * _truncated_normal(rng, shape, k))
    e_drive_mwh = _lognormal(rng, pattern.e_drive_mean_kwh, pattern.e_drive_std_kwh, shape) / 1e3
    present = rng.random(shape) < pattern.p_daily

    day_start_s = ((days * HOURS_PER_DAY - start_hour_local) * SECONDS_PER_HOUR)[:, None]
    arrival_s = day_start_s + arrival_h * SECONDS_PER_HOUR
    departure_s = day_start_s + departure_h * SECONDS_PER_HOUR
    ev_grid = np.broadcast_to(ev, shape)
    soc_arrival = np.clip(soc_target - e_drive_mwh / capacity[ev_grid], soc_floor, soc_target)
    keep = present & (departure_s > start_s) & (arrival_s < end_s)
    return Sessions(
        ev=ev_grid[keep],
        arrival_s=arrival_s[keep],
        departure_s=departure_s[keep],
        soc_arrival=soc_arrival[keep],
        soc_target=np.full(int(keep.sum()), float(soc_target)),
    )


def _truncated_normal(rng: np.random.Generator, shape: tuple[int, ...], k: float) -> np.ndarray:
    """Standard normal draws redrawn until within ``±k`` (exact truncation, not clipping)."""
    z = rng.standard_normal(shape)
    bad = np.abs(z) > k
    while bad.any():
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(z) > k
    return z


def _lognormal(rng: np.random.Generator, mean: float, std: float,
               shape: tuple[int, ...]) -> np.ndarray:
    sigma2 = np.log1p((std / mean) ** 2)
    return rng.lognormal(np.log(mean) - sigma2 / 2, np.sqrt(sigma2), shape)


# --------------------------------------------------------------------------- step results
@dataclass(frozen=True, eq=False)
class SessionEvents:
    """Sessions that began or ended in a step, one row each.

    Attributes
    ----------
    session : numpy.ndarray of int
        Row in the fleet's :class:`Sessions`.
    ev, charge_point : numpy.ndarray of int
    soc : numpy.ndarray
        State of charge at the event [-].
    e_mwh : numpy.ndarray
        Energy stored in the EV at the event [MWh]: brought in at an arrival, carried
        away at a departure.
    energy_short_mwh : numpy.ndarray
        At a departure: energy the EV still lacked for its target [MWh], ≥ 0 (below
        :data:`~twin.models.ev.fleet.E_TOL_MWH` counts as 0). At an arrival: the energy need.
    """

    session: np.ndarray
    ev: np.ndarray
    charge_point: np.ndarray
    soc: np.ndarray
    e_mwh: np.ndarray
    energy_short_mwh: np.ndarray

    def __len__(self) -> int:
        return int(self.session.size)


#: No session began or ended.
NO_EVENTS = SessionEvents(*(np.empty(0, dtype=np.intp),) * 3, *(np.empty(0),) * 3)


def concat_events(a: SessionEvents, b: SessionEvents) -> SessionEvents:
    """The events of ``a`` then ``b``; either one itself when the other is empty."""
    if not len(a):
        return b
    if not len(b):
        return a
    return SessionEvents(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in (
        "session", "ev", "charge_point", "soc", "e_mwh", "energy_short_mwh")))

