"""WLS state estimation on CIGRE MV against pandapower's power flow as the truth.

Meters (see ``dms_telemetry``): |V| σ = 0.5 % of the value, P/Q σ = 1 % of the branch
rating (≈ 0.05 MW on the 20 kV lines, 0.25 MW on the 25 MVA trafos), Gaussian, seeded.
"""

from __future__ import annotations

import copy

import numpy as np
import pandapower as pp
import pandas as pd
import pytest

from twin.dms.load_estimation import pseudo_measurements
from twin.dms.state_estimation import SEResult, estimate_state, estimation_error
from twin.dms.synthetic_telemetry import full_metering
from twin.grid.build import build_net
from twin.scenario import GridSpec

SEEDS = range(5)


def _within_3_sigma(se: SEResult, truth_vm_pu: pd.Series) -> pd.Series:
    """|V̂ − V| / σ̂ per bus, σ̂ the estimate's own standard deviation √(G⁻¹)ᵢᵢ.

    σ̂ (≈ 0.0013–0.0018 p.u. here) is smaller than a voltmeter's 0.005 p.u. because every
    bus voltage is fixed by several meters at once; 3 × meter σ would be a far looser test.
    """
    return (se.vm_pu - truth_vm_pu).abs() / se.vm_sigma_pu


@pytest.mark.parametrize("seed", SEEDS)
def test_full_metering_estimate_within_three_sigma(truth, dms_net, seed):
    telemetry = full_metering(truth, np.random.default_rng(seed), currents=seed % 2 == 1)
    se = estimate_state(dms_net, telemetry, pseudo_measurements(dms_net, 1.0, 1.0), now_s=1.0)
    assert se.success and se.observable and se.chi2_passed
    assert se.bad_data == [] and se.stale == []
    assert se.n_measurements > se.n_states == 35      # 15 buses + 3 auxiliary, 1 slack
    assert se.chi2 < se.chi2_threshold
    z = _within_3_sigma(se, truth.res_bus.vm_pu)
    assert z.notna().all() and (z < 3.0).all(), z.max()
    assert ((se.vm_sigma_pu > 5e-4) & (se.vm_sigma_pu < 5e-3)).all()
    # measured over these seeds: max |ΔV| 0.0026 p.u., line P within 0.1 MW
    assert estimation_error(se, truth.res_bus.vm_pu)["max_abs_dv_pu"] < 0.004
    assert (se.p_line_from_mw - truth.res_line.p_from_mw).abs().max() < 0.1
    assert (se.line_loading_percent - truth.res_line.loading_percent).abs().max() < 3.0


def test_the_callers_net_is_not_modified(truth, dms_net):
    before = copy.deepcopy(dms_net)
    telemetry = full_metering(truth, np.random.default_rng(0))
    telemetry.loc[telemetry.element == "switch:S1", "value"] = 1.0
    estimate_state(dms_net, telemetry, pseudo_measurements(dms_net, 1.0, 1.0), now_s=1.0)
    assert dms_net.measurement.empty
    assert dms_net.switch.closed.equals(before.switch.closed)
    assert "res_bus_est" not in dms_net or dms_net.res_bus_est.empty


@pytest.mark.parametrize("element, quantity", [("line:Line 3-4", "p_mw"),
                                               ("bus:Bus 5", "vm_pu"),
                                               ("line:Line 8-9", "q_mvar")])
@pytest.mark.parametrize("seed", range(3))
def test_gross_error_is_detected_identified_and_removed(truth, dms_net, element, quantity,
                                                        seed):
    telemetry = full_metering(truth, np.random.default_rng(seed))
    bad = (telemetry.element == element) & (telemetry.quantity == quantity)
    telemetry.loc[bad, "value"] += 20 * telemetry.loc[bad, "sigma"]
    pseudo = pseudo_measurements(dms_net, 1.0, 1.0)

    detected = estimate_state(dms_net, telemetry, pseudo, now_s=1.0, max_bad_data=0)
    assert detected.success and detected.chi2_passed is False
    assert detected.chi2 > detected.chi2_threshold
    assert "still fails" in detected.message

    se = estimate_state(dms_net, telemetry, pseudo, now_s=1.0)
    assert [(b["element"], b["quantity"]) for b in se.bad_data] == [(element, quantity)]
    assert se.bad_data[0]["normalised_residual"] > 3.0
    assert se.bad_data[0]["value"] == pytest.approx(float(telemetry.loc[bad, "value"].iloc[0]))
    assert se.chi2_passed and se.message == ""
    assert (_within_3_sigma(se, truth.res_bus.vm_pu) < 3.0).all()


@pytest.mark.parametrize("seed", range(6))
def test_half_the_meters_missing_pseudo_measurements_keep_it_observable(truth, dms_net, seed):
    rng = np.random.default_rng(seed)
    telemetry = full_metering(truth, rng, buses=truth.bus.index[::2],
                              lines=truth.line.index[::2])
    # the forecast is off by up to ±20 % per load
    load_factor = rng.uniform(0.8, 1.2, len(dms_net.load))
    without = estimate_state(dms_net, telemetry, None, now_s=1.0)
    assert not without.success and not without.observable
    se = estimate_state(dms_net, telemetry, pseudo_measurements(dms_net, load_factor, 1.0),
                        now_s=1.0)
    assert se.success and se.observable and se.n_measurements >= se.n_states
    # measured over seeds 0–5: max |ΔV| 0.0022–0.0031 p.u.
    assert estimation_error(se, truth.res_bus.vm_pu)["max_abs_dv_pu"] < 0.005


def test_feeder_head_scaling_helps_sparse_metering(truth, dms_net):
    """Only the substation is metered (trafo P/Q, both MV busbar voltages) and every load
    forecast is 20 % high (±20 % scatter): scaling the loads to the metered feeder heads
    cuts the voltage error, as WLS alone puts the mismatch on the largest loads."""
    heads = {"trafo:Trafo 0-1": float(truth.res_trafo.at[0, "p_hv_mw"]),
             "trafo:Trafo 0-12": float(truth.res_trafo.at[1, "p_hv_mw"])}
    errors = {"unscaled": [], "scaled": []}
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        telemetry = full_metering(truth, rng, buses=[1, 12], lines=[])
        load_factor = 1.2 * rng.uniform(0.8, 1.2, len(dms_net.load))
        for key, metered in (("unscaled", None), ("scaled", heads)):
            pseudo = pseudo_measurements(dms_net, load_factor, 1.0, metered_feeder_p_mw=metered)
            se = estimate_state(dms_net, telemetry, pseudo, now_s=1.0)
            assert se.success
            errors[key].append(estimation_error(se, truth.res_bus.vm_pu)["max_abs_dv_pu"])
    # measured: mean max |ΔV| 0.0135 p.u. unscaled, 0.0055 p.u. scaled
    assert np.mean(errors["scaled"]) < 0.5 * np.mean(errors["unscaled"])
    assert max(errors["scaled"]) < 0.015


@pytest.mark.parametrize("mode, action", [("drop", "dropped"), ("downweight", "downweighted")])
def test_stale_values_are_dropped_or_downweighted_and_reported(truth, dms_net, mode, action):
    telemetry = full_metering(truth, np.random.default_rng(1), t_s=500.0)
    # Bus 9's voltmeter froze 300 s ago at a value 4 % off
    frozen = (telemetry.element == "bus:Bus 9") & (telemetry.quantity == "vm_pu")
    telemetry.loc[frozen, "value"] *= 1.04
    telemetry.loc[frozen, "source_t_s"] = 200.0
    se = estimate_state(dms_net, telemetry, pseudo_measurements(dms_net, 1.0, 1.0),
                        now_s=500.0, stale_after_s=60.0, stale_mode=mode,
                        downweight_factor=100.0)
    assert [(s["element"], s["quantity"], s["age_s"], s["action"]) for s in se.stale] == [
        ("bus:Bus 9", "vm_pu", 300.0, action)]
    assert se.success and se.chi2_passed and se.bad_data == []
    assert (_within_3_sigma(se, truth.res_bus.vm_pu) < 3.0).all()
    fresh = estimate_state(dms_net, telemetry, pseudo_measurements(dms_net, 1.0, 1.0),
                           now_s=500.0, stale_after_s=600.0)
    assert fresh.stale == [] and [b["element"] for b in fresh.bad_data] == ["bus:Bus 9"]


def test_switch_telemetry_sets_the_topology(dms_net):
    """The tie S1 is closed in the field but open in the DMS's model."""
    truth = build_net(GridSpec(builtin="cigre_mv"))
    truth.switch.loc[truth.switch.name == "S1", "closed"] = True
    pp.runpp(truth)
    assert abs(truth.res_line.at[14, "p_from_mw"]) > 0.5     # Line 14-8 now carries power
    telemetry = full_metering(truth, np.random.default_rng(0))
    pseudo = pseudo_measurements(dms_net, 1.0, 1.0)
    se = estimate_state(dms_net, telemetry, pseudo, now_s=1.0)
    assert se.success and se.chi2_passed and se.bad_data == []
    assert (_within_3_sigma(se, truth.res_bus.vm_pu) < 3.0).all()
    # Without the switch states the model is wrong: the tie's meters look like bad data.
    blind = estimate_state(dms_net, telemetry[telemetry.quantity != "closed"], pseudo,
                           now_s=1.0, max_bad_data=0)
    assert blind.chi2_passed is False


def test_unknown_element_names_raise(truth, dms_net):
    telemetry = full_metering(truth, np.random.default_rng(0))
    telemetry.loc[0, "element"] = "bus:Bus 42"
    with pytest.raises(ValueError, match="Bus 42"):
        estimate_state(dms_net, telemetry, None, now_s=1.0)


def test_too_few_measurements_is_a_failure_not_an_exception(truth, dms_net):
    telemetry = full_metering(truth, np.random.default_rng(0), buses=[1], lines=[0], trafos=[])
    se = estimate_state(dms_net, telemetry, None, now_s=1.0)
    assert not se.success and not se.observable
    assert "not observable" in se.message and "10 measurements for 35 states" in se.message
    assert se.vm_pu.isna().all() and len(se.vm_pu) == len(dms_net.bus)
    # every value stale: the same, with the stale list filled in
    se = estimate_state(dms_net, full_metering(truth, np.random.default_rng(0)), None,
                        now_s=1000.0)
    assert not se.success and not se.observable and len(se.stale) == 49


def test_count_alone_is_not_observability(truth, dms_net):
    """Enough measurements by count (voltages and current magnitudes), but the current
    magnitudes carry no information at a flat start: the estimate fails cleanly."""
    telemetry = full_metering(truth, np.random.default_rng(0), lines=[], trafos=[0, 1])
    currents = pd.DataFrame([{"element": f"line:{name}", "quantity": "i_ka",
                              "value": truth.res_line.at[i, "i_from_ka"], "source_t_s": 0.0,
                              "sigma": 0.0015}
                             for i, name in zip(truth.line.index, truth.line.name)])
    se = estimate_state(dms_net, pd.concat([telemetry, currents]), None, now_s=1.0)
    assert se.n_measurements >= se.n_states
    assert not se.success and se.message


def test_estimation_error():
    se = SEResult(True, True, pd.Series([1.0, 1.01, np.nan]), pd.Series(dtype=float),
                  pd.Series(dtype=float), pd.Series(dtype=float), pd.Series(dtype=float),
                  0, 0, 0.0, 0.0, [], [], 0, "")
    err = estimation_error(se, pd.Series([1.002, 1.0, 1.0]))
    assert err == pytest.approx({"mean_abs_dv_pu": 0.006, "max_abs_dv_pu": 0.01})


def test_simbench_rural_full_metering():
    """97 buses, two parallel trafos between fused busbars: the pseudo-measurements must
    leave the slack's fused node alone."""
    net = build_net(GridSpec(simbench="1-MV-rural--0-sw"))
    pp.runpp(net)
    telemetry = full_metering(net, np.random.default_rng(0))
    se = estimate_state(net, telemetry, pseudo_measurements(net, 1.0, 1.0), now_s=1.0)
    assert se.success and se.chi2_passed and se.bad_data == []
    # measured: max |ΔV| 0.0010 p.u.
    assert estimation_error(se, net.res_bus.vm_pu)["max_abs_dv_pu"] < 0.003
