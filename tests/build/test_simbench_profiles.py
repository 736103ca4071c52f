"""SimBench profiles for the simulated span only (twin.build.profiles.simbench_profiles)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import simbench as sb

from tests.build.minimal import minimal_scenario
from twin.build.profiles import SIMBENCH_STEPS, simbench_profiles

CODE = "1-MV-rural--0-sw"  # 97 buses: SimBench's own year of absolute values is small here


@pytest.fixture(scope="module")
def net():
    return sb.get_simbench_net(CODE)


@pytest.fixture(scope="module")
def absolute(net):
    return sb.get_absolute_values(net, profiles_instead_of_study_cases=True)


def spec(**profiles):
    return minimal_scenario("sb", duration="1d", profiles=profiles).profiles


def test_equal_to_simbench_on_its_steps(net, absolute):
    # 2016-03-01 00:00 is step 60 days × 96 of SimBench's year
    times = pd.date_range("2016-03-01", periods=96, freq="15min", tz="UTC")
    first = 60 * 96
    sgens = [int(i) for i in net.sgen.index]
    prof = simbench_profiles(net, times, spec(load_scaling=1.0), sgens)
    want = absolute[("load", "p_mw")].iloc[first:first + 96].to_numpy()
    np.testing.assert_allclose(prof.load_p_mw.frame().to_numpy(), want, rtol=1e-12, atol=0)
    want_q = absolute[("load", "q_mvar")].iloc[first:first + 96].to_numpy()
    np.testing.assert_allclose(prof.load_q_mvar.frame().to_numpy(), want_q, rtol=1e-12)
    want_sgen = absolute[("sgen", "p_mw")][sgens].iloc[first:first + 96].to_numpy()
    np.testing.assert_allclose(prof.sgen_p_mw.frame().to_numpy(), want_sgen, rtol=1e-12)
    assert (prof.sgen_q_mvar.frame().to_numpy() == 0).all()


def test_interpolated_scaled_and_wrapped_at_the_year_end(net, absolute):
    # 5-min steps from the year's last 15-min step: it wraps to the first one
    times = pd.date_range("2016-12-31T23:45", periods=3, freq="5min", tz="UTC")
    prof = simbench_profiles(net, times, spec(load_scaling=0.5), [])
    year = absolute[("load", "p_mw")].to_numpy()
    last, first = year[SIMBENCH_STEPS - 1], year[0]
    want = 0.5 * np.array([last, last * 2 / 3 + first / 3, last / 3 + first * 2 / 3])
    # (the weight comes from the step's position in the year, ~35,135.33: ~1e-12 rounding)
    np.testing.assert_allclose(prof.load_p_mw.frame().to_numpy(), want, rtol=1e-9)
    assert len(prof.sgen_p_mw) == 0


def test_memory_grows_with_the_span_and_the_profiles_not_their_product(net):
    times = pd.date_range("2016-06-01", periods=4, freq="15min", tz="UTC")
    prof = simbench_profiles(net, times, spec(), [])
    table = prof.load_p_mw
    # one column per SimBench load profile used (+ ones), four rows: not 35,136 × loads
    assert table.shapes.shape == (4, 1 + net.load["profile"].nunique())
    assert len(table.ref) == len(net.load)
