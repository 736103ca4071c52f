"""Field crews as a discrete-event model (SimPy, no mosaik): manual switching on site.

A job (operate a manual switch) waits for a free crew, the crew drives there and works,
and the device is operated when the work is done. The dispatcher lives in a
:class:`simpy.Environment` that its owner moves with :meth:`CrewDispatcher.advance_to`;
it may share that environment with :class:`twin.models.comms.CommNetwork`. Times are
float seconds since the run start.

Rules
-----
Queue
    The crews are a resource of capacity ``n_crews``. Jobs are served in the order they
    were requested. When several crews are free, the job goes to the one with the
    shortest journey (ties: the lowest crew number).
Freeing a crew
    A crew is free again the moment its work is done, at the job's location: the next
    job travels from there. With nothing to do it drives back to the depot, arriving
    after the journey time; a job assigned on the way starts from the point reached,
    taken on the straight line by the share of the drive home already done.
Journey time
    ``detour_factor · distance / speed_km_h`` from the crew's position, or
    ``fixed_travel_s`` for every journey when that is given. Positions are km on a plane
    (distance: Euclidean), or longitude/latitude in degrees when ``CrewSpec.lonlat``
    (distance: great circle, :func:`haversine_km`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Callable, Literal

import simpy

from twin.models.comms import advance_env

XY = tuple[float, float]

#: Mean Earth radius [km] (IUGG), for great-circle distances.
EARTH_RADIUS_KM = 6371.0088


def haversine_km(a: XY, b: XY) -> float:
    """Great-circle distance [km] between two (longitude, latitude) points in degrees."""
    lon1, lat1, lon2, lat2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class CrewSpec:
    """The field crews of a scenario.

    Parameters
    ----------
    n_crews : int
        Number of crews, ≥ 0 (with 0, every job fails at once).
    depot_xy_km : (float, float)
        Where the crews start and return to [km], or (longitude, latitude) [°] when
        ``lonlat``.
    speed_km_h : float
        Average road speed [km/h].
    work_time_s : float
        Time on site to do a job [s].
    fixed_travel_s : float or None
        Journey time for every trip [s], instead of one from the distance.
    detour_factor : float
        Road distance over straight-line distance [-], ≥ 1.
    lonlat : bool
        Positions are (longitude, latitude) in degrees, not km: distances are great-circle.
    """

    n_crews: int
    depot_xy_km: XY
    speed_km_h: float = 40.0
    work_time_s: float = 900.0
    fixed_travel_s: float | None = None
    detour_factor: float = 1.3
    lonlat: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.n_crews, bool) or int(self.n_crews) != self.n_crews \
                or self.n_crews < 0:
            raise ValueError(f"CrewSpec.n_crews must be an integer >= 0; found {self.n_crews!r}")
        object.__setattr__(self, "n_crews", int(self.n_crews))
        object.__setattr__(self, "depot_xy_km", _xy(self.depot_xy_km, "CrewSpec.depot_xy_km"))
        if not (math.isfinite(self.speed_km_h) and self.speed_km_h > 0):
            raise ValueError(f"CrewSpec.speed_km_h must be > 0; found {self.speed_km_h}")
        if not (math.isfinite(self.work_time_s) and self.work_time_s >= 0):
            raise ValueError(f"CrewSpec.work_time_s must be >= 0; found {self.work_time_s}")
        if self.fixed_travel_s is not None and not (
                math.isfinite(self.fixed_travel_s) and self.fixed_travel_s >= 0):
            raise ValueError(f"CrewSpec.fixed_travel_s must be >= 0 (or None); "
                             f"found {self.fixed_travel_s}")
        if not (math.isfinite(self.detour_factor) and self.detour_factor >= 1):
            raise ValueError(f"CrewSpec.detour_factor must be >= 1; found {self.detour_factor}")

    def travel_s(self, from_xy_km: XY, to_xy_km: XY) -> float:
        """Journey time between two points [s]."""
        if self.fixed_travel_s is not None:
            return float(self.fixed_travel_s)
        return self.detour_factor * self.distance_km(from_xy_km, to_xy_km) / self.speed_km_h \
            * 3600.0

    def distance_km(self, a: XY, b: XY) -> float:
        """Straight-line distance between two positions [km]."""
        if self.lonlat:
            return haversine_km(a, b)
        return math.hypot(b[0] - a[0], b[1] - a[1])


def _xy(value: object, key: str) -> XY:
    try:
        x, y = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"{key}: expected (x_km, y_km); found {value!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"{key}: expected finite coordinates; found {value!r}")
    return (x, y)


@dataclass(slots=True)
class CrewOutcome:
    """How a crew job ended. Times [s].

    ``started_t_s`` is when a crew set off (after waiting for one), ``arrived_t_s`` when
    it reached the site, ``completed_t_s`` when the work was done and ``apply`` called.
    ``crew`` is the crew's number (1…n_crews; None if there was no crew).
    """

    job_id: str
    requested_t_s: float
    started_t_s: float
    arrived_t_s: float
    completed_t_s: float
    status: Literal["success", "failed"]
    crew: int | None
    reason: str = ""


class _Crew:
    """A crew's position: idle at ``from_xy`` or driving home from it."""

    __slots__ = ("number", "from_xy", "home_depart_s", "home_arrive_s")

    def __init__(self, number: int, depot: XY):
        self.number = number
        self.from_xy = depot
        self.home_depart_s = 0.0
        self.home_arrive_s = 0.0  # at the depot from the start

    def position(self, t_s: float, depot: XY) -> XY:
        if t_s >= self.home_arrive_s:
            return depot
        share = (t_s - self.home_depart_s) / (self.home_arrive_s - self.home_depart_s)
        x0, y0 = self.from_xy
        return (x0 + share * (depot[0] - x0), y0 + share * (depot[1] - y0))


class _Job:
    __slots__ = ("job_id", "xy", "apply", "requested_t_s", "work_time_s")

    def __init__(self, job_id: str, xy: XY, apply: Callable[[float], bool], requested_t_s: float,
                 work_time_s: float):
        self.job_id = job_id
        self.xy = xy
        self.apply = apply
        self.requested_t_s = requested_t_s
        self.work_time_s = work_time_s


class CrewDispatcher:
    """Field crews serving switching jobs, in a SimPy environment.

    Parameters
    ----------
    env : simpy.Environment
        May be shared with other models; moved only through :meth:`advance_to` (and the
        optional ``t_s`` of :meth:`dispatch`).
    spec : CrewSpec
    """

    def __init__(self, env: simpy.Environment, spec: CrewSpec):
        self.env = env
        self.spec = spec
        self._free: list[_Crew] = [_Crew(i + 1, spec.depot_xy_km) for i in range(spec.n_crews)]
        self._waiting: deque[_Job] = deque()
        self._outcomes: list[CrewOutcome] = []

    @property
    def n_free(self) -> int:
        """Crews without a job right now."""
        return len(self._free)

    @property
    def n_waiting(self) -> int:
        """Jobs waiting for a crew."""
        return len(self._waiting)

    def dispatch(self, job_id: str, location_xy_km: XY, apply: Callable[[float], bool],
                 t_s: float | None = None, work_time_s: float | None = None) -> None:
        """Request a crew to do a job on site.

        Parameters
        ----------
        job_id : str
            Echoed in the outcome.
        location_xy_km : (float, float)
            Where the job is [km].
        apply : callable(float) -> bool
            Called with the completion time [s] once the work is done; returns True if
            the device was operated.
        t_s : float, optional
            Request time [s]; the environment is first advanced to it. Default:
            ``env.now``.
        work_time_s : float, optional
            Time on site for this job (a repair) instead of the spec's ``work_time_s``.
        """
        xy = _xy(location_xy_km, f"CrewDispatcher.dispatch({job_id!r}).location_xy_km")
        if t_s is not None:
            advance_env(self.env, t_s)
        now = self.env.now
        work = self.spec.work_time_s if work_time_s is None else float(work_time_s)
        if not (work >= 0 and work < float("inf")):
            raise ValueError(f"CrewDispatcher.dispatch({job_id!r}).work_time_s must be >= 0; "
                             f"found {work_time_s}")
        job = _Job(job_id, xy, apply, now, work)
        if self.spec.n_crews == 0:
            self._outcomes.append(CrewOutcome(job_id, now, now, now, now, "failed", None,
                                              "no field crews"))
            return
        if not self._free:
            self._waiting.append(job)
            return
        depot = self.spec.depot_xy_km
        best = min(self._free, key=lambda c: (self.spec.travel_s(c.position(now, depot), xy),
                                              c.number))
        self._free.remove(best)
        self.env.process(self._serve(best, job))

    def _serve(self, crew: _Crew, job: _Job):
        env, spec = self.env, self.spec
        started = env.now
        yield env.timeout(spec.travel_s(crew.position(started, spec.depot_xy_km), job.xy))
        arrived = env.now
        yield env.timeout(job.work_time_s)
        completed = env.now
        ok = bool(job.apply(completed))
        self._outcomes.append(CrewOutcome(
            job.job_id, job.requested_t_s, started, arrived, completed,
            "success" if ok else "failed", crew.number,
            "" if ok else "the device refused the operation"))
        # Free at completion, on site; heading home unless the queue has work.
        crew.from_xy = job.xy
        crew.home_depart_s = completed
        crew.home_arrive_s = completed + spec.travel_s(job.xy, spec.depot_xy_km)
        if self._waiting:
            env.process(self._serve(crew, self._waiting.popleft()))
        else:
            self._free.append(crew)

    def advance_to(self, t_s: float) -> list[CrewOutcome]:
        """Run up to and including ``t_s``; the jobs finished since the last call, in
        completion order."""
        advance_env(self.env, t_s)
        outcomes, self._outcomes = self._outcomes, []
        return outcomes

    def next_event_s(self) -> float:
        """Time of the environment's next pending event [s] (inf if none)."""
        return self.env.peek()
