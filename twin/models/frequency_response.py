"""How distribution-grid DER, storage and EVs answer the frequency: pure functions on arrays.

Powers here are *responses* on the grid side [MW]: positive = more injection into the grid
(less consumption), which is what supports a low frequency.

- :class:`OverFrequencyReduction`: PV and wind P(f) per VDE-AR-N 4105 [1]_: from 50.2 Hz
  the output falls by 40 % of the power it had at 50.2 Hz per Hz (that power is frozen
  when the frequency crosses 50.2 Hz and the characteristic is followed both ways while
  above it); above 51.5 Hz the unit disconnects, and it reconnects only once the frequency
  is below 50.05 Hz, then ramps up by at most 10 % of its rated power per minute.
- :func:`fcr_response_mw`: FCR of batteries and V2G-capable EVs — the droop of
  :func:`twin.models.frequency.fcr_droop_mw` on each unit's reserve, limited by the power
  it can hold for 15 minutes (energy-limited providers, SO GL Art. 156 [2]_).
- :func:`synthetic_inertia_mw`: converter-coupled wind and storage emulating inertia,
  ``−2 H_em S_rated / f0 · df/dt``, limited by each unit's headroom.

References
----------
.. [1] VDE-AR-N 4105:2011-08, "Generators connected to the low-voltage distribution
   network", 5.7.3.3 (active power reduction at over-frequency) and 8.3 (reconnection).
.. [2] Commission Regulation (EU) 2017/1485 (System Operation Guideline), Art. 156.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from twin.models.frequency import fcr_droop_mw

#: Start of the over-frequency reduction [Hz].
PF_START_HZ = 50.2
#: Gradient of the reduction [share of the frozen power per Hz].
PF_GRADIENT_PER_HZ = 0.40
#: Above this the unit disconnects [Hz].
PF_DISCONNECT_HZ = 51.5
#: A disconnected unit reconnects only below this [Hz] …
PF_RECONNECT_HZ = 50.05
#: … and ramps its output up by at most this share of its rated power per minute.
PF_RECONNECT_RAMP_PER_MIN = 0.10

#: How long an energy-limited FCR provider must be able to hold full activation [s].
FCR_HOLD_S = 900.0


def pf_characteristic(f_hz: float, p_frozen_mw: np.ndarray) -> np.ndarray:
    """The VDE-AR-N 4105 power limit at ``f_hz`` [MW] for the power frozen at 50.2 Hz:
    ``P_M · (1 − 0.4 · (f − 50.2))`` between 50.2 and 51.5 Hz, ``P_M`` below, 0 above."""
    p = np.asarray(p_frozen_mw, dtype=float)
    if f_hz > PF_DISCONNECT_HZ:
        return np.zeros_like(p)
    if f_hz <= PF_START_HZ:
        return p.copy()
    return p * (1.0 - PF_GRADIENT_PER_HZ * (f_hz - PF_START_HZ))


@dataclass
class OverFrequencyReduction:
    """The P(f) behaviour of ``m`` PV or wind units, stepped with the frequency.

    Parameters
    ----------
    p_rated_mw : numpy.ndarray
        Rated power per unit [MW] (the reconnection ramp is a share of it).
    """

    p_rated_mw: np.ndarray
    p_frozen_mw: np.ndarray = field(init=False)   # P_M; NaN while not reducing
    disconnected: np.ndarray = field(init=False)
    ramp_limit_mw: np.ndarray = field(init=False)  # after reconnecting; inf once through

    def __post_init__(self) -> None:
        self.p_rated_mw = np.asarray(self.p_rated_mw, dtype=float)
        m = len(self.p_rated_mw)
        self.p_frozen_mw = np.full(m, np.nan)
        self.disconnected = np.zeros(m, dtype=bool)
        self.ramp_limit_mw = np.full(m, np.inf)

    def step(self, f_hz: float, p_available_mw: np.ndarray, dt_s: float) -> np.ndarray:
        """Output per unit [MW] at frequency ``f_hz`` for a step of ``dt_s`` seconds, with
        ``p_available_mw`` what sun or wind would give."""
        avail = np.asarray(p_available_mw, dtype=float)
        # a disconnected unit reconnects below 50.05 Hz, starting its ramp from zero
        back = self.disconnected & (f_hz < PF_RECONNECT_HZ)
        self.disconnected &= ~back
        self.ramp_limit_mw[back] = 0.0
        if f_hz > PF_DISCONNECT_HZ:
            self.disconnected[:] = True
            self.p_frozen_mw[:] = np.nan
        if f_hz > PF_START_HZ:
            # P_M: the output when the frequency crossed 50.2 Hz
            start = np.isnan(self.p_frozen_mw) & ~self.disconnected
            self.p_frozen_mw[start] = np.minimum(avail[start], self.ramp_limit_mw[start])
        else:
            self.p_frozen_mw[:] = np.nan
        p = np.minimum(avail, self.ramp_limit_mw)
        reducing = ~np.isnan(self.p_frozen_mw)
        p[reducing] = np.minimum(p[reducing], pf_characteristic(
            f_hz, self.p_frozen_mw[reducing]))
        p[self.disconnected] = 0.0
        # the ramp after a reconnection: 10 % of rated per minute, then no limit
        ramping = np.isfinite(self.ramp_limit_mw) & ~self.disconnected
        self.ramp_limit_mw[ramping] += (PF_RECONNECT_RAMP_PER_MIN * self.p_rated_mw[ramping]
                                        * dt_s / 60.0)
        done = ramping & (self.ramp_limit_mw >= self.p_rated_mw)
        self.ramp_limit_mw[done] = np.inf
        return np.maximum(p, 0.0)


def fcr_response_mw(df_hz: float, reserve_mw: np.ndarray, up_mw: np.ndarray,
                    down_mw: np.ndarray, deadband_hz: float = 0.010,
                    full_hz: float = 0.200) -> np.ndarray:
    """FCR response per unit [MW, positive = more injection].

    ``reserve_mw``: each unit's contracted or assigned reserve; ``up_mw`` / ``down_mw``:
    the power it can add / withhold and hold for :data:`FCR_HOLD_S` (from its SOC, its
    limits and, for an EV, its departure target). The droop asks for
    ``fcr_droop_mw(Δf, reserve)``; a unit gives what it can hold of that.
    """
    # the droop of one unit of reserve, times each unit's reserve
    demand = np.asarray(reserve_mw, dtype=float) * fcr_droop_mw(df_hz, 1.0, deadband_hz,
                                                                  full_hz)
    return np.clip(demand, -np.asarray(down_mw, dtype=float), np.asarray(up_mw, dtype=float))


def energy_limited_mw(energy_mwh: np.ndarray, p_max_mw: np.ndarray,
                      hold_s: float = FCR_HOLD_S) -> np.ndarray:
    """The power a storage can hold for ``hold_s`` seconds [MW]: its energy over that time,
    at most its converter's limit (``energy_mwh``: what it can give, or take, in that
    direction)."""
    return np.minimum(np.asarray(p_max_mw, dtype=float),
                      np.maximum(np.asarray(energy_mwh, dtype=float), 0.0) * 3600.0 / hold_s)


def synthetic_inertia_mw(rocof_hz_s: float, h_emulated_s: np.ndarray, s_rated_mva: np.ndarray,
                         up_mw: np.ndarray, down_mw: np.ndarray,
                         f0_hz: float = 50.0) -> np.ndarray:
    """Synthetic inertia per unit [MW, positive = more injection]: what a machine of
    inertia constant ``h_emulated_s`` on ``s_rated_mva`` would give, ``−2 H S / f0 ·
    df/dt``, within the unit's headroom (``up_mw`` above its output — a wind turbine's
    rotor energy, a battery's converter — and ``down_mw`` below)."""
    want = (-2.0 * np.asarray(h_emulated_s, dtype=float) * np.asarray(s_rated_mva, dtype=float)
            / f0_hz * rocof_hz_s)
    return np.clip(want, -np.asarray(down_mw, dtype=float), np.asarray(up_mw, dtype=float))
