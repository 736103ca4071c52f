"""The example rule-book DMS (examples/rule_based_dms.py): its rules on the DMS's own
network model, and a whole run in which it keeps the voltages better than no control."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandapower as pp
import pytest

from twin.build.prepare import prepare
from twin.dms.api import load_dms_class
from twin.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "volt_var_high_pv.yaml"
EXAMPLE = "examples/rule_based_dms.py:RuleBasedDMS"


@pytest.fixture(scope="module")
def context():
    sc = load_scenario(SCENARIO, [f"dms.class={ROOT / 'examples' / 'rule_based_dms.py'}:"
                                  "RuleBasedDMS"])
    return prepare(sc, SCENARIO, check_only=True).dms.context


def _dms(context, **params):
    return load_dms_class(EXAMPLE, (ROOT,))(copy.deepcopy(context), params)


def _vm(element: str, vm_pu: float, t_s: float) -> dict:
    return {"element": element, "quantity": "vm_pu", "value": vm_pu, "source_t_s": t_s,
            "delivery_t_s": t_s + 0.5, "sigma": 0.003}


def test_a_high_voltage_takes_a_capacitor_step_out_then_moves_the_tap_down(context):
    dms = _dms(context)
    first = dms.step(5.0, [_vm("bus:Bus 14", 1.062, 1.0), _vm("bus:Bus 12", 1.03, 1.0)], [])
    (cmd,) = first.commands
    (decision,) = first.decisions
    assert cmd["target"] == "shunt:Cap 14" and cmd["action"] == "set_step"
    assert cmd["value"] == 2.0  # the bank was fully in (3 steps): one step out
    assert decision.mode == "direct" and "Bus 14 at 1.062" in decision.reason
    assert first.next_call_s == 65.0
    # a minute later still high: the bank may not move again yet, so the feeder's OLTC
    later = dms.step(65.0, [_vm("bus:Bus 14", 1.058, 61.0)], [])
    (tap,) = later.commands
    assert tap["target"] == "trafo:Trafo 0-12" and tap["action"] == "set_tap"
    # the move lowers the voltage: check it with a power flow of the DMS's own model
    net = copy.deepcopy(context.net)
    pp.runpp(net)
    before = net.res_bus.vm_pu.max()
    net.trafo.loc[net.trafo.name == "Trafo 0-12", "tap_pos"] = tap["value"]
    pp.runpp(net)
    bus14 = net.bus.index[net.bus.name == "Bus 14"][0]
    assert net.res_bus.vm_pu.max() <= before and net.res_bus.vm_pu[bus14] < before


def test_a_low_voltage_raises_and_stale_or_mixed_readings_are_not_acted_on(context):
    dms = _dms(context, min_interval_s=0)
    low = dms.step(5.0, [_vm("bus:Bus 6", 0.941, 2.0)], [])
    assert [c["target"] for c in low.commands] == ["trafo:Trafo 0-1"]
    assert "below 0.955" in low.decisions[0].reason
    # a reading older than stale_after_s is ignored
    assert dms.step(500.0, [], []).commands == []
    # one bus high and one low on the same feeder: no rule fits, the operator decides
    mixed = dms.step(505.0, [_vm("bus:Bus 6", 0.94, 501.0), _vm("bus:Bus 11", 1.06, 501.0)],
                     [])
    assert mixed.commands == [] and mixed.decisions[0].mode == "advisory"
    with pytest.raises(ValueError, match="unknown params"):
        _dms(context, margin=0.01)


@pytest.mark.slow
def test_the_rule_book_keeps_the_voltages_better_than_no_control(tmp_path, monkeypatch):
    from twin.runner import run_scenario

    monkeypatch.chdir(ROOT)
    off = run_scenario(SCENARIO, out=tmp_path / "off", until="3h")
    rules = run_scenario(SCENARIO, out=tmp_path / "rules", until="3h",
                         overrides=[f"dms.class={EXAMPLE}", "dms.params.margin_pu=0.004"])
    k_off, k_rules = (json.loads((r.run_dir / "kpis.json").read_text()) for r in (off, rules))
    assert k_rules["voltage_violation_minutes"] < k_off["voltage_violation_minutes"]
    assert k_rules["vm_max_pu"] < k_off["vm_max_pu"]
    assert k_rules["dms"] == {"class": EXAMPLE, "version": "1.0.0", "api_version": "1.0",
                              "params": {"margin_pu": 0.004}}
    assert k_off["dms"]["class"] == "twin.dms.builtin:BuiltinDMS"
    moves = k_rules["dms_decisions"]
    assert moves.get("volt_var.set_tap", 0) + moves.get("volt_var.set_capacitor_step", 0) > 0
    info = json.loads((rules.run_dir / "run.json").read_text())
    assert info["dms"]["transport"] == "in-process"
