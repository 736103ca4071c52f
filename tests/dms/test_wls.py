"""The numpy WLS estimator against pandapower's, which it replaces, on CIGRE MV.

Both solve the same problem (same states, measurement model, virtual zero injections, σ
floor and convergence test), so the estimates agree to the convergence tolerance's
square: 1e-6 p.u. is a loose bound (measured: ~1e-11 p.u.).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from twin.dms.admittance import grid_model
from twin.dms.load_estimation import pseudo_measurements
from twin.dms.state_estimation import estimate_state
from twin.dms.synthetic_telemetry import full_metering


def _both(net, telemetry, pseudo, **kwargs):
    return (estimate_state(net, telemetry, pseudo, now_s=1.0, backend="pandapower", **kwargs),
            estimate_state(net, telemetry, pseudo, now_s=1.0, backend="numpy", **kwargs))


@pytest.mark.parametrize("currents", [False, True])
def test_same_estimate_as_pandapower_on_a_full_measurement_set(truth, dms_net, currents):
    telemetry = full_metering(truth, np.random.default_rng(3), currents=currents)
    ref, own = _both(dms_net, telemetry, pseudo_measurements(dms_net, 1.0, 1.0))
    assert ref.success and own.success
    assert (own.n_measurements, own.n_states) == (ref.n_measurements, ref.n_states)
    assert own.chi2 == pytest.approx(ref.chi2, rel=1e-5)
    assert own.chi2_threshold == ref.chi2_threshold and own.chi2_passed == ref.chi2_passed
    for name, tol in (("vm_pu", 1e-6), ("va_degree", 1e-4), ("p_line_from_mw", 1e-6),
                      ("line_loading_percent", 1e-4), ("trafo_loading_percent", 1e-4),
                      ("vm_sigma_pu", 0.0)):
        a, b = getattr(ref, name), getattr(own, name)
        assert a.index.equals(b.index), name
        # σ comes from G at the last iterate, which differs between the two by the last
        # steps (< 1e-6): measured within 2e-5 relative
        rtol = 1e-4 if name == "vm_sigma_pu" else 0.0
        assert np.allclose(a.to_numpy(), b.to_numpy(), atol=tol, rtol=rtol,
                           equal_nan=True), name


@pytest.mark.parametrize("element, quantity", [("line:Line 3-4", "p_mw"),
                                               ("bus:Bus 5", "vm_pu")])
def test_same_bad_data_removed(truth, dms_net, element, quantity):
    telemetry = full_metering(truth, np.random.default_rng(1))
    bad = (telemetry.element == element) & (telemetry.quantity == quantity)
    telemetry.loc[bad, "value"] += 20 * telemetry.loc[bad, "sigma"]
    ref, own = _both(dms_net, telemetry, pseudo_measurements(dms_net, 1.0, 1.0))
    assert [(b["element"], b["quantity"]) for b in own.bad_data] == \
        [(b["element"], b["quantity"]) for b in ref.bad_data] == [(element, quantity)]
    assert own.bad_data[0]["normalised_residual"] == pytest.approx(
        ref.bad_data[0]["normalised_residual"], rel=1e-5)
    assert np.allclose(own.vm_pu, ref.vm_pu, atol=1e-6)


def test_same_verdict_when_not_observable(truth, dms_net):
    telemetry = full_metering(truth, np.random.default_rng(0), buses=[1], lines=[0], trafos=[])
    ref, own = _both(dms_net, telemetry, None)
    assert not own.success and not own.observable
    assert own.message == ref.message


def test_the_model_is_rebuilt_when_a_switch_changes_and_reused_when_back(dms_net):
    net = copy.deepcopy(dms_net)
    before = grid_model(net)
    assert grid_model(copy.deepcopy(net)) is before      # same state, another copy: cached
    tie = net.switch.index[net.switch.name == "S1"][0]
    net.switch.at[tie, "closed"] = not net.switch.at[tie, "closed"]
    after = grid_model(net)
    assert after is not before
    assert after.n_bus != before.n_bus or (after.Ybus != before.Ybus).nnz > 0
    net.switch.at[tie, "closed"] = not net.switch.at[tie, "closed"]
    assert grid_model(net) is before


def test_the_model_follows_the_tap_position(dms_net):
    net = copy.deepcopy(dms_net)
    before = grid_model(net)
    net.trafo.at[0, "tap_pos"] = net.trafo.at[0, "tap_pos"] + 2
    after = grid_model(net)
    assert after is not before and abs(after.Ybus - before.Ybus).max() > 1e-6
