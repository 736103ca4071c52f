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
class ProfileTable:
    """One quantity of a set of elements over the run, kept compact.

    The value of element ``k`` at step ``i`` is ``shapes[i, shape_of[k]] * ref[k]``: SimBench
    elements share a few relative profiles (20 load and 9 generator profiles for 12,000
    elements of its 10,458-bus grid), so the table grows with the grid plus the horizon, not
    with their product. A table with its own shape per element (the synthetic, noisy loads)
    is the same thing with ``shape_of = arange``.

    Attributes
    ----------
    times : pandas.DatetimeIndex
        The grid steps (UTC), one per row of ``shapes``.
    elements : numpy.ndarray of int
        The elements' indices in their net table.
    shapes : numpy.ndarray of float, [n_steps × n_shapes]
        Relative profiles on the grid step.
    shape_of : numpy.ndarray of int, [n_elements]
        The column of ``shapes`` each element follows.
    ref : numpy.ndarray of float, [n_elements]
        The value a relative 1.0 stands for [MW or Mvar], scalings included.
    """

    times: pd.DatetimeIndex
    elements: np.ndarray
    shapes: np.ndarray
    shape_of: np.ndarray
    ref: np.ndarray

    def __len__(self) -> int:
        return len(self.elements)

    @property
    def n_steps(self) -> int:
        return self.shapes.shape[0]

    def at(self, step: int) -> np.ndarray:
        """Every element's value at grid step ``step``, in the order of ``elements``."""
        return self.shapes[step, self.shape_of] * self.ref

    def column(self, element: int) -> np.ndarray:
        """One element's values over the run."""
        k = int(np.flatnonzero(self.elements == element)[0])
        return self.shapes[:, self.shape_of[k]] * self.ref[k]

    def frame(self) -> pd.DataFrame:
        """The whole table as a DataFrame (steps × elements): for small grids and tests."""
        return pd.DataFrame(self.shapes[:, self.shape_of] * self.ref, index=self.times,
                            columns=list(self.elements))


@dataclass(frozen=True)
class Profiles:
    """Absolute time series on the grid step, per element (see :class:`ProfileTable`)."""

    load_p_mw: ProfileTable
    load_q_mvar: ProfileTable
    sgen_p_mw: ProfileTable
    sgen_q_mvar: ProfileTable


def _flat(times: pd.DatetimeIndex, elements, ref) -> ProfileTable:
    """Elements that hold ``ref`` all run (one shared shape of ones)."""
    elements = np.asarray(elements, dtype=int)
    return ProfileTable(times, elements, np.ones((len(times), 1)),
                        np.zeros(len(elements), dtype=int), np.asarray(ref, dtype=float))


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
    # one factor series per load, shared by its P and Q (the same shape at its power factor)
    factors = np.empty((len(times), len(net.load)))
    for k, name in enumerate(names["load"]):
        shape = daily_shape(hours_local, load_kind(name))
        noise = ar1_noise(component_rng(seed, f"load/{name}"), len(times), spec.noise, corr_steps)
        factors[:, k] = np.clip(shape * (1.0 + noise), 0.0, None) * spec.load_scaling
    loads = net.load.index.to_numpy(dtype=int)
    own = np.arange(len(loads))
    p_sgen = [float(net.sgen.at[i, "p_mw"]) * spec.sgen_scaling for i in sgen_idx]
    q_sgen = [float(net.sgen.at[i, "q_mvar"]) * spec.sgen_scaling for i in sgen_idx]
    return Profiles(
        ProfileTable(times, loads, factors, own, net.load["p_mw"].to_numpy(dtype=float)),
        ProfileTable(times, loads, factors, own, net.load["q_mvar"].to_numpy(dtype=float)),
        _flat(times, sgen_idx, p_sgen), _flat(times, sgen_idx, q_sgen),
    )


def simbench_profiles(
    net: pp.pandapowerNet, times: pd.DatetimeIndex, spec: ProfilesSpec, sgen_idx: list[int]
) -> Profiles:
    """The grid's SimBench profiles on ``times`` (mapped on the profile year's day and time,
    interpolated to the grid step), for the simulated span only.

    Notes
    -----
    Element ``k`` with relative profile ``r`` and reference power ``P_k`` (its ``p_mw`` or
    ``q_mvar`` in the net) draws ``r(t) · P_k · scaling``, as ``sb.get_absolute_values``
    gives it (equal to rounding). The relative profiles are sliced to the run's steps before
    anything is multiplied: SimBench's own function builds a year of float64 for every element
    (13 GB on its 10,458-bus grid); here it is steps × profiles plus one number per element.
    """
    year_start = pd.Timestamp(year=times[0].year, month=1, day=1, tz="UTC")
    pos = ((times - year_start).total_seconds().to_numpy() / SIMBENCH_STEP_S) % SIMBENCH_STEPS
    lo = np.floor(pos).astype(int)
    hi = (lo + 1) % SIMBENCH_STEPS
    w = (pos - lo)[:, None]
    relative = getattr(net, "profiles", None) or {}

    def table(element: str, column: str, members: list[int], scale: float,
              suffix: str = "") -> ProfileTable:
        members_arr = np.asarray(members, dtype=int)
        ref = net[element].loc[members_arr, column].to_numpy(dtype=float) \
            if len(members_arr) else np.zeros(0)
        ref = np.nan_to_num(ref, nan=0.0) * scale
        kinds = net[element].loc[members_arr, "profile"] if "profile" in net[element] \
            else pd.Series([None] * len(members_arr), dtype=object)
        wanted = sorted({f"{k}{suffix}" for k in kinds.dropna()})
        source = _relative_source(relative, element)
        missing = [c for c in wanted if source is None or c not in source.columns]
        if missing:
            raise ValueError(f"SimBench {element} profiles missing from the net: {missing}")
        # column 0: elements without a profile hold their reference power (SimBench's ones)
        year = np.ones((SIMBENCH_STEPS, 1 + len(wanted)))
        if wanted:
            year[:, 1:] = source[wanted].to_numpy(dtype=float)
        year = np.nan_to_num(year, nan=0.0)
        shapes = year[lo] * (1.0 - w) + year[hi] * w  # only the run's steps
        col = {c: j + 1 for j, c in enumerate(wanted)}
        shape_of = np.array([0 if pd.isna(k) else col[f"{k}{suffix}"] for k in kinds], dtype=int)
        return ProfileTable(times, members_arr, shapes, shape_of, ref)

    loads = [int(i) for i in net.load.index]
    return Profiles(
        table("load", "p_mw", loads, spec.load_scaling, "_pload"),
        table("load", "q_mvar", loads, spec.load_scaling, "_qload"),
        table("sgen", "p_mw", sgen_idx, spec.sgen_scaling),
        _flat(times, sgen_idx, np.zeros(len(sgen_idx))),
    )


def _relative_source(relative: dict, element: str) -> pd.DataFrame | None:
    """SimBench's relative profiles of ``element``: loads their own; sgens those of the
    power plants and renewables together (as SimBench converts either to sgen or gen)."""
    if element == "load":
        return relative.get("load")
    parts = [relative[k].drop(columns="time", errors="ignore")
             for k in ("powerplants", "renewables") if k in relative]
    return pd.concat(parts, axis=1) if parts else None
