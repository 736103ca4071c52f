"""Shared fixtures: scenario files made from the default scenario with overrides."""

from __future__ import annotations

import copy
import os
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCENARIO = ROOT / "scenarios" / "cigre_mv_day.yaml"


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        # "grid" names one source: a new one replaces the old, it does not merge.
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "grid":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture(scope="session")
def default_day(tmp_path_factory):
    """The default scenario's whole day as shipped, run once for every test that reads it
    (the runner's and the report's; ~30 s). Read it, do not change it."""
    from twin.runner import run_scenario  # heavy: only when a test asks for the run

    return run_scenario(DEFAULT_SCENARIO, out=tmp_path_factory.mktemp("default_day") / "run")


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


@pytest.fixture
def influx_url() -> str:
    """The real InfluxDB 1.x server from ``INFLUX_URL``; skipped if unset (fails if required)."""
    url = os.environ.get("INFLUX_URL")
    if not url:
        if os.environ.get("REQUIRE_INFLUX") == "1":
            pytest.fail(
                "REQUIRE_INFLUX=1 but INFLUX_URL is not set; start a server with "
                "`scripts/influxd.sh start DIR` and export the URL it prints"
            )
        pytest.skip("INFLUX_URL not set (no InfluxDB server for this test)")
    return url


@pytest.fixture
def fresh_database(influx_url: str) -> Iterator[str]:
    """A database name unique to this test; dropped afterwards."""
    import requests

    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    requests.post(f"{influx_url}/query", params={"q": f'DROP DATABASE "{name}"'}, timeout=10)
