"""The static data of an EV fleet: batteries, chargers, efficiencies, charging points.

Sign convention (pandapower's load convention): power is positive when the EV takes power
from the grid (charging) and negative when it feeds in (V2G discharge). All powers are on the
grid side of the charger; the battery stores ``eta_charge · p`` while charging and gives up
``|p| / eta_discharge`` while discharging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from twin.models.validate import frozen, per_element, require_range

ArrayLike = float | Sequence[float] | np.ndarray

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, eq=False)
class EVFleetSpec:
    """Static data of ``n`` EVs; each array field has one value per EV.

    Scalars for the array fields other than ``charge_point`` apply to every EV.

    Parameters
    ----------
    charge_point : array_like of int
        Index of the charging point the EV uses, in ``[0, n_charge_points)``. A charging
        point is a group of plugs (a car park, a street's chargers): any number of its EVs
        may charge at the same time.
    capacity_mwh : array_like
        Usable battery capacity [MWh], > 0.
    p_charge_max_mw : array_like
        Maximum charging power, grid side [MW], > 0.
    p_discharge_max_mw : array_like
        Maximum V2G discharging power, grid side [MW], ≥ 0; 0 = no V2G.
    eta_charge, eta_discharge : array_like
        Charging and discharging efficiency [-], in (0, 1].
    soc_min : float
        V2G never discharges an EV below this state of charge [-]. Default 0.2.
    n_charge_points : int, optional
        Number of charging points; default ``max(charge_point) + 1``. Give it when the last
        points have no EV, so that the per-point results keep their length.
    """

    charge_point: np.ndarray
    capacity_mwh: np.ndarray
    p_charge_max_mw: np.ndarray
    p_discharge_max_mw: np.ndarray = 0.0  # type: ignore[assignment]
    eta_charge: np.ndarray = 0.92  # type: ignore[assignment]
    eta_discharge: np.ndarray = 0.92  # type: ignore[assignment]
    soc_min: float = 0.2
    n_charge_points: int | None = None

    def __post_init__(self) -> None:
        cp = np.atleast_1d(np.asarray(self.charge_point))
        if cp.ndim != 1 or (cp.size and not np.issubdtype(cp.dtype, np.integer)):
            raise ValueError(
                "EVFleetSpec.charge_point must be a 1-D array of integers; "
                f"found shape {cp.shape}, dtype {cp.dtype}"
            )
        cp = cp.astype(np.intp)
        n = cp.size
        if n and cp.min() < 0:
            raise ValueError("EVFleetSpec: charge_point must be >= 0")
        n_cp = int(cp.max()) + 1 if n else 0
        if self.n_charge_points is not None:
            if int(self.n_charge_points) < n_cp:
                raise ValueError(
                    f"EVFleetSpec: n_charge_points ({self.n_charge_points}) must exceed the "
                    f"largest charge_point ({n_cp - 1})"
                )
            n_cp = int(self.n_charge_points)
        object.__setattr__(self, "charge_point", frozen(cp))
        object.__setattr__(self, "n_charge_points", n_cp)
        for name in ("capacity_mwh", "p_charge_max_mw", "p_discharge_max_mw",
                     "eta_charge", "eta_discharge"):
            value = per_element(getattr(self, name), n, f"EVFleetSpec.{name}", "EV")
            object.__setattr__(self, name, frozen(value))
        require_range(self.capacity_mwh, "EVFleetSpec", "capacity_mwh", 0, lo_open=True)
        require_range(self.p_charge_max_mw, "EVFleetSpec", "p_charge_max_mw", 0, lo_open=True)
        require_range(self.p_discharge_max_mw, "EVFleetSpec", "p_discharge_max_mw", 0)
        require_range(self.eta_charge, "EVFleetSpec", "eta_charge", 0, 1, lo_open=True)
        require_range(self.eta_discharge, "EVFleetSpec", "eta_discharge", 0, 1, lo_open=True)
        require_range(self.soc_min, "EVFleetSpec", "soc_min", 0, 1, hi_open=True)
        object.__setattr__(self, "soc_min", float(self.soc_min))

    def __len__(self) -> int:
        return int(self.charge_point.size)

