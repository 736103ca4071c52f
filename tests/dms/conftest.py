"""Fixtures the DMS estimation tests share: the true state of CIGRE MV and the DMS's model."""

from __future__ import annotations

import pytest

from twin.dms.synthetic_telemetry import cigre_truth
from twin.grid.build import build_net
from twin.scenario import GridSpec


@pytest.fixture(scope="module")
def truth():
    return cigre_truth()


@pytest.fixture(scope="module")
def dms_net():
    """The DMS's model: the same grid, never solved, nominal switch states."""
    return build_net(GridSpec(builtin="cigre_mv"))
