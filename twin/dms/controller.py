"""The DMS controller: what the built-in DMS starts with and the order it runs its functions in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from twin.dms.cycle import CycleSettings, DMSState
from twin.dms.flisr_control import FlisrController
from twin.dms.load_management import LoadManager
from twin.dms.switchgear import SwitchgearWatch


@dataclass
class DMSPlan:
    """Everything the DMS starts with (prepared by the world builder)."""

    state: DMSState
    settings: CycleSettings
    cycle_offset_ticks: int
    cycle_ticks: int
    # t [s] -> per-load and per-sgen forecast factors of the DMS (its profiles, not truth)
    forecast: Callable[[float], tuple[np.ndarray, np.ndarray]]
    # event-driven: acts on trip reports and command outcomes between cycles
    flisr: FlisrController | None = None
    # after each estimate: overloads → switching plans
    load_manager: LoadManager | None = None
    # the switchgear against fault currents, on every topology change the DMS sees
    switchgear: SwitchgearWatch | None = None
