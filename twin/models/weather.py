"""Weather for the twin: synthetic (seeded, stochastic) or read from a CSV file.

Both sources return a :class:`pandas.DataFrame` indexed by the requested UTC times with the
columns in :data:`WEATHER_COLUMNS`:

* ``ghi_w_m2``, ``dni_w_m2``, ``dhi_w_m2`` — global horizontal, direct normal and diffuse
  horizontal irradiance [W/m²];
* ``clearsky_ghi_w_m2`` — clear-sky GHI [W/m²] (simplified Solis model);
* ``temp_air_c`` — air temperature [°C];
* ``wind_speed_m_s`` — wind speed at 10 m above ground [m/s];
* ``solar_zenith_deg`` — apparent (refraction-corrected) solar zenith [°]; the sun is up
  when it is below 90;
* ``solar_azimuth_deg`` — solar azimuth, clockwise from north [°].

The synthetic processes are Ornstein–Uhlenbeck processes sampled exactly at the time step,
so their statistics do not depend on the step size; only the sampling does.
"""

from __future__ import annotations

import math
from os import PathLike

import numpy as np
import pandas as pd
import pvlib
from scipy import signal, special

from twin.timebase import short_repr

WEATHER_COLUMNS = (
    "ghi_w_m2",
    "dni_w_m2",
    "dhi_w_m2",
    "clearsky_ghi_w_m2",
    "temp_air_c",
    "wind_speed_m_s",
    "solar_zenith_deg",
    "solar_azimuth_deg",
)

#: The weather the DER plants take in (the weather simulator's outputs, in this order).
WEATHER_ATTRS = ("ghi_w_m2", "dni_w_m2", "dhi_w_m2", "solar_zenith_deg", "solar_azimuth_deg",
                 "temp_air_c", "wind_speed_m_s")

# --- clear sky: simplified Solis with a clean, mid-latitude atmosphere -------------------
# Aerosol optical depth at 700 nm and precipitable water are the model's own defaults-ish
# values for rural Europe; they need no lookup files (unlike Ineichen's Linke turbidity).
_AOD700 = 0.1
_PRECIPITABLE_WATER_CM = 1.5

# --- clouds -------------------------------------------------------------------------------
# Clear-sky index when the sun is fully behind clouds; thick stratus gives 0.1–0.4.
_KT_OVERCAST = 0.25
# Cloud-edge enhancement can lift GHI a little above clear sky, never much more.
_KT_MAX = 1.1
# Correlation time of the cloud process: slow drifting overcast at cloud_variability = 0,
# fast broken cumulus at cloud_variability = 1 (geometric interpolation in between).
_CLOUD_TAU_SLOW_S = 60.0 * 60.0
_CLOUD_TAU_FAST_S = 2.0 * 60.0
# Width of the probit transition from "sun free" to "sun covered" in units of the process's
# standard deviation: wide = gradual thinning/thickening, narrow = on/off (broken clouds).
_CLOUD_EDGE_WIDTH_SMOOTH = 0.75
_CLOUD_EDGE_WIDTH_SHARP = 0.15
# Fast flicker on top (thin cloud edges, turbidity); strongest in broken conditions.
_FLICKER_TAU_S = 60.0
_FLICKER_SD_CLEAR = 0.01
_FLICKER_SD_BROKEN = 0.06

# --- wind ---------------------------------------------------------------------------------
# Weibull shape 2 (Rayleigh) is the usual assumption for 10 m winds in Europe.
_WIND_WEIBULL_SHAPE = 2.0
_WIND_TAU_S = 3.0 * 3600.0

# --- temperature --------------------------------------------------------------------------
_TEMP_MAX_SOLAR_HOUR = 15.0
_TEMP_NOISE_SD_C = 0.7
_TEMP_NOISE_TAU_S = 2.0 * 3600.0

_REQUIRED_CSV_COLUMNS = ("ghi_w_m2", "temp_air_c", "wind_speed_m_s")


def synthetic_weather(
    times: pd.DatetimeIndex,
    latitude_deg: float,
    longitude_deg: float,
    altitude_m: float,
    rng: np.random.Generator,
    cloud_cover: float = 0.3,
    cloud_variability: float = 0.5,
    wind_mean_m_s: float = 6.0,
    temp_min_c: float = 8.0,
    temp_max_c: float = 18.0,
) -> pd.DataFrame:
    r"""Seeded stochastic weather at one site.

    Parameters
    ----------
    times : pandas.DatetimeIndex
        Timezone-aware, strictly increasing, regular step of any size (10 s, 1 min, 15 min…).
    latitude_deg, longitude_deg : float
        Site position [°], north and east positive.
    altitude_m : float
        Site altitude above sea level [m]; sets the air pressure of the clear-sky model.
    rng : numpy.random.Generator
        The only source of randomness; the same generator state gives the same frame.
    cloud_cover : float
        Long-run fraction of time the sun is covered, in [0, 1]. The expected clear-sky
        index is ``1 - (1 - 0.25) * cloud_cover`` (0 → clear sky, 1 → overcast).
    cloud_variability : float
        In [0, 1]: 0 gives slowly changing, gradual cloudiness (correlation time 60 min),
        1 gives fast, sharply broken clouds (correlation time 2 min).
    wind_mean_m_s : float
        Long-run mean wind speed at 10 m [m/s].
    temp_min_c, temp_max_c : float
        Daily minimum (near sunrise) and maximum (15:00 solar time) air temperature [°C].

    Returns
    -------
    pandas.DataFrame
        Indexed by ``times``, columns :data:`WEATHER_COLUMNS`.

    Notes
    -----
    *Clouds.* A stationary standard Ornstein–Uhlenbeck process :math:`x(t)` with correlation
    time :math:`\tau` is sampled exactly, :math:`x_{k+1} = \phi x_k + \sqrt{1-\phi^2}\,
    \varepsilon_k`, :math:`\phi = e^{-\Delta t/\tau}`, so its distribution and
    autocorrelation in physical time are the same for every step :math:`\Delta t`. The sun's
    covered fraction is :math:`b = \Phi((x - \theta)/w)` (probit, edge width :math:`w`) with
    :math:`\theta = \sqrt{1 + w^2}\,\Phi^{-1}(1 - c)`, which makes :math:`E[b] = c`
    (``cloud_cover``) exactly. The clear-sky index is
    :math:`k = 1 - (1 - k_{ov}) b + \sigma(b) \eta`, :math:`k_{ov} = 0.25`, plus a zero-mean
    flicker :math:`\eta` (a second OU process, 1 min) whose amplitude peaks in broken
    conditions; :math:`k` is clipped to [0, 1.1]. GHI is :math:`k` times the clear-sky GHI;
    DNI and DHI follow from Erbs' decomposition.

    *Wind.* A standard OU process (correlation time 3 h) is mapped through the normal CDF
    and the Weibull quantile function (shape 2, scale ``mean / Γ(1 + 1/2)``), so the marginal
    is exactly Weibull with the requested mean.

    *Temperature.* Piecewise half-cosines: rising from ``temp_min_c`` at sunrise to
    ``temp_max_c`` at 15:00 apparent solar time, falling back until the next sunrise; plus an
    OU noise of 0.7 °C standard deviation and 2 h correlation time.

    References
    ----------
    .. [1] P. Ineichen, "A broadband simplified version of the Solis clear sky model",
       Solar Energy 82(8), 758–762, 2008, :doi:`10.1016/j.solener.2008.02.009`.
    .. [2] D. G. Erbs, S. A. Klein, J. A. Duffie, "Estimation of the diffuse radiation
       fraction for hourly, daily and monthly-average global radiation",
       Solar Energy 28(4), 293–302, 1982, :doi:`10.1016/0038-092X(82)90302-4`.
    .. [3] G. E. Uhlenbeck, L. S. Ornstein, "On the theory of the Brownian motion",
       Physical Review 36, 823–841, 1930, :doi:`10.1103/PhysRev.36.823`.
    """
    times = _check_times(times)
    _check_unit_interval("cloud_cover", cloud_cover)
    _check_unit_interval("cloud_variability", cloud_variability)
    if not wind_mean_m_s >= 0:
        raise ValueError(f"wind_mean_m_s must be >= 0; found {wind_mean_m_s!r}")
    if not temp_min_c <= temp_max_c:
        raise ValueError(f"temp_min_c ({temp_min_c}) must not exceed temp_max_c ({temp_max_c})")
    step_s = _regular_step_s(times)
    n = len(times)

    # Fixed draw order (clouds, flicker, wind, temperature) keeps a seed's frame reproducible.
    cloud_x = _ou_standard(n, step_s, _cloud_tau_s(cloud_variability), rng)
    flicker_x = _ou_standard(n, step_s, _FLICKER_TAU_S, rng)
    wind_x = _ou_standard(n, step_s, _WIND_TAU_S, rng)
    temp_x = _ou_standard(n, step_s, _TEMP_NOISE_TAU_S, rng)

    solar = _solar_position(times, latitude_deg, longitude_deg, altitude_m)
    clearsky_ghi = _clearsky_ghi_w_m2(times, solar, altitude_m)

    kt = _clear_sky_index(cloud_x, flicker_x, cloud_cover, cloud_variability)
    ghi = np.minimum(kt * clearsky_ghi, _KT_MAX * clearsky_ghi)
    dni, dhi = _erbs(times, ghi, solar)

    return _frame(
        times,
        solar,
        ghi_w_m2=ghi,
        dni_w_m2=dni,
        dhi_w_m2=dhi,
        clearsky_ghi_w_m2=clearsky_ghi,
        temp_air_c=_temperature_c(times, longitude_deg, latitude_deg, temp_min_c, temp_max_c)
        + _TEMP_NOISE_SD_C * temp_x,
        wind_speed_m_s=_weibull_from_normal(wind_x, wind_mean_m_s, _WIND_WEIBULL_SHAPE),
    )


class WeatherFileError(ValueError):
    """A weather file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | PathLike[str], problem: str) -> None:
        super().__init__(f"weather file {str(path)!r}: {problem}")


def read_weather_csv(
    path: str | PathLike[str],
    times: pd.DatetimeIndex,
    latitude_deg: float,
    longitude_deg: float,
    altitude_m: float,
) -> pd.DataFrame:
    """Measured or prepared weather from a CSV file, interpolated onto ``times``.

    Parameters
    ----------
    path : str or path-like
        CSV with a ``time`` column (ISO 8601; times without an offset are UTC) and the
        columns ``ghi_w_m2`` [W/m²], ``temp_air_c`` [°C], ``wind_speed_m_s`` [m/s at 10 m];
        optionally ``dni_w_m2`` and ``dhi_w_m2`` [W/m²]. Other columns are ignored.
    times : pandas.DatetimeIndex
        Timezone-aware, strictly increasing; must lie within the file's time range.
    latitude_deg, longitude_deg : float
        Site position [°], north and east positive.
    altitude_m : float
        Site altitude above sea level [m].

    Returns
    -------
    pandas.DataFrame
        Indexed by ``times``, columns :data:`WEATHER_COLUMNS`.

    Raises
    ------
    WeatherFileError
        A :class:`ValueError` naming the file, when it cannot be read (missing, a directory,
        not UTF-8), is empty or not CSV, a required column is missing, a time cannot be parsed,
        is repeated or out of order, a value is not a finite number (``nan``, ``inf``, text),
        or ``times`` reach outside the file's range (for any column; blank cells are skipped,
        so a column's range is that of its non-blank values).

    Notes
    -----
    Each column is interpolated linearly in time over its non-blank values. DNI and DHI are
    used when both are in the file; otherwise both come from Erbs' decomposition of GHI.
    Irradiance is clipped at 0 (sensor offsets read slightly negative at night) and set to 0
    while the sun is below the horizon, so that interpolating coarse data onto a fine grid
    does not light up the night.
    """
    times = _check_times(times)
    try:
        # Every cell as text, only empty cells blank: 'nan' or 'inf' written in the file is
        # an error to report, not a gap to interpolate over.
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""],
                          encoding="utf-8", skipinitialspace=True)
    except OSError as exc:  # missing, a directory, unreadable
        raise WeatherFileError(path, f"cannot read the file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise WeatherFileError(path, f"byte {exc.start}: expected UTF-8 text") from None
    except pd.errors.EmptyDataError:
        raise WeatherFileError(path, "expected a CSV header and rows; found an empty file") \
            from None
    except (pd.errors.ParserError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0][:200]
        raise WeatherFileError(path, f"expected CSV; found {reason}") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in ("time", *_REQUIRED_CSV_COLUMNS) if c not in raw.columns]
    if missing:
        have = list(raw.columns)
        shown = str(have[:10])[:200] + (f" and {len(have) - 10} more" if len(have) > 10 else "")
        raise WeatherFileError(path, f"lacks required column(s) {missing}; it has {shown}")
    if raw.empty:
        raise WeatherFileError(path, "expected rows of data after the header; found none")
    try:
        file_times = pd.DatetimeIndex(pd.to_datetime(raw["time"], utc=True, format="ISO8601"))
    except (ValueError, TypeError, OverflowError) as exc:
        # pandas appends advice on its own format options; the first line is the useful part.
        reason = str(exc).splitlines()[0][:200]
        raise WeatherFileError(path, f"the 'time' column must be ISO 8601; {reason}") from None
    if file_times.hasnans:
        row = int(np.flatnonzero(file_times.isna())[0])
        raise WeatherFileError(path, f"data row {row + 1}: blank cell in the 'time' column")
    if file_times.has_duplicates:
        dup = file_times[file_times.duplicated()][0]
        raise WeatherFileError(path, f"time {dup.isoformat()} appears twice")
    steps = np.diff(file_times.asi8)
    if (steps < 0).any():
        # a file out of order is most often two files pasted together: say so, not sort
        row = int(np.flatnonzero(steps < 0)[0]) + 1
        raise WeatherFileError(
            path, f"data row {row + 1}: expected times in increasing order; found "
            f"{file_times[row].isoformat()} after {file_times[row - 1].isoformat()}")

    origin_ns = int(file_times.asi8[0])
    # Seconds since the file's first row: float64 keeps sub-microsecond precision here,
    # unlike raw epoch nanoseconds.
    file_s = (file_times.asi8 - origin_ns) / 1e9
    want_s = (times.asi8 - origin_ns) / 1e9

    def column(name: str) -> np.ndarray:
        cells = raw[name]
        values = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=float)
        given = cells.notna().to_numpy()
        bad = given & ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise WeatherFileError(
                path, f"data row {row + 1}, column {name!r}: expected a finite number or a blank "
                f"cell; found {short_repr(cells.iloc[row], 40)}")
        ok = given
        if not ok.any():
            raise WeatherFileError(path, f"column {name!r} has no numbers")
        first_s, last_s = file_s[ok][0], file_s[ok][-1]
        if want_s[0] < first_s or want_s[-1] > last_s:
            span = [pd.Timestamp(origin_ns + int(s * 1e9), tz="UTC").isoformat()
                    for s in (first_s, last_s)]
            raise WeatherFileError(
                path, f"column {name!r} covers {span[0]} to {span[1]}, "
                f"but weather is needed from {times[0].isoformat()} to {times[-1].isoformat()}"
            )
        return np.interp(want_s, file_s[ok], values[ok])

    solar = _solar_position(times, latitude_deg, longitude_deg, altitude_m)
    sun_up = solar["apparent_zenith"].to_numpy() < 90.0
    ghi = np.where(sun_up, np.maximum(column("ghi_w_m2"), 0.0), 0.0)
    if "dni_w_m2" in raw.columns and "dhi_w_m2" in raw.columns:
        dni = np.where(sun_up, np.maximum(column("dni_w_m2"), 0.0), 0.0)
        dhi = np.where(sun_up, np.maximum(column("dhi_w_m2"), 0.0), 0.0)
    else:
        dni, dhi = _erbs(times, ghi, solar)

    return _frame(
        times,
        solar,
        ghi_w_m2=ghi,
        dni_w_m2=dni,
        dhi_w_m2=dhi,
        clearsky_ghi_w_m2=_clearsky_ghi_w_m2(times, solar, altitude_m),
        temp_air_c=column("temp_air_c"),
        wind_speed_m_s=np.maximum(column("wind_speed_m_s"), 0.0),
    )


# --- building blocks --------------------------------------------------------------------


def _check_times(times: pd.DatetimeIndex) -> pd.DatetimeIndex:
    if not isinstance(times, pd.DatetimeIndex):
        raise ValueError(f"times must be a pandas.DatetimeIndex; found {type(times).__name__}")
    if times.tz is None:
        raise ValueError("times must be timezone-aware (UTC); found naive timestamps")
    if len(times) == 0:
        raise ValueError("times is empty")
    if len(times) > 1 and not (np.diff(times.asi8) > 0).all():
        raise ValueError("times must be strictly increasing")
    return times


def _check_unit_interval(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1]; found {value!r}")


def _regular_step_s(times: pd.DatetimeIndex) -> float:
    """The step [s]; a single time has no step and gets one of 1 s (only x_0 is drawn)."""
    if len(times) < 2:
        return 1.0
    steps_ns = np.diff(times.asi8)
    if (steps_ns != steps_ns[0]).any():
        raise ValueError(
            "times must have a regular step for the synthetic weather; "
            f"found steps from {steps_ns.min() / 1e9} s to {steps_ns.max() / 1e9} s"
        )
    return steps_ns[0] / 1e9


def _ou_standard(n: int, step_s: float, tau_s: float, rng: np.random.Generator) -> np.ndarray:
    """Stationary unit-variance OU process sampled every ``step_s`` (exact discretisation).

    Starting from a draw of the stationary law avoids a spin-up transient.
    """
    phi = math.exp(-step_s / tau_s)
    eps = rng.standard_normal(n)
    drive = eps * math.sqrt(1.0 - phi * phi)
    drive[0] = eps[0]
    # A first-order IIR filter is the AR(1) recursion x_k = phi * x_{k-1} + drive_k,
    # run in C instead of a Python loop (a year at 10 s is 3 million steps).
    return signal.lfilter([1.0], [1.0, -phi], drive)


def _cloud_tau_s(cloud_variability: float) -> float:
    return _CLOUD_TAU_SLOW_S * (_CLOUD_TAU_FAST_S / _CLOUD_TAU_SLOW_S) ** cloud_variability


def _clear_sky_index(
    cloud_x: np.ndarray, flicker_x: np.ndarray, cloud_cover: float, cloud_variability: float
) -> np.ndarray:
    """Clear-sky index from two standard OU series (see :func:`synthetic_weather` Notes)."""
    width = _CLOUD_EDGE_WIDTH_SMOOTH + (
        _CLOUD_EDGE_WIDTH_SHARP - _CLOUD_EDGE_WIDTH_SMOOTH
    ) * cloud_variability
    if cloud_cover <= 0.0:
        covered = np.zeros_like(cloud_x)
    elif cloud_cover >= 1.0:
        covered = np.ones_like(cloud_x)
    else:
        # E[Phi((x - theta)/w)] = Phi(-theta / sqrt(1 + w^2)) for x ~ N(0, 1); solve for theta
        # so the mean covered fraction is exactly cloud_cover.
        theta = math.sqrt(1.0 + width * width) * special.ndtri(1.0 - cloud_cover)
        covered = special.ndtr((cloud_x - theta) / width)
    flicker_sd = _FLICKER_SD_CLEAR + (_FLICKER_SD_BROKEN - _FLICKER_SD_CLEAR) * (
        cloud_variability * 4.0 * covered * (1.0 - covered)
    )
    kt = 1.0 - (1.0 - _KT_OVERCAST) * covered + flicker_sd * flicker_x
    return np.clip(kt, 0.0, _KT_MAX)


def _weibull_from_normal(z: np.ndarray, mean: float, shape: float) -> np.ndarray:
    """Map standard-normal values to a Weibull law with the given mean (quantile transform)."""
    scale = mean / math.gamma(1.0 + 1.0 / shape)
    # -ln(1 - Phi(z)) = -ln Phi(-z); log_ndtr keeps precision in the upper tail.
    return scale * (-special.log_ndtr(-z)) ** (1.0 / shape)


def _solar_position(
    times: pd.DatetimeIndex, latitude_deg: float, longitude_deg: float, altitude_m: float
) -> pd.DataFrame:
    return pvlib.solarposition.get_solarposition(
        times, latitude_deg, longitude_deg, altitude=altitude_m
    )


def _clearsky_ghi_w_m2(
    times: pd.DatetimeIndex, solar: pd.DataFrame, altitude_m: float
) -> np.ndarray:
    elevation_deg = solar["apparent_elevation"].to_numpy()
    clear = pvlib.clearsky.simplified_solis(
        elevation_deg,
        aod700=_AOD700,
        precipitable_water=_PRECIPITABLE_WATER_CM,
        pressure=pvlib.atmosphere.alt2pres(altitude_m),
        dni_extra=pvlib.irradiance.get_extra_radiation(times).to_numpy(),
    )
    ghi = np.nan_to_num(np.asarray(clear["ghi"], dtype=float), nan=0.0)
    # Solis is undefined below the horizon (NaN there); the sun is down, so no light.
    return np.where(elevation_deg > 0.0, np.maximum(ghi, 0.0), 0.0)


def _erbs(
    times: pd.DatetimeIndex, ghi_w_m2: np.ndarray, solar: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """DNI and DHI [W/m²] from GHI by Erbs' diffuse-fraction correlation."""
    parts = pvlib.irradiance.erbs(ghi_w_m2, solar["zenith"].to_numpy(), times)
    dni = np.nan_to_num(np.asarray(parts["dni"], dtype=float), nan=0.0)
    dhi = np.nan_to_num(np.asarray(parts["dhi"], dtype=float), nan=0.0)
    return np.maximum(dni, 0.0), np.clip(dhi, 0.0, ghi_w_m2)


def _temperature_c(
    times: pd.DatetimeIndex,
    longitude_deg: float,
    latitude_deg: float,
    temp_min_c: float,
    temp_max_c: float,
) -> np.ndarray:
    """Deterministic daily course: minimum at sunrise, maximum at 15:00 solar time."""
    day_of_year = times.dayofyear.to_numpy()
    eot_min = pvlib.solarposition.equation_of_time_spencer71(day_of_year)
    utc_h = (times.asi8 % 86_400_000_000_000) / 3.6e12
    solar_h = np.mod(utc_h + longitude_deg / 15.0 + eot_min / 60.0, 24.0)

    declination_rad = pvlib.solarposition.declination_spencer71(day_of_year)
    # Sunset hour angle; clipping covers polar day (sunrise at 0 h) and night (at 12 h).
    cos_w0 = np.clip(-math.tan(math.radians(latitude_deg)) * np.tan(declination_rad), -1, 1)
    sunrise_h = 12.0 - np.degrees(np.arccos(cos_w0)) / 15.0
    sunrise_h = np.minimum(sunrise_h, _TEMP_MAX_SOLAR_HOUR - 1.0)

    rise_span_h = _TEMP_MAX_SOLAR_HOUR - sunrise_h
    fall_span_h = 24.0 - rise_span_h
    since_rise_h = np.mod(solar_h - sunrise_h, 24.0)
    rising = since_rise_h < rise_span_h
    # Fraction of the way from one extreme to the other, then a half-cosine between them.
    frac = np.where(
        rising, since_rise_h / rise_span_h, (since_rise_h - rise_span_h) / fall_span_h
    )
    warmth = np.where(rising, 0.5 * (1 - np.cos(np.pi * frac)), 0.5 * (1 + np.cos(np.pi * frac)))
    return temp_min_c + (temp_max_c - temp_min_c) * warmth


def _frame(times: pd.DatetimeIndex, solar: pd.DataFrame, **columns: np.ndarray) -> pd.DataFrame:
    columns["solar_zenith_deg"] = solar["apparent_zenith"].to_numpy()
    columns["solar_azimuth_deg"] = solar["azimuth"].to_numpy()
    return pd.DataFrame({name: columns[name] for name in WEATHER_COLUMNS}, index=times)
