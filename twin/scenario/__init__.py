"""The scenario file: one YAML file explains one whole run.

:mod:`~twin.scenario.model` holds the :class:`Scenario` and its loader; its sections live
beside it: :mod:`~twin.scenario.field` (devices, EVs, batteries, RTUs, crews, commands),
:mod:`~twin.scenario.faults` (faults, protection, reliability), :mod:`~twin.scenario.dms`
(the DMS), on the shared types of :mod:`~twin.scenario.base`.
"""

from twin.scenario.model import (
    GridSpec,
    InfluxSpec,
    KpiSpec,
    ProfilesSpec,
    PVSpec,
    RecordingSpec,
    Scenario,
    ScenarioError,
    WeatherSpec,
    WindSpec,
    apply_overrides,
    format_validation_error,
    load_scenario,
    parse_scenario,
    resolve_path,
)

__all__ = ["GridSpec", "InfluxSpec", "KpiSpec", "ProfilesSpec", "PVSpec", "RecordingSpec",
           "Scenario", "ScenarioError", "WeatherSpec", "WindSpec", "apply_overrides",
           "format_validation_error", "load_scenario", "parse_scenario", "resolve_path"]
