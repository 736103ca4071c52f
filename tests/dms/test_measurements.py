"""Telemetry → pandapower measurements, stale handling, and the DMS's own topology."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twin.dms.measurements import (
    MEASUREMENT_COLUMNS,
    TELEMETRY_COLUMNS,
    apply_switch_states,
    apply_tap_positions,
    telemetry_frame,
    to_pandapower_measurements,
)
from twin.dms.synthetic_telemetry import cigre_truth


def _row(element, quantity, value, t_s=0.0, sigma=0.01, delivery_t_s=None):
    return {"element": element, "quantity": quantity, "value": value, "source_t_s": t_s,
            "delivery_t_s": t_s + 0.5 if delivery_t_s is None else delivery_t_s,
            "sigma": sigma}


@pytest.fixture(scope="module")
def net():
    return cigre_truth()


def test_telemetry_frame_columns_dtypes_and_defaults():
    frame = telemetry_frame([{"element": "switch:S1", "quantity": "closed", "value": True,
                              "source_t_s": 3}])
    assert tuple(frame.columns) == TELEMETRY_COLUMNS
    assert frame.loc[0, "value"] == 1.0
    assert np.isnan(frame.loc[0, "sigma"]) and np.isnan(frame.loc[0, "delivery_t_s"])
    assert frame["source_t_s"].dtype == float
    with pytest.raises(ValueError, match="source_t_s"):
        telemetry_frame([{"element": "bus:Bus 1", "quantity": "vm_pu", "value": 1.0}])


def test_mapping_to_pandapower_rows(net):
    rows = [_row("bus:Bus 3", "vm_pu", 0.96, sigma=0.005),
            _row("line:Line 3-4", "p_mw", 1.2, sigma=0.05),
            _row("trafo:Trafo 0-12", "q_mvar", 4.0, sigma=0.25),
            _row("line:Line 1-2", "i_ka", 0.1, sigma=0.0015),
            _row("bus:Bus 5", "p_mw", 0.66, sigma=0.02),
            _row("switch:S1", "closed", 0.0, sigma=np.nan),      # topology, not a measurement
            _row("line:Line 1-2", "loading_percent", 40.0, sigma=np.nan)]  # derived
    meas, stale = to_pandapower_measurements(net, rows, now_s=1.0, stale_after_s=60.0)
    assert stale == []
    assert tuple(meas.columns) == MEASUREMENT_COLUMNS
    got = {(r.ref, r.quantity): (r.measurement_type, r.element_type, r.element, r.side,
                                 r.value, r.std_dev) for r in meas.itertuples()}
    line34 = int(net.line.index[net.line.name == "Line 3-4"][0])
    line12 = int(net.line.index[net.line.name == "Line 1-2"][0])
    trafo = int(net.trafo.index[net.trafo.name == "Trafo 0-12"][0])
    assert got == {
        ("bus:Bus 3", "vm_pu"): ("v", "bus", 3, None, 0.96, 0.005),
        ("line:Line 3-4", "p_mw"): ("p", "line", line34, "from", 1.2, 0.05),
        ("trafo:Trafo 0-12", "q_mvar"): ("q", "trafo", trafo, "hv", 4.0, 0.25),
        ("line:Line 1-2", "i_ka"): ("i", "line", line12, "from", 0.1, 0.0015),
        ("bus:Bus 5", "p_mw"): ("p", "bus", 5, None, 0.66, 0.02),
    }
    assert (meas["source"] == "telemetry").all()


def test_newest_value_wins_whatever_the_row_order(net):
    old = _row("bus:Bus 3", "vm_pu", 0.90, t_s=10.0)
    new = _row("bus:Bus 3", "vm_pu", 0.96, t_s=20.0)
    lost = _row("bus:Bus 3", "vm_pu", np.nan, t_s=30.0)  # a lost reading never wins
    for rows in ([old, new, lost], [lost, new, old]):
        meas, _ = to_pandapower_measurements(net, rows, now_s=25.0, stale_after_s=60.0)
        assert meas["value"].tolist() == [0.96]
        assert meas["source_t_s"].tolist() == [20.0]
    # same scan time: the later delivery is the newer copy
    a = _row("bus:Bus 3", "vm_pu", 0.95, t_s=20.0, delivery_t_s=21.0)
    b = _row("bus:Bus 3", "vm_pu", 0.97, t_s=20.0, delivery_t_s=22.0)
    meas, _ = to_pandapower_measurements(net, [b, a], now_s=25.0, stale_after_s=60.0)
    assert meas["value"].tolist() == [0.97]


def test_stale_values_are_dropped_and_reported(net):
    rows = [_row("bus:Bus 3", "vm_pu", 0.96, t_s=100.0),
            _row("bus:Bus 4", "vm_pu", 0.95, t_s=20.0, sigma=0.005)]   # 90 s old at 110 s
    meas, stale = to_pandapower_measurements(net, rows, now_s=110.0, stale_after_s=60.0)
    assert meas["ref"].tolist() == ["bus:Bus 3"]
    assert stale == [{"element": "bus:Bus 4", "quantity": "vm_pu", "value": 0.95,
                      "source_t_s": 20.0, "age_s": 90.0, "action": "dropped"}]
    meas, stale = to_pandapower_measurements(net, rows, now_s=110.0, stale_after_s=60.0,
                                             stale_mode="downweight", downweight_factor=10.0)
    assert meas.set_index("ref")["std_dev"].to_dict() == pytest.approx(
        {"bus:Bus 3": 0.01, "bus:Bus 4": 0.05})
    assert meas.set_index("ref")["stale"].to_dict() == {"bus:Bus 3": False, "bus:Bus 4": True}
    assert [s["action"] for s in stale] == ["downweighted"]
    with pytest.raises(ValueError, match="stale_mode"):
        to_pandapower_measurements(net, rows, now_s=110.0, stale_after_s=60.0,
                                   stale_mode="ignore")


@pytest.mark.parametrize("element, match", [
    ("bus:Bus 99", "no bus called 'Bus 99'"),
    ("feeder:F1", "no element table 'feeder'"),
    ("Bus 3", "expected '<table>:<name>'"),
    ("switch:S9", "no switch called 'S9'"),
])
def test_unknown_names_give_a_clear_value_error(net, element, match):
    rows = [_row("bus:Bus 3", "vm_pu", 0.96), _row(element, "vm_pu", 1.0)]
    with pytest.raises(ValueError, match=match):
        to_pandapower_measurements(net, rows, now_s=1.0, stale_after_s=60.0)


def test_missing_meter_sigma_is_an_error(net):
    with pytest.raises(ValueError, match="sigma"):
        to_pandapower_measurements(net, [_row("bus:Bus 3", "vm_pu", 0.96, sigma=np.nan)],
                                   now_s=1.0, stale_after_s=60.0)


def test_apply_switch_states_uses_the_newest_state_on_a_copy(net):
    s1 = int(net.switch.index[net.switch.name == "S1"][0])
    assert not net.switch.at[s1, "closed"]
    rows = [_row("switch:S1", "closed", 0.0, t_s=5.0, sigma=np.nan),
            _row("switch:S1", "closed", 1.0, t_s=9.0, sigma=np.nan),
            _row("bus:Bus 3", "vm_pu", 0.96)]
    out = apply_switch_states(net, pd.DataFrame(rows))
    assert bool(out.switch.at[s1, "closed"]) is True
    assert not net.switch.at[s1, "closed"]          # the caller's net is untouched
    others = net.switch.index != s1
    assert (out.switch.closed[others] == net.switch.closed[others]).all()
    with pytest.raises(ValueError, match="S7"):
        apply_switch_states(net, [_row("switch:S7", "closed", 1.0, sigma=np.nan)])


def test_apply_tap_positions_on_a_copy(net):
    out = apply_tap_positions(net, [_row("trafo:Trafo 0-1", "tap_pos", 2.0, sigma=np.nan)])
    assert out.trafo.at[0, "tap_pos"] == 2
    assert net.trafo.at[0, "tap_pos"] == 0
