"""The DMS interface: loading a class, checking what a DMS returns, surviving its errors,
and the built-in DMS behind it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from twin.dms.api import (
    API_VERSION,
    DMS,
    DMSLoadError,
    DMSStep,
    GuardedDMS,
    check_dms_class,
    checked_step,
    decision_as_dict,
    load_dms_class,
)
from twin.dms.builtin import BuiltinDMS, settings_from
from twin.dms.decisions import Decision

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = "examples/rule_based_dms.py:RuleBasedDMS"


def _write(tmp_path: Path, body: str, name: str = "my_dms.py") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


GOOD = """
from twin.dms.api import API_VERSION, DMSStep
class Good:
    API_VERSION = API_VERSION
    VERSION = "0.1"
    def __init__(self, context, params):
        self.params = params
    def step(self, t_s, telemetry, outcomes):
        return DMSStep(next_call_s=t_s + 60)
"""


def test_a_class_is_loaded_from_a_file_next_to_the_scenario(tmp_path):
    _write(tmp_path, GOOD)
    cls = load_dms_class("my_dms.py:Good", (tmp_path,))
    assert cls.__name__ == "Good" and cls.VERSION == "0.1"
    # and by module name, from the scenario's folder when it is not on the path
    assert load_dms_class("my_dms:Good", (tmp_path,)).VERSION == "0.1"


def test_the_example_is_found_from_the_working_directory(monkeypatch):
    monkeypatch.chdir(ROOT)
    cls = load_dms_class(EXAMPLE)
    assert cls.API_VERSION == API_VERSION and cls.VERSION


@pytest.mark.parametrize("spec, words", [
    ("no_colon", "expected 'package.module:Class'"),
    ("missing_file.py:X", "expected a Python file 'missing_file.py'"),
    ("my_dms.py:Absent", "expected a class 'Absent'"),
    ("no_such_module_anywhere:X", "expected an importable module"),
    ("my_dms.py:NoStep", "expected a method step"),
    ("my_dms.py:OldAPI", "expected API_VERSION 1.x"),
    ("broken.py:X", "importing"),
])
def test_a_wrong_class_is_one_clear_error(tmp_path, spec, words):
    _write(tmp_path, GOOD + """
class NoStep:
    API_VERSION = "1.0"
class OldAPI:
    API_VERSION = "0.9"
    def step(self, t_s, telemetry, outcomes): ...
""")
    _write(tmp_path, "raise RuntimeError('vendor bug')\n", "broken.py")
    with pytest.raises(DMSLoadError, match=words.replace("(", r"\(").replace(".", r"\.")):
        load_dms_class(spec, (tmp_path,))


def test_what_a_dms_returns_is_checked():
    ok = checked_step(DMSStep(
        commands=[{"id": "x-1", "target": "trafo:T", "action": "set_tap", "value": 2}],
        decisions=[{"function": "volt_var", "action": "set_tap", "target": "trafo:T",
                    "value": 2, "mode": "direct", "reason": "too high"}],
        next_call_s=None), 10.0)
    assert ok.commands[0]["value"] == 2.0 and ok.commands[0]["source"] == "dms"
    assert isinstance(ok.decisions[0], Decision) and ok.decisions[0].t_s == 10.0
    assert ok.next_call_s == math.inf
    bad = [DMSStep(commands=[{"id": "1", "target": "t", "action": "explode"}]),
           DMSStep(commands=[{"id": "1", "target": "t", "action": "open", "value": math.nan}]),
           DMSStep(decisions=[{"function": "f"}]),
           DMSStep(records=[{"measurement": "bus", "t_s": 0, "tags": {}, "fields": {}}]),
           DMSStep(next_call_s=math.nan)]
    for step in bad:
        with pytest.raises((TypeError, ValueError)):
            checked_step(step, 0.0)
    with pytest.raises(TypeError, match="must return a DMSStep"):
        checked_step({"commands": []}, 0.0)


def test_a_decision_survives_the_round_trip_through_plain_data():
    d = Decision(5.0, "volt_var", "set_tap", "trafo:T", 3.0, "direct", "why",
                 {"vm_max_pu": 1.06, "bus": "Bus 14"})
    assert checked_step(DMSStep(decisions=[decision_as_dict(d)]), 5.0).decisions == [d]


class _Flaky:
    API_VERSION, VERSION = API_VERSION, "1"

    def __init__(self):
        self.calls = 0

    def step(self, t_s, telemetry, outcomes):
        self.calls += 1
        if self.calls == 2:
            raise ZeroDivisionError("bad rule")
        return DMSStep(next_call_s=t_s + 1)


def test_an_error_in_step_is_recorded_and_the_dms_called_again_at_its_next_cycle():
    dms = GuardedDMS(_Flaky(), cycle_s=60.0, cycle_offset_s=5.0)
    assert dms.step(5.0, [], []).next_call_s == 6.0
    failed = dms.step(70.0, [], [])
    assert failed.commands == [] and failed.next_call_s == 125.0  # the cycle after 70 s
    (event,) = failed.records
    assert event["measurement"] == "event" and event["tags"]["kind"] == "dms_error"
    assert "ZeroDivisionError: bad rule" in event["fields"]["message"]
    assert dms.step(125.0, [], []).next_call_s == 126.0 and dms.errors == 1


def test_the_builtin_dms_implements_the_interface():
    check_dms_class(BuiltinDMS)  # what load_dms_class asks of every DMS
    assert callable(BuiltinDMS.step) and BuiltinDMS.API_VERSION == API_VERSION
    assert {"API_VERSION", "VERSION", "step"} <= set(dir(BuiltinDMS)) >= set(DMS.__annotations__)
    s = settings_from({"volt_var": {"mode": "direct"}, "stale_after": 60.0})
    assert s["volt_var"]["mode"] == "direct" and s["volt_var"]["deadband_pu"] == 0.005
    assert s["stale_after"] == 60.0 and s["flisr"]["mode"] == "off"
    with pytest.raises(ValueError, match="unknown setting 'volt'"):
        settings_from({"volt": {}})
    with pytest.raises(ValueError, match=r"volt_var: unknown settings \['deadband'\]"):
        settings_from({"volt_var": {"deadband": 0.1}})
