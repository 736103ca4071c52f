"""IEEE 1366 reliability indices from supply states: hand-computed cases and a brute-force check."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from twin.evaluation.reliability import MOMENTARY_S, ReliabilityLedger, default_customers


def _single_outage(duration_s: float, p_mw: float = 2.0, customers: int = 100,
                   end_t_s: float = 7200.0) -> dict[str, object]:
    ledger = ReliabilityLedger({"a": customers})
    ledger.update(0.0, {"a": True}, {"a": p_mw})
    ledger.update(600.0, {"a": False}, {})
    ledger.update(600.0 + duration_s, {"a": True}, {})
    return ledger.finish(end_t_s)


def test_single_sustained_outage():
    # 100 customers out for 30 min at 2 MW
    out = _single_outage(1800.0)
    assert out["customers_served"] == 100
    assert out["customers_interrupted"] == 100
    assert out["customer_minutes_interrupted"] == pytest.approx(3000.0)  # 100 · 30 min
    assert out["saifi"] == pytest.approx(1.0)
    assert out["saidi_min"] == pytest.approx(30.0)
    assert out["caidi_min"] == pytest.approx(30.0)
    assert out["energy_not_supplied_mwh"] == pytest.approx(1.0)  # 2 MW · 0.5 h
    assert out["interruptions"] == 1 and out["interruptions_momentary"] == 0
    assert out["momentary_interruptions"] == 0 and out["maifi"] == 0.0
    json.dumps(out)


def test_second_load_never_interrupted_dilutes_indices():
    ledger = ReliabilityLedger({"a": 100, "b": 300})
    ledger.update(0.0, {"a": True, "b": True}, {"a": 2.0, "b": 5.0})
    ledger.update(600.0, {"a": False}, {})
    ledger.update(2400.0, {"a": True}, {})
    out = ledger.finish(3600.0)
    assert out["customers_served"] == 400
    assert out["saifi"] == pytest.approx(0.25)  # 100 / 400
    assert out["saidi_min"] == pytest.approx(7.5)  # 3000 / 400
    assert out["caidi_min"] == pytest.approx(30.0)  # 7.5 / 0.25
    assert out["energy_not_supplied_mwh"] == pytest.approx(1.0)  # b's 5 MW never lost


def test_four_minutes_is_momentary():
    out = _single_outage(240.0)
    assert out["customers_interrupted"] == 0 and out["customer_minutes_interrupted"] == 0.0
    assert out["saifi"] == 0.0 and out["saidi_min"] == 0.0
    assert out["caidi_min"] is None  # SAIFI is 0
    assert out["momentary_interruptions"] == 100
    assert out["maifi"] == pytest.approx(1.0)
    assert out["energy_not_supplied_mwh"] == pytest.approx(2.0 * 240 / 3600)  # ENS counts it
    assert out["interruptions"] == 0 and out["interruptions_momentary"] == 1


@pytest.mark.parametrize("duration_s, sustained", [(MOMENTARY_S, False), (301.0, True)])
def test_momentary_boundary(duration_s, sustained):
    out = _single_outage(duration_s)
    assert out["interruptions"] == int(sustained)
    assert out["interruptions_momentary"] == int(not sustained)
    assert out["customer_minutes_interrupted"] == pytest.approx(
        100 * duration_s / 60 if sustained else 0.0)


def test_momentary_threshold_is_a_parameter():
    ledger = ReliabilityLedger({"a": 10}, momentary_s=60.0)
    ledger.update(0.0, {"a": False}, {"a": 1.0})
    ledger.update(120.0, {"a": True}, {})
    out = ledger.finish(120.0)
    assert out["interruptions"] == 1 and ledger.interruptions[0].sustained


def test_demand_changing_during_outage_integrates_piecewise():
    ledger = ReliabilityLedger({"a": 50})
    ledger.update(0.0, {"a": False}, {"a": 1.0})
    ledger.update(600.0, {}, {"a": 3.0})  # still out, demand now 3 MW
    ledger.update(1800.0, {"a": True}, {"a": 10.0})  # demand while supplied is not lost
    out = ledger.finish(3600.0)
    # 1 MW · 10 min + 3 MW · 20 min = 1/6 + 1 MWh
    assert out["energy_not_supplied_mwh"] == pytest.approx(1 / 6 + 1.0)
    assert ledger.interruptions[0].energy_not_supplied_mwh == pytest.approx(1 / 6 + 1.0)


def test_negative_demand_counts_as_zero():
    ledger = ReliabilityLedger({"a": 5})
    ledger.update(0.0, {"a": False}, {"a": -1.0})  # a net exporter while out
    ledger.update(1800.0, {}, {"a": 2.0})
    out = ledger.finish(3600.0)
    assert out["energy_not_supplied_mwh"] == pytest.approx(1.0)  # only 2 MW · 0.5 h


def test_open_interruption_counts_to_run_end():
    ledger = ReliabilityLedger({"a": 100, "b": 100})
    ledger.update(0.0, {}, {"a": 2.0, "b": 1.0})
    ledger.update(1200.0, {"a": False}, {})
    out = ledger.finish(3600.0)
    # 40 min to the run end
    assert out["customer_minutes_interrupted"] == pytest.approx(4000.0)
    assert out["saidi_min"] == pytest.approx(20.0)
    assert out["energy_not_supplied_mwh"] == pytest.approx(2.0 * 40 / 60)
    (rec,) = ledger.interruptions
    assert rec.load == "a" and rec.end_t_s is None and rec.run_end_t_s == 3600.0
    assert rec.duration_s == pytest.approx(2400.0) and rec.sustained


def test_interruptions_closed_first_then_open_ones():
    ledger = ReliabilityLedger({"a": 1, "b": 1})
    ledger.update(0.0, {"b": False}, {})
    ledger.update(100.0, {"a": False}, {})
    ledger.update(200.0, {"a": True}, {})
    assert [(i.load, i.end_t_s) for i in ledger.interruptions] == [("a", 200.0)]
    ledger.finish(1000.0)
    assert [(i.load, i.end_t_s) for i in ledger.interruptions] == [("a", 200.0), ("b", None)]
    assert ledger.interruptions[1].duration_s == 1000.0


def test_repeated_interruptions_count_twice():
    ledger = ReliabilityLedger({"a": 100, "b": 100})
    ledger.update(0.0, {"a": False}, {"a": 1.0})
    ledger.update(600.0, {"a": True}, {})
    ledger.update(1200.0, {"a": False}, {})
    ledger.update(2400.0, {"a": True}, {})
    out = ledger.finish(3600.0)
    assert out["customers_interrupted"] == 200  # the same 100 customers, twice
    assert out["saifi"] == pytest.approx(1.0)  # 200 / 200
    assert out["saidi_min"] == pytest.approx((100 * 10 + 100 * 20) / 200)
    assert out["caidi_min"] == pytest.approx(15.0)
    assert out["interruptions"] == 2


def test_equal_time_updates_later_wins():
    ledger = ReliabilityLedger({"a": 10})
    ledger.update(0.0, {}, {"a": 1.0})
    # lost and restored at the same instant: never interrupted
    ledger.update(100.0, {"a": False}, {})
    ledger.update(100.0, {"a": True}, {})
    # restored and lost again at the same instant: one unbroken interruption 1000–3000 s
    ledger.update(1000.0, {"a": False}, {"a": 5.0})
    ledger.update(1000.0, {}, {"a": 1.0})  # the later demand wins too
    ledger.update(2000.0, {"a": True}, {})
    ledger.update(2000.0, {"a": False}, {})
    ledger.update(3000.0, {"a": True}, {})
    out = ledger.finish(3600.0)
    assert out["interruptions"] == 1 and out["interruptions_momentary"] == 0
    assert out["customer_minutes_interrupted"] == pytest.approx(10 * 2000 / 60)
    assert out["energy_not_supplied_mwh"] == pytest.approx(1.0 * 2000 / 3600)
    (rec,) = ledger.interruptions
    assert (rec.start_t_s, rec.end_t_s) == (1000.0, 3000.0)


def test_decreasing_time_raises():
    ledger = ReliabilityLedger({"a": 1})
    ledger.update(10.0, {"a": True}, {})
    with pytest.raises(ValueError, match="went back"):
        ledger.update(9.0, {"a": False}, {})
    with pytest.raises(ValueError, match="before the last update"):
        ledger.finish(5.0)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, math.nan, "7"])
def test_customers_must_be_integers_at_least_one(bad):
    with pytest.raises(ValueError, match="'feeder_3'"):
        ReliabilityLedger({"ok": 4, "feeder_3": bad})


def test_unknown_load_raises():
    ledger = ReliabilityLedger({"a": 1})
    with pytest.raises(ValueError, match="'ghost'"):
        ledger.update(0.0, {"a": True, "ghost": False}, {})
    with pytest.raises(ValueError, match="'ghost'"):
        ledger.update(0.0, {}, {"ghost": 1.0})


def test_no_update_after_finish():
    ledger = ReliabilityLedger({"a": 1})
    ledger.finish(0.0)
    with pytest.raises(RuntimeError):
        ledger.update(1.0, {"a": False}, {})


def test_no_interruptions():
    ledger = ReliabilityLedger({"a": 3, "b": 4})
    ledger.update(0.0, {"a": True, "b": True}, {"a": 1.0, "b": 1.0})
    out = ledger.finish(86400.0)
    assert out == {
        "customers_served": 7, "customers_interrupted": 0,
        "customer_minutes_interrupted": 0.0, "saifi": 0.0, "saidi_min": 0.0,
        "caidi_min": None, "momentary_interruptions": 0, "maifi": 0.0,
        "energy_not_supplied_mwh": 0.0, "interruptions": 0, "interruptions_momentary": 0,
    }


@pytest.mark.parametrize("p_mw, expected", [
    (2.0, 500),  # 2000 kW / 4 kW
    (4.004, 1001),  # 4.004·1000/4 is 1000.999… in floating point: round, not floor
    (0.001, 1),  # less than one household still has one customer
    (0.0, 1), (-0.5, 1), (math.nan, 1),
])
def test_default_customers(p_mw, expected):
    assert default_customers(p_mw) == expected


def _brute_force(steps, loads, customers, end_t_s, momentary_s):
    """Indices from the supply state sampled every second (exact for whole-second times)."""
    n_s = int(end_t_s)
    ci = cmi_s = cmo = n_sus = n_mom = 0
    ens_mwh = 0.0
    for load in loads:
        # state at second k: the last update with time <= k wins; before any: supplied, 0 MW
        up = np.ones(n_s, dtype=bool)
        demand = np.zeros(n_s)
        for t_s, supplied, demand_mw in steps:
            if load in supplied:
                up[int(t_s):] = supplied[load]
            if load in demand_mw:
                demand[int(t_s):] = max(demand_mw[load], 0.0)
        ens_mwh += demand[~up].sum() / 3600.0
        # runs of unsupplied seconds
        edges = np.diff(np.concatenate(([0], (~up).astype(int), [0])))
        for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            if stop - start > momentary_s:
                n_sus += 1
                ci += customers[load]
                cmi_s += customers[load] * (stop - start)
            else:
                n_mom += 1
                cmo += customers[load]
    n_total = sum(customers.values())
    return {"ci": ci, "saidi_min": cmi_s / 60 / n_total, "cmo": cmo,
            "ens_mwh": ens_mwh, "n_sus": n_sus, "n_mom": n_mom}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_sequences_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    loads = [f"load_{i}" for i in range(5)]
    customers = {load: int(rng.integers(1, 400)) for load in loads}
    end_t_s = 6 * 3600.0
    steps = []
    t_s = 0.0
    while True:
        # a fifth of updates at the same time as the previous one, to exercise "later wins"
        if steps and rng.random() < 0.2:
            pass
        else:
            t_s += float(rng.integers(1, 600))
        if t_s >= end_t_s:
            break
        chosen = [load for load in loads if rng.random() < 0.4]
        supplied = {load: bool(rng.random() < 0.6) for load in chosen}
        demand = {load: float(rng.normal(1.0, 0.8)) for load in loads if rng.random() < 0.3}
        steps.append((t_s, supplied, demand))

    ledger = ReliabilityLedger(customers)
    for step in steps:
        ledger.update(*step)
    out = ledger.finish(end_t_s)
    ref = _brute_force(steps, loads, customers, end_t_s, MOMENTARY_S)

    assert ref["n_sus"] > 0 and ref["n_mom"] > 0  # both kinds are exercised
    assert out["interruptions"] == ref["n_sus"]
    assert out["interruptions_momentary"] == ref["n_mom"]
    assert out["customers_interrupted"] == ref["ci"]
    assert out["momentary_interruptions"] == ref["cmo"]
    # whole-second times: the 1 s grid is exact, up to float summation
    assert out["saidi_min"] == pytest.approx(ref["saidi_min"], rel=1e-9, abs=1e-9)
    assert out["energy_not_supplied_mwh"] == pytest.approx(ref["ens_mwh"], rel=1e-9, abs=1e-9)
    assert sum(i.energy_not_supplied_mwh for i in ledger.interruptions) == pytest.approx(
        ref["ens_mwh"])
