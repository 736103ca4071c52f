"""Field crews (twin.models.crews): queueing, journeys and work, with real numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from tests.models.recording_apply import RecordingApply
from twin.models.comms import CommNetwork, LatencySpec, LinkSpec, RTUSpec
from twin.models.crews import CrewDispatcher, CrewSpec

# Depot at the origin, 40 km/h, no detour: (3, 4) km is 5 km away, 0.125 h = 450 s.
SPEC = CrewSpec(n_crews=1, depot_xy_km=(0.0, 0.0), speed_km_h=40.0, work_time_s=900.0,
                detour_factor=1.0)


Switch = RecordingApply  # a device that records when it was applied


def test_job_completes_after_travel_plus_work_exactly():
    crews = CrewDispatcher(simpy.Environment(), SPEC)
    switch = Switch()
    crews.dispatch("j1", (3.0, 4.0), switch, t_s=100.0)
    assert crews.advance_to(1449.0) == [] and switch.calls == []
    (out,) = crews.advance_to(1450.0)
    assert (out.job_id, out.status, out.crew, out.reason) == ("j1", "success", 1, "")
    assert (out.requested_t_s, out.started_t_s, out.arrived_t_s, out.completed_t_s) == (
        pytest.approx((100.0, 100.0, 550.0, 1450.0)))
    assert switch.calls == [pytest.approx(1450.0)]


def test_detour_factor_lengthens_the_journey():
    spec = CrewSpec(n_crews=1, depot_xy_km=(0.0, 0.0), detour_factor=1.3)
    assert spec.travel_s((0.0, 0.0), (3.0, 4.0)) == pytest.approx(585.0)  # 1.3 × 450 s
    fixed = CrewSpec(n_crews=1, depot_xy_km=(0.0, 0.0), fixed_travel_s=1200.0)
    assert fixed.travel_s((0.0, 0.0), (30.0, 40.0)) == 1200.0


def test_one_crew_second_job_waits_and_travels_from_the_previous_site():
    crews = CrewDispatcher(simpy.Environment(), SPEC)
    crews.dispatch("a", (3.0, 4.0), Switch(), t_s=0.0)
    crews.dispatch("b", (6.0, 8.0), Switch(), t_s=10.0)
    assert crews.n_waiting == 1 and crews.n_free == 0
    a, b = crews.advance_to(5000.0)
    assert (a.job_id, a.completed_t_s) == ("a", pytest.approx(1350.0))
    # b waits for the crew to finish at 1350, then drives (3, 4) → (6, 8): 5 km, 450 s.
    assert (b.job_id, b.requested_t_s, b.started_t_s) == ("b", 10.0, pytest.approx(1350.0))
    assert (b.arrived_t_s, b.completed_t_s) == pytest.approx((1800.0, 2700.0))
    assert crews.n_free == 1 and crews.n_waiting == 0


def test_jobs_are_served_in_request_order():
    crews = CrewDispatcher(simpy.Environment(), SPEC)
    for k, xy in enumerate([(3.0, 4.0), (30.0, 40.0), (3.0, 4.0)]):
        crews.dispatch(f"j{k}", xy, Switch(), t_s=float(k))
    assert [o.job_id for o in crews.advance_to(1e6)] == ["j0", "j1", "j2"]


def test_idle_crew_drives_home_and_a_new_job_starts_from_where_it_is():
    crews = CrewDispatcher(simpy.Environment(), SPEC)
    crews.dispatch("a", (3.0, 4.0), Switch(), t_s=0.0)
    crews.advance_to(1350.0)  # done at (3, 4); home at 1800
    # Half way home at 1575: at (1.5, 2), 2.5 km from (3, 4) → 225 s.
    crews.dispatch("b", (3.0, 4.0), Switch(), t_s=1575.0)
    (b,) = crews.advance_to(5000.0)
    assert (b.started_t_s, b.arrived_t_s) == pytest.approx((1575.0, 1800.0))
    # Long after: back at the depot, 450 s again.
    crews.dispatch("c", (3.0, 4.0), Switch(), t_s=10_000.0)
    (c,) = crews.advance_to(20_000.0)
    assert c.arrived_t_s - c.started_t_s == pytest.approx(450.0)


def test_two_crews_work_in_parallel_and_the_nearest_free_crew_goes():
    spec = CrewSpec(n_crews=2, depot_xy_km=(0.0, 0.0), detour_factor=1.0)
    crews = CrewDispatcher(simpy.Environment(), spec)
    crews.dispatch("far", (30.0, 40.0), Switch(), t_s=0.0)   # crew 1: 4500 s away
    crews.dispatch("near", (3.0, 4.0), Switch(), t_s=0.0)    # crew 2, no waiting
    near, far = crews.advance_to(5400.0)
    assert (near.job_id, near.crew, near.completed_t_s) == ("near", 2, pytest.approx(1350.0))
    assert (far.job_id, far.crew, far.completed_t_s) == ("far", 1, pytest.approx(5400.0))
    # At 5400 crew 1 is at (30, 40) and crew 2 home at the depot: a job at (27, 36) goes to 1.
    crews.dispatch("next", (27.0, 36.0), Switch(), t_s=5400.0)
    (nxt,) = crews.advance_to(20_000.0)
    assert nxt.crew == 1 and nxt.arrived_t_s - nxt.started_t_s == pytest.approx(450.0)


def test_refusal_fails_and_no_crews_fail_at_once():
    crews = CrewDispatcher(simpy.Environment(), SPEC)
    crews.dispatch("j", (3.0, 4.0), Switch(accept=False), t_s=0.0)
    (out,) = crews.advance_to(2000.0)
    assert out.status == "failed" and "refused" in out.reason
    nobody = CrewDispatcher(simpy.Environment(), CrewSpec(0, (0.0, 0.0)))
    switch = Switch()
    nobody.dispatch("j", (3.0, 4.0), switch, t_s=50.0)
    (out,) = nobody.advance_to(50.0)
    assert (out.status, out.crew, out.completed_t_s) == ("failed", None, 50.0)
    assert switch.calls == []


def test_crews_and_comms_share_one_environment():
    env = simpy.Environment()
    link = LinkSpec(LatencySpec(0.3), LatencySpec(0.2))
    net = CommNetwork(env, [RTUSpec("R", (), 1.0, link)], {"R": np.random.default_rng(0)})
    crews = CrewDispatcher(env, SPEC)
    crews.dispatch("manual", (3.0, 4.0), Switch(), t_s=0.0)
    net.send_command("remote", "R", "switch:S1", "open", None, Switch(), t_s=0.0)
    # Sending at t = 0 ran the events due then (the crew set off); next: the command arrives.
    assert net.next_event_s() == crews.next_event_s() == pytest.approx(0.2)
    _m, (remote,) = net.advance_to(1.0)
    assert remote.result_t_s == pytest.approx(0.5)
    assert crews.advance_to(1.0) == []
    assert net.next_event_s() == pytest.approx(450.0)  # the crew's arrival on site
    (manual,) = crews.advance_to(1350.0)
    assert manual.completed_t_s == pytest.approx(1350.0)
    assert net.advance_to(2000.0) == ([], []) and crews.next_event_s() == math.inf


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_crews=-1), "n_crews"),
    (dict(n_crews=1.5), "n_crews"),
    (dict(depot_xy_km=(0.0,)), "depot_xy_km"),
    (dict(speed_km_h=0.0), "speed_km_h"),
    (dict(work_time_s=-1.0), "work_time_s"),
    (dict(fixed_travel_s=-5.0), "fixed_travel_s"),
    (dict(detour_factor=0.9), "detour_factor"),
])
def test_crew_spec_refuses_bad_parameters(kwargs, match):
    base = dict(n_crews=1, depot_xy_km=(0.0, 0.0))
    with pytest.raises(ValueError, match=match):
        CrewSpec(**{**base, **kwargs})


# ------------------------------------------------------------- longitude/latitude positions


def test_haversine_matches_known_great_circle_distances():
    from twin.models.crews import haversine_km

    paris, london = (2.3522, 48.8566), (-0.1278, 51.5074)
    assert haversine_km(paris, london) == pytest.approx(343.5, rel=2e-3)
    assert haversine_km((7.0, 48.0), (7.0, 49.0)) == pytest.approx(111.195, rel=1e-4)  # 1° lat
    # a degree of longitude shrinks with cos(latitude)
    assert haversine_km((7.0, 60.0), (8.0, 60.0)) == pytest.approx(111.195 * 0.5, rel=2e-3)
    assert haversine_km(paris, paris) == 0.0


def test_crew_travel_on_a_lon_lat_grid_is_great_circle_distance_over_speed():
    from types import SimpleNamespace

    import pandapower.networks as pn

    from twin.build.field import _crew_spec
    from twin.grid.geo import bus_xy_km, is_lonlat
    from twin.grid.names import element_names
    from twin.models.crews import haversine_km

    net = pn.mv_oberrhein()
    assert is_lonlat(net)
    depot_bus, far_bus = int(net.bus.index[0]), int(net.bus.index[-1])
    crews = SimpleNamespace(depot_xy_km=None, depot_bus=element_names(net, "bus")[0],
                            n_crews=1, speed_km_h=40.0, work_time=600.0, fixed_travel=None,
                            detour_factor=1.0)
    spec = _crew_spec(SimpleNamespace(crews=crews), net)
    assert spec.lonlat and spec.depot_xy_km == bus_xy_km(net, depot_bus)
    (lon0, lat0), (lon1, lat1) = spec.depot_xy_km, bus_xy_km(net, far_bus)
    # independent check: equirectangular distance (good to 0.1 % over a few km)
    flat_km = math.hypot((lon1 - lon0) * 111.195 * math.cos(math.radians((lat0 + lat1) / 2)),
                         (lat1 - lat0) * 111.195)
    assert 1.0 < flat_km < 30.0
    assert haversine_km((lon0, lat0), (lon1, lat1)) == pytest.approx(flat_km, rel=1e-3)
    dispatcher = CrewDispatcher(simpy.Environment(), spec)
    dispatcher.dispatch("j", (lon1, lat1), Switch(), t_s=0.0)
    (out,) = dispatcher.advance_to(1e6)
    travel = out.arrived_t_s - out.started_t_s
    assert travel == pytest.approx(flat_km / 40.0 * 3600.0, rel=1e-3)
    assert travel > 100.0  # not degrees taken as km (that would be seconds)
