"""InfluxDB recording under trouble (issue 13 item 5), against real influxd servers.

* a hung (SIGSTOP'ed, not dead) server: points end up in InfluxDB exactly once after
  ``twin replay``;
* a tag value line protocol cannot carry is sanitised, not a reason to spill;
* a user with WRITE (and nothing else) on an existing database records;
* credentials never appear in anything a run leaves behind or prints.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests
from typer.testing import CliRunner

from twin.recording.errors import InfluxWriteError, redact
from twin.recording.factory import open_recording
from twin.recording.files import FileStore, read_points
from twin.recording.influx_v1 import InfluxV1Store
from twin.recording.lineprotocol import to_line
from twin.recording.resilient import ResilientWriter
from twin.recording.schema import Point
from twin.scenario import InfluxSpec

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "influxd.sh"
T0_NS = 1_704_067_200_000_000_000


class Influxd:
    """A throw-away influxd of this test (scripts/influxd.sh), stopped afterwards."""

    def __init__(self, directory: Path, auth: bool = False) -> None:
        self.directory = directory
        args = ["bash", str(SCRIPT), "start", str(directory)] + (["--auth"] if auth else [])
        out = subprocess.run(args, check=True, capture_output=True, text=True)
        self.url = out.stdout.strip().splitlines()[-1]
        self.pid = int((directory / "influxd.pid").read_text())

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        except ProcessLookupError:
            pass
        subprocess.run(["bash", str(SCRIPT), "stop", str(self.directory)], check=False)


@pytest.fixture
def influxd(tmp_path: Path) -> Iterator[Callable[..., Influxd]]:
    if shutil.which("influxd") is None:
        pytest.skip("influxd not installed")
    servers: list[Influxd] = []

    def start(auth: bool = False) -> Influxd:
        server = Influxd(tmp_path / f"influxd-{len(servers)}", auth=auth)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def query(url: str, q: str, db: str | None = None, auth: tuple[str, str] | None = None) -> dict:
    params = {"q": q, **({"db": db} if db else {})}
    response = requests.post(f"{url}/query", params=params, auth=auth, timeout=30)
    response.raise_for_status()
    body = response.json()
    for result in body.get("results", []):
        assert "error" not in result, result
    return body


def count_points(url: str, db: str, auth: tuple[str, str] | None = None) -> int:
    """Points in ``db``: rows of every measurement, grouped by every tag (one row a point)."""
    body = query(url, "SHOW MEASUREMENTS", db, auth)
    names = [v[0] for s in body["results"][0].get("series", []) for v in s["values"]]
    total = 0
    for name in names:
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        body = query(url, f'SELECT * FROM "{escaped}" GROUP BY *', db, auth)
        total += sum(len(s.get("values", [])) for s in body["results"][0].get("series", []))
    return total


# -- (a) a hung server, then twin replay ----------------------------------------------------


def test_hung_influx_then_replay_leaves_every_point_once(make_scenario, tmp_path, influxd):
    from twin.runner import run_scenario
    from twin.scenario import load_scenario

    server = influxd()
    path = make_scenario("hung", duration="40min", recording={"store": "influx", "influx": {
        "url": server.url, "api": "v1", "database": "hung", "batch_size": 500, "retries": 1,
        "backoff_s": 0.05}})
    ticks_per_step = load_scenario(path).step_ticks
    stopped = []

    def progress_factory(scenario, until_ticks):
        def update(tick):
            if tick >= 20 * ticks_per_step and not stopped:  # halfway: the server hangs
                os.kill(server.pid, signal.SIGSTOP)
                stopped.append(tick)
        return update

    try:
        run = run_scenario(path, out=tmp_path / "r", progress_factory=progress_factory)
    finally:
        os.kill(server.pid, signal.SIGCONT)  # it wakes up and may write what it had received
    rec = run.recording
    total = run.outcome.points_recorded
    assert stopped and rec["spilled"] and 0 < rec["points_written"] < total
    assert rec["points_written"] + rec["points_spilled"] == total
    # the batch that timed out may be in both stores: counted, and the summary says what to do
    assert rec["points_uncertain"] > 0 and "twin replay" in rec["summary"]
    info = json.loads((run.run_dir / "run.json").read_text())
    assert info["recording"]["influx"] == {"url": server.url, "api": "v1", "database": "hung",
                                           "batch_size": 500}
    assert info["recording"]["points_uncertain"] == rec["points_uncertain"]
    spilled = read_points(run.run_dir / "store")
    assert len(spilled) == rec["points_spilled"]

    runner = CliRunner()
    from twin.cli import app

    for _ in range(2):  # replaying again changes nothing
        result = runner.invoke(app, ["replay", str(run.run_dir)])
        assert result.exit_code == 0, result.output
        assert f"replayed {len(spilled):,} points" in result.output
        assert count_points(server.url, "hung") == total  # every point exactly once
    replays = json.loads((run.run_dir / "run.json").read_text())["recording"]["replays"]
    assert [r["points"] for r in replays] == [len(spilled)] * 2

    # and the spilled points are the ones now in InfluxDB (same values)
    db = InfluxV1Store(server.url, "hung")
    sample = spilled[:: max(1, len(spilled) // 50)]
    for point in sample:
        where = " AND ".join(f'"{k}" = \'{v}\'' for k, v in point.tags.items())
        rows = db.query(f'SELECT * FROM "{point.measurement}" WHERE time = {point.time_ns}'
                        + (f" AND {where}" if where else ""))
        assert len(rows) == 1, point
    db.close()


def test_replay_refuses_a_files_run(tmp_path):
    from twin.cli import app

    (tmp_path / "run.json").write_text(json.dumps({"recording": {"kind": "files"}}))
    result = CliRunner().invoke(app, ["replay", str(tmp_path)])
    assert result.exit_code == 1 and "recording.influx" in result.output


def test_timed_out_batch_is_resent_not_duplicated(tmp_path, influx_url, fresh_database):
    """A write whose answer never came is retried: re-sending overwrites, nothing doubles."""

    class FirstAnswerLost:
        def __init__(self, store):
            self.store, self.calls = store, 0

        def write(self, points):
            self.calls += 1
            self.store.write(points)  # it reaches the server ...
            if self.calls == 1:  # ... but the answer is lost
                raise InfluxWriteError("read timed out", fate_unknown=True)

        def close(self):
            self.store.close()

    primary = FirstAnswerLost(InfluxV1Store(influx_url, fresh_database))
    points = [Point("m", T0_NS + i, {"element": f"e{i % 7}"}, {"x": float(i)}) for i in range(300)]
    writer = ResilientWriter(primary, lambda: FileStore(tmp_path), batch_size=100,
                             sleep=lambda s: None)
    writer.write(points)
    report = writer.close()
    assert report.points_written == 300 and not report.spilled and report.batches_retried == 1
    assert count_points(influx_url, fresh_database) == 300


# -- (b) a tag value line protocol cannot carry ------------------------------------------------


def test_tag_with_trailing_backslash_reaches_influxdb(tmp_path, influx_url, fresh_database):
    spec = InfluxSpec(url=influx_url, api="v1", database=fresh_database, backoff_s=0.0)
    rec = open_recording("influx", spec, tmp_path, env={})
    awkward = ["C:\\grid\\", "two\\\\", "line\nbreak", "a\\ b", "plain"]
    points = [Point("bus", T0_NS + i, {"run": "r", "element": name}, {"vm_pu": 1.0 + i})
              for i, name in enumerate(awkward)]
    rec.store.write(points)
    report = rec.close()
    assert not report.spilled and report.points_written == len(points), report.summary()
    assert not (tmp_path / "store").exists()
    db = InfluxV1Store(influx_url, fresh_database)
    stored = {p.tags["element"]: p.fields["vm_pu"] for p in db.read_points("bus")}
    db.close()
    assert stored == {"C:\\grid\uff3c": 1.0, "two\uff3c\uff3c": 2.0, "line\u240abreak": 3.0,
                      "a\uff3c b": 4.0, "plain": 5.0}
    # the line sent is what the docstring promises
    assert to_line(points[0]).startswith("bus,element=C:\\grid\uff3c,run=r ")


# -- (c) a user with WRITE only ----------------------------------------------------------------


def test_write_only_user_records_into_an_existing_database(tmp_path, influxd, make_points):
    server = influxd(auth=True)
    admin = ("admin", "admin-" + uuid.uuid4().hex)
    writer_pw = "writer-" + uuid.uuid4().hex
    query(server.url, f"CREATE USER admin WITH PASSWORD '{admin[1]}' WITH ALL PRIVILEGES")
    query(server.url, 'CREATE DATABASE "plant"', auth=admin)
    query(server.url, f"CREATE USER writer WITH PASSWORD '{writer_pw}'", auth=admin)
    query(server.url, 'GRANT WRITE ON "plant" TO "writer"', auth=admin)

    spec = InfluxSpec(url=server.url, api="v1", database="plant", username="writer",
                      password_env="TWIN_TEST_WRITER_PASSWORD", backoff_s=0.0)
    points = make_points(steps=4)
    rec = open_recording("influx", spec, tmp_path, env={"TWIN_TEST_WRITER_PASSWORD": writer_pw})
    rec.store.write(points)
    report = rec.close()
    assert not report.spilled and report.errors == [], report.summary()
    assert report.points_written == len(points)
    assert count_points(server.url, "plant", auth=admin) == len(points)

    # a missing database it may not create: a clear error, spilled, no password anywhere
    spec = spec.model_copy(update={"database": "elsewhere"})
    rec = open_recording("influx", spec, tmp_path / "b", env={"TWIN_TEST_WRITER_PASSWORD":
                                                               writer_pw})
    rec.store.write(points)
    report = rec.close()
    assert report.failed_at_start and report.points_spilled == len(points)
    assert "'elsewhere' does not exist and could not be created" in report.summary()
    assert writer_pw not in report.summary() and writer_pw not in " ".join(report.errors)


# -- (d) credentials: headers only, redacted everywhere ----------------------------------------


def test_redact():
    secret = "p@ss word/1"
    text = (f"GET http://bob:{secret}@h:1/query?q=x&u=bob&p=p%40ss%20word%2F1 "
            f"{secret} Authorization: Basic Ym9iOnA=")
    out = redact(text, [secret, None])
    assert secret not in out and "p%40ss" not in out and "Ym9iOnA=" not in out
    assert "http://***@h:1/query?q=x&u=bob&p=***" in out
    plain = "nothing to hide: http://h:1/write?db=x"
    assert redact(plain) == plain


def test_password_appears_nowhere_in_a_run(make_scenario, tmp_path, closed_port_url):
    password = "pw-" + uuid.uuid4().hex
    path = make_scenario("secret", duration="20min", recording={"store": "files", "influx": {
        "url": "http://127.0.0.1:9", "api": "v1", "database": "twin", "username": "operator",
        "password_env": "TWIN_TEST_INFLUX_PASSWORD", "retries": 0}})
    out = tmp_path / "run"
    env = {**os.environ, "TWIN_TEST_INFLUX_PASSWORD": password}
    proc = subprocess.run(
        [sys.executable, "-m", "twin.cli", "run", str(path), "--record", "influx",
         "--influx-url", closed_port_url, "--until", "10min", "--out", str(out), "--no-progress"],
        capture_output=True, env=env, cwd=ROOT, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    info = json.loads((out / "run.json").read_text())
    assert info["recording"]["spilled"] and "cannot reach InfluxDB" in info["recording"]["summary"]
    assert (out / "report.html").exists() and list((out / "store").rglob("*.parquet"))
    needles = [password.encode(), base64.b64encode(f"operator:{password}".encode())]
    console = proc.stdout + proc.stderr
    for needle in needles:
        assert needle not in console
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 5
    for file in files:
        data = file.read_bytes()
        for needle in needles:
            assert needle not in data, file.name
