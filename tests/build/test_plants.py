"""PV and wind plants resolved against a real net (twin.build.plants)."""

from __future__ import annotations

import numpy as np
import pandapower.networks as pn
import pytest

from tests.build.minimal import minimal_scenario
from twin.build.plants import pv_plants, wind_plants
from twin.scenario import ScenarioError


def scenario(**sections):
    return minimal_scenario("plants", **sections)


@pytest.fixture
def net():
    # CIGRE MV with its eight PV sgens (PV 3 … PV 11), the wind turbine WKA 7, fuel cells, CHP.
    return pn.create_cigre_network_mv(with_der="all")


def test_existing_pv_sgens_are_attached_with_their_ratings(net):
    spec = scenario(pv={"dc_ac_ratio": 1.25, "tilt_deg": 20}).pv
    pv_sgens = net.sgen.index[net.sgen["type"] == "PV"]
    n_sgen = len(net.sgen)

    plants = pv_plants(net, spec)

    assert plants.names == list(net.sgen.loc[pv_sgens, "name"])
    assert plants.sgen_idx == list(pv_sgens)
    rating = net.sgen.loc[pv_sgens, "sn_mva"].to_numpy()
    np.testing.assert_allclose(plants.params["s_inverter_mva"], rating)
    np.testing.assert_allclose(plants.params["p_peak_mw"], rating * 1.25)  # DC/AC ratio
    np.testing.assert_array_equal(plants.params["tilt_deg"], 20.0)
    np.testing.assert_array_equal(plants.params["azimuth_deg"], 180.0)
    assert len(net.sgen) == n_sgen  # attaching adds nothing


def test_a_new_pv_plant_is_a_new_sgen_at_its_bus(net):
    spec = scenario(pv={"attach_existing": False, "dc_ac_ratio": 1.2, "plants": [
        {"name": "PV Park", "bus": "Bus 13", "p_peak_kw": 600, "azimuth_deg": 90}]}).pv

    plants = pv_plants(net, spec)

    (idx,) = plants.sgen_idx
    assert plants.names == ["PV Park"]
    assert net.sgen.at[idx, "name"] == "PV Park"
    assert net.bus.at[net.sgen.at[idx, "bus"], "name"] == "Bus 13"
    # The inverter is the DC peak over the DC/AC ratio: 600 kW / 1.2 = 0.5 MVA.
    assert net.sgen.at[idx, "sn_mva"] == pytest.approx(0.5)
    assert plants.params["s_inverter_mva"][0] == pytest.approx(0.5)
    assert plants.params["p_peak_mw"][0] == pytest.approx(0.6)
    assert plants.params["azimuth_deg"][0] == 90.0


def test_existing_wind_sgen_is_attached(net):
    plants = wind_plants(net, scenario(wind={"hub_height_m": 80}).wind)
    wka = int(net.sgen.index[net.sgen["name"] == "WKA 7"][0])
    assert plants.names == ["WKA 7"]
    assert plants.sgen_idx == [wka]
    assert plants.params["p_rated_mw"][0] == pytest.approx(net.sgen.at[wka, "p_mw"])
    assert plants.params["hub_height_m"][0] == 80.0


def test_unknown_bus_names_the_key_path(net):
    spec = scenario(pv={"plants": [{"name": "X", "bus": "Bus 99", "p_peak_kw": 10}]}).pv
    with pytest.raises(ScenarioError, match=r"pv\.plants\[0\]\.bus: .*found 'Bus 99'"):
        pv_plants(net, spec)


def test_duplicate_plant_names_are_refused(net):
    # A new plant named like an attached one would give two plants one name.
    spec = scenario(pv={"plants": [{"name": "PV 3", "bus": "Bus 13", "p_peak_kw": 10}]}).pv
    with pytest.raises(ScenarioError, match="duplicates"):
        pv_plants(net, spec)
