"""The DMS's short-circuit analysis: IEC 60909 currents (:mod:`twin.grid.iec60909`) at every
energised bus of a present or proposed topology, and every switch against its breaking and
making capability (:func:`short_circuit_report`, :func:`default_ratings`).

References
----------
.. [1] IEC 60909-0:2016, Short-circuit currents in three-phase a.c. systems — Part 0:
   Calculation of currents.
.. [2] IEC 62271-100:2021, High-voltage switchgear and controlgear — Part 100:
   Alternating-current circuit-breakers (rated short-circuit making current = 2.5 × the
   rated breaking current at 50 Hz); IEC 62271-103 (switches); IEC 60947-2 (LV breakers).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandapower as pp
import pandapower.shortcircuit as sc
import pandas as pd

from twin.grid.iec60909 import (
    HV_ABOVE_KV,
    LV_UP_TO_KV,
    check_fault,
    live_buses,
    prepare_for_sc,
    quiet,
)
from twin.grid.names import element_names


# ---------------------------------------------------------------- switchgear ratings
@dataclass(frozen=True)
class BreakerRating:
    """What a switching device can do against a fault [kA]."""

    breaking_ka: float | None   # symmetrical breaking current; None = not a fault breaker
    making_ka: float | None     # peak making current; None = must not close onto a fault


#: Default ratings per (voltage level, switch type): IEC 62271-100 typical values — MV
#: (1–36 kV) CBs 16 kA breaking, 40 kA making (2.5 × 16 kA); HV CBs 31.5 / 80 kA; LV CBs
#: 25 kA / 52.5 kA (IEC 60947-2: n = 2.1). Load-break and load switches break load current
#: only and make as much as the CB of their level (IEC 62271-103); disconnectors neither.
#: A type not listed (or none) is taken as a disconnector: no fault duty assumed.
DEFAULT_RATINGS = {
    "LV": {"CB": BreakerRating(25.0, 52.5), "LBS": BreakerRating(None, 52.5),
           "LS": BreakerRating(None, 52.5)},
    "MV": {"CB": BreakerRating(16.0, 40.0), "LBS": BreakerRating(None, 40.0),
           "LS": BreakerRating(None, 40.0)},
    "HV": {"CB": BreakerRating(31.5, 80.0), "LBS": BreakerRating(None, 80.0),
           "LS": BreakerRating(None, 80.0)},
}
_NO_DUTY = BreakerRating(None, None)


def default_ratings(net: pp.pandapowerNet) -> dict[int, BreakerRating]:
    """Breaking and making capability of every switch, by its type and voltage level.

    Parameters
    ----------
    net : pandapowerNet
        ``net.switch.type`` ("CB", "LBS", "LS", "DS", …) and the voltage of each switch's
        bus choose a row of :data:`DEFAULT_RATINGS`. Finite values in the optional columns
        ``net.switch.breaking_ka`` / ``making_ka`` (ratings from a grid file) win.

    Returns
    -------
    dict
        Switch index → :class:`BreakerRating`.
    """
    sw = net.switch
    vn_kv = net.bus.loc[sw.bus, "vn_kv"].to_numpy(dtype=float)
    given = {col: (sw[col].to_numpy(dtype=float) if col in sw.columns
                   else np.full(len(sw), np.nan)) for col in ("breaking_ka", "making_ka")}
    out: dict[int, BreakerRating] = {}
    for k, (idx, kind) in enumerate(zip(sw.index, sw["type"])):
        level = "HV" if vn_kv[k] > HV_ABOVE_KV else "LV" if vn_kv[k] <= LV_UP_TO_KV else "MV"
        rating = DEFAULT_RATINGS[level].get(kind if isinstance(kind, str) else "", _NO_DUTY)
        breaking, making = given["breaking_ka"][k], given["making_ka"][k]
        out[int(idx)] = BreakerRating(
            float(breaking) if np.isfinite(breaking) else rating.breaking_ka,
            float(making) if np.isfinite(making) else rating.making_ka)
    return out


# ---------------------------------------------------------------- topology check
@dataclass(frozen=True)
class BreakerCheck:
    """One switch against the fault currents at its terminals."""

    switch: int
    name: str                  # as twin.grid.build.element_names gives it
    type: str
    ikss_max_ka: float         # largest max-case I"k of a fault at a terminal
    ip_max_ka: float           # largest peak current of a fault at a terminal
    breaking_ka: float | None
    making_ka: float | None
    ok: bool
    reason: str                # "" when ok, else one sentence naming the switch


@dataclass(frozen=True)
class ShortCircuitReport:
    """Bus fault currents of one topology and the switchgear checked against them."""

    bus: pd.DataFrame          # energised buses: ikss_max_ka, ip_max_ka, ikss_min_ka
    breakers: tuple[BreakerCheck, ...]

    @property
    def violations(self) -> tuple[BreakerCheck, ...]:
        return tuple(b for b in self.breakers if not b.ok)


def short_circuit_report(net: pp.pandapowerNet,
                         ratings: dict[int, BreakerRating] | None = None,
                         switch_states: dict[int, bool] | None = None,
                         fault: str = "3ph") -> ShortCircuitReport:
    """Bus faults of a topology, and every switch against its ratings (net unchanged).

    Parameters
    ----------
    net : pandapowerNet
    ratings : dict, optional
        Switch index → :class:`BreakerRating`; :func:`default_ratings` when None. A switch
        not in it is not checked (no duty assumed).
    switch_states : dict, optional
        A proposed topology: switch index → closed. Other switches keep their state.
    fault : {"3ph", "2ph", "1ph"}

    Returns
    -------
    ShortCircuitReport
        ``bus``: case "max" I"k and ip, case "min" I"k of a fault at each energised bus.
        ``breakers``: one check per switch.

    Notes
    -----
    A switch's terminals are its bus and, for a bus-bus switch, the other bus (a line or
    trafo switch's other terminal is the element's end at the same bus, one node in the
    calculation). A switch fails when the largest I"k at an energised terminal exceeds its
    breaking capability, or the largest ip its making capability; no breaking capability
    (a load-break switch) is no failure. For an open switch this is the duty of a fault at
    its live terminal in this topology: to check closing it, pass it closed.
    For 1ph faults ip = κ·√2·I"k1 with κ of the 3ph fault at that bus, as IEC 60909-0
    permits.
    """
    check_fault(fault, "max")
    work = copy.deepcopy(net)
    for sw, state in (switch_states or {}).items():
        if sw not in work.switch.index:
            raise ValueError(f"switch_states: expected switch indices of net.switch; "
                             f"found {sw!r}")
        work.switch.at[sw, "closed"] = bool(state)
    prepare_for_sc(work)
    live = sorted(live_buses(work))
    bus = pd.DataFrame(index=pd.Index(live, name="bus"),
                       columns=["ikss_max_ka", "ip_max_ka", "ikss_min_ka"], dtype=float)
    if live:
        with quiet():
            sc.calc_sc(work, fault=fault, case="max", ip=True)
            bus["ikss_max_ka"] = work.res_bus_sc.loc[live, "ikss_ka"].to_numpy(dtype=float)
            ip = work.res_bus_sc.loc[live, "ip_ka"].to_numpy(dtype=float)
            if fault == "1ph":
                sc.calc_sc(work, fault="3ph", case="max", ip=True)
                kappa_root2 = (work.res_bus_sc.loc[live, "ip_ka"].to_numpy(dtype=float)
                               / work.res_bus_sc.loc[live, "ikss_ka"].to_numpy(dtype=float))
                ip = kappa_root2 * bus["ikss_max_ka"].to_numpy()
            bus["ip_max_ka"] = ip
            sc.calc_sc(work, fault=fault, case="min")
            bus["ikss_min_ka"] = work.res_bus_sc.loc[live, "ikss_ka"].to_numpy(dtype=float)

    if ratings is None:
        ratings = default_ratings(work)
    names = element_names(work, "switch")
    checks = []
    for k, (sw, row) in enumerate(work.switch.iterrows()):
        terminals = [int(row.bus)] + ([int(row.element)] if row.et == "b" else [])
        at = bus.loc[[t for t in terminals if t in bus.index]]
        ikss = float(at["ikss_max_ka"].max()) if len(at) else 0.0
        ip = float(at["ip_max_ka"].max()) if len(at) else 0.0
        rating = ratings.get(int(sw), _NO_DUTY)
        kind = row["type"] if isinstance(row["type"], str) else ""
        checks.append(_check(int(sw), names[k], kind, ikss, ip, rating))
    return ShortCircuitReport(bus=bus, breakers=tuple(checks))


def _check(sw: int, name: str, kind: str, ikss: float, ip: float,
           rating: BreakerRating) -> BreakerCheck:
    faults = []
    if rating.breaking_ka is not None and ikss > rating.breaking_ka:
        faults.append(f"fault current {_ka(ikss)} exceeds its breaking capability "
                      f"{_ka(rating.breaking_ka)}")
    if rating.making_ka is not None and ip > rating.making_ka:
        faults.append(f"peak current {_ka(ip)} exceeds its making capability "
                      f"{_ka(rating.making_ka)}")
    label = f"{kind} {name}".strip()
    reason = f"{label}: {' and '.join(faults)}" if faults else ""
    return BreakerCheck(switch=sw, name=name, type=kind, ikss_max_ka=ikss, ip_max_ka=ip,
                        breaking_ka=rating.breaking_ka, making_ka=rating.making_ka,
                        ok=not faults, reason=reason)


def _ka(value: float) -> str:
    return f"{value:.1f} kA" if value >= 1.0 else f"{value:.3f} kA"
