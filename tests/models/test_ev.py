"""EV fleet (twin.models.ev): sessions, charging strategies, V2G, energy accounting."""

from __future__ import annotations

import numpy as np
import pytest

from twin.models.ev import (
    PATTERNS,
    EVFleet,
    EVFleetSpec,
    SessionPattern,
    Sessions,
    draw_sessions,
    sum_by,
)

DAY_S = 86400.0
H = 3600.0


def one_cp_spec(n: int, **kw) -> EVFleetSpec:
    """``n`` EVs of 60 kWh at one charging point, 11 kW, eta 0.9 (0.0099 MWh/h stored)."""
    base = dict(charge_point=np.zeros(n, dtype=int), capacity_mwh=0.06,
                p_charge_max_mw=0.011, eta_charge=0.9, eta_discharge=0.9)
    return EVFleetSpec(**(base | kw))


def sessions(ev, arrival_s, departure_s, soc_arrival, soc_target=0.9) -> Sessions:
    return Sessions(ev=np.asarray(ev), arrival_s=arrival_s, departure_s=departure_s,
                    soc_arrival=soc_arrival, soc_target=soc_target)


def run(fleet: EVFleet, t_end_s: float, dt_s: float = 60.0, **kw):
    results = []
    while fleet.t_s < t_end_s:
        results.append(fleet.step(fleet.t_s, dt_s, **kw))
    return results


def mixed_fleet(rng: np.random.Generator, n: int = 120, n_cp: int = 12) -> EVFleetSpec:
    return EVFleetSpec(
        charge_point=rng.integers(0, n_cp, n),
        capacity_mwh=rng.choice([0.04, 0.06, 0.08], n),
        p_charge_max_mw=rng.choice([0.0037, 0.011, 0.022], n),
        p_discharge_max_mw=np.where(rng.random(n) < 0.4, 0.011, 0.0),
        eta_charge=rng.uniform(0.85, 0.97, n),
        eta_discharge=rng.uniform(0.85, 0.97, n),
        soc_min=0.2,
        n_charge_points=n_cp,
    )


def mixed_sessions(rng: np.random.Generator, spec: EVFleetSpec, days: float) -> Sessions:
    n = len(spec)
    home = draw_sessions(rng, spec, 0.0, days * DAY_S, "home", evs=np.arange(0, n * 3 // 4))
    work = draw_sessions(rng, spec, 0.0, days * DAY_S, "work", evs=np.arange(n * 3 // 4, n))
    return Sessions.concatenate(home, work)


# --------------------------------------------------------------------------- strategies
def test_uncontrolled_hand_numbers_lands_on_target_and_reports_shortfall():
    # EV 0: 0.5 -> 0.9 of 60 kWh = 24 kWh at 0.011 MW x 0.9 = 0.165 kWh per minute:
    # 145 full minutes store 23.925 kWh, the 146th needs 0.075 kWh = 0.005 MW x 0.9 / 60 h.
    # EV 1: same need but leaves after 1 h: stores 9.9 kWh, leaves 14.1 kWh short.
    spec = one_cp_spec(2)
    fleet = EVFleet(spec, sessions([0, 1], [0.0, 0.0], [10 * H, H], 0.5))
    results = run(fleet, 4 * H)
    p0 = np.array([r.ev_p_mw[0] for r in results])
    np.testing.assert_allclose(p0[:145], 0.011, rtol=1e-12)
    assert p0[145] == pytest.approx(0.005, rel=1e-9)
    np.testing.assert_array_equal(p0[146:], 0.0)
    assert results[-1].ev_soc[0] == pytest.approx(0.9, abs=1e-12)

    (dep,) = [r.departures for r in results if len(r.departures)]
    assert dep.ev.tolist() == [1]
    assert dep.energy_short_mwh[0] == pytest.approx(0.024 - 0.0099, abs=1e-12)
    assert dep.soc[0] == pytest.approx(0.5 + 0.0099 / 0.06, abs=1e-12)
    assert results[0].p_mw[0] == pytest.approx(0.022)
    assert results[0].n_connected[0] == 2


def test_step_timing_arrival_and_departure_inside_a_step():
    spec = one_cp_spec(3)
    # EV 0 plugs in at 30 s (inside step [0, 60)), so it takes part from 60 s on; it
    # leaves at 150 s, inside step [120, 180), so it charges through that step too.
    # EV 1's session (70 s to 110 s) falls between two step starts: never plugged in.
    # EV 2 arrives exactly at a step start.
    fleet = EVFleet(spec, sessions([0, 1, 2], [30.0, 70.0, 60.0], [150.0, 110.0, 1e5], 0.5))
    r0 = fleet.step(0.0, 60.0)
    assert r0.ev_p_mw.tolist() == [0.0, 0.0, 0.0]
    assert sorted(r0.arrivals.ev.tolist()) == [0, 2]
    r1 = fleet.step(60.0, 60.0)
    assert r1.ev_p_mw.tolist() == [0.011, 0.0, 0.011]
    assert r1.arrivals.ev.tolist() == [1] and r1.departures.ev.tolist() == [1]
    assert r1.departures.energy_short_mwh[0] == pytest.approx(0.024)
    assert r1.departures.e_mwh[0] == r1.arrivals.e_mwh[0] == pytest.approx(0.03)
    r2 = fleet.step(120.0, 60.0)
    assert r2.ev_p_mw[0] == 0.011
    assert r2.departures.ev.tolist() == [0]
    assert r2.departures.e_mwh[0] == pytest.approx(0.03 + 2 * 0.011 * 0.9 / 60)
    r3 = fleet.step(180.0, 60.0)
    assert r3.ev_p_mw.tolist() == [0.0, 0.0, 0.011]
    with pytest.raises(ValueError, match="before the end of the previous step"):
        fleet.step(200.0, 60.0)


def test_limited_hands_out_the_limit_by_least_laxity():
    # Three EVs need 24 kWh (2.424 h at full power); they leave after 3 h, 2.5 h and 8 h:
    # laxity 0.576 h, 0.076 h, 5.576 h. A limit of 15 kW: EV 1 gets 11 kW, EV 0 the
    # remaining 4 kW, EV 2 nothing.
    spec = one_cp_spec(3)
    fleet = EVFleet(spec, sessions([0, 1, 2], 0.0, [3 * H, 2.5 * H, 8 * H], 0.5))
    r = fleet.step(0.0, 60.0, p_limit_mw=0.015, strategy="limited")
    np.testing.assert_allclose(r.ev_p_mw, [0.004, 0.011, 0.0], atol=1e-15)
    assert r.p_mw[0] == pytest.approx(0.015, abs=1e-15)
    # NaN = no limit: uncontrolled.
    r = fleet.step(60.0, 60.0, p_limit_mw=np.nan, strategy="limited")
    np.testing.assert_allclose(r.ev_p_mw, 0.011)
    r = fleet.step(120.0, 60.0, p_limit_mw=-1.0, strategy="limited")
    np.testing.assert_array_equal(r.ev_p_mw, 0.0)


def test_limited_respects_each_points_limit_and_uses_it():
    rng = np.random.default_rng(11)
    spec = mixed_fleet(rng)
    fleet = EVFleet(spec, mixed_sessions(rng, spec, 2.0))
    n_binding = 0
    previous = fleet.step(0.0, 60.0)
    while fleet.t_s < 2 * DAY_S:
        limit = rng.uniform(0.0, 0.05, spec.n_charge_points)
        limit[rng.random(spec.n_charge_points) < 0.2] = np.nan
        wish = previous.p_max_next_mw  # every EV at full power up to its target
        r = previous = fleet.step(fleet.t_s, 60.0, p_limit_mw=limit, strategy="limited")
        cap = np.where(np.isnan(limit), np.inf, limit)
        assert (r.p_mw <= cap * (1 + 1e-12)).all()
        # Work-conserving: a point gets its full wish or its full limit.
        np.testing.assert_allclose(r.p_mw, np.minimum(wish, cap), rtol=1e-12, atol=1e-15)
        assert (r.ev_p_mw >= 0).all()
        n_binding += int((wish > cap).sum())
    assert n_binding > 100


def test_v2g_hand_numbers_split_by_range_and_trajectory_forces_charging():
    # EV 0 (11 kW V2G) and EV 1 (5.5 kW V2G) leave in 10 h: they may discharge at full
    # power. EV 2 (no V2G) needs 24 kWh and has exactly the 2.424 h full power takes: it
    # sits on its minimum SOC trajectory and must charge at 11 kW whatever is requested.
    e_rate = 0.011 * 0.9  # MWh/h
    dep2 = 0.024 / e_rate * H
    spec = one_cp_spec(3, p_discharge_max_mw=[0.011, 0.0055, 0.0])
    s = sessions([0, 1, 2], 0.0, [10 * H, 10 * H, dep2], 0.5)

    fleet = EVFleet(spec, s)
    r = fleet.step(0.0, 60.0, p_request_mw=-1.0, strategy="v2g")
    np.testing.assert_allclose(r.ev_p_mw, [-0.011, -0.0055, 0.011], rtol=1e-9)
    assert r.e_grid_out_mwh == pytest.approx(0.0165 / 60)
    assert r.e_grid_in_mwh == pytest.approx(0.011 / 60)
    assert r.e_loss_mwh == pytest.approx((0.011 * 0.1 + 0.0165 * (1 / 0.9 - 1)) / 60)

    # Request -2.75 kW with EV 2 forced to +11 kW: EVs 0 and 1 must give 13.75 kW, 5/6 of
    # their 16.5 kW discharge range, each the same share.
    fleet = EVFleet(spec, s)
    r = fleet.step(0.0, 60.0, p_request_mw=-0.00275, strategy="v2g")
    np.testing.assert_allclose(r.ev_p_mw, [-0.011 * 5 / 6, -0.0055 * 5 / 6, 0.011], rtol=1e-9)
    assert r.p_mw[0] == pytest.approx(-0.00275, rel=1e-9)
    # A charge request above the neutral 11 kW moves everyone the same share up.
    fleet = EVFleet(spec, s)
    r = fleet.step(0.0, 60.0, p_request_mw=0.022, strategy="v2g")
    np.testing.assert_allclose(r.ev_p_mw, [0.0055, 0.0055, 0.011], rtol=1e-9)
    # NaN = no request: uncontrolled.
    fleet = EVFleet(spec, s)
    r = fleet.step(0.0, 60.0, p_request_mw=np.nan, strategy="v2g")
    np.testing.assert_allclose(r.ev_p_mw, 0.011)


def test_flex_and_droop_capability_hand_numbers():
    spec = one_cp_spec(2, p_discharge_max_mw=[0.011, 0.0055], n_charge_points=2)
    fleet = EVFleet(spec, sessions([0, 1], 0.0, 10 * H, 0.5))
    r = fleet.step(0.0, 60.0, p_request_mw=[0.0, np.nan], strategy="v2g")
    np.testing.assert_array_equal(r.ev_p_mw, 0.0)
    np.testing.assert_allclose(r.p_max_next_mw, [0.022, 0.0])
    np.testing.assert_allclose(r.p_min_next_mw, [-0.0165, 0.0])
    np.testing.assert_allclose(r.flex_up_mw, [0.022, 0.0])
    np.testing.assert_allclose(r.flex_down_mw, [0.0165, 0.0])
    np.testing.assert_array_equal(r.n_connected, [2, 0])
    assert r.soc_mean[0] == pytest.approx(0.5) and np.isnan(r.soc_mean[1])
    # Up 22 kW, down 16.5 kW, both sustainable for 15 min: min / 0.2 Hz = 82.5 kW/Hz.
    np.testing.assert_allclose(fleet.droop_capability_mw_per_hz(), [0.0825, 0.0])
    np.testing.assert_allclose(fleet.droop_capability_mw_per_hz(0.1), [0.165, 0.0])

    # Near the floor: 1 kWh above soc_min lasts 0.9 kWh / 11 kW = 4.9 min at full power,
    # so over 15 min EV 0 can give only 0.9 kWh / 0.25 h = 3.6 kW.
    s = sessions([0], 0.0, 10 * H, 0.2 + 0.001 / 0.06)
    fleet = EVFleet(one_cp_spec(1, p_discharge_max_mw=0.011), s)
    np.testing.assert_allclose(fleet.droop_capability_mw_per_hz(), [0.0036 / 0.2], rtol=1e-9)
    # Non-V2G EVs contribute nothing.
    fleet = EVFleet(one_cp_spec(1), s)
    np.testing.assert_array_equal(fleet.droop_capability_mw_per_hz(), [0.0])


# --------------------------------------------------------------------------- guarantees
def test_energy_balance_closes_over_mixed_multi_day_run():
    rng = np.random.default_rng(2024)
    spec = mixed_fleet(rng)
    s = mixed_sessions(rng, spec, 3.0)
    fleet = EVFleet(spec, s)
    e_start = fleet.e_stored_mwh
    n_start = int(fleet.connected.sum())
    grid_in = grid_out = loss = stored_by_eta = e_arrived = e_departed = 0.0
    n_arrived = n_departed = 0
    t = 0.0
    while t < 3 * DAY_S:
        strategy = ("uncontrolled", "limited", "v2g")[rng.integers(3)]
        limit = np.where(rng.random(spec.n_charge_points) < 0.2, np.nan,
                         rng.uniform(0, 0.05, spec.n_charge_points))
        request = np.where(rng.random(spec.n_charge_points) < 0.1, np.nan,
                           rng.uniform(-0.06, 0.06, spec.n_charge_points))
        dt = float(rng.choice([60.0, 300.0, 900.0]))
        if rng.random() < 0.01:
            t += 1800.0  # a gap: the EVs idle, arrivals and departures are caught up
        r = fleet.step(t, dt, p_limit_mw=limit, p_request_mw=request, strategy=strategy)
        t += dt
        grid_in += r.e_grid_in_mwh
        grid_out += r.e_grid_out_mwh
        loss += r.e_loss_mwh
        p = r.ev_p_mw
        stored_by_eta += dt / H * float(
            np.sum(spec.eta_charge * np.maximum(p, 0) - np.maximum(-p, 0) / spec.eta_discharge))
        e_arrived += float(r.arrivals.e_mwh.sum())
        e_departed += float(r.departures.e_mwh.sum())
        n_arrived += len(r.arrivals)
        n_departed += len(r.departures)
        assert r.e_loss_mwh >= 0 and r.e_grid_in_mwh >= 0 and r.e_grid_out_mwh >= 0
    e_end = fleet.e_stored_mwh
    # Per EV: Σ e_in·eta_c − Σ e_out/eta_d = E_end − E_start + Σ E_departed − Σ E_arrived
    rhs = e_end - e_start + e_departed - e_arrived
    assert abs(stored_by_eta - rhs) < 1e-9
    # The same with the fleet totals: Σ (E_in − E_out − E_loss).
    assert abs((grid_in - grid_out - loss) - rhs) < 1e-9
    assert n_start + n_arrived == n_departed + int(fleet.connected.sum())
    assert grid_out > 0.1 and grid_in > 1.0 and n_departed > 300


@pytest.mark.parametrize("dt_s", [60.0, 900.0])
def test_v2g_never_leaves_an_ev_short_or_below_soc_min(dt_s):
    rng = np.random.default_rng(7)
    n = 150
    spec = EVFleetSpec(
        charge_point=rng.integers(0, 10, n),
        capacity_mwh=rng.choice([0.04, 0.06, 0.08], n),
        p_charge_max_mw=rng.choice([0.0037, 0.011], n),
        p_discharge_max_mw=rng.choice([0.0037, 0.011], n),
        eta_charge=0.92, eta_discharge=0.9, soc_min=0.2, n_charge_points=10,
    )
    s = mixed_sessions(rng, spec, 3.0)
    fleet = EVFleet(spec, s)
    # What each session can store at most: from plug-in (first step start at or after its
    # arrival, or the run start) to its departure, at full power.
    e_rate = spec.p_charge_max_mw * spec.eta_charge
    t_plug = np.maximum(np.ceil(s.arrival_s / dt_s) * dt_s, 0.0)
    started = s.arrival_s <= 0
    e_plug = spec.capacity_mwh[s.ev] * np.where(started, fleet.soc[s.ev], s.soc_arrival)
    e_reach = e_plug + e_rate[s.ev] * (s.departure_s - t_plug) / H
    feasible = e_reach >= s.soc_target * spec.capacity_mwh[s.ev]

    grid_out = 0.0
    checked = 0
    for r in run(fleet, 3 * DAY_S, dt_s, p_request_mw=-10.0, strategy="v2g"):
        soc = r.ev_soc[~np.isnan(r.ev_soc)]
        assert (soc >= spec.soc_min - 1e-12).all()
        grid_out += r.e_grid_out_mwh
        d = r.departures
        ok = feasible[d.session]
        assert (d.energy_short_mwh[ok] <= 1e-12).all()
        checked += int(ok.sum())
    assert feasible.mean() > 0.95 and checked > 300
    assert grid_out > 1.0  # the fleet did discharge a lot


def test_uncontrolled_reaches_every_reachable_target():
    rng = np.random.default_rng(3)
    spec = mixed_fleet(rng)
    s = mixed_sessions(rng, spec, 2.0)
    fleet = EVFleet(spec, s, history="none")
    e_rate = spec.p_charge_max_mw * spec.eta_charge
    t_plug = np.maximum(np.ceil(s.arrival_s / 60.0) * 60.0, 0.0)
    need = s.energy_need_mwh(spec)
    feasible = need <= e_rate[s.ev] * (s.departure_s - t_plug) / H
    n = 0
    for r in run(fleet, 2 * DAY_S):
        d = r.departures
        ok = feasible[d.session]
        np.testing.assert_array_less(d.energy_short_mwh[ok], 1e-12)
        np.testing.assert_allclose(d.soc[ok], s.soc_target[d.session[ok]], atol=1e-12)
        n += int(ok.sum())
    assert n > 150


def test_evs_plugged_in_before_the_start():
    rng = np.random.default_rng(5)
    spec = one_cp_spec(200)
    s = draw_sessions(rng, spec, 0.0, DAY_S, "home", start_hour_local=0.0)
    before = s.arrival_s < 0
    assert before.sum() == 200  # every EV is home at midnight
    assert (s.departure_s[before] > 0).all()
    raw = EVFleet(spec, s, history="none")
    assert raw.connected.all()
    np.testing.assert_allclose(raw.soc, s.soc_arrival[before][np.argsort(s.ev[before])])
    # Uncontrolled since arrival: 9.9 kWh/h for the hours before midnight, up to the target.
    charged = EVFleet(spec, s)
    order = np.argsort(s.ev[before])
    hours = -s.arrival_s[before][order] / H
    expected = np.minimum(0.9, s.soc_arrival[before][order] + 0.0099 * hours / 0.06)
    np.testing.assert_allclose(charged.soc, expected, rtol=1e-12)
    assert (charged.soc == 0.9).mean() > 0.9
    # A work pattern has no one plugged in at midnight.
    w = draw_sessions(rng, spec, 0.0, DAY_S, "work")
    assert not EVFleet(spec, w).connected.any()


# --------------------------------------------------------------------------- sessions
@pytest.mark.parametrize("name,start_hour", [("home", 0.0), ("work", 0.0), ("home", 6.0)])
def test_session_statistics_match_the_pattern(name, start_hour):
    pattern = PATTERNS[name]
    n, days = 400, 10
    rng = np.random.default_rng(99)
    # Whole local days: no selection bias at the edges.
    start_s = -start_hour * H
    s = draw_sessions(rng, n, start_s, start_s + days * DAY_S, name,
                      start_hour_local=start_hour, capacity_mwh=0.06)
    arrival_h = (s.arrival_s / H + start_hour) % 24
    departure_h = (s.departure_s / H + start_hour) % 24
    e_need_kwh = (s.soc_target - s.soc_arrival) * 0.06 * 1e3
    truncation = 0.9866  # std of a normal truncated at ±3 sigma
    assert arrival_h.mean() == pytest.approx(pattern.arrival_mean_h, rel=0.01)
    assert departure_h.mean() == pytest.approx(pattern.departure_mean_h, rel=0.01)
    assert arrival_h.std() == pytest.approx(pattern.arrival_std_h * truncation, rel=0.05)
    assert departure_h.std() == pytest.approx(pattern.departure_std_h * truncation, rel=0.05)
    assert e_need_kwh.mean() == pytest.approx(pattern.e_drive_mean_kwh, rel=0.03)
    assert e_need_kwh.std() == pytest.approx(pattern.e_drive_std_kwh, rel=0.1)
    assert (s.soc_arrival >= 0.2).all() and (s.soc_target == 0.9).all()
    stay_h = (s.departure_s - s.arrival_s) / H
    assert stay_h.min() > 0
    # The arrival day's sessions all lie in the span; one extra for overnight stays.
    assert len(s) == n * (days + (name == "home"))


def test_same_seed_same_sessions_other_seed_other_sessions():
    def draw(seed):
        return draw_sessions(np.random.default_rng(seed), 50, 0.0, 3 * DAY_S, "home")
    a, b, c = draw(1), draw(1), draw(2)
    for field in ("ev", "arrival_s", "departure_s", "soc_arrival", "soc_target"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.arrival_s, c.arrival_s)


def test_sessions_sorted_and_p_daily_thins_them():
    rng = np.random.default_rng(4)
    pattern = SessionPattern(18.0, 1.0, 7.0, 1.0, True, 8.0, 4.0, p_daily=0.5)
    s = draw_sessions(rng, 300, 0.0, 20 * DAY_S, pattern)
    assert (np.diff(s.arrival_s) >= 0).all()
    assert len(s) / (300 * 21) == pytest.approx(0.5, abs=0.02)


# --------------------------------------------------------------------------- checks
def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="eta_charge"):
        EVFleetSpec(charge_point=[0, 1], capacity_mwh=0.06, p_charge_max_mw=0.011,
                    eta_charge=1.2)
    with pytest.raises(ValueError, match="one value per EV"):
        EVFleetSpec(charge_point=[0, 1], capacity_mwh=[0.06, 0.05, 0.04], p_charge_max_mw=0.01)
    with pytest.raises(ValueError, match="integers"):
        EVFleetSpec(charge_point=[0.5], capacity_mwh=0.06, p_charge_max_mw=0.01)
    with pytest.raises(ValueError, match="n_charge_points"):
        EVFleetSpec(charge_point=[0, 3], capacity_mwh=0.06, p_charge_max_mw=0.01,
                    n_charge_points=2)
    with pytest.raises(ValueError, match="overlap"):
        sessions([0, 0], [0.0, 100.0], [200.0, 300.0], 0.5)
    with pytest.raises(ValueError, match="later than"):
        sessions([0], [100.0], [100.0], 0.5)
    with pytest.raises(ValueError, match="next day's earliest arrival"):
        SessionPattern(18.0, 2.0, 15.0, 2.0, True, 8.0, 4.0)
    with pytest.raises(ValueError, match="earliest departure"):
        SessionPattern(8.0, 1.0, 9.0, 1.0, False, 8.0, 4.0)
    with pytest.raises(ValueError, match="unknown pattern"):
        draw_sessions(np.random.default_rng(0), 3, 0.0, DAY_S, "gym")
    fleet = EVFleet(one_cp_spec(1), sessions([0], 0.0, H, 0.5))
    with pytest.raises(ValueError, match="unknown strategy"):
        fleet.step(0.0, 60.0, strategy="smart")
    with pytest.raises(ValueError, match="one value per charging point"):
        fleet.step(0.0, 60.0, p_limit_mw=[1.0, 2.0], strategy="limited")
    with pytest.raises(ValueError, match="refer to EV"):
        EVFleet(one_cp_spec(1), sessions([1], 0.0, H, 0.5))


def test_sum_by():
    np.testing.assert_allclose(sum_by([0, 2, 0], [1.0, 2.0, 3.0], 4), [4.0, 0.0, 2.0, 0.0])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        sum_by([0, 2], [1.0, 1.0], 2)
