"""Seeded mutations of scenario files, for fuzzing the loader, ``twin validate`` and ``twin run``.

A mutation changes one place of a parsed scenario (a mapping value, a list item, a key) into
something a user or an attacker might write: a wrong type, a boundary number, an unknown
element name, a missing key, a duplicated key, bytes that are not UTF-8. Every mutation is
drawn from a numpy Generator, so a case is reproduced from (scenario, seed) alone.

Used by ``tests/test_fuzz.py`` (a short, time-bounded run in the suite) and
``bench/fuzz.py`` (a wider run that also runs every case ``validate`` accepts).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

#: What a value may be replaced with: wrong types, boundaries, hostile numbers and strings.
REPLACEMENTS: tuple[Any, ...] = (
    None, True, False, 0, -1, 1, 0.1, -1e-9, 1e308, -1e308, math.inf, -math.inf, math.nan,
    2**63, "", " ", "x", "0", "-1s", "1e308d", "1000000000d", ".inf", "nan", "1600-01-01",
    "9999-12-31T00:00:00Z", "12345", "bus:No Such Bus", "line:Nope", "switch:", ":",
    "a" * 5000, "\x00", "\\", "line\nbreak", "ü" * 3, [], [1, 2], {}, {"a": 1},
    [[[[[[[[[[[]]]]]]]]]]],
)

#: Kinds of mutation; ``bench/fuzz.py`` reports its counts by kind.
KINDS = ("replace", "delete", "unknown_name", "duplicate_item", "duplicate_key",
         "nest", "encoding", "truncate", "aliases")

#: A "billion laughs" value: nine levels of aliases, each ten of the one before.
LAUGHS = "".join(
    ['x: &a0 ["lol"]\n'] +
    [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 10)])


@dataclass(frozen=True)
class Mutation:
    """One mutated scenario file: its bytes and what was done (for the report)."""

    kind: str
    where: str
    data: bytes


def _places(node: Any, path: tuple = ()) -> list[tuple]:
    """Every path to a mapping value or list item, in document order."""
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append(path + (key,))
            out.extend(_places(value, path + (key,)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.append(path + (i,))
            out.extend(_places(value, path + (i,)))
    return out


def _parent(doc: Any, path: tuple) -> Any:
    node = doc
    for step in path[:-1]:
        node = node[step]
    return node


def _dump(doc: Any) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode("utf-8")


def _where(path: tuple) -> str:
    return ".".join(str(p) for p in path) or "<root>"


def mutate(text: str, rng: np.random.Generator) -> Mutation:
    """One mutation of the scenario ``text`` (a YAML document), chosen by ``rng``."""
    doc = yaml.safe_load(text)
    kind = KINDS[int(rng.integers(len(KINDS)))]
    places = _places(doc)
    path = places[int(rng.integers(len(places)))] if places else ()
    if kind == "encoding":
        raw = text.encode("utf-16") if rng.random() < 0.5 else \
            text.encode("utf-8").replace(b"name:", b"name: \xff\xfe", 1)
        return Mutation(kind, "<file>", raw)
    if kind == "aliases":
        key = str(next(iter(doc))) if isinstance(doc, dict) and doc else "name"
        body = text.rstrip("\n") + "\n" if rng.random() < 0.5 else ""
        return Mutation(kind, key, (body + LAUGHS + f"{key}: *a9\n").encode("utf-8"))
    if kind == "truncate":
        cut = int(rng.integers(1, max(2, len(text))))
        return Mutation(kind, f"<first {cut} characters>", text[:cut].encode("utf-8"))
    if kind == "duplicate_key":
        # the first top-level key written twice, the second time with another value
        key = next(iter(doc)) if isinstance(doc, dict) and doc else "name"
        extra = yaml.safe_dump({key: REPLACEMENTS[int(rng.integers(len(REPLACEMENTS)))]},
                               allow_unicode=True)
        return Mutation(kind, str(key), (text.rstrip("\n") + "\n" + extra).encode("utf-8"))
    doc = copy.deepcopy(doc)
    if not path:
        return Mutation(kind, "<root>", _dump(REPLACEMENTS[int(rng.integers(len(REPLACEMENTS)))]))
    parent, last = _parent(doc, path), path[-1]
    if kind == "delete":
        del parent[last]
    elif kind == "unknown_name" and isinstance(parent[last], str):
        value = parent[last]
        head, sep, _ = value.partition(":")
        parent[last] = f"{head}{sep}No Such {rng.integers(1000)}" if sep else f"No Such {value}"
    elif kind == "duplicate_item" and isinstance(parent, list):
        parent.insert(int(last), copy.deepcopy(parent[last]))
    elif kind == "nest":
        value: Any = parent[last]
        for _ in range(int(rng.integers(50, 900))):
            value = [value]
        parent[last] = value
    else:  # replace (and the kinds that do not apply at this place)
        kind = "replace"
        parent[last] = copy.deepcopy(REPLACEMENTS[int(rng.integers(len(REPLACEMENTS)))])
    try:
        data = _dump(doc)
    except (RecursionError, ValueError):
        data = _dump({"name": "unrepresentable"})
    return Mutation(kind, _where(path), data)
