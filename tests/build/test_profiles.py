"""Synthetic load and generator profiles on a real net (twin.build.profiles)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandapower.networks as pn
import pandas as pd
import pytest

from tests.build.minimal import minimal_scenario
from twin.build.profiles import ar1_noise, synthetic_profiles
from twin.grid.names import element_names

# One day at 1-min steps from local solar midnight (longitude 0): the samples hit the
# shapes' normalisation grid, so a noiseless shape peaks at exactly 1.
TIMES = pd.date_range("2026-06-21", periods=1440, freq="1min", tz="UTC")


def profiles_spec(**spec):
    return minimal_scenario("profiles", duration="1d", profiles=spec).profiles


@pytest.fixture
def net():
    return pn.create_cigre_network_mv(with_der="all")


def profiles(net, spec, sgen_idx=(), seed=3):
    names = {t: element_names(net, t) for t in ("load", "sgen")}
    prof = synthetic_profiles(net, names, TIMES, spec, list(sgen_idx), longitude_deg=0.0,
                              seed=seed)
    return Frames(*(table.frame() for table in (prof.load_p_mw, prof.load_q_mvar,
                                                  prof.sgen_p_mw, prof.sgen_q_mvar)))


@dataclass
class Frames:
    """The profiles as whole DataFrames (steps × elements)."""

    load_p_mw: pd.DataFrame
    load_q_mvar: pd.DataFrame
    sgen_p_mw: pd.DataFrame
    sgen_q_mvar: pd.DataFrame


def test_noiseless_peak_is_the_nominal_power(net):
    prof = profiles(net, profiles_spec(noise=0.0))
    np.testing.assert_allclose(prof.load_p_mw.max().to_numpy(), net.load["p_mw"].to_numpy(),
                               rtol=1e-12)
    np.testing.assert_allclose(prof.load_q_mvar.max().to_numpy(),
                               net.load["q_mvar"].to_numpy(), rtol=1e-12)
    assert list(prof.load_p_mw.columns) == list(net.load.index)
    assert prof.load_p_mw.index.equals(TIMES)


def test_scaling_and_shape_by_consumer_type(net):
    prof = profiles(net, profiles_spec(noise=0.0, load_scaling=0.5))
    r1 = int(net.load.index[net.load["name"] == "Load R1"][0])
    ci1 = int(net.load.index[net.load["name"] == "Load CI1"][0])
    assert prof.load_p_mw[r1].max() == pytest.approx(0.5 * net.load.at[r1, "p_mw"])
    # Residential peaks in the evening, commercial load during working hours.
    assert 18 <= prof.load_p_mw[r1].idxmax().hour <= 21
    assert 8 <= prof.load_p_mw[ci1].idxmax().hour < 18


def test_noise_is_seeded_per_load(net):
    spec = profiles_spec(noise=0.05)
    a, b = profiles(net, spec, seed=3), profiles(net, spec, seed=3)
    pd.testing.assert_frame_equal(a.load_p_mw, b.load_p_mw)
    assert not profiles(net, spec, seed=4).load_p_mw.equals(a.load_p_mw)
    clean = profiles(net, profiles_spec(noise=0.0)).load_p_mw
    ratio = (a.load_p_mw / clean).to_numpy()
    # Every load has its own stream: no two loads share the noise.
    assert not np.allclose(ratio[:, 0], ratio[:, 1])
    assert (a.load_p_mw.to_numpy() >= 0).all()  # noise never makes a load generate


def test_generators_run_flat_at_nominal(net):
    chp = [int(i) for i in net.sgen.index[net.sgen["type"].str.startswith(("CHP", "Fuel",
                                                                          "Residential"))]]
    prof = profiles(net, profiles_spec(sgen_scaling=0.8), sgen_idx=chp)
    assert list(prof.sgen_p_mw.columns) == chp
    for i in chp:
        np.testing.assert_array_equal(prof.sgen_p_mw[i], 0.8 * net.sgen.at[i, "p_mw"])


def test_ar1_noise_has_its_standard_deviation_and_correlation():
    x = ar1_noise(np.random.default_rng(0), 200_000, sigma=0.1, corr_steps=10.0)
    assert x.std() == pytest.approx(0.1, rel=0.05)
    # Lag-1 autocorrelation of an AR(1) is phi = exp(-1 / corr_steps).
    assert np.corrcoef(x[:-1], x[1:])[0, 1] == pytest.approx(np.exp(-0.1), abs=0.01)
    assert ar1_noise(np.random.default_rng(0), 5, 0.0, 10.0).tolist() == [0.0] * 5


def test_a_table_is_shapes_times_references(net):
    prof = synthetic_profiles(net, {t: element_names(net, t) for t in ("load", "sgen")}, TIMES,
                              profiles_spec(noise=0.05), [0, 1], longitude_deg=0.0, seed=3)
    table = prof.load_p_mw
    whole = table.frame()
    assert len(table) == len(net.load) and table.n_steps == len(TIMES)
    np.testing.assert_array_equal(table.at(600), whole.iloc[600].to_numpy())
    idx = int(net.load.index[4])
    np.testing.assert_array_equal(table.column(idx), whole[idx].to_numpy())
    # P and Q share one factor series per load (the same shape at the load's power factor)
    assert prof.load_q_mvar.shapes is table.shapes
