"""Ratings that make loading figures meaningless are reported before a run."""

from __future__ import annotations

import pandapower.networks as pn

from twin.grid.build import build_net
from twin.grid.ratings import unusable_ratings
from twin.scenario import GridSpec


def test_case33bw_placeholder_line_ratings_are_reported():
    net = pn.case33bw()  # every line 99999 kA; its five ties are out of service
    (warning,) = unusable_ratings(net)
    assert warning.startswith("grid: 32 of 37 lines have no usable max_i_ka rating")
    assert "line_0 (99999 kA)" in warning and "and 29 more" in warning
    assert "overloads go unseen" in warning


def test_missing_and_zero_ratings_are_reported_and_good_ones_are_not():
    assert unusable_ratings(build_net(GridSpec(builtin="cigre_mv"))) == []
    net = build_net(GridSpec(builtin="cigre_mv"))
    net.line.loc[net.line.index[0], "max_i_ka"] = float("nan")
    net.trafo.loc[net.trafo.index[1], "sn_mva"] = 0.0
    line_warning, trafo_warning = unusable_ratings(net)
    assert "1 of 15 lines" in line_warning and "(nan kA)" in line_warning
    assert "1 of 2 trafos" in trafo_warning and "(0 MVA)" in trafo_warning
    net.line.loc[net.line.index[0], "in_service"] = False  # an unused line does not count
    assert len(unusable_ratings(net)) == 1
