"""Plotly figures as page fragments, and the sections the page is made of."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

_TEMPLATE = "plotly_white"
_FIG_CONFIG = {"displaylogo": False, "responsive": True}


@dataclass
class Figures:
    """Numbers the figures of one page so their div ids are unique and deterministic."""

    count: int = 0

    def html(self, fig: go.Figure, height_px: int = 420, time_x: bool = True) -> str:
        self.count += 1
        if time_x:  # times come as numbers (see xs_ms): every x axis must be a date axis
            fig.update_xaxes(type="date")
        fig.update_layout(template=_TEMPLATE, height=height_px,
                          margin=dict(l=60, r=20, t=40, b=40))
        if fig.layout.legend.orientation is None:  # a section may place its own legend
            fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
        return pio.to_html(fig, full_html=False, include_plotlyjs=False, config=_FIG_CONFIG,
                           div_id=f"fig-{self.count}", default_height=f"{height_px}px",
                           validate=False)


def xs_ms(index: Iterable) -> np.ndarray:
    """Times for a plotly date axis as milliseconds since the epoch (UTC).

    Numbers go into the page base64-packed, 11 characters a time against 26 for an ISO
    string; a date axis reads them as milliseconds.
    """
    return pd.DatetimeIndex(index).as_unit("ns").asi8 / 1e6


def count_axis(title: str, max_count: int) -> dict:
    """A y axis for counts: whole-number ticks when the counts are small."""
    axis: dict[str, Any] = dict(title=title, rangemode="tozero")
    if max_count <= 10:  # plotly would otherwise put ticks at 0.5, 1.5, …
        axis.update(dtick=1, range=[0, max(1, max_count) * 1.05])
    return axis


def rounded(values: Iterable[float], digits: int) -> np.ndarray:
    # fewer digits: the figure data is sent base64-packed, but rounding keeps hover text short
    return np.round(np.asarray(values, dtype=float), digits)


@dataclass
class Section:
    """One part of the page: an anchor, a title and its HTML body."""

    anchor: str
    title: str
    body: str
