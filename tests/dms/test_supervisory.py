"""The supervisory functions as the DMS runs them (twin.dms.supervisory), on CIGRE MV:
the signs of the set-points they send, who may be curtailed, and the monitoring records."""

from __future__ import annotations

import pandapower as pp
import pandapower.networks as pn
import pytest

from twin.dms.cells import Cell
from twin.dms.measurements import telemetry_frame
from twin.dms.supervisory import BatteryInfo, Supervisor, SupervisorySettings, TsoRequest

SOUTH = Cell("South", ("Bus 7", "Bus 8", "Bus 9", "Bus 10", "Bus 11"), 0.0, 0.1)


def _net(der: str = "pv_wind"):
    net = pn.create_cigre_network_mv(with_der=der)
    net.storage.loc[:, "p_mw"] = 0.0
    pp.create_storage(net, 9, p_mw=0.0, max_e_mwh=2.0, name="Battery S")
    return net


def _telemetry(t_s: float, p_mw: dict[str, float] | None = None):
    return telemetry_frame([{"element": element, "quantity": "p_mw", "value": value,
                             "source_t_s": t_s} for element, value in (p_mw or {}).items()])


def _supervisor(net, **settings) -> Supervisor:
    base = dict(cells=(SOUTH,), cells_mode="direct",
                batteries=(BatteryInfo("Battery S", 2.0, 1.0, soc_init=0.5),))
    return Supervisor(SupervisorySettings(**{**base, **settings}), net,
                      frozenset({"storage:Battery S", "sgen:PV 8"}))


def test_a_cell_importing_too_much_discharges_its_battery():
    net = _net()
    sup = _supervisor(net)
    pp.runpp(net)
    # the first cycle only measures; the second acts on the deviation it sees
    sup.on_estimate(0.0, net, _telemetry(0.0))
    decisions, records = sup.on_estimate(60.0, net, _telemetry(60.0))
    export = -net.res_line.p_from_mw[net.line.name == "Line 3-8"].item()
    assert export < -SOUTH.tolerance_mw  # the cell imports: it must inject more
    (cell,) = [r for r in records if r["tags"]["element"] == "South"]
    assert cell["fields"]["export_mw"] == pytest.approx(export, abs=1e-6)
    battery = [d for d in decisions if d.target == "storage:Battery S"]
    assert battery and battery[0].action == "set_battery_p"
    # the PI's first step asks u = −(kp·e + ki·e·dt) more injection; the battery is alone
    # in the cell's merit order, and discharging is negative (load convention)
    u = -(0.1 * export + 0.01 * export * 60.0)
    assert battery[0].value == pytest.approx(-min(u, 1.0), rel=1e-6)
    assert battery[0].function == "cells" and "Cell South" in battery[0].reason


def test_a_metered_tie_flow_overrides_the_dms_power_flow():
    net = _net()
    sup = _supervisor(net, cells_mode="off")
    pp.runpp(net)
    _d, records = sup.on_estimate(0.0, net, _telemetry(0.0, {"line:Line 3-8": 0.25}))
    (cell,) = [r for r in records if r["tags"]["element"] == "South"]
    assert cell["fields"]["export_mw"] == pytest.approx(-0.25)


def test_curtailment_goes_to_eligible_commandable_units_only():
    net = _net()
    # a 5 MW park behind Line 10-11 overloads the branch; PV 8 (30 kWp) is not eligible
    pp.create_sgen(net, 11, p_mw=5.0, sn_mva=5.5, name="Park 11", type="PV")
    net.load.loc[:, "p_mw"] *= 0.3
    pp.runpp(net)
    assert net.res_line.loading_percent.max() > 100.0
    sup = Supervisor(SupervisorySettings(curtailment_mode="direct"), net,
                     frozenset({"sgen:Park 11", "sgen:PV 8"}))
    decisions, _r = sup.on_estimate(0.0, net, _telemetry(0.0))
    assert decisions and {d.target for d in decisions} == {"sgen:Park 11"}
    (d,) = decisions
    assert d.action == "set_der_p_limit" and 0.0 < d.value < 5.0
    net.sgen.loc[net.sgen.name == "Park 11", "p_mw"] = d.value
    pp.runpp(net)
    assert net.res_line.loading_percent.max() <= 95.0 + 0.5  # the plan's 5 % margin
    # after the hold the limit is lifted (to the rating), and looked at again next cycle
    lifted, _r = sup.on_estimate(900.0, net, _telemetry(900.0))
    assert [(x.target, x.value) for x in lifted] == [("sgen:Park 11", 5.5)]


def test_monitoring_records_the_cells_inertia_and_storage():
    net = _net("all")
    sup = _supervisor(net, cells_mode="off", monitoring=True, wind_inertia_h_s=4.0,
                      storage_inertia_h_s=4.0, schedule_times_s=(-3600.0, 3600.0),
                      schedule_p_mw=((0.0,), (0.4,)), price_times_s=(0.0,),
                      prices_eur_mwh=(61.0,))
    pp.runpp(net)
    _d, records = sup.on_estimate(0.0, net, _telemetry(0.0))
    _d, later = sup.on_estimate(3600.0, net, _telemetry(3600.0))
    (then,) = [r["fields"] for r in later if r["measurement"] == "dms_storage"]
    assert then["p_schedule_mw"] == 0.4 and then["price_eur_mwh"] == 61.0
    (cell,) = [r["fields"] for r in records if r["measurement"] == "dms_cell"]
    # CHP diesel 1 turns (H 2 s · 0.31 MVA); WKA 7's synthetic inertia is capped by its
    # 10 % headroom at 1 Hz/s (0.15 MW / 0.04), the battery's converter is idle (4 s · 1 MW)
    assert cell["rotating_mws"] == pytest.approx(2.0 * 0.31)
    assert cell["synthetic_mws"] == pytest.approx(0.15 / 0.04 + 4.0 * 1.0)
    (row,) = [r for r in records if r["measurement"] == "dms_storage"]
    assert row["tags"] == {"element": "Battery S", "cell": "South"}
    assert row["fields"]["soc"] == 0.5 and cell["storage_e_mwh"] == pytest.approx(1.0)
    assert row["fields"]["p_schedule_mw"] == 0.0


def test_an_export_limit_at_the_interface_charges_the_battery_first():
    net = _net()
    # feeder 2's trafo exports once a 3 MW park sits at Bus 14 and the loads are low
    pp.create_sgen(net, 14, p_mw=3.0, sn_mva=3.3, name="Park 14", type="PV")
    pp.create_storage(net, 13, p_mw=0.0, max_e_mwh=2.0, name="Battery F")
    net.load.loc[:, "p_mw"] *= 0.05
    pp.runpp(net)
    export = -net.res_trafo.p_hv_mw[net.trafo.name == "Trafo 0-12"].item()
    assert export > 1.0
    limit = export - 0.5
    sup = Supervisor(
        SupervisorySettings(tso_mode="direct", interface="trafo:Trafo 0-12",
                            requests=(TsoRequest(0.0, p_max_export_mw=limit),),
                            batteries=(BatteryInfo("Battery F", 2.0, 0.3),)),
        net, frozenset({"storage:Battery F", "sgen:Park 14"}))
    decisions, records = sup.on_estimate(0.0, net, _telemetry(0.0))
    by_target = {d.target: d for d in decisions}
    # the battery takes all it can (0.3 MW), the park's curtailment the rest (≈ 0.2 MW)
    assert by_target["storage:Battery F"].value == pytest.approx(0.3, abs=1e-3)
    park = by_target["sgen:Park 14"]
    assert park.action == "set_der_p_limit" and 3.0 - park.value == pytest.approx(0.2, abs=0.05)
    net.storage.loc[net.storage.name == "Battery F", "p_mw"] = 0.3
    net.sgen.loc[net.sgen.name == "Park 14", "p_mw"] = park.value
    pp.runpp(net)
    assert -net.res_trafo.p_hv_mw[net.trafo.name == "Trafo 0-12"].item() <= limit + 0.01
    (iface,) = [r["fields"] for r in records if r["measurement"] == "dms_interface"]
    assert iface["p_max_export_mw"] == limit and iface["p_mw"] == pytest.approx(-export)


def test_a_closed_tie_lets_a_neighbour_receive_what_an_open_one_does_not():
    net = _net("all")
    feeder2 = Cell("Feeder 2", ("Bus 12", "Bus 13", "Bus 14"), -11.0, 1.0)
    for closed in (False, True):
        net.switch.loc[net.switch.name == "S1", "closed"] = closed
        pp.runpp(net)
        sup = _supervisor(net, cells=(SOUTH, feeder2), cells_mode="off", monitoring=True,
                          wind_inertia_h_s=4.0, storage_inertia_h_s=4.0)
        _d, records = sup.on_estimate(0.0, net, _telemetry(0.0))
        cells = {r["tags"]["element"]: r["fields"] for r in records
                 if r["measurement"] == "dms_cell"}
        south, f2 = cells["South"], cells["Feeder 2"]
        if not closed:  # S1 open: Line 14-8 carries nothing
            assert south["deliverable_mws"] == f2["receivable_mws"] == 0.0
        else:  # South's whole response fits through the closed tie's spare capacity
            whole = south["rotating_mws"] + south["synthetic_mws"]
            assert south["deliverable_mws"] == pytest.approx(whole)
            assert f2["receivable_mws"] == pytest.approx(whole)
