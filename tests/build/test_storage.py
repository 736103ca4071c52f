"""EV fleet and batteries planned on a real net (twin.build.storage)."""

from __future__ import annotations

import numpy as np
import pandapower.networks as pn
import pytest

from tests.build.minimal import minimal_scenario
from twin.build.storage import plan_batteries, plan_ev_fleet
from twin.scenario import ScenarioError

DAY_S = 86400.0


def scenario(**sections):
    return minimal_scenario("storage", duration="1d", **sections)


@pytest.fixture
def net():
    return pn.create_cigre_network_mv(with_der="all")


def plan(net, seed=5, **ev_fleet):
    spec = scenario(ev_fleet=ev_fleet).ev_fleet
    return plan_ev_fleet(net, spec, seed=seed, duration_s=DAY_S, start_hour_utc=0.0,
                         longitude_deg=0.0)


# --------------------------------------------------------------------------- EVs
def test_no_evs_no_plan(net):
    n_load = len(net.load)
    assert plan(net, n_ev=0) is None
    assert len(net.load) == n_load


def test_one_ev_load_per_charging_bus(net):
    n_load = len(net.load)
    ev_plan = plan(net, n_ev=40, buses=["Bus 3", "Bus 5"])
    assert ev_plan.points == ["Bus 3", "Bus 5"]
    assert len(net.load) == n_load + 2
    for idx, bus in zip(ev_plan.load_idx, ("Bus 3", "Bus 5")):
        load = net.load.loc[idx]
        assert load["name"] == f"EV {bus}"
        assert net.bus.at[load["bus"], "name"] == bus
        assert (load["p_mw"], load["q_mvar"], load["type"]) == (0.0, 0.0, "EV")


def test_fleet_follows_the_scenario(net):
    ev_plan = plan(net, n_ev=50, capacity_kwh=50, p_charge_max_kw=7.4, v2g_share=0.2,
                   p_discharge_max_kw=5, strategy="v2g")
    spec = ev_plan.fleet.spec
    load_buses = sorted({int(b) for b in net.load.bus})
    assert len(spec) == 50 and spec.n_charge_points == len(load_buses)
    assert len(ev_plan.points) == len(load_buses)
    np.testing.assert_allclose(spec.capacity_mwh, 0.05)
    np.testing.assert_allclose(spec.p_charge_max_mw, 0.0074)
    # 20 % of 50 EVs can feed back, at 5 kW; the rest cannot.
    assert sorted(np.unique(spec.p_discharge_max_mw)) == [0.0, 0.005]
    assert np.count_nonzero(spec.p_discharge_max_mw) == 10
    assert ev_plan.strategy == "v2g"


def test_sessions_come_from_the_seeded_generator(net):
    a = plan(net, seed=5, n_ev=60).fleet.sessions
    b = plan(pn.create_cigre_network_mv(with_der="all"), seed=5, n_ev=60).fleet.sessions
    c = plan(pn.create_cigre_network_mv(with_der="all"), seed=6, n_ev=60).fleet.sessions
    for name in ("ev", "arrival_s", "departure_s", "soc_arrival"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.arrival_s, c.arrival_s)


def test_drawn_energy_matches_the_driving_pattern(net):
    # Home sessions need the energy driven since the last charge: lognormal, mean 8 kWh
    # (the scenario's default home pattern). Over ~500 sessions the mean's standard error
    # is 4 kWh / sqrt(500) ≈ 0.18 kWh, so ±0.8 kWh is a wide margin.
    ev_plan = plan(net, n_ev=250, home_share=1.0, capacity_kwh=60)
    s = ev_plan.fleet.sessions
    need_kwh = s.energy_need_mwh(ev_plan.fleet.spec) * 1e3
    assert len(s) > 400
    assert need_kwh.mean() == pytest.approx(8.0, abs=0.8)
    # Every session overlaps the day and leaves after it arrives.
    assert (s.departure_s > 0).all() and (s.arrival_s < DAY_S).all()
    np.testing.assert_array_equal(s.soc_target, 0.9)


def test_ev_bus_unknown_names_the_key_path(net):
    with pytest.raises(ScenarioError, match=r"ev_fleet\.buses\[1\]: .*'Bus 99'"):
        plan(net, n_ev=10, buses=["Bus 3", "Bus 99"])


# --------------------------------------------------------------------------- batteries
def test_existing_storage_becomes_batteries_with_rated_power(net):
    spec = scenario(batteries={"hours": 4, "mode": "setpoint", "soc_init": 0.4}).batteries
    bplan = plan_batteries(net, spec, duration_s=DAY_S, start_hour_utc=0.0)
    assert bplan.names == ["Battery 1", "Battery 2"]
    assert bplan.storage_idx == list(net.storage.index)
    p_max = net.storage["max_p_mw"].to_numpy()  # 0.6 and 0.2 MW
    np.testing.assert_allclose(bplan.spec.p_charge_max_mw, p_max)
    np.testing.assert_allclose(bplan.spec.p_discharge_max_mw, p_max)
    # CIGRE gives no energy rating: capacity = hours × power.
    np.testing.assert_allclose(bplan.spec.capacity_mwh, 4 * p_max)
    np.testing.assert_allclose(bplan.spec.soc_init, 0.4)
    np.testing.assert_array_equal(bplan.schedule_p_mw, 0.0)  # set-points wait for the DMS


def test_a_new_battery_follows_its_daily_schedule(net):
    spec = scenario(batteries={"attach_existing": False, "units": [
        {"name": "B", "bus": "Bus 13", "capacity_kwh": 800, "p_max_kw": 200,
         "mode": "schedule", "schedule": [{"at": "6h", "p_kw": 150}, {"at": "18h", "p_kw": -200}]}
    ]}).batteries
    n_storage = len(net.storage)
    bplan = plan_batteries(net, spec, duration_s=DAY_S, start_hour_utc=0.0)
    (idx,) = bplan.storage_idx
    assert len(net.storage) == n_storage + 1
    assert net.bus.at[net.storage.at[idx, "bus"], "name"] == "Bus 13"
    assert net.storage.at[idx, "max_e_mwh"] == pytest.approx(0.8)
    assert bplan.spec.capacity_mwh[0] == pytest.approx(0.8)

    def request_at(t_s):
        i = np.searchsorted(bplan.schedule_times_s, t_s, side="right") - 1
        return bplan.schedule_p_mw[i, 0]

    assert request_at(7 * 3600.0) == pytest.approx(0.15)
    assert request_at(20 * 3600.0) == pytest.approx(-0.2)
    assert request_at(DAY_S + 7 * 3600.0) == pytest.approx(0.15)  # repeated the next day


def test_price_mode_charges_cheap_and_discharges_dear(net):
    prices = [60.0] * 24
    prices[3], prices[19] = 20.0, 150.0  # one cheap night hour, one dear evening hour
    spec = scenario(batteries={"mode": "price", "prices_eur_mwh": prices}).batteries
    bplan = plan_batteries(net, spec, duration_s=DAY_S, start_hour_utc=0.0)
    p_max = bplan.spec.p_charge_max_mw
    hour = {h: np.searchsorted(bplan.schedule_times_s, h * 3600.0, side="right") - 1
            for h in (3, 19)}
    np.testing.assert_allclose(bplan.schedule_p_mw[hour[3]], p_max)
    np.testing.assert_allclose(bplan.schedule_p_mw[hour[19]], -p_max)


def test_schedule_mode_without_entries_is_refused(net):
    spec = scenario(batteries={"units": [{"name": "Battery 1", "storage": "Battery 1",
                                          "mode": "schedule"}]}).batteries
    with pytest.raises(ScenarioError, match=r"batteries\.units\[0\]\.schedule"):
        plan_batteries(net, spec, duration_s=DAY_S, start_hour_utc=0.0)
