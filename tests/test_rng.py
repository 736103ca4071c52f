"""Seeded generators (twin.rng): one stream per (seed, component name), the same everywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from twin.rng import component_rng


def test_same_seed_and_name_give_the_same_stream():
    a = component_rng(7, "pv/PV 3").random(1000)
    b = component_rng(7, "pv/PV 3").random(1000)
    np.testing.assert_array_equal(a, b)


def test_names_and_seeds_give_different_streams():
    draws = {
        (seed, name): component_rng(seed, name).random(8)
        for seed in (0, 1)
        for name in ("ev", "battery", "rtu:R1", "rtu:R2", "")
    }
    # Any two of ten independent 8-sample streams sharing a value would be a collision
    # (probability ~1e-14), so equality means the streams are not separated.
    values = np.concatenate(list(draws.values()))
    assert np.unique(values).size == values.size


def test_the_stream_depends_on_the_whole_name():
    # The name is hashed whole: a shared prefix or a trailing space makes another stream.
    a = component_rng(0, "Bus 1").random(4)
    assert not np.array_equal(a, component_rng(0, "Bus 10").random(4))
    assert not np.array_equal(a, component_rng(0, "Bus 1 ").random(4))


def test_stream_is_stable_across_processes():
    # A fresh interpreter gets a differently salted str hash(); the stream must not care.
    code = ("from twin.rng import component_rng; "
            "import json; "
            "print(json.dumps(component_rng(42, 'crews/depot \\u00c4').integers(0, 2**62, 4)"
            ".tolist()))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env).stdout
    here = component_rng(42, "crews/depot \u00c4").integers(0, 2**62, 4).tolist()
    assert json.loads(out) == here
