"""Endpoints asked for wrongly get one clear error with the key path (exit 2), before or
at the start of a run: two RTUs on one port, an address that is not one, IEC 104 without
its extra, a port already in use."""

from __future__ import annotations

import importlib.util
import socket

import pytest
from typer.testing import CliRunner

from twin.cli import app

SCENARIO = "scenarios/cigre_mv_day.yaml"


def _cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_two_rtus_on_one_port_is_refused():
    result = _cli("validate", SCENARIO,
                  "--set", "rtus[0].endpoint={protocol: modbus, port: 5020}",
                  "--set", "rtus[2].endpoint={protocol: modbus, port: 5020, host: 0.0.0.0}")
    assert result.exit_code == 2
    assert "rtus[2].endpoint.port: expected a port no other RTU listens on; found 5020, " \
        "also rtus[0]'s" in result.output
    assert "Traceback" not in result.output


def test_different_addresses_may_share_a_port():
    result = _cli("validate", SCENARIO,
                  "--set", "rtus[0].endpoint={protocol: modbus, port: 5020}",
                  "--set", "rtus[2].endpoint={protocol: modbus, port: 5020, host: 127.0.0.2}")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("endpoint, expected", [
    ("{protocol: dnp3, port: 20000}", "rtus[0].endpoint.protocol"),
    ("{protocol: modbus, port: 70000}", "rtus[0].endpoint.port"),
    ("{protocol: modbus, port: 502, host: rtu.example}", "an IP address such as 127.0.0.1"),
])
def test_bad_endpoint_keys(endpoint, expected):
    result = _cli("validate", SCENARIO, "--set", f"rtus[0].endpoint={endpoint}")
    assert result.exit_code == 2 and expected in result.output, result.output


def test_iec104_without_its_extra_names_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "c104" else real(name, *a))
    result = _cli("validate", SCENARIO, "--set", "rtus[1].endpoint={protocol: iec104, port: 0}")
    assert result.exit_code == 2
    assert "rtus[1].endpoint.protocol: iec104 needs the optional extra dms-twin[iec104]" \
        in result.output
    result = _cli("validate", SCENARIO, "--set", "dms.transport=iec104")
    assert result.exit_code == 2 and "dms.transport: iec104 needs" in result.output


def test_a_port_in_use_stops_the_run_at_its_start_with_the_key_path(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _cli("run", SCENARIO, "--until", "1min", "--out", str(tmp_path / "run"),
                      "--no-progress", "--set",
                      f"rtus[3].endpoint={{protocol: modbus, port: {port}}}")
    assert result.exit_code == 2, result.output
    assert f"rtus[3].endpoint: RTU RTU S2 cannot listen for Modbus TCP on 127.0.0.1:{port}" \
        in result.output
    assert "Traceback" not in result.output
