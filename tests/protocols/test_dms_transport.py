"""The built-in DMS over the wire (``dms.transport``): the same run with the DMS reading
and commanding the RTUs through their Modbus TCP or IEC 104 endpoints gives the same
decisions as the in-process path. Values travel as float32, so the state estimate differs
in the 8th digit; decisions, commands and their outcomes are the same. The scenario's
two-hour window has an RTU outage with commands timing out in it, tap and capacitor
changes and DER Q set-points."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from twin.recording.files import read_measurement
from twin.runner import run_scenario

pytest.importorskip("c104")

SCENARIO = "scenarios/volt_var_high_pv.yaml"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("transport")
    return {transport: run_scenario(SCENARIO, out=out / transport, until="2h",
                                    overrides=["dms.volt_var.mode=direct",
                                               f"dms.transport={transport}"]).run_dir
            for transport in ("in_process", "modbus", "iec104")}


def _decisions(run_dir) -> pd.DataFrame:
    d = read_measurement(run_dir / "store", "dms_decision")
    return d[["time", "function", "action", "element", "mode", "value"]].reset_index(drop=True)


def _commands(run_dir) -> pd.DataFrame:
    c = read_measurement(run_dir / "store", "command")
    return c[["time", "element", "action", "status", "via", "value", "source"]].reset_index(
        drop=True)


@pytest.mark.parametrize("transport", ["modbus", "iec104"])
def test_same_decisions_over_the_wire(runs, transport):
    base, wire = runs["in_process"], runs[transport]
    a, b = _decisions(base), _decisions(wire)
    assert len(a) >= 8 and {"set_tap", "set_capacitor_step", "set_der_q"} <= set(a.action)
    pd.testing.assert_frame_equal(a.drop(columns="value"), b.drop(columns="value"))
    assert np.allclose(a.value, b.value, rtol=1e-6, atol=1e-9, equal_nan=True)

    ca, cb = _commands(base), _commands(wire)
    cols = ["time", "element", "action", "status", "via"]
    pd.testing.assert_frame_equal(ca[cols], cb[cols])
    assert {"success", "timeout"} <= set(ca.status)  # commands into the outage time out
    assert np.allclose(ca.value, cb.value, rtol=1e-6)
    assert (ca.source == "dms").all()
    prefix = "modbus 127.0.0.1:" if transport == "modbus" else "iec104 OA"
    assert cb.source.str.startswith(prefix).all()

    # the estimates differ only by the telemetry's float32 rounding
    ea = read_measurement(base / "store", "dms_estimate")
    eb = read_measurement(wire / "store", "dms_estimate")
    assert ea.time.tolist() == eb.time.tolist() and len(ea) > 1000
    assert np.nanmax(np.abs(ea.vm_pu.to_numpy() - eb.vm_pu.to_numpy())) < 1e-6

    info = json.loads((wire / "run.json").read_text())["dms"]
    assert info["transport"] == f"in-process, field over {transport}"
