"""Typical daily load shapes by consumer type, on local solar time.

Residential evening peak, commercial working hours, industrial shifts. Used for the
synthetic load profiles (:mod:`twin.build.profiles`) and for the DMS's own forecast
(:mod:`twin.dms.forecast`), which knows typical shapes but never the loads the twin draws.
"""

from __future__ import annotations

import functools

import numpy as np


def _bump(hours: np.ndarray, centre_h: float, width_h: float) -> np.ndarray:
    # Circular distance so a bump near midnight wraps around the day.
    d = (hours - centre_h + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (d / width_h) ** 2)


def _plateau(hours: np.ndarray, on_h: float, off_h: float, edge_h: float = 0.7) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(hours - on_h) / edge_h)) - 1.0 / (
        1.0 + np.exp(-(hours - off_h) / edge_h)
    )


def daily_shape(hours_local: np.ndarray, kind: str) -> np.ndarray:
    """Normalised daily load shape (peak of the day-curve = 1) at local solar hours [h].

    Parameters
    ----------
    hours_local : array of float
        Local solar time of day [h], 0–24.
    kind : {'residential', 'commercial', 'industrial'}
    """
    return _shape(np.asarray(hours_local, dtype=float), kind) / _peak(kind)


def _shape(h: np.ndarray, kind: str) -> np.ndarray:
    if kind == "residential":
        return 0.30 + 0.35 * _bump(h, 7.5, 1.2) + 0.15 * _bump(h, 13.0, 2.0) + 0.70 * _bump(
            h, 19.5, 2.0
        )
    if kind == "commercial":
        return 0.25 + 0.75 * _plateau(h, 8.0, 18.0)
    if kind == "industrial":
        return 0.55 + 0.45 * _plateau(h, 6.0, 22.0)
    raise ValueError(f"unknown load kind {kind!r}")


@functools.lru_cache(maxsize=None)
def _peak(kind: str) -> float:
    """The day-curve's maximum on a one-minute grid (computed once per kind: the DMS's
    forecast asks every cycle)."""
    grid = np.linspace(0.0, 24.0, 24 * 60, endpoint=False)
    return _shape(grid, kind).max()


def load_kind(name: str) -> str:
    """Consumer type from a load's name (CIGRE: 'Load R…' residential, 'Load CI…' commercial)."""
    upper = name.upper()
    if " CI" in upper or upper.startswith("CI") or "COMMERC" in upper:
        return "commercial"
    if "IND" in upper:
        return "industrial"
    return "residential"
