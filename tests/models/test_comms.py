"""SCADA telemetry and commands (twin.models.comms): latency, loss, outages, bandwidth,
noise, quantisation and the command/acknowledgement path, with real numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from tests.models.recording_apply import RecordingApply
from twin.models.comms import (
    CommNetwork,
    LatencySpec,
    LinkSpec,
    Measurement,
    PointSpec,
    RTUSpec,
)

LOGNORMAL = LatencySpec(fixed_s=0.040, kind="lognormal", mean_s=0.060, sigma_s=0.050)
NO_JITTER = LatencySpec(fixed_s=0.5)


def vm_point(name: str = "v", noise_pct: float = 0.5, quantum: float | None = None) -> PointSpec:
    return PointSpec(name, "vm_pu", (0.8, 1.2), noise_pct=noise_pct, quantum=quantum)


def network(rtus: list[RTUSpec], seed: int = 1, **kwargs) -> CommNetwork:
    rngs = {r.name: np.random.default_rng([seed, i]) for i, r in enumerate(rtus)}
    return CommNetwork(simpy.Environment(), rtus, rngs, **kwargs)


def run_scans(net: CommNetwork, t1_s: float, truth: dict[str, dict]) -> list[Measurement]:
    """Scan every RTU on its schedule in [0, t1_s), then run on until all is delivered."""
    delivered: list[Measurement] = []
    for t, name in net.scan_times(0.0, t1_s):
        net.scan(name, truth[name], t_s=t)
    delivered += net.advance_to(t1_s + 100.0)[0]
    return delivered


# --------------------------------------------------------------------------- latency spec
def test_lognormal_is_parameterised_by_its_own_mean_and_sigma():
    # sigma_n² = ln(1 + (50/60)²) = ln(1.69444) = 0.527355; mu_n = ln 0.06 − 0.263677
    mu, sigma_n = LOGNORMAL._lognormal_mu_sigma()
    assert sigma_n**2 == pytest.approx(0.527355, abs=1e-6)
    assert mu == pytest.approx(math.log(0.06) - 0.263677, abs=1e-6)
    x = LOGNORMAL.sample(np.random.default_rng(0), 400_000) - 0.040
    assert x.mean() == pytest.approx(0.060, rel=0.01)
    assert x.std() == pytest.approx(0.050, rel=0.02)
    assert LOGNORMAL.mean_latency_s() == pytest.approx(0.100)
    # p95 = 0.04 + exp(mu + 1.644854 sigma_n)
    assert LOGNORMAL.quantile_s(0.95) == pytest.approx(
        0.040 + math.exp(mu + 1.6448536 * sigma_n), rel=1e-7)
    assert LOGNORMAL.quantile_s(0.95) == pytest.approx(np.quantile(x, 0.95) + 0.040, rel=0.01)


def test_exponential_and_uniform_quantiles_by_hand():
    exp = LatencySpec(fixed_s=0.005, kind="exponential", mean_s=0.001)
    assert exp.quantile_s(0.5) == pytest.approx(0.005 + 0.001 * math.log(2))
    assert exp.mean_latency_s() == pytest.approx(0.006)
    # Mean 0.1 s, sigma 0.05/√3 s: half-width √3·sigma = 0.05 s → U(0.05, 0.15).
    uni = LatencySpec(fixed_s=0.0, kind="uniform", mean_s=0.1, sigma_s=0.05 / math.sqrt(3))
    assert uni.quantile_s(0.95) == pytest.approx(0.05 + 0.95 * 0.10)
    assert uni.sample(np.random.default_rng(0), 1000).min() >= 0.05
    # Without sigma: U(0, 2·mean)
    assert LatencySpec(0.0, "uniform", 0.1).quantile_s(0.25) == pytest.approx(0.05)
    assert NO_JITTER.quantile_s(0.99) == 0.5
    # A random part of mean 0 is none at all, whatever its kind (scenario defaults).
    flat = LatencySpec(fixed_s=0.005, kind="lognormal", mean_s=0.0)
    assert flat.quantile_s(0.99) == 0.005
    np.testing.assert_array_equal(flat.sample(np.random.default_rng(0), 3), 0.005)


@pytest.mark.parametrize("kwargs, match", [
    (dict(fixed_s=-0.1), "fixed_s"),
    (dict(fixed_s=0.0, kind="lognormal", mean_s=0.06), "sigma_s"),
    (dict(fixed_s=0.0, kind="gamma", mean_s=0.06), "kind"),
    (dict(fixed_s=0.0, kind="none", mean_s=0.06), "no random part"),
    (dict(fixed_s=0.0, kind="exponential", mean_s=0.06, sigma_s=0.01), "exponential"),
    (dict(fixed_s=0.0, kind="uniform", mean_s=0.01, sigma_s=0.01), "uniform"),
    (dict(fixed_s=0.0, kind="uniform", mean_s=0.0, sigma_s=0.01), "no random part"),
])
def test_latency_spec_refuses_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LatencySpec(**kwargs)


def test_presets():
    fibre, cell = LinkSpec.fibre(), LinkSpec.cellular()
    assert fibre.uplink.fixed_s == 0.005 and fibre.loss_prob == 1e-4
    assert fibre.uplink.quantile_s(0.99) < 0.010
    assert cell.uplink == LOGNORMAL and cell.loss_prob == 0.01


@pytest.mark.parametrize("build, match", [
    (lambda: LinkSpec(NO_JITTER, NO_JITTER, loss_prob=1.5), "loss_prob"),
    (lambda: LinkSpec(NO_JITTER, NO_JITTER, bandwidth_bps=0.0), "bandwidth_bps"),
    (lambda: LinkSpec(NO_JITTER, NO_JITTER, outages=((10.0, 5.0),)), "outages"),
    (lambda: PointSpec("v", "vm_pu", (1.2, 0.8)), "range"),
    (lambda: PointSpec("v", "vm_pu", (0.8, 1.2), noise_pct=-1), "noise_pct"),
    (lambda: PointSpec("v", "vm_pu", (0.8, 1.2), quantum=0.0), "quantum"),
    (lambda: RTUSpec("R", (vm_point(), vm_point()), 1.0, LinkSpec.fibre()), "unique"),
    (lambda: RTUSpec("R", (vm_point(),), 0.0, LinkSpec.fibre()), "scan_period_s"),
])
def test_specs_refuse_bad_parameters(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_network_refuses_missing_generator_unknown_rtu_and_time_going_back():
    rtu = RTUSpec("R1", (vm_point(),), 1.0, LinkSpec.fibre())
    with pytest.raises(ValueError, match="missing"):
        CommNetwork(simpy.Environment(), [rtu], {})
    net = network([rtu])
    with pytest.raises(ValueError, match="unknown RTU"):
        net.scan("R9", {"v": 1.0})
    with pytest.raises(ValueError, match="lacks point 'v'"):
        net.scan("R1", {"x": 1.0})
    net.advance_to(10.0)
    with pytest.raises(ValueError, match="time runs forward"):
        net.advance_to(9.0)


# --------------------------------------------------------------------------- schedule
def test_scan_schedule():
    a = RTUSpec("A", (vm_point(),), 2.5, LinkSpec.fibre(), scan_offset_s=1.0)
    b = RTUSpec("B", (vm_point(),), 4.0, LinkSpec.fibre())
    idle = RTUSpec("C", (), 1.0, LinkSpec.fibre())  # commands only: never scans
    np.testing.assert_allclose(a.scan_times(0.0, 10.0), [1.0, 3.5, 6.0, 8.5])
    assert a.next_scan_s(0.0) == 1.0 and a.next_scan_s(3.5) == 6.0 and a.next_scan_s(3.4) == 3.5
    net = network([a, b, idle])
    assert net.scan_times(0.0, 8.5) == [(0.0, "B"), (1.0, "A"), (3.5, "A"), (4.0, "B"),
                                        (6.0, "A"), (8.0, "B")]
    assert net.next_scan_s(4.0) == 6.0
    assert net.next_scan_s(-1.0) == 0.0


def test_advance_to_delivers_events_due_exactly_then():
    rtu = RTUSpec("R", (vm_point(noise_pct=0.0),), 1.0, LinkSpec(NO_JITTER, NO_JITTER))
    net = network([rtu])
    net.scan("R", {"v": 1.0})
    assert net.next_event_s() == 0.5
    assert net.advance_to(0.4) == ([], [])
    (m,), outcomes = net.advance_to(0.5)
    assert (m.rtu, m.point, m.quantity, m.source_t_s, m.delivery_t_s) == ("R", "v", "vm_pu",
                                                                          0.0, 0.5)
    assert m.value == pytest.approx(1.0, abs=0.4 / 4095 / 2 + 1e-12) and outcomes == []
    assert net.next_event_s() == math.inf


def test_a_measurement_carries_its_grid_element_and_sigma():
    # the receiver places and weighs the value without the point specs or the point name
    point = PointSpec("ev:Bus 10/p_mw", "p_mw", (-2.0, 2.0), noise_pct=0.5,
                      element="load:EV Bus 10")
    rtu = RTUSpec("R", (point,), 1.0, LinkSpec(NO_JITTER, NO_JITTER))
    net = network([rtu])
    net.scan("R", {"ev:Bus 10/p_mw": 0.3})
    (m,), _ = net.advance_to(0.5)
    assert (m.point, m.element, m.quantity) == ("ev:Bus 10/p_mw", "load:EV Bus 10", "p_mw")
    assert m.sigma == pytest.approx(0.005 * 4.0)  # 0.5 % of the 4 MW range


# --------------------------------------------------------------------------- latency, loss
def test_delivered_latency_statistics_and_loss_rate_match_the_configured_link():
    link = LinkSpec(uplink=LOGNORMAL, downlink=LOGNORMAL, loss_prob=0.05)
    rtu = RTUSpec("R", (vm_point(),), 1.0, link)
    net = network([rtu], seed=7)
    delivered = run_scans(net, 10_000.0, {"R": {"v": 1.0}})

    source = np.array([m.source_t_s for m in delivered])
    latency = np.array([m.delivery_t_s for m in delivered]) - source
    # Source timestamps are the scan times; latency is never below the fixed part.
    np.testing.assert_array_equal(source, np.floor(source))
    assert latency.min() >= LOGNORMAL.fixed_s
    # Analytic: mean 0.100 s, p95 = 0.04 + exp(mu + 1.645 sigma_n) = 0.1922 s.
    assert LOGNORMAL.quantile_s(0.95) == pytest.approx(0.19219, abs=1e-5)
    assert latency.mean() == pytest.approx(LOGNORMAL.mean_latency_s(), rel=0.05)
    assert np.quantile(latency, 0.95) == pytest.approx(LOGNORMAL.quantile_s(0.95), rel=0.05)
    loss_rate = 1.0 - len(delivered) / 10_000
    assert abs(loss_rate - 0.05) < 0.01
    assert net.stats()["R"] == {"sent": 10_000, "delivered": len(delivered),
                                "lost_random": 10_000 - len(delivered), "lost_outage": 0}


def test_same_seeds_same_deliveries_and_rtus_do_not_share_draws():
    link = LinkSpec(LOGNORMAL, LOGNORMAL, loss_prob=0.1)
    a = RTUSpec("A", (vm_point("v1"), vm_point("v2")), 2.0, link)
    b = RTUSpec("B", (vm_point("v1"),), 3.0, link)
    truth = {"A": {"v1": 1.0, "v2": 1.01}, "B": {"v1": 0.99}}

    def deliveries(rtus, rngs):
        net = CommNetwork(simpy.Environment(), rtus, rngs)
        return [(m.rtu, m.point, m.value, m.source_t_s, m.delivery_t_s)
                for m in run_scans(net, 600.0, truth)]

    def rng(seed):
        return np.random.default_rng(seed)

    first = deliveries([a, b], {"A": rng(1), "B": rng(2)})
    assert first == deliveries([a, b], {"A": rng(1), "B": rng(2)})
    assert first != deliveries([a, b], {"A": rng(3), "B": rng(2)})
    # A's deliveries are the same with or without B on the network.
    only_a = deliveries([a], {"A": rng(1)})
    assert [d for d in first if d[0] == "A"] == only_a


# --------------------------------------------------------------------------- outages
def test_nothing_is_delivered_in_an_outage_window_and_everything_else_arrives():
    windows = ((100.0, 200.0), (500.0, 650.0))
    link = LinkSpec(NO_JITTER, NO_JITTER, loss_prob=0.0, outages=windows)
    # Scans at k + 0.7 take 0.5 s: the scan at 99.7 would arrive at 100.2, in the window.
    rtu = RTUSpec("R", (vm_point(),), 1.0, link, scan_offset_s=0.7)
    net = network([rtu])
    delivered = run_scans(net, 1000.0, {"R": {"v": 1.0}})

    def touches(t0, t1):
        return any(t0 < end and t1 >= start for start, end in windows)

    delivery = np.array([m.delivery_t_s for m in delivered])
    source = np.array([m.source_t_s for m in delivered])
    assert not any(start <= t < end for t in delivery for start, end in windows)
    assert not any(start <= t < end for t in source for start, end in windows)
    expected = [k + 0.7 for k in range(1000) if not touches(k + 0.7, k + 1.2)]
    np.testing.assert_allclose(source, expected)
    assert 99.7 not in source and 199.7 not in source and 200.7 in source
    # Per window: the scans from 99.7 to 199.7 (101) and 499.7 to 649.7 (151) are lost.
    assert len(delivered) == 1000 - 101 - 151
    assert net.stats()["R"]["lost_outage"] == 252


# --------------------------------------------------------------------------- noise
def test_noise_sigma_is_noise_pct_of_range_and_values_sit_on_the_12_bit_grid():
    points = tuple(vm_point(f"v{i}", noise_pct=0.5) for i in range(20))
    rtu = RTUSpec("R", points, 1.0, LinkSpec(NO_JITTER, NO_JITTER))
    net = network([rtu], seed=3)
    truth = {p.name: 1.0123 for p in points}
    delivered = run_scans(net, 1000.0, {"R": truth})
    assert len(delivered) == 20_000
    value = np.array([m.value for m in delivered])
    error = value - 1.0123
    # sigma = 0.5 % of (1.2 − 0.8) = 0.002 pu; the 12-bit step is 0.4 / 4095 = 9.77e-5 pu.
    assert error.std() == pytest.approx(0.002, rel=0.05)
    assert abs(error.mean()) < 3 * 0.002 / math.sqrt(20_000)
    codes = (value - 0.8) / (0.4 / 4095)
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-6)


def test_explicit_quantum_and_boolean_points():
    points = (PointSpec("p", "p_mw", (-10.0, 10.0), noise_pct=1.0, quantum=0.1),
              PointSpec("sw", "closed", (0.0, 1.0), noise_pct=5.0),
              PointSpec("tap", "tap_pos", (0.0, 1.0), noise_pct=0.0, quantum=1.0))
    rtu = RTUSpec("R", points, 1.0, LinkSpec(NO_JITTER, NO_JITTER))
    net = network([rtu], seed=4)
    delivered = run_scans(net, 2000.0, {"R": {"p": 3.14159, "sw": True, "tap": -2}})
    p = np.array([m.value for m in delivered if m.point == "p"])
    np.testing.assert_allclose((p + 10.0) / 0.1, np.round((p + 10.0) / 0.1), atol=1e-9)
    assert (p - 3.14159).std() == pytest.approx(0.2, rel=0.05)  # 1 % of 20 MW
    switch = [m.value for m in delivered if m.point == "sw"]
    assert all(v is True for v in switch) and len(switch) == 2000
    # Discrete, noiseless, outside the nominal range: not clipped, exactly on the grid.
    assert {m.value for m in delivered if m.point == "tap"} == {-2.0}


# --------------------------------------------------------------------------- bandwidth
def test_slow_link_queues_messages_in_order():
    # 50 points × 64 bytes = 25 600 bit at 9600 bit/s: 2.667 s per message, scans every 1 s.
    points = tuple(vm_point(f"v{i}", noise_pct=0.0) for i in range(50))
    link = LinkSpec(LatencySpec(0.01), LatencySpec(0.01), bandwidth_bps=9600.0)
    rtu = RTUSpec("R", points, 1.0, link)
    net = network([rtu])
    truth = {p.name: 1.0 for p in points}
    for k in range(10):
        net.scan("R", truth, t_s=float(k))
    delivered = net.advance_to(100.0)[0]
    tx_s = 50 * 64 * 8 / 9600.0
    by_message = sorted({(m.source_t_s, m.delivery_t_s) for m in delivered})
    assert [s for s, _d in by_message] == [float(k) for k in range(10)]
    # Transmitter busy from t = 0 on: message k ends transmitting at (k + 1)·tx.
    np.testing.assert_allclose([d for _s, d in by_message],
                               [(k + 1) * tx_s + 0.01 for k in range(10)], rtol=1e-12)
    # Deliveries come out in order, each message's points together.
    times = [m.delivery_t_s for m in delivered]
    assert times == sorted(times)


def test_fast_link_does_not_queue():
    points = tuple(vm_point(f"v{i}") for i in range(50))
    link = LinkSpec(LatencySpec(0.01), LatencySpec(0.01), bandwidth_bps=1e9)
    net = network([RTUSpec("R", points, 1.0, link)])
    for k in range(5):
        net.scan("R", {p.name: 1.0 for p in points}, t_s=float(k))
    latency = [m.delivery_t_s - m.source_t_s for m in net.advance_to(10.0)[0]]
    # Each message finds the transmitter free: only its own 25.6 µs of transmission.
    np.testing.assert_allclose(latency, 0.01 + 3200 * 8 / 1e9, rtol=1e-9)


# --------------------------------------------------------------------------- commands
def command_net(down_s=0.2, up_s=0.3, loss_prob=0.0, outages=()):
    link = LinkSpec(uplink=LatencySpec(up_s), downlink=LatencySpec(down_s),
                    loss_prob=loss_prob, outages=outages)
    return network([RTUSpec("R", (), 1.0, link)])


Device = RecordingApply  # a device that records when it was applied


def test_command_success_is_applied_after_the_downlink_and_acknowledged_after_the_uplink():
    net = command_net()
    device = Device()
    net.send_command("c1", "R", "switch:S1", "open", None, device, t_s=10.0)
    assert net.advance_to(10.4) == ([], [])
    assert device.calls == [pytest.approx(10.2)]
    _m, (out,) = net.advance_to(11.0)
    assert (out.command_id, out.rtu, out.target, out.action, out.status) == (
        "c1", "R", "switch:S1", "open", "success")
    assert (out.sent_t_s, out.applied_t_s, out.result_t_s) == pytest.approx((10.0, 10.2, 10.5))
    assert net.stats()["R"] == {"sent": 2, "delivered": 2, "lost_random": 0, "lost_outage": 0}


def test_lost_command_times_out_at_sent_plus_timeout():
    net = command_net(loss_prob=1.0)
    device = Device()
    net.send_command("c1", "R", "trafo:T1", "set_tap", 2, device, t_s=10.0)
    _m, (out,) = net.advance_to(20.0)
    assert (out.status, out.result_t_s, out.applied_t_s) == ("timeout", 15.0, None)
    assert device.calls == [] and "lost" in out.reason
    assert net.stats()["R"]["lost_random"] == 1


def test_refused_command_fails_with_a_reason():
    net = command_net()
    net.send_command("c1", "R", "switch:S1", "close", None, Device(accept=False), t_s=10.0)
    _m, (out,) = net.advance_to(20.0)
    assert (out.status, out.applied_t_s) == ("failed", None)
    assert out.result_t_s == pytest.approx(10.5) and "refused" in out.reason


def test_lost_acknowledgement_times_out_although_the_device_applied_the_command():
    # Command journey [10, 10.2] misses the outage; the acknowledgement's [10.2, 10.5] does not.
    net = command_net(outages=((10.3, 11.0),))
    device = Device()
    net.send_command("c1", "R", "switch:S1", "open", None, device, t_s=10.0)
    _m, (out,) = net.advance_to(20.0)
    assert (out.status, out.result_t_s) == ("timeout", 15.0)
    assert out.applied_t_s == pytest.approx(10.2) and device.calls == [pytest.approx(10.2)]
    assert "acknowledgement lost" in out.reason
    assert net.stats()["R"]["lost_outage"] == 1


def test_late_acknowledgement_and_command_still_in_transit_at_the_deadline():
    net = command_net(up_s=6.0)  # ack at 16.2, after the 15.0 deadline
    net.send_command("c1", "R", "switch:S1", "open", None, Device(), t_s=10.0)
    _m, (out,) = net.advance_to(15.0)
    assert (out.status, out.result_t_s) == ("timeout", 15.0)
    assert out.applied_t_s == pytest.approx(10.2) and "late" in out.reason
    assert net.advance_to(30.0) == ([], [])  # the late ack changes nothing

    slow = command_net(down_s=7.0)
    device = Device()
    slow.send_command("c2", "R", "switch:S1", "open", None, device, t_s=10.0)
    _m, (out,) = slow.advance_to(15.0)
    assert (out.status, out.applied_t_s) == ("timeout", None) and device.calls == []
    assert slow.advance_to(30.0) == ([], [])
    assert device.calls == [17.0]  # a stale command still operates the device


def test_commands_and_telemetry_come_out_in_delivery_order():
    link = LinkSpec(LatencySpec(0.3), LatencySpec(0.2))
    net = network([RTUSpec("R", (vm_point(),), 1.0, link)])
    net.send_command("c1", "R", "switch:S1", "open", None, Device(), t_s=0.0)
    net.send_command("c2", "R", "switch:S2", "open", None, Device(), t_s=0.1)
    net.scan("R", {"v": 1.0}, t_s=0.1)
    measurements, outcomes = net.advance_to(1.0)
    assert [o.command_id for o in outcomes] == ["c1", "c2"]
    assert [o.result_t_s for o in outcomes] == pytest.approx([0.5, 0.6])
    assert [m.delivery_t_s for m in measurements] == pytest.approx([0.4])
