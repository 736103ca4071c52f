"""Stationary batteries (twin.models.battery): limits, losses, self-discharge, modes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin.models.battery import (
    Battery,
    BatterySpec,
    price_request,
    price_schedule,
    schedule_request,
    setpoint_request,
)

H = 3600.0
#: The field scenario's default day-ahead prices [EUR/MWh], hour 0 to 23.
PRICES = [62, 58, 55, 53, 54, 60, 75, 92, 98, 90, 78, 66, 58, 55, 57, 64, 78, 96, 118, 124,
          110, 94, 80, 70]


def test_charges_at_full_power_then_lands_exactly_on_soc_max():
    # 1 MWh from 0.5 to 0.9: 0.4 MWh at 0.5 MW x 0.9 = 0.1125 MWh per 15 min. Three full
    # steps store 0.3375 MWh, the fourth the remaining 0.0625 MWh at 0.0625 / 0.225 MW.
    spec = BatterySpec(1.0, 0.5, 0.5, eta_charge=0.9, eta_discharge=0.9, soc_min=0.1,
                       soc_max=0.9, self_discharge_per_h=0.0, soc_init=0.5)
    battery = Battery(spec)
    results = [battery.step(900.0, 2.0) for _ in range(6)]
    p = [r.p_mw[0] for r in results]
    np.testing.assert_allclose(p, [0.5, 0.5, 0.5, 0.0625 / 0.225, 0.0, 0.0], rtol=1e-12)
    assert results[3].soc[0] == pytest.approx(0.9, abs=1e-12)
    assert results[2].p_charge_avail_mw[0] == pytest.approx(0.0625 / 0.225, rel=1e-12)
    assert results[3].p_charge_avail_mw[0] == 0.0
    assert results[3].p_discharge_avail_mw[0] == 0.5
    # Losses: 10 % of what went in.
    np.testing.assert_allclose(sum(r.e_loss_mwh[0] for r in results), 0.4 / 0.9 * 0.1,
                               rtol=1e-12)


def test_discharges_at_full_power_then_lands_exactly_on_soc_min():
    # 0.4 MWh above soc_min; the cells give 0.4 MW / 0.8 x 0.25 h = 0.125 MWh per step:
    # three steps 0.375 MWh, the fourth 0.025 MWh at -0.025 x 0.8 / 0.25 = -0.08 MW.
    spec = BatterySpec(1.0, 0.5, 0.4, eta_charge=0.9, eta_discharge=0.8, soc_min=0.1,
                       soc_max=0.9, self_discharge_per_h=0.0, soc_init=0.5)
    battery = Battery(spec)
    results = [battery.step(900.0, -3.0) for _ in range(5)]
    np.testing.assert_allclose([r.p_mw[0] for r in results], [-0.4, -0.4, -0.4, -0.08, 0.0],
                               rtol=1e-12, atol=1e-15)
    assert results[3].soc[0] == pytest.approx(0.1, abs=1e-12)
    assert results[3].p_discharge_avail_mw[0] == 0.0
    np.testing.assert_allclose(sum(r.e_loss_mwh[0] for r in results), 0.4 * (1 - 0.8),
                               rtol=1e-12)


def test_self_discharge_at_rest_and_composition():
    # At rest, a fraction s of the energy goes per hour, however the hour is stepped.
    spec = BatterySpec(2.0, 1.0, 1.0, self_discharge_per_h=0.01, soc_min=0.0, soc_max=1.0,
                       soc_init=0.8)
    battery = Battery(spec)
    e_self = sum(battery.step(900.0, 0.0).e_self_discharge_mwh[0] for _ in range(4))
    assert battery.e_mwh[0] == pytest.approx(1.6 * 0.99, rel=1e-13)
    assert e_self == pytest.approx(1.6 * 0.01, rel=1e-11)
    # Under constant power the step formula is exact: one 1-h step equals 1000 short ones.
    one = Battery(spec)
    many = Battery(spec)
    r = one.step(H, 0.3)
    e_self_many = sum(many.step(3.6, 0.3).e_self_discharge_mwh[0] for _ in range(1000))
    assert one.e_mwh[0] == pytest.approx(many.e_mwh[0], rel=1e-12)
    assert r.e_self_discharge_mwh[0] == pytest.approx(e_self_many, rel=1e-9)
    # And the energy balance of that step: in x eta - self-discharge.
    assert one.e_mwh[0] == pytest.approx(1.6 + 0.3 * 0.95 - r.e_self_discharge_mwh[0], abs=1e-14)


def test_holds_soc_min_against_self_discharge():
    # At soc_min with s = 1 %/h the floor needs a cell power E_min x lambda, lambda = -ln(0.99).
    spec = BatterySpec(1.0, 0.5, 0.5, eta_charge=0.9, soc_min=0.1, soc_max=0.9,
                       self_discharge_per_h=0.01, soc_init=0.1)
    battery = Battery(spec)
    expected = 0.1 * -math.log(0.99) / 0.9
    np.testing.assert_allclose(battery.power_range_mw(900.0)[0], expected, rtol=1e-12)
    for request in (-0.5, 0.0, float("nan")):
        r = battery.step(900.0, request)
        assert r.p_mw[0] == pytest.approx(expected, rel=1e-12)
        assert r.soc[0] == pytest.approx(0.1, abs=1e-15)
        assert r.p_discharge_avail_mw[0] == 0.0 and r.p_min_mw[0] > 0


def random_spec(rng: np.random.Generator, m: int = 6) -> BatterySpec:
    soc_min = rng.uniform(0.0, 0.2, m)
    soc_max = rng.uniform(0.8, 1.0, m)
    return BatterySpec(
        capacity_mwh=rng.uniform(0.5, 4.0, m),
        p_charge_max_mw=rng.uniform(0.2, 2.0, m),
        p_discharge_max_mw=rng.uniform(0.2, 2.0, m),
        eta_charge=rng.uniform(0.85, 0.99, m),
        eta_discharge=rng.uniform(0.85, 0.99, m),
        soc_min=soc_min,
        soc_max=soc_max,
        self_discharge_per_h=rng.choice([0.0, 1e-4, 5e-3], m),
        soc_init=rng.uniform(soc_min, soc_max),
    )


def test_energy_balance_and_soc_window_under_random_requests():
    rng = np.random.default_rng(17)
    spec = random_spec(rng)
    battery = Battery(spec)
    e_start = battery.e_mwh.copy()
    balance = np.zeros(len(spec))
    e_loss = np.zeros(len(spec))
    e_grid = np.zeros(len(spec))
    hit_max = hit_min = 0
    for _ in range(3000):
        dt = float(rng.choice([60.0, 300.0, 900.0, 3600.0]))
        request = rng.uniform(-2.5, 2.5, len(spec))
        request[rng.random(len(spec)) < 0.05] = np.nan
        r = battery.step(dt, request)
        p = r.p_mw
        dt_h = dt / H
        # Σ charge·eta_c − Σ discharge/eta_d − self-discharge = ΔE
        balance += dt_h * (spec.eta_charge * np.maximum(p, 0)
                           - np.maximum(-p, 0) / spec.eta_discharge) - r.e_self_discharge_mwh
        e_loss += r.e_loss_mwh
        e_grid += p * dt_h
        assert (r.soc >= spec.soc_min - 1e-12).all() and (r.soc <= spec.soc_max + 1e-12).all()
        assert (r.e_self_discharge_mwh >= 0).all() and (r.e_loss_mwh >= 0).all()
        assert (p <= spec.p_charge_max_mw).all() and (p >= -spec.p_discharge_max_mw).all()
        hit_max += int((np.abs(r.soc - spec.soc_max) < 1e-12).sum())
        hit_min += int((np.abs(r.soc - spec.soc_min) < 1e-12).sum())
    np.testing.assert_allclose(balance, battery.e_mwh - e_start, rtol=0, atol=1e-9)
    np.testing.assert_allclose(e_grid - e_loss, battery.e_mwh - e_start, rtol=0, atol=1e-9)
    assert hit_max > 50 and hit_min > 50


def test_available_power_is_what_the_next_step_allows():
    rng = np.random.default_rng(23)
    spec = random_spec(rng)
    battery = Battery(spec)
    r = battery.step(300.0, 0.0)
    for k in range(2000):
        # Alternate long pushes up and down so that both SOC limits are reached.
        sign = 1.0 if (k // 40) % 2 == 0 else -1.0
        previous = r
        r = battery.step(300.0, sign * 10.0)
        if sign > 0:
            np.testing.assert_array_equal(r.p_mw, previous.p_charge_avail_mw)
        else:
            # At soc_min with self-discharge the least power is a small charge (p_min > 0).
            np.testing.assert_array_equal(r.p_mw, previous.p_min_mw)
            np.testing.assert_array_equal(
                np.where(r.p_mw <= 0, -r.p_mw, 0.0), previous.p_discharge_avail_mw)
        np.testing.assert_array_equal(
            battery.power_range_mw(300.0)[1], r.p_max_mw)


def test_schedule_request_is_piecewise_constant():
    times = [6 * H, 12 * H, 18 * H]
    p = [0.5, 0.0, -0.4]
    got = schedule_request(np.array([0.0, 6 * H - 1, 6 * H, 11 * H, 12 * H, 20 * H]), times, p)
    np.testing.assert_array_equal(got, [0.0, 0.0, 0.5, 0.5, 0.0, -0.4])
    two = schedule_request(13 * H, times, np.array([[0.5, 1.0], [0.2, -1.0], [0.0, 0.0]]))
    np.testing.assert_array_equal(two, [0.2, -1.0])
    np.testing.assert_array_equal(setpoint_request(0.3, 3), [0.3, 0.3, 0.3])
    with pytest.raises(ValueError, match="strictly increasing"):
        schedule_request(0.0, [1.0, 1.0], [0.0, 0.0])


def test_price_mode_charges_cheapest_and_discharges_dearest_hours():
    # Battery 0: 0.8 MWh usable, 0.5 MW, eta 0.9 each way: filling takes 0.8 / 0.45 = 1.8 h
    # (2 cheapest hours: 03:00 at 53, 04:00 at 54), emptying 0.8 x 0.9 / 0.5 = 1.4 h
    # (2 dearest: 19:00 at 124, 18:00 at 118). Battery 1 has twice the energy: 3.6 h ->
    # 4 hours (53, 54, 55 at 02:00 before 55 at 13:00), 2.9 h -> 3 hours (124, 118, 110).
    spec = BatterySpec([1.0, 2.0], 0.5, 0.5, eta_charge=0.9, eta_discharge=0.9,
                       soc_min=0.1, soc_max=0.9)
    times = np.arange(24) * H
    plan = price_schedule(times, PRICES, spec)
    assert np.flatnonzero(plan[:, 0] > 0).tolist() == [3, 4]
    assert np.flatnonzero(plan[:, 0] < 0).tolist() == [18, 19]
    assert np.flatnonzero(plan[:, 1] > 0).tolist() == [2, 3, 4, 13]
    assert np.flatnonzero(plan[:, 1] < 0).tolist() == [18, 19, 20]
    np.testing.assert_array_equal(price_request(3.5 * H, times, PRICES, spec), [0.5, 0.5])
    np.testing.assert_array_equal(price_request(13.2 * H, times, PRICES, spec), [0.0, 0.5])
    np.testing.assert_array_equal(price_request(19.9 * H, times, PRICES, spec), [-0.5, -0.5])
    np.testing.assert_array_equal(price_request(12.0 * H, times, PRICES, spec), [0.0, 0.0])

    # A day with a spread too small for the round trip (55 x 0.81 < 50) idles.
    flat = [50.0] * 12 + [55.0] * 12
    assert not price_schedule(times, flat, spec).any()
    # Each day is planned on its own prices; a local clock 2 h ahead of t = 0 shifts the
    # day boundary to t = 22 h.
    two_days = np.arange(48) * H
    plan = price_schedule(two_days, PRICES + PRICES[::-1], spec)
    assert np.flatnonzero(plan[24:, 0] > 0).tolist() == [23 - 4, 23 - 3]
    shifted = price_schedule(two_days, PRICES * 2, spec, start_hour_local=2.0)
    assert np.flatnonzero(shifted[:22, 0] > 0).tolist() == [3, 4]
    assert np.flatnonzero(shifted[22:46, 0] > 0).tolist() == [24 + 3 - 22, 24 + 4 - 22]


def test_price_mode_over_two_days_stays_in_the_soc_window():
    spec = BatterySpec([1.0, 4.0], [0.5, 1.0], [0.5, 1.0], soc_init=0.1)
    times = np.arange(48) * H
    plan = price_schedule(times, PRICES * 2, spec)
    battery = Battery(spec)
    socs = []
    for t in np.arange(0, 48 * H, 300.0):
        socs.append(battery.step(300.0, schedule_request(t, times, plan)).soc)
    socs = np.array(socs)
    assert socs.max() == pytest.approx(0.9, abs=1e-12)  # full after the cheap hours
    assert socs[-1].max() < 0.2  # emptied in the evening peak
    assert (socs >= 0.1 - 1e-12).all() and (socs <= 0.9 + 1e-12).all()


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="soc_min < soc_max"):
        BatterySpec(1.0, 0.5, 0.5, soc_min=0.5, soc_max=0.4, soc_init=0.45)
    with pytest.raises(ValueError, match="soc_init"):
        BatterySpec(1.0, 0.5, 0.5, soc_init=0.95)
    with pytest.raises(ValueError, match="eta_charge"):
        BatterySpec(1.0, 0.5, 0.5, eta_charge=0.0)
    with pytest.raises(ValueError, match="one common length"):
        BatterySpec([1.0, 2.0], [0.5, 0.5, 0.5], 0.5)
    battery = Battery(BatterySpec([1.0, 2.0], 0.5, 0.5))
    with pytest.raises(ValueError, match="one value per battery"):
        battery.step(60.0, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="dt_s"):
        battery.step(0.0, 0.1)
