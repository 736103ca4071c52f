"""Element references (twin.grid.names.split_ref): one parser for the scenario and the DMS."""

from __future__ import annotations

import pytest

from twin.grid.names import ELEMENT_KINDS, split_ref


def test_kind_ends_at_the_first_colon():
    assert split_ref("switch:S1") == ("switch", "S1")
    assert split_ref("line:Line 1-2") == ("line", "Line 1-2")
    assert split_ref("bus:MV:Bus 3") == ("bus", "MV:Bus 3")  # a name may hold a colon


def test_names_are_kept_as_given_unless_stripped():
    # Grid names may carry spaces (the DMS keeps them); a scenario's do not matter.
    assert split_ref("bus:Bus 1 ") == ("bus", "Bus 1 ")
    assert split_ref("bus: Bus 1 ", ELEMENT_KINDS, strip=True) == ("bus", "Bus 1")


@pytest.mark.parametrize("ref", ["Bus 1", ":Bus 1", "bus:", "bus:   "])
def test_malformed_references_are_refused(ref):
    strip = ref.endswith(" ")
    with pytest.raises(ValueError, match=r"'<table>:<name>' such as 'bus:Bus 1'; found"):
        split_ref(ref, strip=strip)


def test_kinds_are_checked_when_given():
    assert split_ref("ev:Bus 3", ELEMENT_KINDS) == ("ev", "Bus 3")
    assert split_ref("feeder:F1") == ("feeder", "F1")  # any table without kinds
    with pytest.raises(ValueError, match=r"with kind in bus, line, .*; found 'feeder:F1'"):
        split_ref("feeder:F1", ELEMENT_KINDS)
    with pytest.raises(ValueError, match="found 'bus:  '"):
        split_ref("bus:  ", ELEMENT_KINDS, strip=True)
