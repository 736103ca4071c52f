"""``twin replay RUN_DIR``: push a run's spilled points into the InfluxDB it was recording to.

When InfluxDB fails during a run, :class:`~twin.recording.resilient.ResilientWriter` spills
the rest of the points to the run directory's file store (``RUN_DIR/store``). Replay sends
those points to InfluxDB afterwards, so the database holds the whole run.

Replay is idempotent: InfluxDB stores one point per series (measurement + tags) and
timestamp and overwrites it when the same point comes again. So replaying twice, or
replaying points that also reached the server before a request timed out (a hung server,
``points_uncertain`` in run.json), leaves every point in InfluxDB exactly once.

Where to send them comes from ``run.json`` (``recording.influx``: URL, API, database or
bucket/org, user, and the *names* of the environment variables holding the password or
token); ``--influx-url`` overrides the URL. Secrets come from the environment, as for
``twin run``, and every error message is redacted.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

from twin.recording.errors import InfluxError, redact
from twin.recording.factory import STORE_DIR, influx_secret
from twin.recording.files import list_measurements, read_points
from twin.scenario import InfluxSpec, ScenarioError


class ReplayError(RuntimeError):
    """The run directory cannot be replayed, or InfluxDB did not take the points.

    The message is safe to show: it never holds a secret.
    """


@dataclass
class ReplayResult:
    points: int
    measurements: int
    target: str


def _load_run(run_dir: Path) -> dict:
    run_json = run_dir / "run.json"
    if not run_json.is_file():
        raise ReplayError(f"{run_dir}: expected a run directory with run.json; there is none")
    try:
        return json.loads(run_json.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ReplayError(f"{run_json}: not valid JSON ({exc})") from None


def _spec(info: dict, run_dir: Path, influx_url: str | None) -> InfluxSpec:
    recording = info.get("recording") or {}
    target = recording.get("influx")
    if recording.get("kind") != "influx" or not isinstance(target, dict):
        raise ReplayError(
            f"{run_dir / 'run.json'}: recording.influx: expected the InfluxDB target of a run "
            f"recorded with --record influx; found recording kind "
            f"{recording.get('kind', 'none')!r} without one"
        )
    fields = {key: value for key, value in target.items() if key in InfluxSpec.model_fields}
    if influx_url:
        fields["url"] = influx_url
    try:
        return InfluxSpec(**fields)
    except ValueError as exc:
        raise ReplayError(f"{run_dir / 'run.json'}: recording.influx: {exc}") from None


def replay_run(
    run_dir: str | os.PathLike[str],
    influx_url: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> ReplayResult:
    """Write every point of ``RUN_DIR/store`` to the run's InfluxDB; note it in run.json.

    Raises
    ------
    ReplayError
        No run.json, not an InfluxDB run, or InfluxDB refused the points (nothing is
        marked as replayed then; running it again is safe).
    ScenarioError
        The environment variable holding the password or token is not set.
    """
    run_dir = Path(run_dir)
    info = _load_run(run_dir)
    spec = _spec(info, run_dir, influx_url)
    store_dir = run_dir / STORE_DIR
    secret = influx_secret(spec, env)
    secrets = [secret] if secret else []
    if not store_dir.is_dir() or not list_measurements(store_dir):
        points = []
    else:
        points = read_points(store_dir)

    primary = None
    try:
        if spec.api == "v1":
            from twin.recording.influx_v1 import InfluxV1Store

            primary = InfluxV1Store(spec.url, spec.database or "", username=spec.username,
                                    password=secret, batch_size=spec.batch_size,
                                    timeout_s=timeout_s)
        else:
            from twin.recording.influx_v2 import InfluxV2Store

            primary = InfluxV2Store(spec.url, spec.bucket or "", spec.org or "", secret or "",
                                    batch_size=spec.batch_size, timeout_s=timeout_s)
        target = primary.description
        primary.write(points)
    except (InfluxError, OSError) as exc:
        raise ReplayError(redact(f"replay to InfluxDB failed: {exc}", secrets)) from None
    finally:
        if primary is not None:
            primary.close()

    measurements = len({p.measurement for p in points})
    recording = info.setdefault("recording", {})
    recording.setdefault("replays", []).append({
        "points": len(points),
        "target": target,
        "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    (run_dir / "run.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return ReplayResult(len(points), measurements, target)


__all__ = ["ReplayError", "ReplayResult", "ScenarioError", "replay_run"]
