"""The DMS's switchgear watch (twin.dms.switchgear): IEC 60909 duty against the ratings."""

from __future__ import annotations

import math

import pytest

from twin.dms.short_circuit import BreakerRating
from twin.dms.switchgear import SwitchgearWatch
from twin.grid.paper import create_paper_flisr_net

C_MAX = 1.1  # IEC 60909 voltage factor c_max for MV


def ikss_substation_ka(net) -> float:
    """I"k of a three-phase fault on the 20 kV bar of a substation, by hand (IEC 60909-0).

    Network feeder Z_Q = c·U²/S"kQ and transformer Z_T = K_T·u_k·U²/S_rT with the correction
    K_T = 0.95·c_max / (1 + 0.6·x_T), both referred to 20 kV; reactances only (R ≪ X).
    """
    u_kv = float(net.trafo.vn_lv_kv.iloc[0])
    vk = float(net.trafo.vk_percent.iloc[0]) / 100.0
    z_q = C_MAX * u_kv**2 / float(net.ext_grid.s_sc_max_mva.iloc[0])
    z_t = 0.95 * C_MAX / (1 + 0.6 * vk) * vk * u_kv**2 / float(net.trafo.sn_mva.iloc[0])
    return C_MAX * u_kv / (math.sqrt(3) * (z_q + z_t))


@pytest.fixture
def net():
    # Breaker 1 sits at Substation 1's 20 kV bar (25 MVA, u_k 12 %, 1000 MVA upstream).
    return create_paper_flisr_net()


def breakers(net) -> dict[str, int]:
    return {n: int(i) for i, n in net.switch["name"].items()}


def test_hand_value_of_the_duty():
    # About 5.5 kA; the watch below uses pandapower's calc_sc, which must agree.
    assert ikss_substation_ka(create_paper_flisr_net()) == pytest.approx(5.49, abs=0.01)


def test_quiet_when_every_rating_exceeds_the_duty(net):
    ikss = ikss_substation_ka(net)  # the largest duty: away from the source currents fall
    # ip = κ·√2·I"k with κ < 2 (IEC 60909-0, 4.3.1.1): 2·√2·I"k bounds every peak.
    ratings = {i: BreakerRating(1.05 * ikss, 2 * math.sqrt(2) * 1.05 * ikss)
               for i in net.switch.index}
    records, decisions = SwitchgearWatch(ratings).check(0.0, net)
    assert decisions == []
    assert len(records) == len(net.switch)  # every breaker has a live terminal


def test_breaker_rated_below_the_duty_is_reported_once(net):
    ikss = ikss_substation_ka(net)
    ids = breakers(net)
    ratings = {i: BreakerRating(16.0, 40.0) for i in net.switch.index}
    ratings[ids["Breaker 1"]] = BreakerRating(0.95 * ikss, 40.0)
    watch = SwitchgearWatch(ratings)

    _records, decisions = watch.check(0.0, net)
    (d,) = decisions
    assert (d.function, d.target, d.mode) == ("short_circuit", "switch:Breaker 1", "advisory")
    assert d.inputs["ikss_max_ka"] == pytest.approx(ikss, rel=0.01)

    assert watch.check(60.0, net) == ([], [])  # same topology: no new check
    net.switch.at[ids["Breaker 3"], "closed"] = False
    _records, decisions = watch.check(120.0, net)  # new topology, same violation
    assert decisions == [] and watch.n_checks == 2
