"""The telemetry plan (twin.dms.telemetry_plan): cached and full paths give the same SE."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from twin.dms import state_estimation as se_module
from twin.dms import telemetry_plan as tplan
from twin.dms.load_estimation import pseudo_measurements
from twin.dms.state_estimation import SEResult, estimate_state
from twin.dms.synthetic_telemetry import full_metering


def _assert_same(a: SEResult, b: SEResult) -> None:
    for f in dataclasses.fields(SEResult):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, pd.Series):
            pd.testing.assert_series_equal(x, y, check_exact=True)
        elif isinstance(x, float) and np.isnan(x):
            assert np.isnan(y), f.name
        else:
            assert x == y, f.name


def _full_path(monkeypatch, *args, **kwargs) -> SEResult:
    with monkeypatch.context() as m:
        m.setattr(se_module, "_planned_measurements", lambda *a, **k: None)
        return estimate_state(*args, **kwargs)


def _cycles(truth):
    """A few cycles: plain, with currents, with a stale and a bad meter, downweighted."""
    rng = np.random.default_rng(7)
    plain = full_metering(truth, rng, t_s=10.0)
    currents = full_metering(truth, rng, t_s=10.0, currents=True)
    stale = full_metering(truth, rng, t_s=10.0)
    stale.loc[stale.element == "bus:Bus 5", "source_t_s"] = -100.0
    stale.loc[(stale.element == "line:Line 3-4") & (stale.quantity == "p_mw"), "value"] += 2.0
    return [(plain, {}), (currents, {}), (stale, {}),
            (stale, {"stale_mode": "downweight"}), (plain, {})]


def test_cached_and_full_paths_give_identical_results(truth, dms_net, monkeypatch):
    tplan.clear_cache()
    pseudo = pseudo_measurements(dms_net, 1.0, 1.0)
    for telemetry, kwargs in _cycles(truth) * 2:   # second round: every plan cached
        fast = estimate_state(dms_net, telemetry, pseudo, now_s=12.0, **kwargs)
        full = _full_path(monkeypatch, dms_net, telemetry, pseudo, now_s=12.0, **kwargs)
        _assert_same(fast, full)
    plain = _cycles(truth)[0][0]   # without pseudo-measurements: not observable
    fast = estimate_state(dms_net, plain, None, now_s=12.0)
    _assert_same(fast, _full_path(monkeypatch, dms_net, plain, None, now_s=12.0))
    stale_cycle = estimate_state(dms_net, _cycles(truth)[2][0], pseudo, now_s=12.0)
    assert stale_cycle.stale and stale_cycle.bad_data    # the paths above were exercised


def test_new_points_or_switch_state_build_a_new_plan(truth, dms_net, monkeypatch):
    tplan.clear_cache()
    builds = []
    build = se_module._build_plan
    monkeypatch.setattr(se_module, "_build_plan",
                        lambda *a, **k: builds.append(1) or build(*a, **k))
    pseudo = pseudo_measurements(dms_net, 1.0, 1.0)
    telemetry = full_metering(truth, np.random.default_rng(1), t_s=10.0)
    for seed in range(3):   # new values, same points: one plan
        values = full_metering(truth, np.random.default_rng(seed), t_s=10.0)
        estimate_state(dms_net, values, pseudo, now_s=12.0)
    assert len(builds) == 1

    fewer = telemetry[telemetry.element != "bus:Bus 5"].reset_index(drop=True)
    fast = estimate_state(dms_net, fewer, pseudo, now_s=12.0)
    assert len(builds) == 2
    _assert_same(fast, _full_path(monkeypatch, dms_net, fewer, pseudo, now_s=12.0))

    closed = telemetry.copy()
    closed.loc[closed.element == "switch:S1", "value"] = 1.0    # the tie closed
    fast = estimate_state(dms_net, closed, pseudo, now_s=12.0)
    assert len(builds) == 3
    _assert_same(fast, _full_path(monkeypatch, dms_net, closed, pseudo, now_s=12.0))

    estimate_state(dms_net, telemetry, pseudo, now_s=12.0)     # back: still cached
    assert len(builds) == 3


def test_a_vouched_pseudo_table_and_its_copy_give_the_same_estimate(truth, dms_net):
    """pseudo_measurements vouches for its table's structure (no pass over its rows); a
    copy or a filtered table is keyed by its rows, and the estimates are the same."""
    cols = se_module._PSEUDO_KEY_COLUMNS
    pseudo = pseudo_measurements(dms_net, 1.0, 1.0)
    copied = pseudo.copy()
    assert tplan.pseudo_key(pseudo, cols)[0] == "vouched"
    assert tplan.pseudo_key(copied, cols)[0] != "vouched"
    fewer = pseudo.iloc[2:].reset_index(drop=True)  # attrs survive; the vouch does not
    assert tplan.pseudo_key(fewer, cols) != tplan.pseudo_key(pseudo, cols)
    assert tplan.pseudo_key(fewer, cols)[0] != "vouched"
    telemetry = full_metering(truth, np.random.default_rng(3), t_s=10.0)
    _assert_same(estimate_state(dms_net, telemetry, pseudo, now_s=12.0),
                 estimate_state(dms_net, telemetry, copied, now_s=12.0))
