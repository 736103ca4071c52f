"""The synchronous area's frequency: one aggregated swing equation with the TSO's FCR.

The area's rotating generation is one machine of inertia constant ``H`` on its rated
power ``S``; the load regulates itself (``D``, MW per Hz); frequency containment reserve
(FCR) answers with a droop. With ``Δf = f − f0``::

    (2 H S / f0) · dΔf/dt = ΔP + P_fcr + P_afrr + P_twin − D · Δf        [MW]

``ΔP`` is the disturbance (−X MW for the loss of X MW of generation), ``P_twin`` what the
twin's DER, storage and EVs add (positive) or withhold, scaled to the area by the caller.
Right after a disturbance only inertia acts: RoCoF = ΔP · f0 / (2 H S).

Synthetic inertia (:class:`SyntheticInertia`: converter-coupled units emulating a machine,
``P_si = −K · dΔf/dt`` within their headroom) enters each sub-step implicitly: unclipped it
adds ``K`` to the area's ``2 H S / f0``, so it lowers even the first instant's RoCoF, as an
emulated machine without measurement delay would; clipped it is a fixed power. Solving it
explicitly from the last sub-step's RoCoF would oscillate once ``K`` nears the area's own.

FCR stops the fall but leaves an offset; the automatic frequency restoration reserve
(aFRR, secondary control) then replaces the lost power and brings the frequency back to
nominal within minutes. It is modelled as an integral controller on the frequency
deviation times the area's power–frequency characteristic λ = FCR / 200 mHz + D, with time
constant ``afrr_s`` (0: no aFRR): dP_afrr/dt = −λ · Δf / afrr_s.

FCR as Continental Europe requires it (SO GL Art. 154 and Annex V [1]_): proportional to
the deviation beyond a ±10 mHz insensitivity, fully activated at ±200 mHz, and able to
deliver it within 30 s — modelled as a ramp of the activated power of at most the full
reserve per 30 s (also meeting "half within 15 s"). Default figures are Continental
Europe's order of magnitude [2]_: 3,000 MW of FCR, H ≈ 5 s, 1 %/Hz load self-regulation.

References
----------
.. [1] Commission Regulation (EU) 2017/1485 (System Operation Guideline), Art. 154 and
   Annex V.
.. [2] ENTSO-E, "Frequency stability evaluation criteria for the synchronous zone of
   Continental Europe", 2016.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

#: Longest internal integration step [s]: well below the area's time constants (seconds).
MAX_SUBSTEP_S = 0.02


@dataclass(frozen=True)
class AreaSpec:
    """The synchronous area as the frequency model sees it.

    Parameters
    ----------
    f0_hz : float
        Nominal frequency [Hz].
    inertia_h_s : float
        Inertia constant of the rotating generation [s] on ``rated_mw``.
    rated_mw : float
        Rated power of the rotating generation [MW] (its kinetic energy is H · rated).
    load_mw : float
        The area's load [MW], for its self-regulation.
    damping_pct_per_hz : float
        Load self-regulation [% of load per Hz]: the load drops this much per Hz below f0.
    fcr_mw : float
        Frequency containment reserve of the area [MW], fully activated at ``fcr_full_hz``.
    fcr_deadband_hz : float
        Insensitivity of FCR [Hz]: no activation within ±this.
    fcr_full_hz : float
        Deviation of full activation [Hz].
    fcr_full_s : float
        Time to activate the full reserve from none [s] (the ramp limit).
    afrr_s : float
        Time constant of the aFRR's restoration [s]; 0 for none (the frequency then keeps
        FCR's offset).
    """

    f0_hz: float = 50.0
    inertia_h_s: float = 5.0
    rated_mw: float = 300_000.0
    load_mw: float = 300_000.0
    damping_pct_per_hz: float = 1.0
    fcr_mw: float = 3_000.0
    fcr_deadband_hz: float = 0.010
    fcr_full_hz: float = 0.200
    fcr_full_s: float = 30.0
    afrr_s: float = 300.0

    def __post_init__(self) -> None:
        for name in ("f0_hz", "inertia_h_s", "rated_mw", "fcr_full_hz", "fcr_full_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"AreaSpec.{name}: expected > 0; found {getattr(self, name)}")
        for name in ("load_mw", "damping_pct_per_hz", "fcr_mw", "fcr_deadband_hz", "afrr_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"AreaSpec.{name}: expected ≥ 0; found {getattr(self, name)}")
        if not self.fcr_deadband_hz < self.fcr_full_hz:
            raise ValueError(f"AreaSpec.fcr_deadband_hz: expected < fcr_full_hz "
                             f"({self.fcr_full_hz}); found {self.fcr_deadband_hz}")

    @property
    def kinetic_mws(self) -> float:
        """Stored kinetic energy of the rotating generation, 2 H S / 2 = H S [MWs]."""
        return self.inertia_h_s * self.rated_mw

    @property
    def damping_mw_per_hz(self) -> float:
        """D [MW/Hz]."""
        return self.load_mw * self.damping_pct_per_hz / 100.0

    @property
    def lambda_mw_per_hz(self) -> float:
        """The area's power–frequency characteristic λ = FCR / full deviation + D [MW/Hz]."""
        return self.fcr_mw / self.fcr_full_hz + self.damping_mw_per_hz


def fcr_droop_mw(df_hz: float, reserve_mw: float, deadband_hz: float = 0.010,
                 full_hz: float = 0.200) -> float:
    """The FCR power a deviation asks for [MW, positive = more injection].

    Zero within ±``deadband_hz``, then linear to ±``reserve_mw`` at ±``full_hz`` (the line
    starts at the deadband's edge, so the response is continuous), constant beyond:
    ``−reserve · sign(Δf) · min(1, (|Δf| − db) / (full − db))``.
    """
    excess = abs(df_hz) - deadband_hz
    if excess <= 0.0:
        return 0.0
    share = min(1.0, excess / (full_hz - deadband_hz))
    return -math.copysign(reserve_mw * share, df_hz)


#: Within this of nominal and of balance the area is at rest [Hz, MW]: well inside FCR's
#: deadband, so nothing but a new disturbance moves it.
REST_HZ = 0.001
REST_MW = 1.0


@dataclass(frozen=True)
class AreaState:
    """The area at one instant: frequency deviation and the reserves activated so far."""

    df_hz: float = 0.0
    p_fcr_mw: float = 0.0
    p_afrr_mw: float = 0.0
    rocof_hz_s: float = 0.0  # dΔf/dt at the end of the last step

    def at_rest(self, spec: AreaSpec, p_disturbance_mw: float, p_twin_mw: float = 0.0) -> bool:
        """Near nominal, FCR idle and the powers balanced: stepping on would change nothing
        worth a step (the caller may stop stepping until something changes)."""
        imbalance = (p_disturbance_mw + self.p_fcr_mw + self.p_afrr_mw + p_twin_mw
                     - spec.damping_mw_per_hz * self.df_hz)
        return (abs(self.df_hz) < REST_HZ and abs(self.p_fcr_mw) < REST_MW
                and abs(imbalance) < REST_MW)


@dataclass(frozen=True)
class AreaStep:
    """What one step of :func:`advance` gives: the state, and the step's extremes."""

    state: AreaState
    f_min_hz: float         # lowest frequency within the step
    f_max_hz: float
    rocof_max_hz_s: float   # largest |RoCoF| within the step
    p_inertia_mw: float = 0.0  # synthetic inertia's power, mean over the step [MW]


@dataclass(frozen=True)
class SyntheticInertia:
    """Converter-coupled units emulating inertia, as the area sees them (scaled to it).

    Parameters
    ----------
    k_mw_s_per_hz : float
        ``Σ 2 H_em S / f0`` [MW per Hz/s]: the power asked per unit of −RoCoF.
    up_mw, down_mw : float
        Headroom [MW] above and below the units' present output (≥ 0).
    """

    k_mw_s_per_hz: float = 0.0
    up_mw: float = 0.0
    down_mw: float = 0.0

    def power_mw(self, p_other_mw: float, m_mw_s_per_hz: float) -> float:
        """Synthetic inertia's power while the other powers sum to ``p_other_mw`` and the
        area's own inertia is ``m`` (= 2 H S / f0): the RoCoF with the emulated machine
        added, then its power within the headroom."""
        if self.k_mw_s_per_hz <= 0.0:
            return 0.0
        rocof = p_other_mw / (m_mw_s_per_hz + self.k_mw_s_per_hz)
        return min(max(-self.k_mw_s_per_hz * rocof, -self.down_mw), self.up_mw)


def advance(spec: AreaSpec, state: AreaState, dt_s: float, p_disturbance_mw: float,
            p_twin_mw: float = 0.0, inertia: SyntheticInertia | None = None) -> AreaStep:
    """The area ``dt_s`` seconds on, with the disturbance and the twin's contribution
    held constant over the step (``inertia``: synthetic inertia, answering each sub-step's
    RoCoF within its headroom).

    Integrated in sub-steps of at most :data:`MAX_SUBSTEP_S` (semi-implicit Euler: the FCR
    ramps toward the droop's demand at the frequency reached, then the swing equation
    moves the frequency), so the result does not depend on how a caller splits a period
    beyond that resolution's error. Deterministic.
    """
    if not dt_s >= 0:
        raise ValueError(f"advance: dt_s must be ≥ 0; found {dt_s}")
    n = max(1, math.ceil(dt_s / MAX_SUBSTEP_S - 1e-9)) if dt_s > 0 else 0
    h = dt_s / n if n else 0.0
    two_h_s_over_f0 = 2.0 * spec.kinetic_mws / spec.f0_hz
    ramp_mw = spec.fcr_mw / spec.fcr_full_s * h
    afrr_gain = spec.lambda_mw_per_hz / spec.afrr_s * h if spec.afrr_s > 0 else 0.0
    df, p_fcr, p_afrr = state.df_hz, state.p_fcr_mw, state.p_afrr_mw
    rocof = state.rocof_hz_s
    f_min = f_max = spec.f0_hz + df
    rocof_max = abs(rocof)
    si = inertia if inertia is not None and inertia.k_mw_s_per_hz > 0 else None
    p_si_sum = 0.0
    for _ in range(n):
        target = fcr_droop_mw(df, spec.fcr_mw, spec.fcr_deadband_hz, spec.fcr_full_hz)
        p_fcr += min(max(target - p_fcr, -ramp_mw), ramp_mw)
        p_afrr -= afrr_gain * df
        p = p_disturbance_mw + p_fcr + p_afrr + p_twin_mw - spec.damping_mw_per_hz * df
        if si is not None:
            p_si = si.power_mw(p, two_h_s_over_f0)
            p += p_si
            p_si_sum += p_si
        rocof = p / two_h_s_over_f0
        df += rocof * h
        f_min, f_max = min(f_min, spec.f0_hz + df), max(f_max, spec.f0_hz + df)
        rocof_max = max(rocof_max, abs(rocof))
    if n == 0:
        p = p_disturbance_mw + p_fcr + p_afrr + p_twin_mw - spec.damping_mw_per_hz * df
        rocof = (p + (si.power_mw(p, two_h_s_over_f0) if si else 0.0)) / two_h_s_over_f0
    return AreaStep(replace(state, df_hz=df, p_fcr_mw=p_fcr, p_afrr_mw=p_afrr,
                            rocof_hz_s=rocof), f_min, f_max, rocof_max,
                    p_si_sum / n if n else 0.0)
