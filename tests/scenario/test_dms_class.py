"""``dms.class`` / ``dms.params`` / ``dms.remote``: a wrong DMS is one clear input error
(exit 2) before anything runs, from `twin validate` as from `twin run`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli import app
from twin.scenario import ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = str(ROOT / "scenarios" / "volt_var_high_pv.yaml")


@pytest.mark.parametrize("override, words", [
    ("dms.class=nowhere.py:Nope", "dms.class: expected a Python file 'nowhere.py'"),
    ("dms.class=twin.dms.api:NoSuchDMS", "dms.class: expected a class 'NoSuchDMS'"),
    ("dms.class=twin.dms.api:DMSStep", "dms.class: twin.dms.api:DMSStep: expected a method step"),
    ("dms.params.x=1", "dms.params: the built-in DMS takes its settings"),
])
def test_a_wrong_dms_is_an_input_error(override, words):
    result = CliRunner().invoke(app, ["validate", SCENARIO, "--set", override])
    assert result.exit_code == 2, result.output
    assert words in " ".join(result.output.split()) and "Traceback" not in result.output


@pytest.mark.parametrize("override, key", [
    ("dms.class=no colon here", "dms.class"),
    ("dms.remote=localhost", "dms.remote"),
    ("dms.params=[1, 2]", "dms.params"),
])
def test_the_keys_are_checked_when_the_file_is_read(override, key):
    with pytest.raises(ScenarioError, match=key.replace(".", r"\.")):
        load_scenario(SCENARIO, [override])


def test_builtin_names_the_builtin_dms_and_another_class_takes_params():
    sc = load_scenario(SCENARIO, ["dms.class=builtin"])
    assert sc.dms.is_builtin and sc.dms.dms_class == "twin.dms.builtin:BuiltinDMS"
    sc = load_scenario(SCENARIO, ["dms.class=examples/rule_based_dms.py:RuleBasedDMS",
                                  "dms.params.margin_pu=0.01"])
    assert not sc.dms.is_builtin and sc.dms.params == {"margin_pu": 0.01}
