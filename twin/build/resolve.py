"""A scenario's element names resolved against the net, with errors that name the key path."""

from __future__ import annotations

import pandapower as pp

from twin.grid.names import element_names
from twin.scenario import ScenarioError


def find_element(net: pp.pandapowerNet, table: str, name: str, key_path: str) -> int:
    """Index of the element called ``name``; a ScenarioError naming ``key_path`` if none."""
    names = element_names(net, table)
    for idx, n in zip(net[table].index, names):
        if n == name:
            return int(idx)
    shown = ", ".join(names[:12]) + (" …" if len(names) > 12 else "")
    raise ScenarioError(f"{key_path}: expected the name of a {table} ({shown}); found {name!r}")
