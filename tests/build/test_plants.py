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


def test_scaling_multiplies_every_plants_rating_and_its_sgen(net):
    """pv.scaling / wind.scaling: attached and listed plants alike, and the sgen the plant
    drives (the grid's and the DMS's idea of its size) follows."""
    new = {"name": "PV Park", "bus": "Bus 13", "p_peak_kw": 600}
    base_net, scaled_net = net, pn.create_cigre_network_mv(with_der="all")
    base = pv_plants(base_net, scenario(pv={"plants": [new]}).pv)
    half = pv_plants(scaled_net, scenario(pv={"scaling": 0.5, "plants": [new]}).pv)
    assert half.names == base.names and half.sgen_idx == base.sgen_idx
    for key in ("p_peak_mw", "s_inverter_mva"):
        np.testing.assert_allclose(half.params[key], 0.5 * base.params[key])
    np.testing.assert_array_equal(half.params["tilt_deg"], base.params["tilt_deg"])
    for column in ("sn_mva", "p_mw"):
        np.testing.assert_allclose(scaled_net.sgen.loc[half.sgen_idx, column],
                                   0.5 * base_net.sgen.loc[base.sgen_idx, column])
    # generators no plant drives (CHP, fuel cells) are left alone
    others = [i for i in base_net.sgen.index if i not in base.sgen_idx]
    np.testing.assert_array_equal(scaled_net.sgen.loc[others, "p_mw"],
                                  base_net.sgen.loc[others, "p_mw"])

    wind_net = pn.create_cigre_network_mv(with_der="all")
    rated = wind_plants(net, scenario().wind).params["p_rated_mw"]
    doubled = wind_plants(wind_net, scenario(wind={"scaling": 2.0}).wind)
    np.testing.assert_allclose(doubled.params["p_rated_mw"], 2.0 * rated)


@pytest.mark.slow
def test_scaling_scales_the_energy_of_a_run(make_scenario, tmp_path):
    """Half the plants, half the energy: PV (attached and a new plant) and wind, from the
    same weather, in two runs of the same scenario."""
    from twin.runner import run_scenario

    path = make_scenario("scaling", start="2026-06-21T11:00:00Z", duration="30min",
                         pv={"plants": [{"name": "PV Park", "bus": "Bus 13",
                                         "p_peak_kw": 2000}]})
    full = run_scenario(path, out=tmp_path / "full").outcome.kpis
    half = run_scenario(path, out=tmp_path / "half",
                        overrides=["pv.scaling=0.5", "wind.scaling=0.5"]).outcome.kpis
    assert full["pv_energy_mwh"] > 0.5 and full["wind_energy_mwh"] > 0.0  # noon, 6 m/s
    assert half["pv_energy_mwh"] == pytest.approx(0.5 * full["pv_energy_mwh"], rel=1e-6)
    assert half["wind_energy_mwh"] == pytest.approx(0.5 * full["wind_energy_mwh"], rel=1e-6)
    assert half["load_energy_mwh"] == pytest.approx(full["load_energy_mwh"], rel=1e-9)
