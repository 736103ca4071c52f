"""Build the pandapower net a scenario names, and give its elements stable names."""

from __future__ import annotations

from pathlib import Path

import pandapower as pp
import pandapower.networks as pn

from twin.grid import paper
from twin.grid.netfile import load_net_file
from twin.scenario import GridSpec, ScenarioError


def build_net(spec: GridSpec, scenario_file: Path | None = None) -> pp.pandapowerNet:
    """A fresh net for ``spec`` (never one shared with the caller)."""
    if spec.builtin == "cigre_mv":
        net = pn.create_cigre_network_mv(with_der="all")
        # The batteries idle until a battery model drives them (their stored p_mw would
        # otherwise charge at a fixed rate all day).
        net.storage["p_mw"] = 0.0
        net.storage["q_mvar"] = 0.0
        _add_oltc(net)
    elif spec.builtin == "paper_flisr":
        net = paper.create_paper_flisr_net()
    elif spec.builtin == "paper_load_management":
        net = paper.create_paper_load_management_net()
    elif spec.simbench is not None:
        import simbench as sb

        try:
            net = sb.get_simbench_net(spec.simbench)
        except Exception as exc:  # simbench raises bare ValueError/KeyError for unknown codes
            raise ScenarioError(
                f"grid.simbench: expected a valid SimBench code such as '1-MV-rural--0-sw'; "
                f"found {spec.simbench!r} ({exc})"
            ) from None
    else:
        assert spec.file is not None
        path = Path(spec.file)
        if not path.is_absolute() and scenario_file is not None:
            path = scenario_file.parent / path
        if not path.exists():
            raise ScenarioError(f"grid.file: expected an existing pandapower JSON file; found {path}")
        net = load_net_file(path)  # untrusted: modules checked before pandapower decodes
    if len(net.ext_grid) == 0:
        raise ScenarioError("grid: expected a net with at least one ext_grid (slack); found none")
    return net


def _add_oltc(net: pp.pandapowerNet) -> None:
    """Give CIGRE's HV/MV trafos the on-load tap changer they lack in pandapower.

    Typical 110/20 kV OLTC: HV side, ±9 steps of 1.5 %, at neutral (results unchanged).
    """
    net.trafo["tap_side"] = "hv"
    net.trafo["tap_neutral"] = 0
    net.trafo["tap_min"] = -9
    net.trafo["tap_max"] = 9
    net.trafo["tap_step_percent"] = 1.5
    net.trafo["tap_step_degree"] = 0.0
    net.trafo["tap_pos"] = 0
    net.trafo["tap_changer_type"] = "Ratio"
    net.trafo["oltc"] = True
