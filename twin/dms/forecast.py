"""The DMS's own forecast of loads and generation: what it expects without a meter.

It knows what a utility's DMS knows — typical daily load shapes by consumer type
(:func:`twin.models.load_shapes.daily_shape`) and a clear-sky PV forecast — and never the
loads or weather the twin actually draws. The factors scale the nominal powers of the
DMS's network model (``p_mw``/``q_mvar`` of ``net.load`` and ``net.sgen``); they feed the
pseudo-measurements of the state estimator and the what-ifs of Volt/Var, FLISR and load
management.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.models.load_shapes import daily_shape

#: Irradiance at which a PV plant's nominal power is rated (standard test conditions)
#: [W/m²]: the clear-sky GHI divided by it is the clear-sky power factor.
STC_IRRADIANCE_W_M2 = 1000.0

#: Share of the clear-sky PV power the DMS expects [-]: a day is seldom cloud-free, and
#: the clear-sky power is an upper bound, so the forecast is derated for clouds.
CLEAR_SKY_DERATING = 0.8

#: Wind plants' expected power, as a share of nominal [-]: without a wind forecast the
#: DMS assumes a typical capacity factor of an onshore plant.
WIND_FACTOR = 0.3

#: Other generators (CHP, fuel cells, …) at their nominal power [-]: dispatchable, so
#: the model's set-point is the best guess.
OTHER_SGEN_FACTOR = 1.0

#: Degrees of longitude per hour of solar time [°/h]: 360° in 24 h.
DEGREES_PER_HOUR = 15.0


@dataclass(frozen=True)
class ProfileForecast:
    """Per-load and per-sgen forecast factors at a scenario time: call it with ``t_s``.

    Attributes
    ----------
    load_kinds : tuple of str or None
        Consumer type per load, in ``net.load`` order (``"residential"``, ``"commercial"``,
        ``"industrial"``); None for a load without a typical shape (an EV charging point),
        forecast at zero.
    is_pv, is_wind : numpy.ndarray of bool
        Per sgen, in ``net.sgen`` order: a PV or a wind plant.
    clear_sky_ghi_w_m2 : numpy.ndarray
        Clear-sky global horizontal irradiance per weather row [W/m²].
    weather_step_s : float
        Time between weather rows [s].
    start_hour_utc : float
        Time of day of the scenario's start [h, UTC].
    longitude_deg : float
        Longitude of the grid [°, east positive]: local solar time = UTC + longitude / 15°.
    """

    load_kinds: tuple[str | None, ...]
    is_pv: np.ndarray
    is_wind: np.ndarray
    clear_sky_ghi_w_m2: np.ndarray
    weather_step_s: float
    start_hour_utc: float
    longitude_deg: float

    def __call__(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(load factors, sgen factors) [-] at ``t_s`` [s since the start]."""
        hour_local = np.array([(self.start_hour_utc + t_s / 3600
                                + self.longitude_deg / DEGREES_PER_HOUR) % 24])
        by_kind = {k: float(daily_shape(hour_local, k)[0])
                   for k in set(self.load_kinds) if k is not None}
        load_f = np.array([0.0 if k is None else by_kind[k] for k in self.load_kinds])
        row = min(int(t_s // self.weather_step_s), len(self.clear_sky_ghi_w_m2) - 1)
        clear_sky = self.clear_sky_ghi_w_m2[row] / STC_IRRADIANCE_W_M2
        sgen_f = np.where(self.is_pv, CLEAR_SKY_DERATING * clear_sky,
                          np.where(self.is_wind, WIND_FACTOR, OTHER_SGEN_FACTOR))
        return load_f, sgen_f
