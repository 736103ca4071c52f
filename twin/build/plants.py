"""Which grid generators the PV and wind models drive, with their parameters.

Plants either drive an existing sgen (``sgen: <name>``, or every sgen of type PV/WP when
``attach_existing``) or are new sgens added at a bus. ``pv.scaling`` / ``wind.scaling``
multiply every plant's rating (PV: DC peak and inverter; wind: rated power), and with it
the ``sn_mva`` and ``p_mw`` of the sgen it drives, so the grid (and the DMS's copy of it)
knows the plant's scaled size. Otherwise the net is changed only by adding the new sgens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandapower as pp

from twin.build.resolve import find_element
from twin.grid.names import element_names
from twin.scenario import PVSpec, ScenarioError, WindSpec

# sgen "type" prefixes: CIGRE uses "PV" and "WP"; SimBench "PV_MV" and "Wind_MV".
PV_TYPES = ("PV",)
WIND_TYPES = ("WP", "WIND", "WKA")


@dataclass(frozen=True)
class PlantSet:
    """Plants of one technology: names, the sgen each drives, and per-plant parameters."""

    names: list[str]
    sgen_idx: list[int]
    params: dict[str, np.ndarray]


def _existing(net: pp.pandapowerNet, prefixes: tuple[str, ...]) -> list[int]:
    if "type" not in net.sgen.columns:
        return []
    kinds = net.sgen["type"].astype(str).str.upper()
    return [int(i) for i, k in zip(net.sgen.index, kinds) if k.startswith(prefixes)]


def _rating_mva(net: pp.pandapowerNet, i: int) -> float:
    """The sgen's rated power, or its nominal P where the grid gives no rating."""
    sn = net.sgen.at[i, "sn_mva"] if "sn_mva" in net.sgen.columns else np.nan
    return float(sn) if np.isfinite(sn) and sn > 0 else float(net.sgen.at[i, "p_mw"])


def _new_sgen(net: pp.pandapowerNet, bus_name: str, name: str, p_mw: float, kind: str,
              key: str) -> int:
    bus = find_element(net, "bus", bus_name, key)
    return int(pp.create_sgen(net, bus, p_mw=p_mw, q_mvar=0.0, sn_mva=p_mw, name=name, type=kind))


def pv_plants(net: pp.pandapowerNet, spec: PVSpec) -> PlantSet:
    sgen_names = element_names(net, "sgen")
    chosen: dict[int, dict] = {}
    if spec.attach_existing:
        for i in _existing(net, PV_TYPES):
            pos = list(net.sgen.index).index(i)
            s_mva = _rating_mva(net, i)
            chosen[i] = {"name": sgen_names[pos], "p_peak_mw": s_mva * spec.dc_ac_ratio,
                         "s_inverter_mva": s_mva, "tilt_deg": spec.tilt_deg,
                         "azimuth_deg": spec.azimuth_deg}
    for k, plant in enumerate(spec.plants):
        key = f"pv.plants[{k}]"
        if plant.sgen is not None:
            i = find_element(net, "sgen", plant.sgen, f"{key}.sgen")
            s_mva = _rating_mva(net, i)
        else:
            assert plant.bus is not None and plant.p_peak_kw is not None
            s_mva = (plant.s_inverter_kva or plant.p_peak_kw / spec.dc_ac_ratio) / 1000.0
            i = _new_sgen(net, plant.bus, plant.name, s_mva, "PV", f"{key}.bus")
        p_peak_mw = plant.p_peak_kw / 1000.0 if plant.p_peak_kw else s_mva * spec.dc_ac_ratio
        if plant.s_inverter_kva:
            s_mva = plant.s_inverter_kva / 1000.0
        chosen[i] = {"name": plant.name, "p_peak_mw": p_peak_mw, "s_inverter_mva": s_mva,
                     "tilt_deg": spec.tilt_deg if plant.tilt_deg is None else plant.tilt_deg,
                     "azimuth_deg": spec.azimuth_deg if plant.azimuth_deg is None else plant.azimuth_deg}
    _scale(net, chosen, ("p_peak_mw", "s_inverter_mva"), spec.scaling)
    return _as_set(chosen, ("p_peak_mw", "s_inverter_mva", "tilt_deg", "azimuth_deg"), "PV")


def wind_plants(net: pp.pandapowerNet, spec: WindSpec) -> PlantSet:
    sgen_names = element_names(net, "sgen")
    chosen: dict[int, dict] = {}
    if spec.attach_existing:
        for i in _existing(net, WIND_TYPES):
            pos = list(net.sgen.index).index(i)
            rated = _rating_mva(net, i)
            chosen[i] = {"name": sgen_names[pos], "p_rated_mw": rated,
                         "hub_height_m": spec.hub_height_m}
    for k, plant in enumerate(spec.plants):
        key = f"wind.plants[{k}]"
        if plant.sgen is not None:
            i = find_element(net, "sgen", plant.sgen, f"{key}.sgen")
            rated = plant.p_rated_kw / 1000.0 if plant.p_rated_kw else float(net.sgen.at[i, "p_mw"])
        else:
            assert plant.bus is not None and plant.p_rated_kw is not None
            rated = plant.p_rated_kw / 1000.0
            i = _new_sgen(net, plant.bus, plant.name, rated, "WP", f"{key}.bus")
        chosen[i] = {"name": plant.name, "p_rated_mw": rated,
                     "hub_height_m": plant.hub_height_m or spec.hub_height_m}
    _scale(net, chosen, ("p_rated_mw",), spec.scaling)
    return _as_set(chosen, ("p_rated_mw", "hub_height_m"), "wind")


def _scale(net: pp.pandapowerNet, chosen: dict[int, dict], keys: tuple[str, ...],
           factor: float) -> None:
    """Multiply the plants' ratings ``keys`` and their sgens' ``sn_mva`` and ``p_mw`` by
    ``factor`` (``pv.scaling`` / ``wind.scaling``). The models' output is proportional to
    these ratings (PVWatts: DC power to the DC peak, the inverter's efficiency to the ratio
    of DC power to its rating; wind: the power curve in p.u. of rated power)."""
    if factor == 1.0:
        return
    for i, plant in chosen.items():
        for key in keys:
            plant[key] *= factor
        for column in ("sn_mva", "p_mw"):
            if column in net.sgen.columns:
                net.sgen.at[i, column] = float(net.sgen.at[i, column]) * factor


def _as_set(chosen: dict[int, dict], keys: tuple[str, ...], what: str) -> PlantSet:
    names = [c["name"] for c in chosen.values()]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ScenarioError(f"{what} plants: expected unique names; found duplicates {dupes}")
    return PlantSet(
        names=names,
        sgen_idx=list(chosen),
        params={k: np.array([c[k] for c in chosen.values()], dtype=float) for k in keys},
    )
