"""The twin's own units answering the area's frequency, stepped with it.

:class:`TwinUnits` holds the response state of the twin's PV, wind, batteries and EV
charging points and turns the frequency into each unit's response with the pure functions
of :mod:`twin.models.frequency_response`:

- **P(f)** of PV and wind (VDE-AR-N 4105): a power cap per unit, ``inf`` while not reducing;
- **FCR** of batteries (a share of each battery's power offered as reserve, held for 15
  minutes from its SOC) and of V2G-capable EVs (what the fleet can hold for 15 minutes each
  way while keeping every EV's departure target, times the share assigned to FCR: a fleet
  at its targets can only give — discharge — so its reserve is not symmetric);
- **synthetic inertia** of wind turbines (rotor energy: a share of rated power while they
  turn) and batteries (their converter's spare power), handed to the area's integration as
  a :class:`~twin.models.frequency.SyntheticInertia` since it answers the RoCoF at once.

Powers are responses on the grid side [MW, positive = more injection]. The twin is one
feeder; the area sees ``scale`` copies of it (:attr:`ResponseSettings.scale`), the
distribution grids like it that answer alike. What the units observe (availability, SOC,
capability) is refreshed at the grid's steps and held in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from twin.models.frequency import SyntheticInertia
from twin.models.frequency_response import (
    OverFrequencyReduction,
    energy_limited_mw,
    fcr_response_mw,
)


@dataclass(frozen=True)
class ResponseSettings:
    """What the twin's units do for the frequency (scenario ``frequency.response``)."""

    scale: float = 1.0               # copies of the twin in the area
    pf: bool = True                  # P(f) of PV and wind
    fcr_battery_share: float = 0.0   # share of each battery's power offered as FCR
    v2g_share: float = 0.0           # share of the EVs' V2G droop capability assigned to FCR
    wind_inertia_h_s: float = 0.0    # emulated H of wind turbines on their rating (0: none)
    storage_inertia_h_s: float = 0.0  # emulated H of batteries on their power rating
    wind_headroom_share: float = 0.10  # rotor energy's extra power, share of rating
    f0_hz: float = 50.0
    deadband_hz: float = 0.010
    full_hz: float = 0.200

    @property
    def any(self) -> bool:
        return bool(self.pf or self.fcr_battery_share > 0 or self.v2g_share > 0
                    or self.wind_inertia_h_s > 0 or self.storage_inertia_h_s > 0)


@dataclass(frozen=True)
class UnitResponse:
    """The units' response in one step of the frequency [MW, the twin's own, unscaled]."""

    pv_cap_mw: np.ndarray       # P(f) cap per PV unit (inf: none)
    wind_cap_mw: np.ndarray
    pf_mw: float                # Σ what P(f) withholds (≤ 0)
    fcr_battery_mw: np.ndarray  # per battery
    fcr_ev_mw: np.ndarray       # per charging point

    @property
    def explicit_mw(self) -> float:
        """All but synthetic inertia: held over the step by the area's integration."""
        return self.pf_mw + float(self.fcr_battery_mw.sum()) + float(self.fcr_ev_mw.sum())


def _zeros(n: int) -> np.ndarray:
    return np.zeros(n)


@dataclass
class TwinUnits:
    """The twin's units as the frequency sees them.

    Parameters
    ----------
    settings : ResponseSettings
    pv_rated_mw, wind_rated_mw : numpy.ndarray
        Rated power per PV / wind unit [MW].
    battery_p_max_mw : numpy.ndarray
        Discharge power limit per battery [MW] (the FCR reserve is a share of it).
    battery_p_charge_max_mw : numpy.ndarray
    battery_e_mwh, battery_soc_min, battery_soc_max : numpy.ndarray
        Capacity and SOC bounds per battery.
    n_ev_points : int
    """

    settings: ResponseSettings
    pv_rated_mw: np.ndarray
    wind_rated_mw: np.ndarray
    battery_p_max_mw: np.ndarray
    battery_p_charge_max_mw: np.ndarray
    battery_e_mwh: np.ndarray
    battery_soc_min: np.ndarray
    battery_soc_max: np.ndarray
    n_ev_points: int = 0
    # observed at the grid's steps
    pv_available_mw: np.ndarray = field(init=False)
    pv_p_mw: np.ndarray = field(init=False)
    wind_available_mw: np.ndarray = field(init=False)
    wind_p_mw: np.ndarray = field(init=False)
    battery_soc: np.ndarray = field(init=False)
    battery_p_mw: np.ndarray = field(init=False)  # load convention, with its last response
    ev_inject_mw: np.ndarray = field(init=False)  # V2G capability held 15 min, each way
    ev_absorb_mw: np.ndarray = field(init=False)
    _pv_pf: OverFrequencyReduction = field(init=False)
    _wind_pf: OverFrequencyReduction = field(init=False)
    _fcr_battery_mw: np.ndarray = field(init=False)  # the last step's, for the headroom

    def __post_init__(self) -> None:
        for name in ("pv_rated_mw", "wind_rated_mw", "battery_p_max_mw",
                     "battery_p_charge_max_mw", "battery_e_mwh", "battery_soc_min",
                     "battery_soc_max"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=float))
        n_pv, n_wind, n_bat = len(self.pv_rated_mw), len(self.wind_rated_mw), \
            len(self.battery_p_max_mw)
        self.pv_available_mw, self.pv_p_mw = _zeros(n_pv), _zeros(n_pv)
        self.wind_available_mw, self.wind_p_mw = _zeros(n_wind), _zeros(n_wind)
        self.battery_soc = self.battery_soc_min.copy()  # nothing to give until observed
        self.battery_p_mw = _zeros(n_bat)
        self.ev_inject_mw = _zeros(self.n_ev_points)
        self.ev_absorb_mw = _zeros(self.n_ev_points)
        self._pv_pf = OverFrequencyReduction(self.pv_rated_mw)
        self._wind_pf = OverFrequencyReduction(self.wind_rated_mw)
        self._fcr_battery_mw = _zeros(n_bat)

    # ------------------------------------------------------------------ observations
    def observe_pv(self, p_available_mw, p_mw) -> None:
        self.pv_available_mw = np.asarray(p_available_mw, dtype=float)
        self.pv_p_mw = np.asarray(p_mw, dtype=float)

    def observe_wind(self, p_available_mw, p_mw) -> None:
        self.wind_available_mw = np.asarray(p_available_mw, dtype=float)
        self.wind_p_mw = np.asarray(p_mw, dtype=float)

    def observe_batteries(self, soc, p_mw) -> None:
        self.battery_soc = np.asarray(soc, dtype=float)
        self.battery_p_mw = np.asarray(p_mw, dtype=float)

    def observe_ev(self, inject_mw, absorb_mw) -> None:
        self.ev_inject_mw = np.asarray(inject_mw, dtype=float)
        self.ev_absorb_mw = np.asarray(absorb_mw, dtype=float)

    # ------------------------------------------------------------------ reserves
    def battery_reserve_mw(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(reserve, up, down) per battery [MW]: the share offered, and what its SOC lets it
        hold for 15 minutes upward (discharging) and downward (charging)."""
        s = self.settings
        reserve = s.fcr_battery_share * self.battery_p_max_mw
        e = self.battery_e_mwh
        up = energy_limited_mw((self.battery_soc - self.battery_soc_min) * e, reserve)
        down = energy_limited_mw((self.battery_soc_max - self.battery_soc) * e,
                                 np.minimum(reserve, self.battery_p_charge_max_mw))
        return reserve, up, down

    def ev_reserve_mw(self) -> tuple[np.ndarray, np.ndarray]:
        """The FCR reserve assigned per charging point [MW], (up, down): the share of what
        the V2G-capable EVs can hold for 15 min each way keeping their departure targets."""
        share = self.settings.v2g_share
        return share * self.ev_inject_mw, share * self.ev_absorb_mw

    # ------------------------------------------------------------------ stepping
    def step(self, f_hz: float, dt_s: float) -> UnitResponse:
        """The explicit responses at frequency ``f_hz`` for the next ``dt_s`` seconds."""
        s = self.settings
        df = f_hz - s.f0_hz
        if s.pf:
            pv_cap = self._pv_pf.step(f_hz, self.pv_available_mw, dt_s)
            wind_cap = self._wind_pf.step(f_hz, self.wind_available_mw, dt_s)
            # only what the cap takes off today's output (a curtailed unit loses less)
            pf = float(np.minimum(pv_cap - self.pv_p_mw, 0.0).sum()
                       + np.minimum(wind_cap - self.wind_p_mw, 0.0).sum())
            reducing = pv_cap < self.pv_available_mw - 1e-12
            pv_cap = np.where(reducing | self._pv_pf.disconnected
                              | np.isfinite(self._pv_pf.ramp_limit_mw), pv_cap, np.inf)
            reducing = wind_cap < self.wind_available_mw - 1e-12
            wind_cap = np.where(reducing | self._wind_pf.disconnected
                                | np.isfinite(self._wind_pf.ramp_limit_mw), wind_cap, np.inf)
        else:
            pv_cap = np.full(len(self.pv_rated_mw), np.inf)
            wind_cap = np.full(len(self.wind_rated_mw), np.inf)
            pf = 0.0
        reserve, up, down = self.battery_reserve_mw()
        fcr_bat = fcr_response_mw(df, reserve, up, down, s.deadband_hz, s.full_hz)
        ev_up, ev_down = self.ev_reserve_mw()
        # each direction's reserve answers its side of the droop
        fcr_ev = fcr_response_mw(df, np.where(df < 0, ev_up, ev_down), ev_up, ev_down,
                                 s.deadband_hz, s.full_hz)
        self._fcr_battery_mw = fcr_bat
        return UnitResponse(pv_cap, wind_cap, pf, fcr_bat, fcr_ev)

    def _inertia_parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                      np.ndarray, np.ndarray]:
        """Per unit (wind, then batteries): K [MW per Hz/s], up and down headroom [MW]."""
        s = self.settings
        k_w = 2.0 * s.wind_inertia_h_s * self.wind_rated_mw / s.f0_hz
        # a turning rotor lends a share of its rating; a still one (or P(f)-stopped) none
        turning = self.wind_p_mw > 1e-6
        up_w = np.where(turning, s.wind_headroom_share * self.wind_rated_mw, 0.0)
        down_w = np.minimum(up_w, self.wind_p_mw)
        k_b = 2.0 * s.storage_inertia_h_s * self.battery_p_max_mw / s.f0_hz
        injection = -self.battery_p_mw + self._fcr_battery_mw
        has_energy = self.battery_soc > self.battery_soc_min + 1e-6
        has_room = self.battery_soc < self.battery_soc_max - 1e-6
        up_b = np.where(has_energy, np.maximum(self.battery_p_max_mw - injection, 0.0), 0.0)
        down_b = np.where(has_room, np.maximum(self.battery_p_charge_max_mw + injection, 0.0),
                          0.0)
        return k_w, up_w, down_w, k_b, up_b, down_b

    def inertia(self) -> SyntheticInertia:
        """The twin's synthetic inertia scaled to the area (for :func:`advance`)."""
        k_w, up_w, down_w, k_b, up_b, down_b = self._inertia_parts()
        on_w, on_b = k_w > 0, k_b > 0
        scale = self.settings.scale
        return SyntheticInertia(
            scale * float(k_w.sum() + k_b.sum()),
            scale * float(up_w[on_w].sum() + up_b[on_b].sum()),
            scale * float(down_w[on_w].sum() + down_b[on_b].sum()))

    def share_inertia(self, p_area_mw: float) -> tuple[np.ndarray, np.ndarray]:
        """The area's synthetic-inertia power back to the twin's units (wind, batteries)
        [MW each, unscaled], in proportion to their headroom in its direction."""
        k_w, up_w, down_w, k_b, up_b, down_b = self._inertia_parts()
        room_w = np.where(k_w > 0, up_w if p_area_mw >= 0 else down_w, 0.0)
        room_b = np.where(k_b > 0, up_b if p_area_mw >= 0 else down_b, 0.0)
        total = float(room_w.sum() + room_b.sum())
        if total <= 0.0 or p_area_mw == 0.0:
            return np.zeros_like(k_w), np.zeros_like(k_b)
        p = p_area_mw / self.settings.scale
        return p * room_w / total, p * room_b / total
