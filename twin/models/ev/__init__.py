"""Electric vehicles, many at once: charging sessions, and charging / V2G step by step.

Three parts, no co-simulation machinery:

* :mod:`twin.models.ev.spec` — :class:`EVFleetSpec`, the static data of ``n`` EVs
  (battery, charger, efficiencies) and the charging point each one plugs into;
* :mod:`twin.models.ev.sessions` — :func:`draw_sessions`, seeded daily plug-in sessions
  (arrival, departure, SOC) from the ``"home"`` and ``"work"`` patterns of :data:`PATTERNS`
  or any :class:`SessionPattern`;
* :mod:`twin.models.ev.fleet` — :class:`EVFleet`, the fleet's state over time;
  :meth:`EVFleet.step` runs once per simulation step for every EV at once.

Sign convention (pandapower's load convention): power is positive when the EV takes power
from the grid (charging) and negative when it feeds in (V2G discharge). All powers are on the
grid side of the charger; the battery stores ``eta_charge · p`` while charging and gives up
``|p| / eta_discharge`` while discharging.

Which bus a charging point sits on is the caller's business: aggregate the per-point
results with :func:`sum_by`.
"""

from twin.models.ev.fleet import (
    E_TOL_MWH,
    STRATEGIES,
    EVFleet,
    EVPlan,
    EVStepResult,
    Strategy,
    sum_by,
)
from twin.models.ev.sessions import (
    HOURS_PER_DAY,
    PATTERNS,
    SessionEvents,
    SessionPattern,
    Sessions,
    draw_sessions,
)
from twin.models.ev.spec import SECONDS_PER_HOUR, ArrayLike, EVFleetSpec

__all__ = [
    "E_TOL_MWH", "HOURS_PER_DAY", "PATTERNS", "SECONDS_PER_HOUR", "STRATEGIES", "ArrayLike",
    "EVFleet", "EVFleetSpec", "EVPlan", "EVStepResult", "SessionEvents", "SessionPattern",
    "Sessions", "Strategy", "draw_sessions", "sum_by",
]
