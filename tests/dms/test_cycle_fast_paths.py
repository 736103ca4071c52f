"""The per-cycle fast paths give the same tables as the general ones."""

from __future__ import annotations

import numpy as np
import pandas as pd

from twin.dms.measurements import (
    newest,
    set_switch_states,
    set_tap_positions,
    telemetry_frame,
)
from twin.dms.netcopy import working_copy
from twin.dms.synthetic_telemetry import cigre_truth
from twin.grid.names import element_names


def _rows():
    return [
        {"element": "switch:S1", "quantity": "closed", "value": True, "source_t_s": 3,
         "rtu": "R1"},
        {"element": "bus:Bus 1", "quantity": "vm_pu", "value": 1.01, "source_t_s": 4.0,
         "delivery_t_s": 4.5, "sigma": 0.01},
        {"element": "trafo:Trafo 0-1", "quantity": "tap_pos", "value": np.float64(1.0),
         "source_t_s": 2.0, "delivery_t_s": None, "sigma": 0},
        {"element": "bus:Bus 2", "quantity": "vm_pu", "value": float("nan"),
         "source_t_s": 5.0, "delivery_t_s": 5.5, "sigma": 0.01},
    ]


def test_plain_rows_build_the_same_table_as_the_general_path():
    rows = _rows()
    fast = telemetry_frame(rows)
    general = telemetry_frame(pd.DataFrame(rows))
    pd.testing.assert_frame_equal(fast, general, check_exact=True)


def test_newest_of_unique_points_equals_the_sorting_path():
    frame = telemetry_frame(_rows())
    unique = newest(frame)
    # a duplicate older row forces the general (sorting) path; its newest is the same
    doubled = telemetry_frame(pd.concat([frame, frame.iloc[[1]].assign(source_t_s=0.0)],
                                        ignore_index=True))
    pd.testing.assert_frame_equal(unique, newest(doubled), check_exact=True)
    assert list(unique.element) == ["switch:S1", "bus:Bus 1", "trafo:Trafo 0-1"]


def test_unchanged_positions_keep_values_and_dtypes():
    net = cigre_truth()
    before = {t: net[t].copy() for t in ("switch", "trafo", "shunt")}
    rows = [{"element": f"switch:{n}", "quantity": "closed", "value": bool(c),
             "source_t_s": 1.0, "sigma": 0.0}
            for n, c in zip(element_names(net, "switch"), net.switch.closed)]
    rows += [{"element": f"trafo:{n}", "quantity": "tap_pos", "value": float(p),
              "source_t_s": 1.0, "sigma": 0.0}
             for n, p in zip(element_names(net, "trafo"), net.trafo.tap_pos)
             if np.isfinite(p)]
    frame = telemetry_frame(rows)
    set_switch_states(net, frame)
    set_tap_positions(net, frame)
    for table, df in before.items():
        pd.testing.assert_frame_equal(net[table], df, check_exact=True)
    # and a change still lands
    first = element_names(net, "switch")[0]
    changed = telemetry_frame(rows + [{"element": f"switch:{first}", "quantity": "closed",
                                       "value": not bool(net.switch.closed.iloc[0]),
                                       "source_t_s": 2.0, "sigma": 0.0}])
    set_switch_states(net, changed)
    assert net.switch.closed.iloc[0] != before["switch"].closed.iloc[0]


def test_working_copy_of_a_consolidated_table_is_independent():
    net = cigre_truth()
    load = net.load.copy()
    work = working_copy(net, ("load",))
    work.load["p_mw"] = 0.0
    work.load.loc[work.load.index[0], "q_mvar"] = 99.0
    pd.testing.assert_frame_equal(net.load, load, check_exact=True)
