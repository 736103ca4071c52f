"""Python's cyclic garbage collector, held back while a world runs.

A prepared run holds a few hundred thousand long-lived objects (the nets, profiles, the
simulators' state). With CPython's default thresholds (700, 10, 10) the collector runs
hundreds of young collections per simulated hour and now and then a full one that walks
all of them: measured on the default day with the DMS on, ~1 s of GC in a 4-hour run of
8–9 s, single full collections of 160 ms. Objects that exist before the run are frozen
(:func:`gc.freeze`: never scanned again), and young collections wait for 50,000 new
objects instead of 700: about 0.2 s for the same run. Reference counting frees almost
everything a step allocates, so the memory held back is small.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

#: Allocations (net of frees) between two young collections while a world runs.
YOUNG_THRESHOLD = 50_000


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """Freeze what exists, collect less often; restore the thresholds afterwards."""
    old = gc.get_threshold()
    # no collection first: it costs a full pass (~0.1 s), and garbage frozen here is
    # collected after the run, when it is unfrozen
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, max(old[1], 20), max(old[2], 100))
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()  # a process that runs several worlds (sweeps) frees the last one's
