"""Load and generation time series for the elements that no physical model drives.

Two sources:

* ``synthetic`` — seeded daily shapes by consumer type (residential evening peak, commercial
  working hours, industrial shifts) on local solar time, with AR(1) noise; peak = the
  element's nominal ``p_mw`` in the grid. Generators (CHP, fuel cells) run flat at nominal.
* ``simbench`` — the grid's own SimBench profiles (a year at 15 min), mapped on the
  scenario's day of year and interpolated to the grid step.

Sign convention as pandapower: loads positive when consuming, sgens positive when producing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandapower as pp
import pandas as pd

from twin.models.load_shapes import daily_shape, load_kind
from twin.rng import component_rng
from twin.scenario import ProfilesSpec

#: SimBench profile year: 2016, 366 days at 15 min.
SIMBENCH_STEPS = 35136
SIMBENCH_STEP_S = 900.0


def ar1_noise(rng: np.random.Generator, n: int, sigma: float, corr_steps: float) -> np.ndarray:
    """Stationary AR(1) series with standard deviation ``sigma`` and correlation time in steps."""
    if sigma == 0 or n == 0:
        return np.zeros(n)
    phi = float(np.exp(-1.0 / max(corr_steps, 1e-9)))
    eps = rng.standard_normal(n) * sigma * np.sqrt(1.0 - phi**2)
    out = np.empty(n)
    out[0] = rng.standard_normal() * sigma
    for i in range(1, n):
        out[i] = phi * out[i - 1] + eps[i]
    return out


@dataclass(frozen=True)
class Profiles:
    """Absolute time series on the grid step, one column per element index."""

    load_p_mw: pd.DataFrame
    load_q_mvar: pd.DataFrame
    sgen_p_mw: pd.DataFrame
    sgen_q_mvar: pd.DataFrame


def synthetic_profiles(
    net: pp.pandapowerNet,
    names: dict[str, list[str]],
    times: pd.DatetimeIndex,
    spec: ProfilesSpec,
    sgen_idx: list[int],
    longitude_deg: float,
    seed: int,
) -> Profiles:
    hours_utc = (times.hour + times.minute / 60.0 + times.second / 3600.0).to_numpy()
    hours_local = (hours_utc + longitude_deg / 15.0) % 24.0
    step_s = (times[1] - times[0]).total_seconds() if len(times) > 1 else 60.0
    corr_steps = 1800.0 / step_s  # load noise correlated over about half an hour
    p_cols, q_cols = {}, {}
    for idx, name in zip(net.load.index, names["load"]):
        shape = daily_shape(hours_local, load_kind(name))
        noise = ar1_noise(component_rng(seed, f"load/{name}"), len(times), spec.noise, corr_steps)
        factor = np.clip(shape * (1.0 + noise), 0.0, None) * spec.load_scaling
        p_cols[idx] = factor * float(net.load.at[idx, "p_mw"])
        q_cols[idx] = factor * float(net.load.at[idx, "q_mvar"])
    sp_cols = {i: np.full(len(times), float(net.sgen.at[i, "p_mw"]) * spec.sgen_scaling) for i in sgen_idx}
    sq_cols = {i: np.full(len(times), float(net.sgen.at[i, "q_mvar"]) * spec.sgen_scaling) for i in sgen_idx}
    return Profiles(
        pd.DataFrame(p_cols, index=times), pd.DataFrame(q_cols, index=times),
        pd.DataFrame(sp_cols, index=times), pd.DataFrame(sq_cols, index=times),
    )


def simbench_profiles(
    net: pp.pandapowerNet, times: pd.DatetimeIndex, spec: ProfilesSpec, sgen_idx: list[int]
) -> Profiles:
    import simbench as sb

    absolute = sb.get_absolute_values(net, profiles_instead_of_study_cases=True)
    year_start = pd.Timestamp(year=times[0].year, month=1, day=1, tz="UTC")
    pos = ((times - year_start).total_seconds().to_numpy() / SIMBENCH_STEP_S) % SIMBENCH_STEPS
    lo = np.floor(pos).astype(int)
    hi = (lo + 1) % SIMBENCH_STEPS
    w = (pos - lo)[:, None]

    def sample(key: tuple[str, str], columns: list[int], scale: float) -> pd.DataFrame:
        if key not in absolute or len(columns) == 0:
            return pd.DataFrame({c: np.zeros(len(times)) for c in columns}, index=times)
        values = absolute[key].reindex(columns=columns).fillna(0.0).to_numpy()
        data = (values[lo] * (1.0 - w) + values[hi] * w) * scale
        return pd.DataFrame(data, index=times, columns=columns)

    loads = list(net.load.index)
    return Profiles(
        sample(("load", "p_mw"), loads, spec.load_scaling),
        sample(("load", "q_mvar"), loads, spec.load_scaling),
        sample(("sgen", "p_mw"), sgen_idx, spec.sgen_scaling),
        pd.DataFrame({i: np.zeros(len(times)) for i in sgen_idx}, index=times),
    )
