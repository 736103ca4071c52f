"""The DMS interface as JSON messages (twin/dms/wire.py): what goes over the wire comes back
equal, bit for bit where it is a number."""

from __future__ import annotations

import json
import math

import numpy as np
import pandapower.networks as pn
import pandas as pd
import pytest

from twin.dms import wire
from twin.dms.api import DeviceInfo, DMSContext, DMSStep, PointInfo, checked_step
from twin.dms.decisions import Decision
from twin.dms.forecast import ProfileForecast


def make_context() -> DMSContext:
    """A small DMS database: CIGRE MV with awkward floats, two RTUs, two devices (also
    used by test_remote.py)."""
    net = pn.create_cigre_network_mv(with_der="pv_wind")
    rng = np.random.default_rng(3)
    # values pandapower's JSON (15 digits, pandas' fast parser) would not give back exactly
    net.line["length_km"] = net.line["length_km"] * rng.uniform(0.5, 2.0, len(net.line))
    net.load["p_mw"] = rng.uniform(0, 1, len(net.load)) * 10.0 ** rng.integers(
        -13, 1, len(net.load))
    points = (PointInfo("RTU A", "Bus 1 V", "bus:Bus 1", "vm_pu", 0.002, 10.0),
              PointInfo("RTU A", "Trafo tap", "trafo:Trafo 0-1", "tap_pos", 0.0, 10.0))
    n_load, n_sgen = len(net.load), len(net.sgen)
    forecast = ProfileForecast(
        load_kinds=tuple(["residential", None] * n_load)[:n_load],
        is_pv=np.arange(n_sgen) % 2 == 0, is_wind=np.arange(n_sgen) % 2 == 1,
        clear_sky_ghi_w_m2=np.linspace(0, 900, 13), weather_step_s=300.0,
        start_hour_utc=6.0, longitude_deg=10.0)
    return DMSContext(
        net=net, rtus=(("RTU A", 10.0, points), ("RTU B", 30.0, ())),
        devices=(DeviceInfo("trafo:Trafo 0-1", "trafo:Trafo 0-1", ("set_tap",), "RTU A"),
                 DeviceInfo("switch:S1", "switch:S1", ("open", "close"), None, manual=True)),
        forecast=forecast, band_pu=(0.95, 1.05), start_utc="2026-06-21T08:00:00+00:00",
        step_s=300.0, duration_s=3600.0, cycle_s=60.0, cycle_offset_s=5.0, seed=11,
        manual_switches=("S1",), switch_ratings={"S1": (16.0, None), "S2": (20.0, 50.0)})


def _frames_identical(a, b) -> list[str]:
    """Tables of two nets that differ: values (floats bit for bit), dtypes, index."""
    differ = []
    for name, frame in a.items():
        if not isinstance(frame, pd.DataFrame):
            continue
        other = b[name]
        if list(frame.columns) != list(other.columns) or not frame.index.equals(other.index) \
                or list(frame.dtypes) != list(other.dtypes):
            differ.append(name)
            continue
        for column in frame.columns:
            x, y = frame[column], other[column]
            if x.dtype.kind == "f":
                u, v = x.to_numpy(), y.to_numpy()
                if not ((u == v) | (np.isnan(u) & np.isnan(v))).all():
                    differ.append(f"{name}.{column}")
            elif not x.equals(y):
                differ.append(f"{name}.{column}")
    return differ


def test_context_round_trip_through_json_text_is_equal_in_everything():
    context = make_context()
    data = wire.context_to_json(context)
    assert data["net_exact"]  # some values needed the exact list beside the JSON text
    back = wire.context_from_json(json.loads(json.dumps(data, allow_nan=False)))

    assert _frames_identical(context.net, back.net) == []
    for name in ("rtus", "devices", "band_pu", "start_utc", "step_s", "duration_s", "cycle_s",
                 "cycle_offset_s", "seed", "manual_switches", "switch_ratings"):
        assert getattr(back, name) == getattr(context, name), name
    assert back.points == context.points
    # the forecast at the sample times (every step_s over [0, duration_s]) is the same
    for t in np.arange(0.0, 3600.0 + 1, 300.0):
        for mine, theirs in zip(context.forecast(t), back.forecast(t)):
            np.testing.assert_array_equal(mine, theirs)


def test_the_network_model_is_decoded_on_first_use():
    back = wire.context_from_json(json.loads(json.dumps(wire.context_to_json(make_context()))))
    assert isinstance(back._net, wire._NetText)
    assert len(back.net.bus) == 15
    assert back.net is back.net  # decoded once


def test_forecast_table_is_sampled_every_step_and_read_at_or_before():
    calls = []

    def forecast(t_s):
        calls.append(t_s)
        return np.array([t_s, 2 * t_s]), np.array([t_s / 10])

    table = wire.forecast_table(forecast, step_s=60.0, duration_s=300.0)
    assert table["times_s"] == [0.0, 60.0, 120.0, 180.0, 240.0, 300.0]
    assert table["load_factor"][2] == [120.0, 240.0]
    f = wire.TableForecast(np.array(table["times_s"]), np.array(table["load_factor"]),
                           np.array(table["sgen_factor"]))
    assert f(119.9)[0].tolist() == [60.0, 120.0]      # the sample before
    assert f(120.0)[0].tolist() == [120.0, 240.0]     # at
    assert f(-5.0)[1].tolist() == [0.0]               # before the first: the first
    assert f(1e6)[1].tolist() == [30.0]               # after the last: the last


def test_a_long_run_s_forecast_is_sampled_coarser_at_a_multiple_of_the_step(monkeypatch):
    monkeypatch.setattr(wire, "MAX_FORECAST_VALUES", 30)
    table = wire.forecast_table(lambda t: (np.zeros(2), np.zeros(1)), 1.0, 99.0)
    assert len(table["times_s"]) * 3 <= 30
    assert table["times_s"][:3] == [0.0, 10.0, 20.0]


def _step() -> DMSStep:
    decision = Decision(65.0, "volt_var", "set_tap", "trafo:Trafo 0-1", 2.0, "direct",
                        "Bus 14 at 1.061 p.u. is above 1.045 p.u.",
                        {"vm_max_pu": 1.061, "bus": "Bus 14", "bad": math.nan})
    advice = Decision(65.0, "flisr", "none", "line:Line 3", None, "advisory", "hold", {})
    return DMSStep(
        commands=[{"id": "c-1", "target": "trafo:Trafo 0-1", "action": "set_tap",
                   "value": 2.0, "source": "volt_var"},
                  {"id": "c-2", "target": "switch:S1", "action": "open", "value": None,
                   "source": "flisr"}],
        decisions=[decision, advice],
        records=[{"measurement": "dms_estimate", "t_s": 65.0, "tags": {"element": "Bus 1"},
                  "fields": {"vm_pu": 1.0123456789012345, "chi2": math.inf}}],
        next_call_s=math.inf)


def test_step_round_trip_with_infinity_and_none():
    step = _step()
    line = wire.encode(wire.step_reply(step))
    assert b"Infinity" not in line and b"NaN" not in line and line.endswith(b"\n")
    back = wire.step_from_reply(wire.decode(line))

    assert back.next_call_s == math.inf
    assert back.commands == step.commands
    assert back.decisions[1] == step.decisions[1]
    first = back.decisions[0]
    assert first.inputs == {"vm_max_pu": 1.061, "bus": "Bus 14", "bad": None}  # NaN: null
    assert (first.t_s, first.action, first.value, first.reason) == (
        65.0, "set_tap", 2.0, step.decisions[0].reason)
    assert back.records[0]["fields"] == {"vm_pu": 1.0123456789012345, "chi2": None}
    # what the twin checks passes
    assert checked_step(back, 65.0).next_call_s == math.inf


def test_a_finite_next_call_travels_as_a_number():
    back = wire.step_from_reply(wire.decode(wire.encode(wire.step_reply(
        DMSStep(next_call_s=125.0)))))
    assert back.next_call_s == 125.0 and back.commands == back.decisions == []


def test_step_request_round_trip_restores_nan_telemetry():
    rows = [{"element": "bus:Bus 1", "quantity": "vm_pu", "value": np.float64(1.02),
             "source_t_s": 60.0, "delivery_t_s": 60.4, "sigma": 0.002, "rtu": "RTU A"},
            {"element": "bus:Bus 2", "quantity": "vm_pu", "value": math.nan,
             "source_t_s": 60.0, "delivery_t_s": 60.4, "sigma": 0.002}]
    outcomes = [{"id": "c-1", "status": "success", "applied_t_s": None, "result_t_s": 61.0}]
    t_s, telemetry, back = wire.request_from_json(wire.decode(wire.encode(
        wire.step_request(65.0, rows, outcomes))))
    assert t_s == 65.0 and back == outcomes
    assert telemetry[0] == {**rows[0], "value": 1.02}
    assert math.isnan(telemetry[1]["value"])


def test_a_malformed_decision_is_left_for_checked_step_to_refuse():
    back = wire.step_from_reply({"type": "step", "decisions": [{"function": "x"}],
                                 "next_call_s": None})
    with pytest.raises(ValueError, match="decisions\\[0\\] lacks"):
        checked_step(back, 0.0)


def test_decode_refuses_what_is_not_a_message():
    with pytest.raises(wire.ProtocolError, match="invalid JSON"):
        wire.decode(b"{nope\n")
    with pytest.raises(wire.ProtocolError, match="string 'type'"):
        wire.decode(b"[1, 2]\n")


def test_encode_refuses_values_json_cannot_hold():
    with pytest.raises(TypeError, match="JSON-like"):
        wire.encode({"type": "x", "value": object()})
