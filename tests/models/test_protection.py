"""The protection model on the paper's three-load feeder: which breaker trips, reclose and
lockout, temporary faults, indicators and their reset, a fault no relay sees, closing onto
a fault."""

from __future__ import annotations

import pytest

from twin.build.protection import protection_settings
from twin.build.resolve import find_element
from twin.grid.paper import create_paper_flisr_net
from twin.models.protection import Fault, Protection


def setup(reclose_s: float | None = None, pickup_factor: float = 2.0):
    net = create_paper_flisr_net()  # every switch a line breaker: a relay on each
    prot = Protection(protection_settings(net, pickup_factor=pickup_factor,
                                          reclose_dead_time_s=reclose_s))
    sw = {n: find_element(net, "switch", n, "k") for n in
          ("Breaker 1", "Breaker 2", "Breaker 3", "Breaker 4")}
    line = {n: find_element(net, "line", n, "k") for n in
            ("Line S1-L1", "Line L1-L2", "Line L2-L3", "Line L3-S2")}
    return net, prot, sw, line


def kinds(events) -> list[tuple[str, str]]:
    return [(e.kind, e.element) for e in events]


@pytest.mark.parametrize("faulted, breaker", [("Line S1-L1", "Breaker 1"),
                                              ("Line L1-L2", "Breaker 2"),
                                              ("Line L2-L3", "Breaker 3")])
def test_the_nearest_breaker_upstream_trips_and_locks_out(faulted, breaker):
    net, prot, sw, line = setup()
    events = prot.inject(net, Fault("F", line[faulted]), 0.0)
    assert kinds(events) == [("fault", f"line:{line[faulted]}"), ("trip", f"switch:{sw[breaker]}"),
                             ("lockout", f"switch:{sw[breaker]}")]
    assert not net.switch.at[sw[breaker], "closed"]
    assert [s for s in sw.values() if not net.switch.at[s, "closed"]] == sorted(
        {sw[breaker], sw["Breaker 4"]})
    trip = events[1]
    assert trip.fields["i_fault_ka"] > trip.fields["pickup_ka"]
    # indicators from the source to the fault saw it; none beyond
    path = list(line).index(faulted)
    for k, name in enumerate(line):
        assert prot.fpi_flag("line", line[name]) == (k <= path), name
    assert prot.tripped == {sw[breaker]} and prot.locked_out == {sw[breaker]}
    assert prot.next_event_s() == pytest.approx(600.0)  # the indicators' reset
    prot.advance(net, 600.0)
    assert not any(prot.fpi_flag("line", i) for i in line.values())


def test_temporary_fault_clears_and_the_reclose_holds():
    net, prot, sw, line = setup(reclose_s=1.0)
    events = prot.inject(net, Fault("F", line["Line L1-L2"], permanent=False), 0.0)
    assert kinds(events)[1:] == [("trip", f"switch:{sw['Breaker 2']}"),
                                 ("cleared", f"line:{line['Line L1-L2']}")]
    assert prot.next_event_s() == 1.0
    events = prot.advance(net, 1.0)
    assert kinds(events) == [("reclose", f"switch:{sw['Breaker 2']}")]
    assert net.switch.at[sw["Breaker 2"], "closed"] and not prot.faults and not prot.tripped


def test_permanent_fault_trips_again_after_the_reclose_and_locks_out():
    net, prot, sw, line = setup(reclose_s=1.0)
    prot.inject(net, Fault("F", line["Line L1-L2"]), 0.0)
    events = prot.advance(net, 1.0)
    assert kinds(events) == [("reclose", f"switch:{sw['Breaker 2']}"),
                             ("trip", f"switch:{sw['Breaker 2']}"),
                             ("lockout", f"switch:{sw['Breaker 2']}")]
    assert not net.switch.at[sw["Breaker 2"], "closed"]
    assert prot.next_event_s() == pytest.approx(601.0)  # no further shot; indicators reset


def test_a_fault_below_every_pickup_is_not_cleared_and_said_once():
    net, prot, sw, line = setup(pickup_factor=50.0)  # relays far too insensitive
    events = prot.inject(net, Fault("F", line["Line L2-L3"], r_ohm=5.0), 0.0)
    assert kinds(events)[1] == ("not_cleared", f"line:{line['Line L2-L3']}")
    assert all(net.switch.closed.iloc[:3]) and prot.settle(net, 1.0) == []


def test_closing_onto_the_fault_trips_again_until_repaired():
    net, prot, sw, line = setup()
    prot.inject(net, Fault("F", line["Line L1-L2"]), 0.0)
    net.switch.at[sw["Breaker 2"], "closed"] = True
    prot.switch_closed(sw["Breaker 2"])
    assert kinds(prot.settle(net, 10.0))[0] == ("trip", f"switch:{sw['Breaker 2']}")
    assert [e.kind for e in prot.repair(line["Line L1-L2"], 20.0)] == ["repaired"]
    net.switch.at[sw["Breaker 2"], "closed"] = True
    prot.switch_closed(sw["Breaker 2"])
    assert prot.settle(net, 30.0) == [] and not prot.tripped


def test_every_fault_type_trips_and_fault_resistance_lowers_the_current():
    currents = {}
    for kind, r_ohm in (("3ph", 0.0), ("2ph", 0.0), ("1ph", 0.0), ("3ph", 2.0)):
        net, prot, sw, line = setup()
        events = prot.inject(net, Fault("F", line["Line L1-L2"], fault_type=kind, r_ohm=r_ohm),
                             0.0)
        trip = next(e for e in events if e.kind == "trip")
        assert trip.element == f"switch:{sw['Breaker 2']}", kind
        currents[(kind, r_ohm)] = trip.fields["i_fault_ka"]
    # IEC 60909: I"k2 = √3/2 · I"k3 on the same impedances; a fault resistance lowers it
    assert currents[("2ph", 0.0)] / currents[("3ph", 0.0)] < 0.9
    assert currents[("3ph", 2.0)] < currents[("3ph", 0.0)]
    assert currents[("1ph", 0.0)] > 0


@pytest.mark.parametrize("r_ohm, x_ohm", [(float("inf"), 0.0), (0.0, float("nan")),
                                          (-1.0, 0.0)])
def test_a_fault_without_a_finite_impedance_is_ignored_and_said(r_ohm, x_ohm):
    net, prot, _sw, line = setup()
    events = prot.inject(net, Fault("F", line["Line L1-L2"], r_ohm=r_ohm, x_ohm=x_ohm), 0.0)
    assert kinds(events) == [("fault_ignored", f"line:{line['Line L1-L2']}")]
    assert "finite" in events[0].fields["reason"]
    assert net.switch.closed.iloc[:3].all() and not prot.faults and not prot.tripped
    assert prot.settle(net, 1.0) == []
