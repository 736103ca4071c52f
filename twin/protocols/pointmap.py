"""The RTUs' points as a SCADA front end addresses them: Modbus TCP and IEC 60870-5-104.

A :class:`PointMap` lists, for every RTU of a run's field plan, each telemetry point and each
command it accepts with its protocol addresses, type, scaling and unit: what a SCADA
engineer configures in the front end, written to the run directory as CSV
(:meth:`PointMap.to_csv`) and printed by ``twin points SCENARIO``.

Conventions (the contract the endpoints :mod:`twin.protocols.modbus` and
:mod:`twin.protocols.iec104` serve):

Modbus TCP (one server per RTU, unit id 1)
    * measurands: input registers, IEEE-754 float32 in two registers, big-endian words,
      value in the quantity's unit (``scale`` 1);
    * status points (``closed``, ``fault_passed``, ``in_service``, …): discrete inputs;
    * switch commands: coils (write 1 = close, 0 = open); the coil reads back the last
      command written;
    * tap position and capacitor step: holding registers, signed int16;
    * P/Q set-points: holding registers, float32 in two registers;
    * per command, one holding register ``<address of the command> + 100`` (``status``
      kind) with the outcome of the last command: 0 none, 1 pending, 2 success,
      3 failed, 4 timeout (Modbus has no confirmation after the write's reply).
IEC 60870-5-104 (one server per RTU, common address = the RTU's number from 1)
    * measurands: ``M_ME_NC_1`` (short float), IOAs from 1001;
    * status points: ``M_SP_NA_1`` (single point), IOAs from 1;
    * switch commands: ``C_DC_NA_1`` (double command: 1 = open/OFF, 2 = close/ON), IOAs
      from 2001, select-before-operate where :attr:`MappedPoint.select_before_operate`;
    * tap position and capacitor step: ``C_SE_NB_1`` (scaled set-point), IOAs from 3001;
    * P/Q set-points: ``C_SE_NC_1`` (short-float set-point), IOAs from 3001 on.

The map of a field plan (:func:`point_map`) is laid out in a fixed order, so the same scenario
always gives the same map:

* per RTU in the plan's order (common address 1, 2, …), its telemetry in the order of its
  points, then its commands: first the switches, then the set-points, each in the order the
  RTU lists its devices (a PV or wind plant takes ``set_p_limit`` then ``set_q``), each
  command followed by its status register;
* every block is numbered densely from its first address: discrete inputs and input
  registers from 0 (a float32 takes two), the IEC 104 blocks from their first IOA;
* an RTU's commands share one Modbus number sequence: coils 0 … n−1 for its n switches, its
  set-points in holding registers from n on (int16 one register, float32 two), so that no
  two status registers (``address + 100``) meet; an RTU has at most 100 command registers;
* an RTU with telemetry ends it with ``rtu:<RTU>/scan_t_s`` (:func:`scan_time_point`): the
  simulated time of its last delivered scan [s since the run's start], float32, exact to
  the second for 194 days (:data:`SCAN_TIME_RANGE`): how old its values are, on the
  simulation's clock, whatever the pace of the run;
* measurands include ``tap_pos`` and ``step`` (float32, ``M_ME_NC_1``); single points are
  the boolean quantities (:data:`STATUS_QUANTITIES`);
* a status register has no IEC 104 object (``iec104_ioa`` 0, ``iec104_type`` empty): IEC 104
  confirms a command itself (activation confirmation and termination);
* ``value_type`` says how the value travels: ``float`` IEEE-754 float32 (two registers,
  ``M_ME_NC_1`` / ``C_SE_NC_1``), ``int`` signed int16 (one register, ``C_SE_NB_1``),
  ``bool`` one bit (discrete input or coil, ``M_SP_NA_1`` / ``C_DC_NA_1``); values are in
  the quantity's unit, unscaled.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

from twin.models import comms
from twin.models.field import ACTIONS, Device, FieldPlan
from twin.scenario import ScenarioError

if TYPE_CHECKING:
    import pandapower as pp

Direction = Literal["telemetry", "command", "status"]
ModbusTable = Literal["input_register", "discrete_input", "coil", "holding_register"]

#: First addresses of each block (see the module notes).
MODBUS_STATUS_OFFSET = 100
IEC104_STATUS_IOA = 1
IEC104_MEASURAND_IOA = 1001
IEC104_SWITCH_IOA = 2001
IEC104_SETPOINT_IOA = 3001

#: Outcome codes of a command in its Modbus status register.
COMMAND_STATUS = {"none": 0, "pending": 1, "success": 2, "failed": 3, "timeout": 4}


@dataclass(frozen=True)
class MappedPoint:
    """One point of one RTU, with both protocols' addresses.

    Attributes
    ----------
    rtu : str
        The RTU's name (the scenario's ``rtus[i].name``).
    name : str
        Telemetry: the point's name in the field plan (``"bus:Bus 1/vm_pu"``); command:
        ``"<device ref>/<action>"`` (``"switch:S1/switch"``, ``"trafo:Trafo 0-1/set_tap"``);
        status: ``"<device ref>/<action>/status"``.
    element : str
        The grid element (``"bus:Bus 1"``) or, for commands, the device reference
        (``"switch:S1"``) the field's command path takes.
    quantity : str
        Telemetry: the quantity (``vm_pu``, ``p_mw``, ``closed``, …); command: the field's
        action (``switch`` for open/close, ``set_tap``, ``set_step``, ``set_p_limit``,
        ``set_q``, ``set_p``, ``set_ev_limit``); status: ``status``.
    direction : {"telemetry", "command", "status"}
    value_type : {"float", "bool", "int"}
    unit : str
        ``p.u.``, ``kA``, ``MW``, ``Mvar``, ``MWh``, ``-`` …
    modbus_table, modbus_address, modbus_count
        Where the value sits (``modbus_count`` registers; 2 for float32).
    iec104_ca, iec104_ioa, iec104_type
        Common address, information object address and ASDU type id name.
    low, high : float
        The valid range of a command's value (an out-of-range write is refused); for
        telemetry the measuring range.
    select_before_operate : bool
        IEC 104: the command must be selected first.
    """

    rtu: str
    name: str
    element: str
    quantity: str
    direction: Direction
    value_type: Literal["float", "bool", "int"]
    unit: str
    modbus_table: ModbusTable
    modbus_address: int
    modbus_count: int
    iec104_ca: int
    iec104_ioa: int
    iec104_type: str
    low: float
    high: float
    select_before_operate: bool = False


@dataclass(frozen=True)
class PointMap:
    """Every RTU's mapped points, in the scenario's order."""

    points: tuple[MappedPoint, ...]

    def rtus(self) -> list[str]:
        return list(dict.fromkeys(p.rtu for p in self.points))

    def for_rtu(self, rtu: str) -> list[MappedPoint]:
        return [p for p in self.points if p.rtu == rtu]

    def to_csv(self, path: str | Path) -> Path:
        """Write the map as CSV (one row per point, the attributes as columns)."""
        path = Path(path)
        with path.open("w", newline="", encoding="utf-8") as f:
            write_csv(self, f)
        return path

    @classmethod
    def from_rows(cls, rows: Iterable[dict]) -> "PointMap":
        """The map back from :meth:`to_csv`'s rows (e.g. ``csv.DictReader``)."""
        conv = {"modbus_address": int, "modbus_count": int, "iec104_ca": int,
                "iec104_ioa": int, "low": float, "high": float,
                "select_before_operate": lambda v: str(v) in ("True", "true", "1")}
        return cls(tuple(MappedPoint(**{k: conv.get(k, str)(v) for k, v in row.items()})
                         for row in rows))


# --------------------------------------------------------------------------- the map of a plan
#: Telemetry served as single points (discrete inputs, ``M_SP_NA_1``): the comm model's
#: booleans and the grid's flags (a breaker tripped, a load supplied).
STATUS_QUANTITIES = comms.BOOLEAN_QUANTITIES | {"tripped", "supplied"}

#: A quantity's unit, by the suffix of its name (pandapower's: ``vm_pu``, ``i_ka``, …).
_UNIT_SUFFIXES = (("_t_s", "s"), ("_pu", "p.u."), ("_ka", "kA"), ("_kv", "kV"), ("_mw", "MW"),
                  ("_mvar", "Mvar"), ("_mwh", "MWh"), ("_percent", "%"), ("_degree", "deg"))

#: Remote command → (Modbus table, value type, registers, IEC 104 type, unit). ``switch``
#: stands for the field's ``open`` and ``close``; ``repair`` is a crew's, no RTU command.
_COMMANDS: dict[str, tuple[ModbusTable, Literal["float", "bool", "int"], int, str, str]] = {
    "switch": ("coil", "bool", 1, "C_DC_NA_1", "-"),
    "set_tap": ("holding_register", "int", 1, "C_SE_NB_1", "-"),
    "set_step": ("holding_register", "int", 1, "C_SE_NB_1", "-"),
    "set_p_limit": ("holding_register", "float", 2, "C_SE_NC_1", "MW"),
    "set_q": ("holding_register", "float", 2, "C_SE_NC_1", "Mvar"),
    "set_p": ("holding_register", "float", 2, "C_SE_NC_1", "MW"),
    "set_ev_limit": ("holding_register", "float", 2, "C_SE_NC_1", "MW"),
}

#: A signed int16 register's range: a tap or step command's range without the grid's.
INT16_RANGE = (-32768.0, 32767.0)
#: The rating [MW, Mvar] of a set-point whose device states none: wider than any device of
#: a distribution grid, so the map refuses nothing the device might take.
UNRATED_MW = 1000.0
#: Each IEC 104 block holds this many IOAs before the next block's first.
IEC104_BLOCK = 1000
#: The CSV file of a run's point map in its run directory.
POINTS_FILE = "points.csv"


#: The quantity of an RTU's scan-time point, and its range [s]: float32 holds every whole
#: second up to 2**24 s (194 days) exactly.
SCAN_TIME = "scan_t_s"
SCAN_TIME_RANGE = (0.0, float(2**24))


def scan_time_point(rtu: str) -> str:
    """The name of ``rtu``'s scan-time point, ``"rtu:<rtu>/scan_t_s"``."""
    return f"rtu:{rtu}/{SCAN_TIME}"


def quantity_unit(quantity: str) -> str:
    """The unit of a telemetry quantity: ``vm_pu`` → ``p.u.``, ``i_ka`` → ``kA``, ``p_mw`` →
    ``MW``, ``q_mvar`` → ``Mvar``, ``loading_percent`` → ``%``; ``-`` for counts and states
    (``tap_pos``, ``step``, ``closed``, ``n_connected``)."""
    return next((unit for suffix, unit in _UNIT_SUFFIXES if quantity.endswith(suffix)), "-")


def device_commands(kind: str) -> list[str]:
    """The remote commands of a device kind, in :data:`~twin.models.field.ACTIONS`' order:
    ``["switch"]`` for a switch (open and close), ``["set_p_limit", "set_q"]`` for a PV or
    wind plant, none for a line (its repair is a crew's)."""
    out: list[str] = []
    for action, (kinds, _attr) in ACTIONS.items():
        command = "switch" if action in ("open", "close") else action
        if kind in kinds and command in _COMMANDS and command not in out:
            out.append(command)
    return out


def _column(net: pp.pandapowerNet | None, table: str, idx: int, column: str) -> float | None:
    """``net[table].at[idx, column]`` where it is a finite number; None otherwise."""
    if net is None or column not in net[table].columns or idx not in net[table].index:
        return None
    try:
        x = float(net[table].at[idx, column])
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _rating(net: pp.pandapowerNet | None, table: str, idx: int, columns: tuple[str, ...]
            ) -> float:
    """The first positive ``columns`` value of the element; :data:`UNRATED_MW` if none."""
    found = (_column(net, table, idx, col) for col in columns)
    return next((x for x in found if x is not None and x > 0), UNRATED_MW)


def command_range(command: str, table: str, idx: int,
                  net: pp.pandapowerNet | None = None) -> tuple[float, float]:
    """The range (low, high) of a command's value, from the element ``net[table]`` row
    ``idx``.

    Notes
    -----
    * ``switch``: 0 … 1 (open, close);
    * ``set_tap``: the trafo's ``tap_min`` … ``tap_max``; ``set_step``: 0 … the shunt's
      ``max_step``; without the net or these columns :data:`INT16_RANGE`;
    * ``set_p_limit`` [MW]: 0 … the plant's ``sn_mva`` (else its ``p_mw``); ``set_q``
      [Mvar]: ± that rating;
    * ``set_p`` [MW, positive charging]: ± the battery's ``max_p_mw`` (else ``sn_mva``);
    * ``set_ev_limit`` [MW]: 0 … the charging point's ``sn_mva``;
    * a rating the net does not give: :data:`UNRATED_MW`.
    """
    if command == "switch":
        return (0.0, 1.0)
    if command in ("set_tap", "set_step"):
        lo, hi = ((_column(net, table, idx, "tap_min"), _column(net, table, idx, "tap_max"))
                  if command == "set_tap" else (0.0, _column(net, table, idx, "max_step")))
        return (lo, hi) if lo is not None and hi is not None else INT16_RANGE
    if command in ("set_p_limit", "set_q"):
        rating = _rating(net, table, idx, ("sn_mva", "p_mw"))
    elif command == "set_p":
        rating = _rating(net, table, idx, ("max_p_mw", "sn_mva"))
    else:
        rating = _rating(net, table, idx, ("sn_mva",))
    return (0.0, rating) if command in ("set_p_limit", "set_ev_limit") else (-rating, rating)


def _telemetry_range(plan: FieldPlan, rtu: str, point: comms.PointSpec,
                     net: pp.pandapowerNet | None) -> tuple[float, float]:
    if point.quantity in STATUS_QUANTITIES:
        return (0.0, 1.0)
    truth = plan.truth.get(rtu, {}).get(point.name)
    if net is not None and truth is not None and truth.attr in ("tap_pos", "step"):
        idx = int(net[truth.table].index[truth.position])
        return command_range("set_tap" if truth.attr == "tap_pos" else "set_step",
                             truth.table, idx, net)
    return (float(point.range[0]), float(point.range[1]))


def _rtu_points(plan: FieldPlan, r: int, rtu: comms.RTUSpec,
                net: pp.pandapowerNet | None) -> list[MappedPoint]:
    ca = r + 1
    out: list[MappedPoint] = []
    ir = di = 0
    n_status = n_measurand = 0
    for point in rtu.points:
        status = point.quantity in STATUS_QUANTITIES
        low, high = _telemetry_range(plan, rtu.name, point, net)
        out.append(MappedPoint(
            rtu=rtu.name, name=point.name, element=point.element, quantity=point.quantity,
            direction="telemetry", value_type="bool" if status else "float",
            unit=quantity_unit(point.quantity),
            modbus_table="discrete_input" if status else "input_register",
            modbus_address=di if status else ir, modbus_count=1 if status else 2,
            iec104_ca=ca,
            iec104_ioa=(IEC104_STATUS_IOA + n_status if status
                        else IEC104_MEASURAND_IOA + n_measurand),
            iec104_type="M_SP_NA_1" if status else "M_ME_NC_1", low=low, high=high))
        if status:
            di, n_status = di + 1, n_status + 1
        else:
            ir, n_measurand = ir + 2, n_measurand + 1
    if rtu.points:
        out.append(MappedPoint(
            rtu=rtu.name, name=scan_time_point(rtu.name), element=f"rtu:{rtu.name}",
            quantity=SCAN_TIME, direction="telemetry", value_type="float", unit="s",
            modbus_table="input_register", modbus_address=ir, modbus_count=2, iec104_ca=ca,
            iec104_ioa=IEC104_MEASURAND_IOA + n_measurand, iec104_type="M_ME_NC_1",
            low=SCAN_TIME_RANGE[0], high=SCAN_TIME_RANGE[1]))
        n_measurand += 1
    devices: list[Device] = [d for d in plan.devices.values() if d.rtu == rtu.name]
    commands = [(d, c) for d in devices for c in device_commands(d.kind)]
    ordered = [x for x in commands if x[1] == "switch"] + [x for x in commands if x[1] != "switch"]
    address, n_switch, n_setpoint = 0, 0, 0
    for device, command in ordered:
        table, value_type, count, iec_type, unit = _COMMANDS[command]
        if address + count > MODBUS_STATUS_OFFSET:
            raise ScenarioError(
                f"rtus[{r}].devices: expected at most {MODBUS_STATUS_OFFSET} Modbus command "
                f"registers for RTU {rtu.name} (its status registers start at "
                f"{MODBUS_STATUS_OFFSET}); its {len(ordered)} commands need more")
        table_idx = plan.targets.get(device.eid)
        low, high = (command_range(command, *table_idx, net) if table_idx is not None
                     else command_range(command, "", -1))
        if command == "switch":
            ioa, n_switch = IEC104_SWITCH_IOA + n_switch, n_switch + 1
        else:
            ioa, n_setpoint = IEC104_SETPOINT_IOA + n_setpoint, n_setpoint + 1
        out.append(MappedPoint(
            rtu=rtu.name, name=f"{device.ref}/{command}", element=device.ref, quantity=command,
            direction="command", value_type=value_type, unit=unit, modbus_table=table,
            modbus_address=address, modbus_count=count, iec104_ca=ca, iec104_ioa=ioa,
            iec104_type=iec_type, low=low, high=high,
            select_before_operate=command == "switch"))
        out.append(MappedPoint(
            rtu=rtu.name, name=f"{device.ref}/{command}/status", element=device.ref,
            quantity="status", direction="status", value_type="int", unit="-",
            modbus_table="holding_register", modbus_address=address + MODBUS_STATUS_OFFSET,
            modbus_count=1, iec104_ca=ca, iec104_ioa=0, iec104_type="",
            low=0.0, high=float(max(COMMAND_STATUS.values()))))
        address += count
    if max(n_status, n_measurand, n_switch) > IEC104_BLOCK:
        raise ScenarioError(f"rtus[{r}]: expected at most {IEC104_BLOCK} status points, "
                            f"measurands and switches each for RTU {rtu.name} (the IEC 104 "
                            f"blocks are {IEC104_BLOCK} IOAs apart)")
    return out


def point_map(plan: FieldPlan, net: pp.pandapowerNet | None = None) -> PointMap:
    """The point map of a field plan: every RTU's telemetry and commands with their Modbus
    and IEC 104 addresses, laid out by the module's conventions.

    Parameters
    ----------
    plan : FieldPlan
        The field as :func:`twin.build.field.build_field_plan` resolved it.
    net : pandapowerNet, optional
        The prepared grid, for the commands' ranges (tap range, capacitor steps, ratings,
        see :func:`command_range`); without it the ranges are the register's or
        :data:`UNRATED_MW`.

    Returns
    -------
    PointMap
        Per RTU: its telemetry (``plan.rtus[i].points``), then its devices' commands
        (the devices whose ``rtu`` it is), each with its status register.

    Raises
    ------
    ScenarioError
        An RTU with more commands than its Modbus command block (100 registers) or an IEC
        104 block (1000 IOAs) holds.
    """
    return PointMap(tuple(p for r, rtu in enumerate(plan.rtus)
                          for p in _rtu_points(plan, r, rtu, net)))


def write_point_map(plan: FieldPlan | None, run_dir: str | Path,
                    net: pp.pandapowerNet | None = None) -> Path | None:
    """Write ``<run_dir>/points.csv``, the map of ``plan`` (:func:`point_map`); None when the
    field has no RTUs (then no file)."""
    if plan is None or not plan.rtus:
        return None
    return point_map(plan, net).to_csv(Path(run_dir) / POINTS_FILE)


def write_csv(point_map: PointMap, stream: IO[str], lineterminator: str = "\r\n") -> None:
    """The map as CSV to an open text ``stream`` (as :meth:`PointMap.to_csv` writes it)."""
    writer = csv.DictWriter(stream, fieldnames=[x.name for x in fields(MappedPoint)],
                            lineterminator=lineterminator)
    writer.writeheader()
    for p in point_map.points:
        writer.writerow(asdict(p))


_TABLE_ABBREV = {"input_register": "IR", "discrete_input": "DI", "coil": "coil",
                 "holding_register": "HR"}


def format_table(point_map: PointMap) -> str:
    """The map as plain text for a terminal: one block per RTU, one line per point."""
    lines: list[str] = []
    header = ("point", "direction", "type", "unit", "Modbus", "IEC 104", "range")
    for rtu in point_map.rtus():
        points = point_map.for_rtu(rtu)
        rows = []
        for p in points:
            end = p.modbus_address + p.modbus_count - 1
            modbus = f"{_TABLE_ABBREV[p.modbus_table]} {p.modbus_address}" + \
                (f"-{end}" if end > p.modbus_address else "")
            iec = f"{p.iec104_type} {p.iec104_ioa}" if p.iec104_type else "-"
            if p.select_before_operate:
                iec += " SBO"
            rows.append((p.name, p.direction, p.value_type, p.unit, modbus, iec,
                         f"{p.low:g} … {p.high:g}"))
        widths = [max(len(row[k]) for row in [header, *rows]) for k in range(len(header))]
        if lines:
            lines.append("")
        lines.append(f"{rtu} (IEC 104 common address {points[0].iec104_ca}, Modbus unit 1)")
        for row in [header, *rows]:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines) + ("\n" if lines else "")
