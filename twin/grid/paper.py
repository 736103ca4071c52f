"""The two small 20 kV nets of the DMS paper's use cases, built from pandapower standard types.

* :func:`create_paper_flisr_net` — fault management and restoration (paper II.D, Fig. 3–5).
* :func:`create_paper_load_management_net` — load management by reconfiguration (paper II.F,
  Fig. 6–7).

The element names are the ones scenario files use (``"Breaker 4"``, ``"Load 3"`` …): keep them.
Load names follow the CIGRE convention that :func:`twin.models.load_shapes.load_kind` reads ('Load R…'
residential, 'Load CI…' commercial). Bus geodata are in km (the twin reads them as km for crew
travel). Sign convention as pandapower: loads positive when consuming.

References
----------
.. [1] The DMS paper, sections II.D "Fault management and system restoration" and II.F "Load
   management" (``shared/dms-paper.txt``).
"""

from __future__ import annotations

import pandapower as pp

#: 110 kV transmission side: the only slack of both nets.
HV_KV = 110.0
#: Distribution side of both nets.
MV_KV = 20.0
#: 110/20 kV substation transformer (pandapower standard type).
TRAFO_TYPE = "25 MVA 110/20 kV"
#: Modern 20 kV XLPE aluminium cable, 421 A.
CABLE_240 = "NA2XS2Y 1x240 RM/25 12/20 kV"
#: Older, thinner 20 kV XLPE aluminium cable, 220 A: the bottleneck of the load-management net.
CABLE_70 = "NA2XS2Y 1x70 RM/25 12/20 kV"
#: Power factor of every load (inductive).
COS_PHI = 0.95


def _q_mvar(p_mw: float, cos_phi: float = COS_PHI) -> float:
    """Reactive power [Mvar] of a load drawing ``p_mw`` [MW] at ``cos_phi`` (inductive)."""
    return p_mw * (1.0 / cos_phi**2 - 1.0) ** 0.5


def _hv_grid(net: pp.pandapowerNet, xy_km: tuple[float, float]) -> int:
    """The 110 kV bus "HV Grid" with the net's only ext_grid "Grid"; returns the bus index."""
    hv = pp.create_bus(net, vn_kv=HV_KV, name="HV Grid", type="b", geodata=xy_km)
    # Short-circuit data of a meshed 110 kV grid so that IEC 60909 (paper II.E) can run.
    pp.create_ext_grid(net, hv, vm_pu=1.02, name="Grid", s_sc_max_mva=1000.0,
                       s_sc_min_mva=800.0, rx_max=0.1, rx_min=0.1)
    return hv


def _substation(net: pp.pandapowerNet, hv_bus: int, name: str, trafo_name: str,
                xy_km: tuple[float, float]) -> int:
    """A 20 kV busbar ``name`` fed from ``hv_bus`` by a 110/20 kV OLTC trafo; returns the bus."""
    mv = pp.create_bus(net, vn_kv=MV_KV, name=name, type="b", geodata=xy_km)
    t = pp.create_transformer(net, hv_bus, mv, std_type=TRAFO_TYPE, name=trafo_name)
    # Same OLTC as twin.grid.build._add_oltc gives CIGRE's trafos: HV side, ±9 × 1.5 %, at neutral,
    # so the Volt/Var function has a tap changer to drive.
    net.trafo.loc[t, ["tap_side", "tap_changer_type"]] = ["hv", "Ratio"]
    net.trafo.loc[t, ["tap_neutral", "tap_min", "tap_max", "tap_pos"]] = [0, -9, 9, 0]
    net.trafo.loc[t, ["tap_step_percent", "tap_step_degree"]] = [1.5, 0.0]
    net.trafo.loc[t, "oltc"] = True
    return mv


def _line_with_breaker(net: pp.pandapowerNet, from_bus: int, to_bus: int, length_km: float,
                       std_type: str, name: str, breaker: str, closed: bool = True) -> int:
    """A 20 kV cable with a circuit breaker at its ``from_bus`` end; returns the line index."""
    line = pp.create_line(net, from_bus, to_bus, length_km=length_km, std_type=std_type,
                          name=name)
    # A circuit breaker (not a load-break switch): the paper calls these devices breakers, and
    # the FLISR/load-management sequences must be able to open them under load and on a fault.
    pp.create_switch(net, from_bus, line, et="l", closed=closed, type="CB", name=breaker)
    return line


def create_paper_flisr_net() -> pp.pandapowerNet:
    """The fault-management feeder of the DMS paper (II.D, Fig. 3–5): three loads, two stations.

    One 20 kV cable feeder runs from Substation 1 past Load 1, 2 and 3 to Substation 2, where
    it ends at the normally open Breaker 4. Both substations hang off the same 110 kV bus::

                              HV Grid (110 kV, ext_grid "Grid")
               ┌───────────────────────────┴──────────────────────────────┐
        Trafo Substation 1                                       Trafo Substation 2
          Substation 1                                              Substation 2
               │                                                          │
             [B1] Line S1-L1                                              │ Line L3-S2
               │                                                          │
            Load 1 ─[B2]─ L1-L2 ─ Load 2 ─[B3]─ L2-L3 ─ Load 3 ─[B4 open]─┘
           R1 2.0 MW             R2 1.5 MW             R3 1.0 MW

    ``[Bn]`` is the switch "Breaker n" (type CB) at the end of its line next to it in the
    sketch: Breaker 1 at Substation 1, 2 at Load 1, 3 at Load 2, 4 at Load 3. In the normal
    state (Fig. 3) Substation 1 supplies all three loads; Breaker 4 is open because closing it
    would make a loop through the 110 kV bus. The paper's sequence for a fault between Load 1
    and Load 2 — open Breaker 2 (Fig. 4), open Breaker 3 and close Breaker 4 (Fig. 5) — leaves
    Load 2 unsupplied and restores Load 3 from Substation 2.

    Returns
    -------
    pandapowerNet
        A fresh net on every call. Buses "HV Grid", "Substation 1", "Substation 2", "Load 1",
        "Load 2", "Load 3"; trafos "Trafo Substation 1", "Trafo Substation 2"; lines
        "Line S1-L1", "Line L1-L2", "Line L2-L3", "Line L3-S2"; switches "Breaker 1" …
        "Breaker 4"; residential loads "Load R1" (2.0 MW), "Load R2" (1.5 MW), "Load R3"
        (1.0 MW), all at cos φ 0.95; geodata in km along the x axis.

    References
    ----------
    .. [1] The DMS paper, II.D "Fault management and system restoration", Fig. 3–5.
    """
    net = pp.create_empty_network(name="DMS paper II.D: fault management", f_hz=50.0)
    hv = _hv_grid(net, (5.0, 4.0))
    s1 = _substation(net, hv, "Substation 1", "Trafo Substation 1", (0.0, 0.0))
    s2 = _substation(net, hv, "Substation 2", "Trafo Substation 2", (10.0, 0.0))
    # Cable routes a little longer than the straight line between their ends.
    x_km = {"Load 1": 2.0, "Load 2": 4.5, "Load 3": 7.5}
    p_mw = {"Load 1": 2.0, "Load 2": 1.5, "Load 3": 1.0}
    buses = {}
    for i, (name, x) in enumerate(x_km.items(), start=1):
        b = pp.create_bus(net, vn_kv=MV_KV, name=name, type="b", geodata=(x, 0.0))
        pp.create_load(net, b, p_mw=p_mw[name], q_mvar=_q_mvar(p_mw[name]), name=f"Load R{i}")
        buses[name] = b
    l1, l2, l3 = buses["Load 1"], buses["Load 2"], buses["Load 3"]
    _line_with_breaker(net, s1, l1, 2.2, CABLE_240, "Line S1-L1", "Breaker 1")
    _line_with_breaker(net, l1, l2, 2.7, CABLE_240, "Line L1-L2", "Breaker 2")
    _line_with_breaker(net, l2, l3, 3.0, CABLE_240, "Line L2-L3", "Breaker 3")
    # The tie to the neighbouring substation: open in normal operation (no loop via 110 kV).
    _line_with_breaker(net, l3, s2, 2.6, CABLE_240, "Line L3-S2", "Breaker 4", closed=False)
    return net


def create_paper_load_management_net() -> pp.pandapowerNet:
    """The load-management net of the DMS paper (II.F, Fig. 6–7): three loads, three grids.

    Three 110/20 kV substations ("Grid A", "Grid B", "Grid C") on one 110 kV bus, three load
    buses, five cables, each with a circuit breaker at the end named first in the line's name::

                            HV Grid (110 kV, ext_grid "Grid")
             ┌──────────────────────┬───┴──────────────────────────────┐
          Trafo A                Trafo B                          Trafo C
          Grid A                 Grid B                           Grid C
             │                      │                                │
            [A] Line A-1           [B open] Line B-1                [C open] Line C-3
             │                      │                                │
             └───────── Load 1 ─────┘                                │
                          │                                          │
                        [1-2] Line 1-2                               │
                          │                                          │
                        Load 2 ─[2-3]─ Line 2-3 ─────────────────── Load 3
           R1 3.0 MW at Load 1, CI2 3.5 MW at Load 2, R3 2.2 MW at Load 3

    ``[X]`` is the switch "Breaker X" (type CB).

    Normal configuration (Fig. 6): Grid A feeds all three loads through Line A-1, an older
    3 km 70 mm² cable (220 A), which the 8.7 MW of nominal load overloads. Target
    configuration (Fig. 7): open Breaker A and Breaker 2-3, close Breaker B and Breaker C;
    Grid B then feeds Loads 1 and 2 over short 240 mm² cables and Grid C feeds Load 3.
    Line 2-3 is a long 70 mm² cable, so feeding Load 2 from Grid C costs more losses than
    from Grid B: of the seven radial configurations that supply every load, the target one
    has clearly the lowest losses.

    Returns
    -------
    pandapowerNet
        A fresh net on every call. Buses "HV Grid", "Grid A", "Grid B", "Grid C", "Load 1",
        "Load 2", "Load 3"; trafos "Trafo A", "Trafo B", "Trafo C"; lines "Line A-1",
        "Line 1-2", "Line 2-3", "Line B-1", "Line C-3" with switches "Breaker A",
        "Breaker 1-2", "Breaker 2-3", "Breaker B", "Breaker C"; loads "Load R1" (residential,
        3.0 MW), "Load CI2" (commercial, 3.5 MW), "Load R3" (residential, 2.2 MW), all at
        cos φ 0.95; geodata in km.

    References
    ----------
    .. [1] The DMS paper, II.F "Load management", Fig. 6–7.
    """
    net = pp.create_empty_network(name="DMS paper II.F: load management", f_hz=50.0)
    hv = _hv_grid(net, (5.0, 6.0))
    ga = _substation(net, hv, "Grid A", "Trafo A", (-3.0, 0.0))
    gb = _substation(net, hv, "Grid B", "Trafo B", (0.0, 2.0))
    gc = _substation(net, hv, "Grid C", "Trafo C", (6.0, 2.0))
    loads = [  # bus name, xy [km], load name, p [MW]
        ("Load 1", (0.0, 0.0), "Load R1", 3.0),
        ("Load 2", (1.5, 0.0), "Load CI2", 3.5),
        ("Load 3", (6.0, 0.0), "Load R3", 2.2),
    ]
    buses = []
    for bus_name, xy_km, load_name, p_mw in loads:
        b = pp.create_bus(net, vn_kv=MV_KV, name=bus_name, type="b", geodata=xy_km)
        pp.create_load(net, b, p_mw=p_mw, q_mvar=_q_mvar(p_mw), name=load_name)
        buses.append(b)
    l1, l2, l3 = buses
    # The bottleneck: an old, thin cable that carries every load in the normal configuration.
    _line_with_breaker(net, ga, l1, 3.0, CABLE_70, "Line A-1", "Breaker A")
    _line_with_breaker(net, l1, l2, 1.6, CABLE_240, "Line 1-2", "Breaker 1-2")
    # Long and thin: the tie that makes feeding Load 2 from Grid C the lossy choice.
    _line_with_breaker(net, l2, l3, 4.8, CABLE_70, "Line 2-3", "Breaker 2-3")
    # Newer substations close to the loads, tied in by short, thick cables, normally open.
    _line_with_breaker(net, gb, l1, 2.1, CABLE_240, "Line B-1", "Breaker B", closed=False)
    _line_with_breaker(net, gc, l3, 2.1, CABLE_240, "Line C-3", "Breaker C", closed=False)
    return net
