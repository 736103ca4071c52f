"""Shared fixtures: scenario files made from the default scenario with overrides."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCENARIO = ROOT / "scenarios" / "cigre_mv_day.yaml"


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture()
def make_scenario(tmp_path: Path) -> Callable[..., Path]:
    """Write the default scenario with ``overrides`` merged in; returns the file path."""
    base = yaml.safe_load(DEFAULT_SCENARIO.read_text())
    counter = {"n": 0}

    def make(name: str = "test", **overrides) -> Path:
        counter["n"] += 1
        data = _merge(base, {"name": name, **overrides})
        path = tmp_path / f"{name}-{counter['n']}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return make
