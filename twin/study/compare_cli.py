"""``twin compare`` (placeholder until the compare command lands)."""

from __future__ import annotations


def compare() -> None:
    """Compare a baseline and a candidate DMS over the same scenarios and seeds."""
    raise SystemExit("twin compare: not built yet")
