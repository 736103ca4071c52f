"""PV plants, many at once: available AC power from the weather, and P/Q dispatch.

:func:`available_power_mw` runs once per simulation step for all plants, so it takes the
weather as scalars, the plants as arrays, and uses plain numpy ufuncs (no pandas, no
per-call pvlib wrappers, whose argument handling costs more than the arithmetic). Weather
arrays that broadcast against the plants (e.g. shape ``(n_times, 1)``) work as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from twin.models.validate import frozen, per_element, require_range

ArrayLike = float | Sequence[float] | np.ndarray

#: Faiman heat-loss coefficients (pvlib's defaults, PVsyst's free-standing values):
#: constant [W/(m²·K)] and wind-dependent [W·s/(m³·K)].
FAIMAN_U0 = 25.0
FAIMAN_U1 = 6.84
#: Reference irradiance [W/m²] and cell temperature [°C] of the nameplate rating (STC).
IRRADIANCE_STC_W_M2 = 1000.0
TEMP_CELL_STC_C = 25.0
#: PVWatts' reference inverter efficiency, the curve's normalisation.
INVERTER_EFF_REF = 0.9637


@dataclass(frozen=True, eq=False)
class PVPlants:
    """Static data of ``n`` PV plants; each field is an array of length ``n``.

    Scalars for the four loss/efficiency fields apply to every plant.

    Parameters
    ----------
    p_peak_mw : array_like
        DC nameplate power at STC [MW].
    tilt_deg : array_like
        Module tilt from horizontal [°].
    azimuth_deg : array_like
        Direction the modules face, clockwise from north [°] (180 = south).
    s_inverter_mva : array_like
        Inverter apparent-power limit [MVA]; also its AC active-power rating.
    gamma_pdc_per_c : array_like
        Temperature coefficient of DC power [1/°C].
    system_loss_fraction : array_like
        DC losses (soiling, wiring, mismatch, …) as a fraction of DC power [-].
    inverter_eff_nom : array_like
        Nominal inverter efficiency [-].
    albedo : array_like
        Ground reflectance [-].
    """

    p_peak_mw: np.ndarray
    tilt_deg: np.ndarray
    azimuth_deg: np.ndarray
    s_inverter_mva: np.ndarray
    gamma_pdc_per_c: np.ndarray = -0.004  # type: ignore[assignment]
    system_loss_fraction: np.ndarray = 0.14  # type: ignore[assignment]
    inverter_eff_nom: np.ndarray = 0.96  # type: ignore[assignment]
    albedo: np.ndarray = 0.2  # type: ignore[assignment]

    # Per-plant constants of the hot path, computed once here instead of every step.
    _cos_tilt: np.ndarray = field(init=False, repr=False)
    _sin_tilt_cos_az: np.ndarray = field(init=False, repr=False)
    _sin_tilt_sin_az: np.ndarray = field(init=False, repr=False)
    _sky_view: np.ndarray = field(init=False, repr=False)
    _ground_view_albedo: np.ndarray = field(init=False, repr=False)
    _p_dc_per_w_m2: np.ndarray = field(init=False, repr=False)
    _eff_scale: np.ndarray = field(init=False, repr=False)
    _eff_per_dc_mw: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = np.size(self.p_peak_mw)
        for name in (
            "p_peak_mw", "tilt_deg", "azimuth_deg", "s_inverter_mva",
            "gamma_pdc_per_c", "system_loss_fraction", "inverter_eff_nom", "albedo",
        ):
            self._set(name, per_element(getattr(self, name), n, f"PVPlants.{name}", "plant"))
        require_range(self.p_peak_mw, "PVPlants", "p_peak_mw", 0)
        require_range(self.s_inverter_mva, "PVPlants", "s_inverter_mva", 0)
        require_range(self.tilt_deg, "PVPlants", "tilt_deg", 0, 180)
        require_range(self.azimuth_deg, "PVPlants", "azimuth_deg")
        require_range(self.gamma_pdc_per_c, "PVPlants", "gamma_pdc_per_c")
        require_range(self.system_loss_fraction, "PVPlants", "system_loss_fraction", 0, 1,
                      hi_open=True)
        require_range(self.inverter_eff_nom, "PVPlants", "inverter_eff_nom", 0, 1,
                      lo_open=True)
        require_range(self.albedo, "PVPlants", "albedo", 0, 1)

        tilt = np.radians(self.tilt_deg)
        azimuth = np.radians(self.azimuth_deg)
        self._set("_cos_tilt", np.cos(tilt))
        self._set("_sin_tilt_cos_az", np.sin(tilt) * np.cos(azimuth))
        self._set("_sin_tilt_sin_az", np.sin(tilt) * np.sin(azimuth))
        self._set("_sky_view", 0.5 * (1.0 + np.cos(tilt)))
        self._set("_ground_view_albedo", 0.5 * (1.0 - np.cos(tilt)) * self.albedo)
        self._set(
            "_p_dc_per_w_m2",
            self.p_peak_mw * (1.0 - self.system_loss_fraction) / IRRADIANCE_STC_W_M2,
        )
        self._set("_eff_scale", self.inverter_eff_nom / INVERTER_EFF_REF)
        # zeta = p_dc / p_dc0_inverter with p_dc0_inverter = s / eta_nom; a plant with no
        # inverter (s = 0) gets zeta = 0 and, through the AC clip, no power.
        eff_per_dc = np.zeros(n)
        np.divide(self.inverter_eff_nom, self.s_inverter_mva, out=eff_per_dc,
                  where=self.s_inverter_mva > 0)
        self._set("_eff_per_dc_mw", eff_per_dc)

    def _set(self, name: str, value: np.ndarray) -> None:
        object.__setattr__(self, name, frozen(np.asarray(value, dtype=float)))

    def __len__(self) -> int:
        return int(self.p_peak_mw.size)

    @classmethod
    def from_lists(
        cls,
        p_peak_mw: ArrayLike,
        tilt_deg: ArrayLike = 30.0,
        azimuth_deg: ArrayLike = 180.0,
        s_inverter_mva: ArrayLike | None = None,
        **losses: ArrayLike,
    ) -> "PVPlants":
        """Plants from lists or scalars; scalars apply to every plant.

        ``s_inverter_mva`` defaults to ``p_peak_mw`` (DC/AC ratio 1); ``losses`` are the
        optional fields ``gamma_pdc_per_c``, ``system_loss_fraction``,
        ``inverter_eff_nom``, ``albedo``.
        """
        p_peak = np.atleast_1d(np.asarray(p_peak_mw, dtype=float))
        if s_inverter_mva is None:
            s_inverter_mva = p_peak
        n = np.broadcast_shapes(
            p_peak.shape, np.shape(tilt_deg), np.shape(azimuth_deg), np.shape(s_inverter_mva)
        )
        return cls(
            p_peak_mw=np.broadcast_to(p_peak, n),
            tilt_deg=np.broadcast_to(np.asarray(tilt_deg, dtype=float), n),
            azimuth_deg=np.broadcast_to(np.asarray(azimuth_deg, dtype=float), n),
            s_inverter_mva=np.broadcast_to(np.asarray(s_inverter_mva, dtype=float), n),
            **losses,
        )


def poa_irradiance_w_m2(
    plants: PVPlants,
    ghi_w_m2: ArrayLike,
    dni_w_m2: ArrayLike,
    dhi_w_m2: ArrayLike,
    solar_zenith_deg: ArrayLike,
    solar_azimuth_deg: ArrayLike,
) -> np.ndarray:
    r"""Plane-of-array irradiance [W/m²] by isotropic-sky transposition.

    Notes
    -----
    .. math::

        \cos\theta = \cos z \cos\beta + \sin z \sin\beta \cos(\gamma_s - \gamma)

        E_{poa} = \mathrm{DNI}\max(\cos\theta, 0)
                  + \mathrm{DHI}\,\tfrac{1 + \cos\beta}{2}
                  + \mathrm{GHI}\,\rho\,\tfrac{1 - \cos\beta}{2}

    with solar zenith :math:`z`, solar azimuth :math:`\gamma_s`, tilt :math:`\beta`, surface
    azimuth :math:`\gamma`, albedo :math:`\rho`; the beam term is 0 while the sun is down.
    Same as ``pvlib.irradiance.get_total_irradiance(model="isotropic")``.

    References
    ----------
    .. [1] B. Y. H. Liu, R. C. Jordan, "The long-term average performance of flat-plate
       solar-energy collectors", Solar Energy 7(2), 53–74, 1963,
       :doi:`10.1016/0038-092X(63)90006-9`.
    """
    zenith = np.radians(solar_zenith_deg)
    azimuth = np.radians(solar_azimuth_deg)
    cos_z = np.cos(zenith)
    sin_z = np.sin(zenith)
    cos_aoi = cos_z * plants._cos_tilt + sin_z * (
        np.cos(azimuth) * plants._sin_tilt_cos_az + np.sin(azimuth) * plants._sin_tilt_sin_az
    )
    # Sun below the horizon: no beam, whatever the panel's orientation.
    beam = np.asarray(dni_w_m2) * np.maximum(cos_aoi, 0.0) * (cos_z > 0.0)
    poa = beam + np.multiply(dhi_w_m2, plants._sky_view) + np.multiply(
        ghi_w_m2, plants._ground_view_albedo
    )
    return np.maximum(poa, 0.0)


def cell_temperature_c(
    poa_w_m2: ArrayLike, temp_air_c: ArrayLike, wind_speed_m_s: ArrayLike
) -> np.ndarray:
    """Cell temperature [°C] by Faiman's model.

    Notes
    -----
    :math:`T_c = T_a + E_{poa} / (U_0 + U_1 v)` with :math:`U_0 = 25` W/(m²K),
    :math:`U_1 = 6.84` W s/(m³K) (pvlib's defaults). The coefficients were fitted to wind at
    module height; the twin passes the 10 m wind, which slightly overstates cooling.

    References
    ----------
    .. [1] D. Faiman, "Assessing the outdoor operating temperature of photovoltaic
       modules", Progress in Photovoltaics 16(4), 307–315, 2008, :doi:`10.1002/pip.813`.
    """
    heat_loss_w_m2_k = FAIMAN_U0 + FAIMAN_U1 * np.asarray(wind_speed_m_s)
    return np.add(temp_air_c, np.divide(poa_w_m2, heat_loss_w_m2_k))


def dc_power_mw(plants: PVPlants, poa_w_m2: ArrayLike, temp_cell_c: ArrayLike) -> np.ndarray:
    r"""DC power after system losses [MW] by PVWatts.

    Notes
    -----
    :math:`P_{dc} = P_{peak}(1 - L)\,\frac{E_{poa}}{1000}\,(1 + \gamma (T_c - 25))`,
    floored at 0 (the linear temperature term would turn negative only far outside the
    physical range).

    References
    ----------
    .. [1] A. P. Dobos, "PVWatts Version 5 Manual", NREL/TP-6A20-62641, 2014,
       :doi:`10.2172/1158421`.
    """
    temp_factor = 1.0 + plants.gamma_pdc_per_c * (np.asarray(temp_cell_c) - TEMP_CELL_STC_C)
    return np.maximum(plants._p_dc_per_w_m2 * np.asarray(poa_w_m2) * temp_factor, 0.0)


def ac_power_mw(plants: PVPlants, p_dc_mw: ArrayLike) -> np.ndarray:
    r"""AC power [MW] by the PVWatts inverter model, clipped to [0, ``s_inverter_mva``].

    Notes
    -----
    With :math:`\zeta = P_{dc} / P_{dc0}` and :math:`P_{dc0} = S / \eta_{nom}`:

    .. math::

        \eta = \frac{\eta_{nom}}{0.9637}\left(-0.0162\,\zeta - \frac{0.0059}{\zeta}
                + 0.9858\right), \qquad P_{ac} = \min(\eta P_{dc}, S)

    and :math:`P_{ac} = 0` where :math:`\eta P_{dc} < 0` (very low load). Same as
    ``pvlib.inverter.pvwatts(pdc, pdc0=S / eta_nom, eta_inv_nom=eta_nom)``.

    References
    ----------
    .. [1] A. P. Dobos, "PVWatts Version 5 Manual", NREL/TP-6A20-62641, 2014,
       :doi:`10.2172/1158421`.
    """
    p_dc = np.asarray(p_dc_mw, dtype=float)
    zeta = p_dc * plants._eff_per_dc_mw
    # The floor only avoids 0/0 at zero load: there eta * p_dc is a finite number times 0.
    zeta = np.maximum(zeta, 1e-12)
    eta = plants._eff_scale * (-0.0162 * zeta - 0.0059 / zeta + 0.9858)
    return np.clip(eta * p_dc, 0.0, plants.s_inverter_mva)


def available_power_mw(
    plants: PVPlants,
    ghi_w_m2: ArrayLike,
    dni_w_m2: ArrayLike,
    dhi_w_m2: ArrayLike,
    solar_zenith_deg: ArrayLike,
    solar_azimuth_deg: ArrayLike,
    temp_air_c: ArrayLike,
    wind_speed_m_s: ArrayLike,
) -> np.ndarray:
    """Available AC power of every plant [MW], in [0, ``s_inverter_mva``].

    Parameters
    ----------
    plants : PVPlants
    ghi_w_m2, dni_w_m2, dhi_w_m2 : float or array_like
        Global horizontal, direct normal, diffuse horizontal irradiance [W/m²].
    solar_zenith_deg, solar_azimuth_deg : float or array_like
        Apparent solar zenith and azimuth (clockwise from north) [°].
    temp_air_c : float or array_like
        Air temperature [°C].
    wind_speed_m_s : float or array_like
        Wind speed [m/s].

    Returns
    -------
    numpy.ndarray
        Shape ``(len(plants),)`` for scalar weather; otherwise the broadcast shape.

    Notes
    -----
    The chain is :func:`poa_irradiance_w_m2` (isotropic transposition) →
    :func:`cell_temperature_c` (Faiman) → :func:`dc_power_mw` (PVWatts DC with system
    losses) → :func:`ac_power_mw` (PVWatts inverter); see those functions for formulas.
    No incidence-angle or spectral correction is applied.
    """
    poa = poa_irradiance_w_m2(
        plants, ghi_w_m2, dni_w_m2, dhi_w_m2, solar_zenith_deg, solar_azimuth_deg
    )
    temp_cell = cell_temperature_c(poa, temp_air_c, wind_speed_m_s)
    return ac_power_mw(plants, dc_power_mw(plants, poa, temp_cell))


def dispatch(
    p_available_mw: ArrayLike,
    p_limit_mw: ArrayLike,
    q_setpoint_mvar: ArrayLike,
    s_inverter_mva: ArrayLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Active and reactive power the inverters deliver, given limits and setpoints.

    Parameters
    ----------
    p_available_mw : array_like
        Available AC power [MW], ≥ 0.
    p_limit_mw : array_like
        Active-power limit [MW]; NaN or +inf means no limit; negative counts as 0.
    q_setpoint_mvar : array_like
        Requested reactive power [Mvar] (positive = injected); NaN means 0.
    s_inverter_mva : array_like
        Inverter apparent-power limit [MVA].

    Returns
    -------
    p_mw : numpy.ndarray
        Delivered active power [MW], ``min(available, limit)``.
    q_mvar : numpy.ndarray
        Delivered reactive power [Mvar]: the setpoint clipped to
        ``±sqrt(S² − P²)`` — active power has priority.
    curtailed_mw : numpy.ndarray
        ``p_available_mw − p_mw`` [MW], ≥ 0.

    Notes
    -----
    ``p_mw + curtailed_mw == p_available_mw`` holds exactly in floating point: ``p_mw`` is
    formed as ``available − curtailed`` (Sterbenz's lemma makes one of the two subtractions
    exact), at the price of ``p_mw`` possibly exceeding the limit by one rounding unit of
    ``p_available_mw``.
    """
    p_available = np.asarray(p_available_mw, dtype=float)
    limit = np.asarray(p_limit_mw, dtype=float)
    limit = np.maximum(np.where(np.isnan(limit), np.inf, limit), 0.0)
    curtailed = p_available - np.minimum(p_available, limit)
    p = p_available - curtailed
    q_max = np.sqrt(np.maximum(np.square(s_inverter_mva) - p * p, 0.0))
    q_set = np.nan_to_num(np.asarray(q_setpoint_mvar, dtype=float), nan=0.0)
    q = np.clip(q_set, -q_max, q_max)
    return p, q, curtailed
