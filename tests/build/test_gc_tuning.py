"""quiet_gc: what exists is frozen while a world runs, and everything is restored."""

from __future__ import annotations

import gc

from twin.build.gc_tuning import YOUNG_THRESHOLD, quiet_gc


def test_thresholds_and_frozen_objects_are_restored():
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    with quiet_gc():
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_freeze_count() > frozen
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_restored_after_an_error():
    before = gc.get_threshold()
    try:
        with quiet_gc():
            raise RuntimeError("a simulator failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
