"""Stable names for a net's elements and ``"<kind>:<name>"`` references.

The one place that says how an element is named: every layer (scenario sections, the field,
the DMS, the recorder) refers to grid elements through these names. Imports no scenario code.
"""

from __future__ import annotations

import pandapower as pp

#: Element tables the twin works with, in a fixed order.
ELEMENT_TABLES = ("bus", "line", "trafo", "load", "sgen", "storage", "switch", "ext_grid",
                  "shunt")


def element_names(net: pp.pandapowerNet, table: str) -> list[str]:
    """One unique, stable name per row of ``net[table]`` (index order).

    The grid's own name where it has a usable, unique one; ``<table>_<index>`` otherwise.
    """
    df = net[table]
    names = df["name"] if "name" in df.columns else [None] * len(df)
    raw = [n if isinstance(n, str) and n.strip() else None for n in names]
    counts: dict[str, int] = {}
    for n in raw:
        if n is not None:
            counts[n] = counts.get(n, 0) + 1
    return [
        n if n is not None and counts[n] == 1 else f"{table}_{idx}"
        for n, idx in zip(raw, df.index)
    ]
