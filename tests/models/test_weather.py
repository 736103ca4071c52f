"""Synthetic and CSV weather (twin.models.weather).

Site used throughout: Berlin, 52.5° N 13.4° E, 34 m. Its solar noon on 21 June is about
11:08 UTC: 12:00 − 13.4° × 4 min/° + 1.6 min (equation of time in late June), and sunrise
is near 02:45 UTC.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pvlib
import pytest

from twin.models.weather import (
    WEATHER_COLUMNS,
    WeatherFileError,
    read_weather_csv,
    synthetic_weather,
)

LAT, LON, ALT = 52.5, 13.4, 34.0
SOLAR_NOON_UTC = pd.Timestamp("2024-06-21 11:08", tz="UTC")


def june_day(freq: str = "1min", days: int = 1) -> pd.DatetimeIndex:
    return pd.date_range("2024-06-21", periods=int(days * pd.Timedelta("1D") / pd.Timedelta(freq)),
                         freq=freq, tz="UTC")


def weather(times, seed=1, **kwargs):
    return synthetic_weather(times, LAT, LON, ALT, np.random.default_rng(seed), **kwargs)


def daily_clear_sky_index(frame: pd.DataFrame) -> pd.Series:
    """Daily GHI energy over daily clear-sky energy (the step cancels out)."""
    daily = frame[["ghi_w_m2", "clearsky_ghi_w_m2"]].groupby(frame.index.floor("D")).sum()
    return daily["ghi_w_m2"] / daily["clearsky_ghi_w_m2"]


def test_columns_and_index():
    times = june_day("15min")
    frame = weather(times)
    assert tuple(frame.columns) == WEATHER_COLUMNS
    assert frame.index.equals(times)
    assert np.isfinite(frame.to_numpy()).all()


def test_same_seed_identical_different_seed_different():
    times = june_day("1min")
    pd.testing.assert_frame_equal(weather(times, seed=7), weather(times, seed=7))
    other = weather(times, seed=8)
    assert not np.allclose(weather(times, seed=7)["ghi_w_m2"], other["ghi_w_m2"])
    assert not np.allclose(weather(times, seed=7)["wind_speed_m_s"], other["wind_speed_m_s"])


def test_ghi_zero_at_night_and_bounded_by_clear_sky():
    frame = weather(june_day("1min"), cloud_cover=0.5, cloud_variability=1.0)
    assert frame.loc["2024-06-21 00:00", "ghi_w_m2"].item() == 0.0
    night = frame["solar_zenith_deg"] >= 90
    assert night.sum() > 6 * 60  # about 7 h of night at midsummer in Berlin
    assert (frame.loc[night, ["ghi_w_m2", "dni_w_m2", "dhi_w_m2"]] == 0).all().all()
    assert (frame[["ghi_w_m2", "dni_w_m2", "dhi_w_m2"]] >= 0).all().all()
    assert (frame["ghi_w_m2"] <= 1.1 * frame["clearsky_ghi_w_m2"] + 1e-9).all()
    # Erbs closes the balance GHI = DHI + DNI cos(zenith) (true zenith, within refraction).
    zenith = np.radians(frame["solar_zenith_deg"])
    closure = frame["dhi_w_m2"] + frame["dni_w_m2"] * np.cos(zenith)
    np.testing.assert_allclose(closure, frame["ghi_w_m2"], atol=2.0)


def test_clear_sky_peak_near_solar_noon():
    frame = weather(june_day("1min"), cloud_cover=0.0)
    assert abs(frame["clearsky_ghi_w_m2"].idxmax() - SOLAR_NOON_UTC) <= pd.Timedelta("5min")
    # Simplified Solis for a clean summer sky: about 850–950 W/m² at 61° sun elevation.
    assert 850 < frame["clearsky_ghi_w_m2"].max() < 950
    hourly = frame["ghi_w_m2"].resample("1h").mean()
    assert abs(hourly.idxmax() - pd.Timestamp("2024-06-21 11:00", tz="UTC")) <= pd.Timedelta("1h")


def test_clear_sky_index_tracks_cloud_cover():
    times = june_day("5min", days=10)
    clear = pd.concat([daily_clear_sky_index(weather(times, seed=s, cloud_cover=0.0))
                       for s in range(3)])
    assert (clear >= 0.95).all()
    # Expected clear-sky index 1 − 0.75 × cloud_cover (overcast index 0.25): 0.775 and 0.4.
    for cover, expected in [(0.3, 0.775), (0.8, 0.4)]:
        kt = pd.concat([daily_clear_sky_index(weather(times, seed=s, cloud_cover=cover))
                        for s in range(10)])
        assert kt.mean() == pytest.approx(expected, abs=0.03)
    assert kt.mean() < 0.5  # 0.8 is much darker


def test_cloud_statistics_independent_of_step():
    def mean_index(freq: str) -> float:
        # 600 days: the daily index has a spread of about 0.05, so the standard error of
        # each mean is about 0.002, well inside the tolerance below.
        times = june_day(freq, days=20)
        return pd.concat([daily_clear_sky_index(weather(times, seed=100 + s, cloud_cover=0.5))
                          for s in range(30)]).mean()

    fine, coarse = mean_index("1min"), mean_index("15min")
    assert fine == pytest.approx(0.625, abs=0.02)  # 1 − 0.75 × 0.5
    assert coarse == pytest.approx(fine, rel=0.03)


def test_ten_second_step():
    times = pd.date_range("2024-06-21 10:00", periods=360, freq="10s", tz="UTC")
    frame = weather(times, cloud_variability=1.0)
    assert (frame["ghi_w_m2"] > 0).all()
    assert (frame["ghi_w_m2"] <= 1.1 * frame["clearsky_ghi_w_m2"]).all()


def test_wind_mean_and_correlation_time():
    for freq in ("1min", "15min"):
        wind = weather(june_day(freq, days=60), seed=3, wind_mean_m_s=6.0)["wind_speed_m_s"]
        assert (wind >= 0).all()
        assert wind.mean() == pytest.approx(6.0, rel=0.15)
        lag = int(pd.Timedelta("1h") / pd.Timedelta(freq))
        # A 3 h correlation time gives exp(−1/3) ≈ 0.72 for the Gaussian driver at 1 h lag;
        # the Weibull transform changes it little. The same at both steps.
        assert 0.55 < wind.autocorr(lag) < 0.85


def test_temperature_daily_course():
    temp = weather(june_day("10min", days=30), temp_min_c=8.0, temp_max_c=18.0)["temp_air_c"]
    by_hour = temp.groupby(temp.index.hour).mean()
    # 15:00 apparent solar time ≈ 14:00 UTC in Berlin; minimum at sunrise ≈ 02:45 UTC.
    assert by_hour.idxmax() in (13, 14, 15)
    assert by_hour.idxmin() in (1, 2, 3)
    assert by_hour.max() == pytest.approx(18.0, abs=1.0)
    assert by_hour.min() == pytest.approx(8.0, abs=1.0)


@pytest.mark.parametrize(
    "times, kwargs, match",
    [
        (pd.date_range("2024-06-21", periods=4, freq="1h"), {}, "timezone-aware"),
        (pd.DatetimeIndex(["2024-06-21 00:00", "2024-06-21 00:01", "2024-06-21 00:03"],
                          tz="UTC"), {}, "regular step"),
        (june_day("1h"), {"cloud_cover": 1.5}, "cloud_cover"),
        (june_day("1h"), {"temp_min_c": 20.0}, "temp_min_c"),
    ],
)
def test_synthetic_rejects_bad_input(times, kwargs, match):
    with pytest.raises(ValueError, match=match):
        weather(times, **kwargs)


# --- CSV -------------------------------------------------------------------------------

CSV = """time,ghi_w_m2,temp_air_c,wind_speed_m_s,note
2024-06-21T09:00:00,300,10,2,a
2024-06-21T10:00:00,400,10,4,b
2024-06-21T11:00:00,600,14,6,c
2024-06-21T12:00:00,500,16,5,d
"""


def write(tmp_path, text, name="weather.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_interpolates_linearly(tmp_path):
    path = write(tmp_path, CSV)
    times = pd.date_range("2024-06-21 10:00", "2024-06-21 11:00", freq="15min", tz="UTC")
    frame = read_weather_csv(path, times, LAT, LON, ALT)
    assert tuple(frame.columns) == WEATHER_COLUMNS
    assert frame.index.equals(times)
    # Straight lines between the 10:00 and 11:00 rows.
    np.testing.assert_allclose(frame["ghi_w_m2"], [400, 450, 500, 550, 600])
    np.testing.assert_allclose(frame["temp_air_c"], [10, 11, 12, 13, 14])
    np.testing.assert_allclose(frame["wind_speed_m_s"], [4.0, 4.5, 5.0, 5.5, 6.0])
    # DNI/DHI from Erbs: same as calling pvlib on the interpolated GHI.
    solar = pvlib.solarposition.get_solarposition(times, LAT, LON, altitude=ALT)
    erbs = pvlib.irradiance.erbs(frame["ghi_w_m2"], solar["zenith"], times)
    np.testing.assert_allclose(frame["dni_w_m2"], erbs["dni"])
    np.testing.assert_allclose(frame["dhi_w_m2"], erbs["dhi"])
    np.testing.assert_allclose(frame["solar_zenith_deg"], solar["apparent_zenith"])


def test_csv_uses_given_dni_dhi_and_offsets(tmp_path):
    path = write(tmp_path, "time,ghi_w_m2,dni_w_m2,dhi_w_m2,temp_air_c,wind_speed_m_s\n"
                           "2024-06-21T12:00:00+02:00,400,300,150,10,4\n"
                           "2024-06-21T13:00:00+02:00,600,500,170,14,6\n")
    times = pd.DatetimeIndex(["2024-06-21 10:30"], tz="UTC")  # 12:30 at +02:00
    row = read_weather_csv(path, times, LAT, LON, ALT).iloc[0]
    assert row["dni_w_m2"] == pytest.approx(400.0)
    assert row["dhi_w_m2"] == pytest.approx(160.0)
    assert row["ghi_w_m2"] == pytest.approx(500.0)


def test_csv_night_is_dark(tmp_path):
    path = write(tmp_path, "time,ghi_w_m2,temp_air_c,wind_speed_m_s\n"
                           "2024-06-20T23:00:00,-2,10,4\n2024-06-21T04:00:00,150,11,4\n")
    times = pd.date_range("2024-06-21 00:00", "2024-06-21 04:00", freq="1h", tz="UTC")
    frame = read_weather_csv(path, times, LAT, LON, ALT)
    assert (frame.loc[:"2024-06-21 02:00", ["ghi_w_m2", "dni_w_m2", "dhi_w_m2"]] == 0).all().all()
    assert frame["ghi_w_m2"].iloc[-1] == pytest.approx(150.0)


def test_csv_times_outside_range(tmp_path):
    path = write(tmp_path, CSV, name="short.csv")
    times = pd.date_range("2024-06-21 11:00", "2024-06-21 13:00", freq="1h", tz="UTC")
    with pytest.raises(ValueError, match=r"short\.csv.*covers .* to"):
        read_weather_csv(path, times, LAT, LON, ALT)


def test_csv_missing_column(tmp_path):
    path = write(tmp_path, "time,ghi_w_m2,temp_air_c\n2024-06-21T10:00:00,1,2\n",
                 name="nowind.csv")
    times = pd.DatetimeIndex(["2024-06-21 10:00"], tz="UTC")
    with pytest.raises(ValueError, match=r"nowind\.csv.*wind_speed_m_s"):
        read_weather_csv(path, times, LAT, LON, ALT)


def test_csv_bad_time(tmp_path):
    path = write(tmp_path, "time,ghi_w_m2,temp_air_c,wind_speed_m_s\nyesterday,1,2,3\n",
                 name="badtime.csv")
    times = pd.DatetimeIndex(["2024-06-21 10:00"], tz="UTC")
    with pytest.raises(ValueError, match=r"badtime\.csv.*ISO 8601"):
        read_weather_csv(path, times, LAT, LON, ALT)


# --- malformed CSV files (issue 13): one clear WeatherFileError naming the file ------------

HEADER = "time,ghi_w_m2,temp_air_c,wind_speed_m_s\n"
ONE_TIME = pd.DatetimeIndex(["2024-06-21 10:00"], tz="UTC")


@pytest.mark.parametrize("content, match", [
    (None, r"cannot read the file \(No such file or directory\)"),
    ("", r"expected a CSV header and rows; found an empty file"),
    (HEADER, r"expected rows of data after the header; found none"),
    ('time,"ghi\n2024', r"expected CSV; found"),
    ("a;b;c\n1;2;3\n", r"lacks required column\(s\) \['time', 'ghi_w_m2', 'temp_air_c', "
                       r"'wind_speed_m_s'\]; it has \['a;b;c'\]"),
    (HEADER + "2024-06-21T09:00:00,nan,10,2\n2024-06-21T11:00:00,1,10,2\n",
     r"data row 1, column 'ghi_w_m2': expected a finite number or a blank cell; found 'nan'"),
    (HEADER + "2024-06-21T09:00:00,1,10,2\n2024-06-21T11:00:00,1,inf,2\n",
     r"data row 2, column 'temp_air_c': expected a finite number or a blank cell; found 'inf'"),
    (HEADER + "2024-06-21T09:00:00,1,10,calm\n2024-06-21T11:00:00,1,10,2\n",
     r"data row 1, column 'wind_speed_m_s': expected a finite number .*found 'calm'"),
    (HEADER + "2023-06-21T09:00:00,1,10,2\n2023-06-21T11:00:00,1,10,2\n",
     r"column 'ghi_w_m2' covers 2023-06-21T09:00:00\+00:00 to 2023-06-21T11:00:00\+00:00, but weather is "
     r"needed from 2024-06-21T10:00:00\+00:00"),
    (HEADER + "2024-06-21T09:00:00,1,10,2\n2024-06-21T09:00:00,1,10,2\n"
              "2024-06-21T11:00:00,1,10,2\n", r"time 2024-06-21T09:00:00\+00:00 appears twice"),
    (HEADER + "2024-06-21T11:00:00,1,10,2\n2024-06-21T09:00:00,1,10,2\n",
     r"data row 2: expected times in increasing order; found 2024-06-21T09:00:00\+00:00 after "
     r"2024-06-21T11:00:00\+00:00"),
    (HEADER + ",1,10,2\n", r"data row 1: blank cell in the 'time' column"),
    (HEADER + "3000-01-01T00:00:00,1,10,2\n", r"the 'time' column must be ISO 8601"),
    ((HEADER + "2024-06-21T09:00:00,1,10,2\n").encode("utf-16"), r"byte 0: expected UTF-8 text"),
])
def test_csv_malformed(tmp_path, content, match):
    path = tmp_path / "bad.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(WeatherFileError, match=r"^weather file '.*bad\.csv': " + match):
        read_weather_csv(path, ONE_TIME, LAT, LON, ALT)


def test_csv_directory(tmp_path):
    with pytest.raises(WeatherFileError, match=r"cannot read the file"):
        read_weather_csv(tmp_path, ONE_TIME, LAT, LON, ALT)


def test_csv_error_is_a_value_error():
    assert issubclass(WeatherFileError, ValueError)


def test_csv_blank_cells_are_still_gaps(tmp_path):
    path = write(tmp_path, HEADER + "2024-06-21T09:00:00,100,10,2\n2024-06-21T10:00:00,,12,\n"
                                    "2024-06-21T11:00:00,300,14,4\n")
    frame = read_weather_csv(path, ONE_TIME, LAT, LON, ALT)
    assert frame["ghi_w_m2"].iloc[0] == pytest.approx(200.0)
    assert frame["wind_speed_m_s"].iloc[0] == pytest.approx(3.0)
    assert frame["temp_air_c"].iloc[0] == pytest.approx(12.0)
