"""Stable names for a net's elements and ``"<kind>:<name>"`` references.

The one place that says how an element is named: every layer (scenario sections, the field,
the DMS, the recorder) refers to grid elements through these names. Imports no scenario code.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for annotations: the scenario checks references without pandapower
    import pandapower as pp

#: Element tables the twin works with, in a fixed order.
ELEMENT_TABLES = ("bus", "line", "trafo", "load", "sgen", "storage", "switch", "ext_grid",
                  "shunt")

#: Kinds a scenario may name in a reference ``"<kind>:<name>"``: grid tables, plus the
#: scenario's own devices (``pv``, ``wind``, ``battery``; ``ev`` = the EVs charging at a bus).
ELEMENT_KINDS = ("bus", "line", "trafo", "switch", "shunt", "load", "sgen", "pv", "wind",
                 "battery", "ev")


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


def split_ref(ref: str, kinds: Collection[str] | None = None, *,
              strip: bool = False) -> tuple[str, str]:
    """Split an element reference: ``"switch:S1"`` → ``("switch", "S1")``.

    The kind (a table or a scenario kind) ends at the first ``:``; the rest is the name,
    which may itself hold ``:`` and spaces.

    Parameters
    ----------
    ref : str
        ``"<kind>:<name>"``.
    kinds : collection of str, optional
        Accepted kinds, e.g. :data:`ELEMENT_KINDS` for a scenario; ``None`` accepts any
        non-empty kind (the net's tables are checked by whoever looks the name up).
    strip : bool
        Strip whitespace around the name. A scenario's hand-written ``"bus: Bus 3"`` means
        ``Bus 3``; names the grid itself hands out are taken as they are (they may end in
        a space), so the DMS leaves this off.

    Returns
    -------
    tuple of str
        ``(kind, name)``.

    Raises
    ------
    ValueError
        Without a ``:``, with an empty kind or name, or a kind not in ``kinds``. The
        message completes "expected …" (``"an element reference '<kind>:<name>' with kind
        in bus, line, …; found 'Bus 1'"``), the way scenario and DMS messages put it after
        the key or input that held ``ref``.
    """
    kind, sep, name = ref.partition(":")
    if strip:
        name = name.strip()
    if not sep or not kind or not name or (kinds is not None and kind not in kinds):
        if kinds is not None:
            expected = f"an element reference '<kind>:<name>' with kind in {', '.join(kinds)}"
        else:
            expected = "'<table>:<name>' such as 'bus:Bus 1'"
        raise ValueError(f"{expected}; found {ref!r}")
    return kind, name
