"""Open the store a scenario asks for: the file store, or InfluxDB with the file store as spill."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from twin.recording.columns import ColumnBatch
from twin.recording.errors import redact
from twin.recording.files import FileStore
from twin.recording.resilient import ResilientWriter, WriteReport, open_with_fallback
from twin.recording.schema import Point, Store
from twin.scenario import InfluxSpec, ScenarioError

STORE_DIR = "store"
#: Write requests in flight to InfluxDB: the server parses one on each core, so two take
#: about twice the points per second of one (bench/recording.py).
INFLUX_WORKERS = 2


@dataclass
class Recording:
    """The store the recorder writes to, and what to say about it afterwards."""

    store: Store
    description: str
    kind: str
    #: Where an InfluxDB recording goes, without secrets (only the NAMES of the environment
    #: variables holding them): run.json keeps it so ``twin replay`` can find the target.
    info: dict = field(default_factory=dict)

    def close(self) -> WriteReport | None:
        if isinstance(self.store, ResilientWriter):
            return self.store.close()
        self.store.close()
        return None


class _Counting:
    """File store that counts, so both kinds of recording report the same way."""

    def __init__(self, store: FileStore):
        self.inner, self.points = store, 0

    def write(self, points: list[Point]) -> None:
        self.inner.write(points)
        self.points += len(points)

    def write_columns(self, batches: Sequence[ColumnBatch]) -> None:
        self.inner.write_columns(batches)
        self.points += sum(batch.n_rows for batch in batches)

    def close(self) -> None:
        self.inner.close()


def _secret(env: Mapping[str, str], name: str | None, key: str) -> str | None:
    if name is None:
        return None
    if name not in env:
        raise ScenarioError(
            f"recording.influx.{key}: expected the environment variable {name} to be set; "
            "it is not"
        )
    return env[name]


def influx_info(influx: InfluxSpec) -> dict:
    """The target of an InfluxDB recording for run.json: URL (userinfo redacted), API,
    database or bucket/org, user, and the names of the secrets' environment variables."""
    keys = ("api", "database", "username", "password_env") if influx.api == "v1" else (
        "api", "bucket", "org", "token_env")
    info = {"url": redact(influx.url)}
    info.update({key: getattr(influx, key) for key in keys if getattr(influx, key) is not None})
    info["batch_size"] = influx.batch_size
    return info


def influx_secret(influx: InfluxSpec, env: Mapping[str, str] | None = None) -> str | None:
    """The password (v1) or token (v2) from the environment variable the spec names."""
    env = os.environ if env is None else env
    if influx.api == "v1":
        return _secret(env, influx.password_env, "password_env")
    return _secret(env, influx.token_env, "token_env")


def open_recording(kind: str, influx: InfluxSpec | None, run_dir: Path,
                   env: Mapping[str, str] | None = None) -> Recording:
    """``kind`` is 'files' or 'influx'; secrets come from ``env`` (default: os.environ).

    Secrets travel only in request headers, and every error text is redacted
    (:func:`~twin.recording.errors.redact`) before it reaches the report."""
    env = os.environ if env is None else env
    store_dir = run_dir / STORE_DIR
    if kind == "files":
        return Recording(_Counting(FileStore(store_dir)), f"file store {store_dir}", "files")
    if influx is None:
        raise ScenarioError("recording.influx: expected an 'influx:' section (url, api, …)")

    if influx.api == "v1":
        from twin.recording.influx_v1 import InfluxV1Store

        password = secret = _secret(env, influx.password_env, "password_env")

        def make_primary() -> Store:
            return InfluxV1Store(influx.url, influx.database, username=influx.username,
                                 password=password, batch_size=influx.batch_size)

        target = redact(f"InfluxDB {influx.url} database {influx.database}", [password])
    else:
        from twin.recording.influx_v2 import InfluxV2Store

        token = secret = _secret(env, influx.token_env, "token_env")

        def make_primary() -> Store:
            return InfluxV2Store(influx.url, influx.bucket, influx.org, token,
                                 batch_size=influx.batch_size)

        target = redact(f"InfluxDB {influx.url} bucket {influx.bucket}", [token])
    writer = open_with_fallback(make_primary, lambda: FileStore(store_dir),
                                batch_size=influx.batch_size, retries=influx.retries,
                                backoff_s=influx.backoff_s,
                                spill_description=f"file store {store_dir}",
                                secrets=[secret] if secret else [],
                                workers=INFLUX_WORKERS)
    return Recording(writer, target, "influx", influx_info(influx))
