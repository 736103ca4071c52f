"""Prepared run → mosaik world → run.

Starts the in-process simulators for what :mod:`twin.build.prepare` built, wires them as in
DESIGN's data flow, and runs. Recording and KPIs happen in the recorder simulator as the
data streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time as wallclock
import warnings
from dataclasses import dataclass, field
from typing import Callable

import mosaik
import numpy as np

from twin.build.endpoints import start_gateway
from twin.build.gc_tuning import quiet_gc
from twin.build.prepare import Prepared, customers
from twin.build.stopping import RunInterrupted, StopRequest
from twin.evaluation.expectations import EventLog
from twin.evaluation.kpis import KpiAccumulator, kpi_warmup_s
from twin.grid.model import SUMMARY_ATTRS as GRID_SUMMARY_ATTRS
from twin.models import pv as pv_model
from twin.models.frequency import AreaSpec
from twin.models.frequency_units import ResponseSettings, TwinUnits
from twin.models.weather import WEATHER_ATTRS
from twin.protocols.frontend import FrontEnd, sigma_of
from twin.protocols.gateway import Gateway
from twin.protocols.pointmap import PointMap, point_map
from twin.recording.policy import recording_policy
from twin.recording.schema import (
    BATTERY,
    DMS_SOURCE,
    EV,
    FIELD_SOURCE,
    FREQUENCY,
    GRID,
    PV,
    WEATHER,
    WIND,
    Store,
)
from twin.recording.tally import Tally
from twin.scenario import ScenarioError
from twin.timebase import format_duration

SIM_CONFIG: mosaik.SimConfig = {
    "Grid": {"python": "simulators.grid:GridSim"},
    "Series": {"python": "simulators.timeseries:TimeSeriesSim"},
    "DER": {"python": "simulators.der:DERSim"},
    "Recorder": {"python": "simulators.recorder:RecorderSim"},
    "Scripted": {"python": "simulators.scripted:ScriptedSim"},
    "Field": {"python": "simulators.field:FieldSim"},
    "EV": {"python": "simulators.storage:EVSim"},
    "Battery": {"python": "simulators.storage:BatterySim"},
    "DMS": {"python": "simulators.dms:DMSSim"},
    "Frequency": {"python": "simulators.frequency:FrequencySim"},
}


@dataclass
class WorldHandles:
    """What a hook gets to add simulators to a built world before it runs."""

    world: mosaik.World
    grid: dict[str, mosaik.Entity]  # grid element entities by eid ("switch-4", "bus-3")
    recorder: mosaik.Entity
    registry: dict[str, tuple[str, str]]  # full entity id -> (measurement, element)


@dataclass
class RunOutcome:
    kpis: dict
    ticks: int
    wall_time_s: float
    grid_solves: int
    points_recorded: int
    events: list = field(default_factory=list)
    #: "completed", or "interrupted" (a signal, or mosaik stopped early) with the reason;
    #: ``ticks`` is then the end of the last recorded step and the KPIs cover up to it
    status: str = "completed"
    reason: str = ""
    signum: int | None = None
    #: element events and DMS decisions for the scenario's expectations (None: it has none)
    event_log: EventLog | None = None


@dataclass
class _Wiring:
    """What the wiring steps share while the world is built."""

    world: mosaik.World
    prep: Prepared
    step: int
    until: int
    grid: mosaik.Entity
    children: dict[str, mosaik.Entity]
    recorder: mosaik.Entity
    registry: dict[str, tuple[str, str]]
    periods: dict[str, int]
    tables: dict[str, dict[str, list[str]]]
    plants: dict[str, mosaik.Entity] = field(default_factory=dict)  # "pv:PV 3" -> entity
    parents: dict[str, mosaik.Entity] = field(default_factory=dict)  # "pv" -> the park
    series: mosaik.ModelFactory | None = None
    field: mosaik.Entity | None = None
    speed: float | None = None  # live mode's pace
    gateway: Gateway | None = None  # the RTUs' protocol endpoints, stopped by run_world
    frontend: FrontEnd | None = None  # the DMS's SCADA front end (dms.transport)
    points: PointMap | None = None  # the RTUs' point map, when endpoints are open

    def record(self, entity: mosaik.Entity, measurement: str, element: str, *attrs: str,
               periodic: bool = True) -> None:
        """Connect ``entity`` to the recorder as ``measurement``/``element``."""
        self.registry[entity.full_id] = (measurement, element)
        if periodic:
            self.periods[entity.full_id] = self.step
        self.world.connect(entity, self.recorder, *attrs)

    def record_table(self, parent: mosaik.Entity, measurement: str, names: list[str]) -> None:
        """Record all children of ``parent`` from its one ``snapshot`` output (one mosaik
        connection instead of one per child and attribute)."""
        self.tables[parent.full_id] = {measurement: list(names)}
        self.record(parent, measurement, parent.eid, "snapshot")


def run_world(prep: Prepared, store: Store, run_id: str, until_s: float | None = None,
              progress: Callable[[int], None] | None = None,
              hook: Callable[[WorldHandles], None] | None = None,
              speed: float | None = None, stop: StopRequest | None = None) -> RunOutcome:
    """Build the mosaik world for ``prep`` and run it, recording into ``store``; with
    ``speed``, paced at that many simulated seconds per wall-clock second. A ``stop``
    requested while the world runs (see :mod:`twin.build.stopping`) ends it after the step
    being recorded: the outcome is then "interrupted", over the part simulated."""
    sc = prep.scenario
    clock = sc.clock
    until_ticks = clock.ticks(until_s if until_s is not None else sc.duration)
    if until_ticks > clock.ticks(sc.duration):
        raise ScenarioError(f"--until: expected at most the scenario's duration ({sc.duration:g} s)")

    world = mosaik.World(SIM_CONFIG, time_resolution=sc.time_resolution,
                         skip_greetings=True, configure_logging=False)
    kpis = KpiAccumulator(band_pu=sc.kpis.voltage_band_pu, customers=customers(prep),
                          momentary_s=sc.reliability.momentary, warmup_s=kpi_warmup_s(sc))
    tally = Tally()
    checks = sc.expectations
    event_log = EventLog(clock.time_ns(0), watch=[c.element for c in checks.events]) \
        if checks.events or checks.decisions else None
    last_tick = -1  # the last step the recorder has written (store, KPIs) in full
    w: _Wiring | None = None

    def recorded(tick: int) -> None:
        nonlocal last_tick
        last_tick = tick
        if progress is not None:
            progress(tick)

    try:
        grid = world.start("Grid", sim_id="grid").Grid(
            net=prep.net, step_ticks=sc.step_ticks, protection=prep.protection,
            faults=prep.faults, solver=prep.solver.solver if prep.solver else "pandapower")
        registry: dict[str, tuple[str, str]] = {grid.full_id: (GRID, "grid")}
        periods: dict[str, int] = {}  # filled by the wiring: periodic sources of the recorder
        tables: dict[str, dict[str, list[str]]] = {grid.full_id: prep.names}
        recorder = world.start("Recorder", sim_id="recorder").Recorder(
            registry=registry, tables=tables, periods=periods,
            store=store, clock=clock,
            run_id=run_id, kpis=kpis, progress=recorded, tally=tally, step_ticks=sc.step_ticks,
            event_log=event_log,
            policy=recording_policy(sc.recording, prep.names, sc.step, sc.time_resolution,
                                    sc.kpis.voltage_band_pu))
        w = _Wiring(world, prep, sc.step_ticks, until_ticks, grid,
                    {e.eid: e for e in grid.children}, recorder, registry, periods, tables,
                    speed=speed)
        # One simulator replays every time series (profiles and weather): each simulator
        # costs mosaik bookkeeping at every step, whatever it does.
        w.series = world.start("Series", sim_id="series",
                               attrs=["p_mw", "q_mvar", *WEATHER_ATTRS])
        _wire_profiles(w)
        _wire_weather_and_der(w)
        _wire_storage(w)
        _wire_field(w)
        _wire_dms(w)
        _wire_frequency(w)
        # Everything the grid knows goes to the recorder, as one snapshot per solve.
        world.connect(grid, recorder, *GRID_SUMMARY_ATTRS, "snapshot", "solved_at", "records")
        if hook is not None:
            hook(WorldHandles(world, w.children, recorder, registry))
        if stop is not None:
            stop.check()  # asked for while the world was built
    except BaseException:
        _shutdown(world, w)
        raise
    t0 = wallclock.perf_counter()
    interrupted: RunInterrupted | None = None
    try:
        if stop is not None:  # from now on a stop cancels the world's tasks
            stop.on_request = lambda: _cancel_soon(world.loop)
        with warnings.catch_warnings(), quiet_gc(), _endpoint_threads(w.gateway is not None):
            warnings.simplefilter("ignore", category=UserWarning)
            # (shuts down when it ends; in live mode late steps only warn, ignored above:
            # the lag is measured and reported by the caller)
            world.run(until=until_ticks, print_progress=False,
                      rt_factor=1.0 / speed if speed else None, rt_strict=False)
    except (RunInterrupted, asyncio.CancelledError) as exc:
        _shutdown(world)
        if stop is None or not stop.requested:
            raise
        interrupted = exc if isinstance(exc, RunInterrupted) else RunInterrupted(stop.signum)
    except BaseException:
        _shutdown(world)  # a failing simulator leaves the world running otherwise
        raise
    finally:
        _close_protocols(w)
        if stop is not None:
            stop.defer()  # the results are written whole
    wall = wallclock.perf_counter() - t0
    # the end of the last recorded step (the recorder steps at every regular step, at least)
    end_ticks = min(until_ticks, (last_tick // sc.step_ticks + 1) * sc.step_ticks
                    if last_tick >= 0 else 0)
    if end_ticks < until_ticks and interrupted is None:
        # mosaik ends its run quietly on a KeyboardInterrupt (no handler installed)
        interrupted = RunInterrupted(None, "stopped early")
    outcome = RunOutcome(
        kpis=kpis.finish(clock.seconds(end_ticks)),
        ticks=end_ticks,
        wall_time_s=wall,
        grid_solves=tally.grid_solves,
        points_recorded=tally.points,
        events=tally.events,
        event_log=event_log,
    )
    if interrupted is not None:
        outcome.status, outcome.signum = "interrupted", interrupted.signum
        outcome.reason = f"{interrupted} at simulated {format_duration(clock.seconds(end_ticks))}"
    return outcome


def _wire_frequency(w: _Wiring) -> None:
    """The synchronous area's frequency, stepped around its disturbances; with
    ``frequency.response``, the twin's units answer it (their snapshots in, the responses
    back to their parents, applied from their next step)."""
    spec = w.prep.scenario.frequency
    if not spec.enabled:
        return
    clock = w.prep.scenario.clock
    area_spec = AreaSpec(**spec.area.model_dump())
    units = twin_units(w.prep, spec.response, area_spec) if spec.response else None
    area = w.world.start("Frequency", sim_id="frequency").Area(
        spec=area_spec,
        disturbances=[(clock.ticks(d.after), d.p_mw) for d in spec.disturbances],
        step_ticks=clock.ticks(spec.step), units=units)
    w.registry[area.full_id] = (FREQUENCY, "area")  # it sends "records" only
    w.world.connect(area, w.recorder, "records")
    w.world.set_initial_event(area.sid, 0)  # event-based, with no input to wake it
    if units is None:
        return
    for parent in w.parents.values():
        w.world.connect(parent, area, "snapshot")
        # applied from the parent's next step: no same-tick loop
        w.world.connect(area, parent, "frequency_response", time_shifted=True,
                        initial_data={"frequency_response": None})


def twin_units(prep: Prepared, response, area: AreaSpec) -> TwinUnits:
    """The twin's PV, wind and batteries, and its EV charging points, as the frequency
    simulator's response model sees them."""
    settings = ResponseSettings(f0_hz=area.f0_hz, deadband_hz=area.fcr_deadband_hz,
                                full_hz=area.fcr_full_hz, **response.model_dump())
    bat = prep.batteries
    n_bat = len(bat.names) if bat is not None else 0

    def per_battery(name: str) -> np.ndarray:
        return (np.broadcast_to(np.asarray(getattr(bat.spec, name), dtype=float),
                                (n_bat,)).copy() if bat is not None else np.zeros(0))

    return TwinUnits(
        settings,
        pv_rated_mw=np.asarray(prep.pv.params["p_peak_mw"], dtype=float)
        if prep.pv.names else np.zeros(0),
        wind_rated_mw=np.asarray(prep.wind.params["p_rated_mw"], dtype=float)
        if prep.wind.names else np.zeros(0),
        battery_p_max_mw=per_battery("p_discharge_max_mw"),
        battery_p_charge_max_mw=per_battery("p_charge_max_mw"),
        battery_e_mwh=per_battery("capacity_mwh"),
        battery_soc_min=per_battery("soc_min"), battery_soc_max=per_battery("soc_max"),
        n_ev_points=len(prep.ev.points) if prep.ev is not None else 0)


def _wire_profiles(w: _Wiring) -> None:
    """Loads and the generators no physical model drives replay their profiles."""
    profiles = w.prep.profiles
    # one entity per table (its values computed once a step), a child per element
    for table, p, q in (("load", profiles.load_p_mw, profiles.load_q_mvar),
                        ("sgen", profiles.sgen_p_mw, profiles.sgen_q_mvar)):
        if not len(p):
            continue
        src = w.series.Table(eid=f"{table}-profiles", prefix=table, step_ticks=w.step,
                             tables={"p_mw": p, "q_mvar": q})
        # the whole table as one vector a step: one connection, not one per element
        w.world.connect(src, w.grid, "injections")


def _wire_weather_and_der(w: _Wiring) -> None:
    prep, world, sc = w.prep, w.world, w.prep.scenario
    weather = w.series.Series(eid="weather", step_ticks=w.step, columns={
        a: prep.weather[a] for a in WEATHER_ATTRS})
    w.record(weather, WEATHER, "weather", *WEATHER_ATTRS)
    sim = world.start("DER", sim_id="der") if prep.pv.names or prep.wind.names else None
    for kind, plants in ((PV, prep.pv), (WIND, prep.wind)):
        if not plants.names:
            continue
        if kind == PV:
            p = plants.params
            park = sim.PVPark(names=plants.names, step_ticks=w.step, plants=pv_model.PVPlants(
                p_peak_mw=p["p_peak_mw"], tilt_deg=p["tilt_deg"],
                azimuth_deg=p["azimuth_deg"], s_inverter_mva=p["s_inverter_mva"]))
            world.connect(weather, park, *WEATHER_ATTRS)
        else:
            park = sim.WindFarm(names=plants.names, step_ticks=w.step,
                                p_rated_mw=plants.params["p_rated_mw"],
                                hub_height_m=plants.params["hub_height_m"],
                                shear_exponent=sc.wind.shear_exponent)
            world.connect(weather, park, "wind_speed_m_s")
        w.record_table(park, kind, [p.eid for p in park.children])
        w.parents[kind] = park
        for plant, sgen_idx in zip(park.children, plants.sgen_idx):
            world.connect(plant, w.children[f"sgen-{sgen_idx}"], "p_mw", "q_mvar")
            w.plants[f"{kind}:{plant.eid}"] = plant


def _wire_storage(w: _Wiring) -> None:
    """The EV fleet (one load per charging bus) and the batteries (the storage elements)."""
    prep, world = w.prep, w.world
    if prep.ev is not None:
        fleet = world.start("EV", sim_id="ev").EVFleet(plan=prep.ev, step_ticks=w.step)
        w.record_table(fleet, EV, prep.ev.points)
        w.parents[EV] = fleet
        for cp, load_idx in zip(fleet.children, prep.ev.load_idx):
            world.connect(cp, w.children[f"load-{load_idx}"], "p_mw", "q_mvar")
            w.plants[f"ev:{cp.eid}"] = cp
    if prep.batteries is not None:
        sim = world.start("Battery", sim_id="battery")
        batteries = sim.Batteries(plan=prep.batteries, step_ticks=w.step)
        w.record_table(batteries, BATTERY, prep.batteries.names)
        w.parents[BATTERY] = batteries
        for unit, idx in zip(batteries.children, prep.batteries.storage_idx):
            world.connect(unit, w.children[f"storage-{idx}"], "p_mw", "q_mvar")
            w.plants[f"battery:{unit.eid}"] = unit


def _dms_handover(clock, dms) -> tuple[int, int] | None:
    """(first cycle, cycle) of the DMS [ticks]: the field steps then too, handing over all
    telemetry delivered up to the cycle."""
    if dms is None:
        return None
    return (clock.ticks(dms.cycle_offset_s) if dms.cycle_offset_s else 0,
            clock.ticks(dms.cycle_s))


def _wire_field(w: _Wiring) -> None:
    """RTUs, links, crews and the devices commands reach; scenario commands as an operator."""
    plan, sc, world, prep = w.prep.field, w.prep.scenario, w.world, w.prep
    if plan is None:
        return
    # The scenario's operator commands go with the field: a separate simulator that steps
    # only at command times would hold back mosaik's pruning of its data cache all run.
    operator = [(sc.clock.ticks(c.after) if c.after > 0 else 0,
                 {"id": f"op-{k}", "target": c.target, "action": c.action, "value": c.value,
                  "source": "operator"}) for k, c in enumerate(sc.commands)]
    if prep.endpoints:  # the RTUs' real protocol endpoints, open for the whole run
        w.points = point_map(plan, prep.net)
        w.gateway = start_gateway(sc, plan, prep.endpoints, w.points)
    field_ent = world.start("Field", sim_id="field").Field(
        plan=plan, seed=sc.seed, until_ticks=w.until, grid_step_ticks=w.step,
        record_every_ticks=w.step,
        scheduled_commands=operator,
        handover_ticks=_dms_handover(sc.clock, prep.dms), gateway=w.gateway,
        poll_ticks=_poll_ticks(sc, w.speed) if w.speed else None)
    w.field = field_ent
    w.registry[field_ent.full_id] = (FIELD_SOURCE, "field")  # it sends "records" only
    # The RTUs read the grid's state as it was one tick before: no same-tick loop with the
    # commands the field sends back to the grid.
    world.connect(w.grid, field_ent, "snapshot", time_shifted=True,
                  initial_data={"snapshot": None})
    world.connect(w.grid, field_ent, "solved_at", time_shifted=1)  # a new state: scan
    if EV in w.parents and any(ref.table == "ev" for refs in plan.truth.values()
                               for ref in refs.values()):
        # the charging points' operator reports what the fleet knows (V2G capability)
        world.connect(w.parents[EV], field_ent, ("snapshot", "ev_snapshot"),
                      time_shifted=True, initial_data={"snapshot": None})
    world.connect(field_ent, w.recorder, "records")
    devices = {e.eid: e for e in field_ent.children}
    for dev in plan.devices.values():
        table, idx = plan.targets[dev.eid]
        if dev.kind in ("switch", "trafo", "shunt", "line"):
            world.connect(devices[dev.eid], w.children[f"{table}-{idx}"], dev.attr)
        elif dev.kind in ("pv", "wind"):
            world.connect(devices[dev.eid], w.plants[dev.ref], "p_limit_mw", "q_setpoint_mvar")
        else:
            target = w.plants.get(dev.ref)
            if target is None:
                raise ScenarioError(f"rtus: {dev.ref} has no simulator to command")
            world.connect(devices[dev.eid], target, dev.attr)


#: Live mode: the field looks for protocol clients' commands about this often [s, wall].
POLL_WALL_S = 0.1


def _poll_ticks(sc, speed: float) -> int:
    """Live mode's command poll [ticks]: about every :data:`POLL_WALL_S` of wall-clock time
    (a command waits at most that long to be taken), never more often than every tick."""
    return max(1, round(POLL_WALL_S * speed / sc.time_resolution))


def _wire_dms(w: _Wiring) -> None:
    """The DMS: telemetry and command outcomes in, commands out through the field."""
    setup = w.prep.dms
    if setup is None:
        return
    assert w.field is not None
    guarded = setup.guarded or setup.create()
    if setup.scada is not None:  # a SCADA front end: the field over the RTUs' endpoints
        assert w.gateway is not None and w.points is not None and w.prep.field is not None
        w.frontend = FrontEnd(guarded, w.points,
                              w.gateway.addresses(), sigma_of(setup.context.rtus),
                              w.prep.field.command_timeout_s)
    dms = w.world.start("DMS", sim_id="dms").DMS(dms=w.frontend or guarded)
    # the field's telemetry and outcomes call the DMS (behind a front end: only that)
    w.world.connect(w.field, dms, "measurements", "command_outcomes")
    # commands go out one tick after the cycle that decided them (no same-tick loop)
    w.world.connect(dms, w.field, "commands", time_shifted=1)
    if w.frontend is not None:
        w.world.connect(dms, w.field, "wake", time_shifted=1)
    w.registry[dms.full_id] = (DMS_SOURCE, "dms")  # it sends "records" only
    w.world.connect(dms, w.recorder, "records")


#: Python's thread switch interval while protocol endpoints serve clients [s]: the run's
#: thread holds the GIL between its steps (mosaik's live mode polls every tick), and at
#: the default 5 ms a client's read waits ~30 ms for the endpoint's thread to get it
#: (bench/scada_e2e.py: 28 ms mean at 5 ms, 2.8 ms at 0.5 ms).
ENDPOINT_SWITCH_INTERVAL_S = 0.001


@contextlib.contextmanager
def _endpoint_threads(active: bool):
    """A thread switch interval of at most :data:`ENDPOINT_SWITCH_INTERVAL_S` for the run,
    if endpoints are open."""
    before = sys.getswitchinterval()
    if active:
        sys.setswitchinterval(min(before, ENDPOINT_SWITCH_INTERVAL_S))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _close_protocols(w: _Wiring) -> None:
    """The DMS's front end (its clients), then the endpoints."""
    if w.frontend is not None:
        w.frontend.close()
    if w.gateway is not None:
        w.gateway.stop()


def _cancel_tasks(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()


def _cancel_soon(loop: asyncio.AbstractEventLoop) -> None:
    """From a signal handler: cancel the loop's tasks as soon as it gets control (this also
    wakes a loop that waits, e.g. for the next real-time step in live mode)."""
    if not loop.is_closed():
        loop.call_soon_threadsafe(_cancel_tasks, loop)


def _shutdown(world: mosaik.World, w: _Wiring | None = None) -> None:
    """Stop what still runs in the world's event loop, then shut the simulators down (and
    the protocol endpoints, if the wiring ``w`` started them).

    A simulator that raised (or a stop) leaves the other simulators' tasks pending: they are
    cancelled and awaited first, so none is destroyed pending (asyncio's noise at exit)."""
    if w is not None:
        _close_protocols(w)
    try:
        loop = world.loop
        if not loop.is_closed():
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        world.shutdown()
    except Exception as exc:  # shutting down a half-built world may fail; the error above matters
        logging.getLogger(__name__).debug("world shutdown: %s", exc)
