"""The package layout's rules (DESIGN.md, "Layout"), checked on the source without importing it.

Dependencies point down: the pure packages (DMS, models, grid, scenario, recording,
evaluation) import neither mosaik nor the mosaik adapters in ``simulators/``, and nothing in
``twin/`` imports ``simulators/``. The modules are parsed with :mod:`ast`, never imported, so
a forbidden import is found even where importing would fail or hide it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TWIN = ROOT / "twin"
PURE_PACKAGES = ("dms", "models", "grid", "scenario", "recording", "evaluation")
#: Top-level modules the pure packages must not import.
CO_SIMULATION = ("mosaik", "mosaik_api_v3", "simulators")
#: At most this many modules directly in twin/ (runner, cli, live, timebase, rng, studies, …).
MAX_TOP_LEVEL_MODULES = 8
MAX_DMS_ADAPTER_LINES = 60


def forbidden_imports(source: str, forbidden: tuple[str, ...],
                      filename: str = "<source>") -> list[str]:
    """``"<line>: <module>"`` for every import of a module in (or under) ``forbidden``.

    Absolute imports only: a relative import stays inside its own package.
    """
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        found += [f"{node.lineno}: {m}" for m in modules
                  if m.split(".", 1)[0] in forbidden]
    return found


def violations(paths, forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    """``"<file>:<line>: <module>"`` for every forbidden import in ``paths``."""
    return [f"{path.relative_to(root)}:{hit}" for path in paths
            for hit in forbidden_imports(path.read_text(encoding="utf-8"), forbidden,
                                         str(path))]


def _modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def top_level_modules(folder: Path) -> list[str]:
    """Modules directly in ``folder`` (its ``__init__`` not counted; packages neither)."""
    return sorted(p.name for p in folder.glob("*.py") if p.name != "__init__.py")


# --------------------------------------------------------------------------- the checker
@pytest.mark.parametrize("source", [
    "import mosaik\n",
    "import mosaik_api_v3 as api\n",
    "from mosaik.scenario import World\n",
    "from simulators.grid import GridSim\n",
    "def f():\n    import simulators.dms\n",  # also inside a function
    "import numpy, simulators\n",
])
def test_checker_reports_a_co_simulation_import(source):
    assert len(forbidden_imports(source, CO_SIMULATION)) == 1


@pytest.mark.parametrize("source", [
    "import numpy as np\n",
    "from twin.grid.names import split_ref\n",
    "import mosaik_like\n",        # a different package that only starts alike
    "from . import simulators\n",  # relative: a sibling module of that name
    "# import mosaik\n",
    "x = 'import mosaik'\n",
])
def test_checker_leaves_other_imports_alone(source):
    assert forbidden_imports(source, CO_SIMULATION) == []


def test_checker_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy\n\nfrom mosaik_api_v3 import Simulator\n", encoding="utf-8")
    assert violations([bad], CO_SIMULATION, root=tmp_path) == ["bad.py:3: mosaik_api_v3"]


def test_module_count_sees_modules_not_packages(tmp_path):
    for name in ("__init__", *(f"m{i}" for i in range(MAX_TOP_LEVEL_MODULES + 1))):
        (tmp_path / f"{name}.py").write_text("", encoding="utf-8")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "inner.py").write_text("", encoding="utf-8")
    assert len(top_level_modules(tmp_path)) == MAX_TOP_LEVEL_MODULES + 1


# --------------------------------------------------------------------------- the rules
@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_pure_packages_import_no_co_simulation(package):
    modules = _modules(TWIN / package)
    assert modules, f"twin/{package} has no modules"
    assert violations(modules, CO_SIMULATION) == []


def test_twin_never_imports_the_adapters():
    assert violations(_modules(TWIN), ("simulators",)) == []


def test_few_modules_directly_in_twin():
    modules = top_level_modules(TWIN)
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules


def test_dms_adapter_is_thin():
    n_lines = len((ROOT / "simulators" / "dms.py").read_text(encoding="utf-8").splitlines())
    assert n_lines <= MAX_DMS_ADAPTER_LINES
