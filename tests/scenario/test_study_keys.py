"""kpis.warmup and pv.scaling / wind.scaling: parsed, checked, and the default warmup."""

from __future__ import annotations

import pytest

from tests.build.minimal import minimal_scenario
from twin.evaluation.kpis import kpi_warmup_s
from twin.scenario import ScenarioError


def test_the_default_warmup_is_the_first_grid_step_after_the_dms_first_cycle():
    # first cycle at 5 s (the default offset), 1-minute steps: its commands reach the 60 s state
    assert kpi_warmup_s(minimal_scenario("w", dms={"enabled": True})) == 60.0
    # a cycle exactly at a step reads the state solved there: the next step
    assert kpi_warmup_s(minimal_scenario("w", dms={"enabled": True, "cycle_offset": "2min"})
                        ) == 180.0
    assert kpi_warmup_s(minimal_scenario("w", step="15min",
                                         dms={"enabled": True, "cycle_offset": "20min"})) == 1800.0
    # without a DMS there is nothing to wait for
    assert kpi_warmup_s(minimal_scenario("w")) == 0.0
    assert kpi_warmup_s(minimal_scenario("w", dms={"enabled": False, "cycle_offset": "5min"})
                        ) == 0.0


@pytest.mark.parametrize("value, seconds", [("10min", 600.0), (90, 90.0), ("0s", 0.0),
                                            (0, 0.0)])
def test_an_explicit_warmup_overrides_the_default(value, seconds):
    sc = minimal_scenario("w", dms={"enabled": True}, kpis={"warmup": value})
    assert sc.kpis.warmup == seconds
    assert kpi_warmup_s(sc) == seconds


def test_the_warmup_is_a_duration():
    with pytest.raises(ScenarioError, match=r"kpis\.warmup"):
        minimal_scenario("w", kpis={"warmup": "soon"})
    with pytest.raises(ScenarioError, match=r"kpis\.warmup"):
        minimal_scenario("w", kpis={"warmup": -60})


def test_plant_scaling_defaults_to_one_and_is_not_negative():
    sc = minimal_scenario("s")
    assert (sc.pv.scaling, sc.wind.scaling) == (1.0, 1.0)
    sc = minimal_scenario("s", pv={"scaling": 0.5}, wind={"scaling": 0})
    assert (sc.pv.scaling, sc.wind.scaling) == (0.5, 0.0)
    for section in ("pv", "wind"):
        with pytest.raises(ScenarioError, match=rf"{section}\.scaling: .*greater than or equal"):
            minimal_scenario("s", **{section: {"scaling": -0.1}})
