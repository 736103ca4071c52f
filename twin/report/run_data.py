"""A run directory as the report reads it: run.json, kpis.json, scenario.yaml, store/."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from twin.recording.files import list_measurements, read_measurement
from twin.recording.schema import EXTREMES, check_measurement

#: A measurement with more rows than this is read chunk by chunk (see :meth:`RunData.chunks`):
#: ~10 columns × 2 million rows is a few hundred MB of pandas.
LARGE_ROWS = 2_000_000
#: Rows per chunk of a large measurement.
CHUNK_ROWS = 500_000


class RunDirectoryError(FileNotFoundError):
    """The directory is not a run directory (``twin run --out DIR`` writes one)."""


# ----------------------------------------------------------------------------- the run


@dataclass
class RunData:
    """What a run directory holds, read lazily: one measurement at a time, once.

    Attributes
    ----------
    run_dir : Path
        The run directory.
    run_info : dict
        ``run.json``.
    kpis : dict
        ``kpis.json`` (empty if the run wrote none).
    scenario : dict
        ``scenario.yaml`` as plain data (empty if missing or unreadable).
    store_dir : Path or None
        The file store, None when the run recorded elsewhere (InfluxDB) and spilled nothing.
    measurements : set of str
        Measurements present in the file store.
    """

    run_dir: Path
    run_info: dict
    kpis: dict
    scenario: dict
    store_dir: Path | None
    measurements: set[str]
    _cache: dict[str, pd.DataFrame | None] = field(default_factory=dict, repr=False)

    def read(self, measurement: str) -> pd.DataFrame | None:
        """The measurement as a DataFrame with naive-UTC ``time``, or None if not recorded;
        ValueError for a name the record schema does not have (a misspelt name would
        otherwise silently leave a section empty)."""
        if measurement not in self._cache:
            check_measurement(measurement, "report")
            frame = None
            if self.store_dir is not None and measurement in self.measurements:
                frame = read_measurement(self.store_dir, measurement)
                # plotly.js drops a time zone offset anyway; axes say "UTC" instead.
                frame["time"] = frame["time"].dt.tz_convert("UTC").dt.tz_localize(None)
                if frame.empty:
                    frame = None
            self._cache[measurement] = frame
        return self._cache[measurement]

    def rows(self, measurement: str) -> int:
        """Points of ``measurement`` in the file store (from the Parquet footers: cheap)."""
        if self.store_dir is None or measurement not in self.measurements:
            return 0
        return sum(pq.ParquetFile(path).metadata.num_rows for path in self._parts(measurement))

    def chunks(self, measurement: str, columns: list[str]) -> Iterator[pd.DataFrame]:
        """``measurement`` as frames of at most ``columns`` (those recorded), naive-UTC
        ``time``: the whole measurement at once (cached, as :meth:`read`) unless it has more
        than :data:`LARGE_ROWS` points; then part by part, :data:`CHUNK_ROWS` at a time, in
        no particular order. Aggregate them with :mod:`twin.report.streams`."""
        if self.rows(measurement) <= LARGE_ROWS:
            frame = self.read(measurement)
            if frame is not None:
                yield frame[[c for c in columns if c in frame.columns]]
            return
        check_measurement(measurement, "report")
        nullable = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
        for path in self._parts(measurement):
            part = pq.ParquetFile(path)
            present = [c for c in columns if c in part.schema_arrow.names]
            for batch in part.iter_batches(batch_size=CHUNK_ROWS, columns=present):
                frame = batch.to_pandas(types_mapper=nullable.get)
                if "time" in frame:
                    frame["time"] = frame["time"].dt.tz_convert("UTC").dt.tz_localize(None)
                yield frame

    def _parts(self, measurement: str) -> list[Path]:
        assert self.store_dir is not None
        return sorted((self.store_dir / measurement).glob("part-*.parquet"))

    @property
    def status(self) -> str:
        """How the run ended (run.json): "completed", "interrupted", "failed", or "running"
        (it has not ended: still going, or killed); runs from before the field: completed."""
        return str(self.run_info.get("status") or "completed")

    @property
    def recording_policy(self) -> dict:
        """What of the grid's element tables the run stored (run.json ``recording``):
        ``elements`` ("all", "summary" or a list of refs like "bus:Bus 3") and ``every_s``
        (seconds between table snapshots; None: every solve). Runs from before the policy
        stored every element at every solve."""
        recording = self.run_info.get("recording") or {}
        return {"elements": recording.get("elements", "all"),
                "every_s": recording.get("every_s")}

    @property
    def tables_whole(self) -> bool:
        """Whether the element tables (bus, line, trafo, …) hold every element at every
        solve; if not, per-element statistics come from the ``*_extremes`` measurements
        and per-step ones from the ``grid`` summary, never from the rows that were kept."""
        policy = self.recording_policy
        # the extremes are written exactly when the tables are incomplete: trust them too
        return (policy["elements"] == "all" and policy["every_s"] is None
                and not self.measurements & set(EXTREMES))

    @property
    def selected(self) -> dict[str, list[str]]:
        """The elements recorded at every table snapshot besides violations, per table."""
        elements = self.recording_policy["elements"]
        chosen: dict[str, list[str]] = {}
        for ref in elements if isinstance(elements, list) else []:
            table, _, name = str(ref).partition(":")
            chosen.setdefault(table, []).append(name)
        return chosen

    @property
    def start(self) -> pd.Timestamp | None:
        """Scenario start (naive UTC)."""
        text = self.run_info.get("start")
        if not text:
            return None
        stamp = pd.Timestamp(text)
        return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp

    @property
    def end(self) -> pd.Timestamp | None:
        """Start + simulated time (naive UTC)."""
        start, simulated_s = self.start, self.run_info.get("simulated_s")
        if start is None or simulated_s is None:
            return None
        return start + pd.Timedelta(seconds=float(simulated_s))


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory's JSON files and find its store.

    Parameters
    ----------
    run_dir : str or Path
        A directory written by ``twin run`` (it holds ``run.json``).

    Returns
    -------
    RunData

    Raises
    ------
    RunDirectoryError
        If ``run_dir`` is not a directory or holds no ``run.json``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirectoryError(f"{run_dir}: expected a run directory; found no such directory")
    run_json = run_dir / "run.json"
    if not run_json.is_file():
        raise RunDirectoryError(
            f"{run_dir}: expected a run directory (written by `twin run --out DIR`); "
            "found no run.json in it")
    try:
        run_info = json.loads(run_json.read_text(encoding="utf-8"))
        kpis_path = run_dir / "kpis.json"
        kpis = json.loads(kpis_path.read_text(encoding="utf-8")) if kpis_path.is_file() else {}
    except json.JSONDecodeError as exc:
        raise RunDirectoryError(f"{run_dir}: a JSON file of the run is damaged: {exc}") from None
    scenario: dict = {}
    scenario_path = run_dir / "scenario.yaml"
    if scenario_path.is_file():
        try:
            loaded = yaml.safe_load(scenario_path.read_text(encoding="utf-8"))
            scenario = loaded if isinstance(loaded, dict) else {}
        except yaml.YAMLError:
            scenario = {}  # the header then lacks the description; the data still shows
    store_dir = run_dir / "store"
    measurements = set(list_measurements(store_dir)) if store_dir.is_dir() else set()
    return RunData(run_dir, run_info, kpis, scenario, store_dir if measurements else None,
                   measurements)
