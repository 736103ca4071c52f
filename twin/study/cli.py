"""Registers the study commands on the ``twin`` app; the heavy imports (Dask, the runner)
happen only when a command runs."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add ``twin compare`` and ``twin sweep`` to ``app``."""
    from twin.study.compare_cli import compare
    from twin.study.sweep_cli import sweep

    app.command()(compare)
    app.command()(sweep)
