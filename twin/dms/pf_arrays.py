"""Power flows of a loop of what-ifs, read as arrays instead of ``res_*`` tables.

:func:`twin.dms.pf.runpp_warm` writes every result into the net's ``res_*`` tables — one
DataFrame per table, ~0.3 ms on CIGRE MV, as much as the solve — though a loop of what-ifs
(load scaling to the feeder heads, Volt/Var's trials) reads a few numbers of each. Here the
results stay the solver's arrays, and are written into the tables only when something may
read them: before a pandapower power flow of the same net, which starts from them. So the
net's tables and every number are those ``runpp_warm`` would have given.

Built on :mod:`twin.dms.pf`'s model cache (``structure_key``, ``cached_solver``,
``runpp_pandapower``): a hit is solved by the cached power-grid-model, anything else by
``runpp_warm`` itself.
"""

from __future__ import annotations

import numpy as np
import pandapower as pp

from twin.dms import pf
from twin.grid.model import RESULT_SPEC
from twin.grid.pgm import PowerFlowFailed


class ArrayPowerFlow:
    """Solves nets like ``runpp_warm``; results as arrays, tables written lazily.

    One instance per net being varied (it holds that net's unwritten results).
    """

    def __init__(self, net: pp.pandapowerNet):
        self.net = net
        self._res: dict[str, dict[str, np.ndarray]] | None = None  # None: in the tables
        self._pending = False  # results not yet in the net's tables
        self._solver = None     # the cached model of the last solve, if it was one

    def solve(self, same_structure: bool = False) -> None:
        """A power flow of the net as it stands; raises ``pp.LoadflowNotConverged``
        as ``runpp_warm`` does. ``same_structure``: only injections changed since the
        last solve (its model's key needs no hashing again: ~0.6 ms on CIGRE MV)."""
        net = self.net
        if same_structure and self._solver is not None:
            solver = self._solver
        else:
            solver = pf.cached_solver(pf.structure_key(net))
        self._solver = solver
        if solver is None:  # a new structure, or one power-grid-model does not model
            self.flush()
            pf.runpp_warm(net)
            self._res = None
            return
        try:
            res = solver.solve(net)
        except PowerFlowFailed:
            self.flush()  # pandapower starts from the last results, as after runpp_warm
            pf.runpp_pandapower(net)
            self._res, self._solver = None, None
            return
        self._res, self._pending = res, True

    def flush(self) -> None:
        """Write unwritten results into the net's tables (what ``runpp_warm`` did)."""
        if self._pending and self._res is not None:
            pf.write_results(self.net, self._res)
        self._pending = False

    def values(self, table: str, column: str) -> np.ndarray:
        """``net["res_" + table][column]`` of the last solve, in table order."""
        if self._res is not None and len(self.net[table]):
            return self._res[table][column]
        return self.net[RESULT_SPEC[table][0]][column].to_numpy(dtype=float)

    def p_loss_mw(self) -> float:
        """Line and transformer losses [MW], as :func:`twin.dms.pf.p_loss_mw` sums them
        (pandas skips NaN: out-of-service branches)."""
        return float(np.nansum(self.values("line", "pl_mw"))
                     + np.nansum(self.values("trafo", "pl_mw")))
