"""Ratings the loading figures are computed from, checked before a run.

pandapower's ``loading_percent`` is current over ``max_i_ka`` (lines) or apparent power over
``sn_mva`` (transformers). Some nets carry placeholders instead of ratings (case33bw: every
line 99999 kA), and then every loading reads 0.0 % and no overload is ever seen. The twin
runs anyway and says so.
"""

from __future__ import annotations

import math

import pandapower as pp

from twin.grid.names import element_names

#: No line in a distribution or transmission grid carries this much [kA]: a placeholder.
MAX_PLAUSIBLE_LINE_KA = 100.0
#: Nor is a single transformer this large [MVA].
MAX_PLAUSIBLE_TRAFO_MVA = 5000.0

_CHECKS = (
    # table, column, unit, what its loading is called, plausible upper limit
    ("line", "max_i_ka", "kA", "line loading", MAX_PLAUSIBLE_LINE_KA),
    ("trafo", "sn_mva", "MVA", "transformer loading", MAX_PLAUSIBLE_TRAFO_MVA),
)


def unusable_ratings(net: pp.pandapowerNet) -> list[str]:
    """One warning per table whose in-service elements have ratings that make loading
    meaningless (missing, not positive, or a placeholder above the plausible limit)."""
    out = []
    for table, column, unit, what, limit in _CHECKS:
        df = net[table]
        if len(df) == 0:
            continue
        names = element_names(net, table)
        in_service = df["in_service"] if "in_service" in df.columns else [True] * len(df)
        values = df[column] if column in df.columns else [math.nan] * len(df)
        bad = []
        for name, value, on in zip(names, values, in_service):
            try:
                v = float(value)
            except (TypeError, ValueError):
                v = math.nan
            if bool(on) and not (math.isfinite(v) and 0.0 < v <= limit):
                bad.append((name, v))
        if bad:
            shown = ", ".join(f"{n} ({v:g} {unit})" for n, v in bad[:3])
            more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
            out.append(
                f"grid: {len(bad)} of {len(df)} {table}s have no usable {column} rating "
                f"(missing, ≤ 0 or above {limit:g} {unit}): {shown}{more}; their {what} "
                f"[%] stays near 0 and overloads go unseen")
    return out
