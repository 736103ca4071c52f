"""Seeded random generators: one per component, derived from the scenario seed and a name.

Every random draw in the twin comes from here, so the same scenario and seed give the same
numbers in any process and on any machine (no Python ``hash()``, which is salted per process).
"""

from __future__ import annotations

import hashlib

import numpy as np


def component_rng(seed: int, name: str) -> np.random.Generator:
    """A Generator for component ``name`` under scenario ``seed``."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *words])))
