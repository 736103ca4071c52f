"""Wind turbines: hub-height wind by the power law, and power from a power curve."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ArrayLike = float | np.ndarray


@dataclass(frozen=True, eq=False)
class PowerCurve:
    """A turbine's normalised power curve.

    Parameters
    ----------
    wind_speed_m_s : array_like
        Hub-height wind speeds [m/s], strictly increasing, from cut-in to cut-out.
    power_pu : array_like
        Power at those speeds as a fraction of rated power [p.u.], in [0, 1]; interpolated
        linearly in between.
    cut_in_m_s, cut_out_m_s : float, optional
        Below cut-in and at or above cut-out the turbine produces nothing. Default: the
        first and last tabulated speeds.
    """

    wind_speed_m_s: np.ndarray
    power_pu: np.ndarray
    cut_in_m_s: float | None = None
    cut_out_m_s: float | None = None

    def __post_init__(self) -> None:
        speed = np.array(self.wind_speed_m_s, dtype=float)
        power = np.array(self.power_pu, dtype=float)
        if speed.ndim != 1 or speed.shape != power.shape or speed.size < 2:
            raise ValueError(
                "PowerCurve: wind_speed_m_s and power_pu must be 1-D, of equal length >= 2; "
                f"found shapes {speed.shape} and {power.shape}"
            )
        if not (np.diff(speed) > 0).all():
            raise ValueError("PowerCurve: wind_speed_m_s must be strictly increasing")
        if not ((power >= 0) & (power <= 1)).all():
            raise ValueError("PowerCurve: power_pu must lie in [0, 1]")
        cut_in = float(speed[0] if self.cut_in_m_s is None else self.cut_in_m_s)
        cut_out = float(speed[-1] if self.cut_out_m_s is None else self.cut_out_m_s)
        if not 0 <= cut_in < cut_out:
            raise ValueError(f"PowerCurve: need 0 <= cut-in ({cut_in}) < cut-out ({cut_out})")
        for array in (speed, power):
            array.setflags(write=False)
        object.__setattr__(self, "wind_speed_m_s", speed)
        object.__setattr__(self, "power_pu", power)
        object.__setattr__(self, "cut_in_m_s", cut_in)
        object.__setattr__(self, "cut_out_m_s", cut_out)

    @property
    def rated_m_s(self) -> float:
        """Lowest tabulated speed at which the curve reaches its maximum [m/s]."""
        return float(self.wind_speed_m_s[np.argmax(self.power_pu)])

    @classmethod
    def generic(
        cls, cut_in_m_s: float = 3.0, rated_m_s: float = 12.0, cut_out_m_s: float = 25.0
    ) -> "PowerCurve":
        """A typical curve of a 2–3 MW class turbine, tabulated every 0.5 m/s.

        Notes
        -----
        Between cut-in and rated the turbine runs at a roughly constant power coefficient,
        so power grows with the cube of the wind speed,
        :math:`p = (v^3 - v_{in}^3) / (v_r^3 - v_{in}^3)`. Real curves round off into rated
        power instead of hitting it with a kink; over the last 1.5 m/s below rated a cubic
        Hermite segment joins the cube law (same value and slope) to 1 p.u. with zero slope.
        The segment is monotone, so the curve never exceeds 1 p.u. From rated to cut-out
        the power is 1 p.u.
        """
        if not 0 <= cut_in_m_s < rated_m_s - 1.5 < rated_m_s < cut_out_m_s:
            raise ValueError(
                "PowerCurve.generic: need 0 <= cut-in < rated - 1.5 and rated < cut-out; found "
                f"{cut_in_m_s}, {rated_m_s}, {cut_out_m_s}"
            )
        knee_m_s = rated_m_s - 1.5
        denom = rated_m_s**3 - cut_in_m_s**3
        speed = np.arange(cut_in_m_s, rated_m_s + 0.25, 0.5)
        cube = (speed**3 - cut_in_m_s**3) / denom
        # Hermite segment on [knee, rated]: p(knee), p'(knee) from the cube law; 1 and 0 at rated.
        p0 = (knee_m_s**3 - cut_in_m_s**3) / denom
        m0 = 3.0 * knee_m_s**2 / denom * (rated_m_s - knee_m_s)
        s = np.clip((speed - knee_m_s) / (rated_m_s - knee_m_s), 0.0, 1.0)
        hermite = (
            (2 * s**3 - 3 * s**2 + 1) * p0 + (s**3 - 2 * s**2 + s) * m0 + (-2 * s**3 + 3 * s**2)
        )
        power = np.where(speed < knee_m_s, cube, hermite)
        return cls(
            wind_speed_m_s=np.append(speed, cut_out_m_s),
            power_pu=np.append(power, 1.0),
            cut_in_m_s=cut_in_m_s,
            cut_out_m_s=cut_out_m_s,
        )


def hub_wind_speed_m_s(
    wind_speed_ref_m_s: ArrayLike,
    ref_height_m: float = 10.0,
    hub_height_m: ArrayLike = 100.0,
    shear_exponent: float = 0.14,
) -> np.ndarray:
    r"""Wind speed at hub height [m/s] by the power law.

    Notes
    -----
    :math:`v_{hub} = v_{ref}\,(h_{hub} / h_{ref})^{\alpha}`; :math:`\alpha = 1/7 \approx
    0.14` is the classic value for open, flat terrain in neutral stability.

    References
    ----------
    .. [1] IEC 61400-1:2019, Wind energy generation systems — Part 1: Design requirements,
       clause 6.3 (normal wind profile model).
    """
    hub = np.asarray(hub_height_m, dtype=float)  # one height per turbine, or one for all
    if ref_height_m <= 0 or np.any(hub <= 0):
        raise ValueError(
            f"heights must be positive; found ref {ref_height_m} m, hub {hub_height_m} m"
        )
    return np.asarray(wind_speed_ref_m_s, dtype=float) * (hub / ref_height_m) ** shear_exponent


def available_power_mw(
    wind_speed_hub_m_s: ArrayLike, p_rated_mw: ArrayLike, curve: PowerCurve
) -> np.ndarray:
    """Available power [MW] of turbines at the given hub-height wind speeds.

    Parameters
    ----------
    wind_speed_hub_m_s : float or array_like
        Hub-height wind speed [m/s]; NaN gives NaN.
    p_rated_mw : float or array_like
        Rated power [MW]; broadcast against the wind speeds.
    curve : PowerCurve

    Returns
    -------
    numpy.ndarray
        ``p_rated_mw`` times the interpolated curve; 0 below cut-in and at or above cut-out
        (storm shutdown).
    """
    speed = np.asarray(wind_speed_hub_m_s, dtype=float)
    power_pu = np.interp(speed, curve.wind_speed_m_s, curve.power_pu, left=0.0, right=0.0)
    running = (speed >= curve.cut_in_m_s) & (speed < curve.cut_out_m_s)
    power_pu = np.where(running | np.isnan(speed), power_pu, 0.0)
    return power_pu * np.asarray(p_rated_mw, dtype=float)
