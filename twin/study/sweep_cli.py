"""``twin sweep`` (placeholder until the sweep command lands)."""

from __future__ import annotations


def sweep() -> None:
    """Run a parameter study."""
    raise SystemExit("twin sweep: not built yet")
