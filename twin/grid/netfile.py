"""Read a pandapower JSON net file as untrusted input.

pandapower's loader imports whatever module an object's ``_module`` names before it checks
the object (pandapower issue #3049): a net file naming ``os`` or ``this`` runs that module's
import. So the whole JSON document, including the JSON strings nested in it (DataFrames,
controllers, geodata cells), is checked against an allow-list before pandapower sees it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandapower as pp

from twin.scenario import ScenarioError

# Top-level packages whose modules pandapower's own JSON files name (checked by saving
# CIGRE MV, mv_oberrhein and case33bw with a controller: pandapower.auxiliary,
# pandapower.control..., pandas.core.frame, numpy), plus what its decoder registers for
# other tables (pandas Series, networkx graphs, shapely/geojson/geopandas geodata).
ALLOWED_PACKAGES = ("pandapower", "pandas", "numpy", "networkx", "shapely", "geojson", "geopandas")
# builtins is imported anyway; only the containers pandapower writes may be built from it.
ALLOWED_BUILTINS = frozenset({"complex", "tuple", "set", "frozenset"})
# ``function`` objects are looked up by name in their module: never from a file.
REFUSED_CLASSES = frozenset({"function", "method", "exec", "eval"})

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_MAX_DEPTH = 64
_QUOTED_KEY = re.compile(r'\\*"_module\\*"')  # also escaped inside nested JSON text


def _allowed_text() -> str:
    return (", ".join(ALLOWED_PACKAGES) + " (and their submodules); builtins only for "
            + ", ".join(sorted(ALLOWED_BUILTINS)))


def module_allowed(module: Any, cls: Any) -> bool:
    """Whether an object tagged ``_module``/``_class`` may be decoded."""
    if not isinstance(module, str) or not _DOTTED.match(module):
        return False
    if isinstance(cls, str) and cls in REFUSED_CLASSES:
        return False
    if module == "builtins":
        return cls in ALLOWED_BUILTINS
    return module.split(".", 1)[0] in ALLOWED_PACKAGES


def find_refused_module(doc: Any, _depth: int = 0) -> tuple[str, str] | None:
    """The first (module, class) in ``doc`` that is not allowed, or None.

    Walks dicts and lists, and every string that holds JSON with a ``_module`` key
    (pandapower nests DataFrames and controllers as JSON strings). A string that mentions
    ``"_module"`` but cannot be parsed is refused: it cannot be checked.
    """
    if _depth > _MAX_DEPTH:
        return ("<nested too deep to check>", "")
    if isinstance(doc, dict):
        if "_module" in doc or "_class" in doc:
            module, cls = doc.get("_module", ""), doc.get("_class", "")
            if not module_allowed(module, cls):
                return (str(module), str(cls))
        for value in doc.values():
            found = find_refused_module(value, _depth + 1)
            if found:
                return found
    elif isinstance(doc, list):
        for value in doc:
            found = find_refused_module(value, _depth + 1)
            if found:
                return found
    elif isinstance(doc, str) and "_module" in doc:
        try:
            inner = json.loads(doc)
        except ValueError:
            if _QUOTED_KEY.search(doc):
                return ("<unparseable JSON text naming a _module>", "")
            return None  # plain text such as a name
        return find_refused_module(inner, _depth + 1)
    return None


def load_net_file(path: Path) -> pp.pandapowerNet:
    """The net in ``path``, after checking every module it names; ScenarioError otherwise."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        doc = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ScenarioError(
            f"grid.file: expected a pandapower net in JSON; could not read {path} ({exc})"
        ) from None
    refused = find_refused_module(doc)
    if refused is not None:
        module, cls = refused
        what = f"module {module!r}" + (f" (class {cls!r})" if cls else "")
        raise ScenarioError(
            f"grid.file: {path} names {what}, which a net file may not load; "
            f"expected only {_allowed_text()}"
        )
    try:
        net = pp.from_json_string(text, convert=True)
    except Exception as exc:  # pandapower raises many kinds for a bad file
        raise ScenarioError(
            f"grid.file: expected a pandapower net in JSON; could not read {path} ({exc})"
        ) from None
    if not isinstance(net, pp.pandapowerNet):
        raise ScenarioError(
            f"grid.file: expected a pandapower net in JSON; found {type(net).__name__} in {path}"
        )
    return net
