"""A pandapower JSON net is untrusted input: modules outside the allow-list are refused
before pandapower imports them (pandapower issue #3049)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandapower as pp
import pandapower.networks as pn
import pytest

from twin.grid.build import build_net
from twin.grid.netfile import find_refused_module, load_net_file
from twin.scenario import GridSpec, ScenarioError

HOSTILE = {"_module": "this", "_class": "Zen", "_object": "{}"}


def _saved_net(tmp_path: Path) -> dict:
    net = pn.create_cigre_network_mv(with_der="all")
    path = tmp_path / "good.json"
    pp.to_json(net, str(path))
    return json.loads(path.read_text())


def _top_level(doc: dict, module: str) -> dict:
    doc["_object"]["evil"] = dict(HOSTILE, _module=module)
    return doc


def _in_dataframe(doc: dict, module: str) -> dict:
    """A cell of the bus table: the table is a JSON string inside the document."""
    bus = doc["_object"]["bus"]
    table = json.loads(bus["_object"])
    table["columns"].append("note")
    for row in table["data"]:
        row.append(dict(HOSTILE, _module=module))
    bus["_object"] = json.dumps(table)
    return doc


def _in_geodata(doc: dict, module: str) -> dict:
    """A bus's geo cell (a GeoJSON string inside the table string)."""
    bus = doc["_object"]["bus"]
    table = json.loads(bus["_object"])
    geo = table["columns"].index("geo")
    table["data"][0][geo] = json.dumps(dict(HOSTILE, _module=module))
    bus["_object"] = json.dumps(table)
    return doc


def _run_isolated(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300)


def test_pandapower_alone_would_import_the_named_module(tmp_path):
    """The threat is real: raw from_json imports 'this' (prints the Zen of Python)."""
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(_in_dataframe(_saved_net(tmp_path), "this")))
    out = _run_isolated(f"""
        import sys, pandapower as pp
        try:
            pp.from_json({str(path)!r})
        except Exception:
            pass
        print("imported" if "this" in sys.modules else "clean")
    """)
    assert "Beautiful is better than ugly" in out.stdout and out.stdout.strip().endswith("imported")


@pytest.mark.parametrize("place", [_top_level, _in_dataframe, _in_geodata])
@pytest.mark.parametrize("module", ["this", "os"])
def test_hostile_net_file_is_refused_without_importing(tmp_path, place, module):
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(place(_saved_net(tmp_path), module)))
    out = _run_isolated(f"""
        import sys
        from pathlib import Path
        from twin.grid.netfile import load_net_file
        from twin.scenario import ScenarioError
        try:
            load_net_file(Path({str(path)!r}))
        except ScenarioError as exc:
            print("refused:", exc)
        else:
            print("loaded")
        print("imported" if "this" in sys.modules else "clean")
    """)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "clean", out.stdout
    assert lines[0].startswith("refused: grid.file:")
    assert f"module '{module}'" in lines[0] and "expected only pandapower, pandas, numpy" in lines[0]
    assert "Beautiful is better" not in out.stdout


def test_lookalike_and_function_objects_are_refused():
    assert find_refused_module({"_module": "pandapowerx", "_class": "A"}) == ("pandapowerx", "A")
    assert find_refused_module({"_module": "builtins", "_class": "eval"}) == ("builtins", "eval")
    assert find_refused_module({"_module": "numpy", "_class": "function", "_object": "load"})
    assert find_refused_module({"_module": "os; x", "_class": "A"})
    assert find_refused_module(['{"_module": "this"']) is not None  # cannot be checked
    assert find_refused_module({"_module": "numpy", "_class": "float64", "_object": "1"}) is None


def test_net_saved_by_pandapower_loads(tmp_path):
    net = build_net(GridSpec(builtin="cigre_mv"))
    pp.control.DiscreteTapControl(net, 0, 0.98, 1.02)
    path = tmp_path / "net.json"
    pp.to_json(net, str(path))
    loaded = load_net_file(path)
    assert len(loaded.bus) == len(net.bus) and len(loaded.controller) == 1
    assert loaded.bus.geo.notna().all()
    oberrhein = tmp_path / "oberrhein.json"
    pp.to_json(pn.mv_oberrhein(), str(oberrhein))
    assert len(load_net_file(oberrhein).bus) == len(pn.mv_oberrhein().bus)


def test_unreadable_net_file_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ScenarioError, match="grid.file: expected a pandapower net in JSON"):
        load_net_file(path)
