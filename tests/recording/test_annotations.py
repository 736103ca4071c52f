"""DMS decisions posted as Grafana annotations through grafana-client, against a small HTTP
server that answers like Grafana's annotation API (no Grafana server on these machines)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from twin.recording.files import read_measurement
from twin.runner import run_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


class _Grafana(BaseHTTPRequestHandler):
    received: list[tuple[str, dict]] = []
    fail = False

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.headers.get("Authorization", ""), body))
        code, answer = (500, {"message": "down"}) if type(self).fail else (
            200, {"id": len(type(self).received), "message": "Annotation added"})
        data = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def grafana(monkeypatch):
    _Grafana.received, _Grafana.fail = [], False
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Grafana)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("GRAFANA_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("GRAFANA_TOKEN", "glsa_test_token")
    yield _Grafana
    server.shutdown()


def _volt_var_run(tmp_path, name):
    return run_scenario(SCENARIOS / "volt_var_high_pv.yaml", out=tmp_path / name, overrides=[
        "start=2026-06-21T11:00:00Z", "duration=10min", "dms.volt_var.mode=direct"])


def test_every_decision_becomes_an_annotation(grafana, tmp_path):
    run = _volt_var_run(tmp_path, "r")
    decisions = read_measurement(run.run_dir / "store", "dms_decision")
    assert len(decisions) >= 2
    assert run.run_info["grafana_annotations"] == {"posted": len(decisions), "failed": 0,
                                                   "gave_up": False}
    assert len(grafana.received) == len(decisions)
    auth = {a for a, _ in grafana.received}
    assert auth == {"Bearer glsa_test_token"}
    posted = sorted((b["time"], b["text"]) for _, b in grafana.received)
    expected = sorted((int(t.value // 1_000_000), f"{e}: {r}")
                      for t, e, r in zip(decisions.time, decisions.element, decisions.reason))
    assert posted == expected
    for _, body in grafana.received:
        assert body["time"] == body["timeEnd"]
        assert {"dms", "volt_var", "direct", f"run:{run.run_id}"} <= set(body["tags"])


def test_grafana_down_does_not_stop_the_run(grafana, tmp_path):
    grafana.fail = True
    run = _volt_var_run(tmp_path, "down")
    info = run.run_info["grafana_annotations"]
    assert info["posted"] == 0 and info["failed"] == 3 and info["gave_up"] is True
    assert len(read_measurement(run.run_dir / "store", "dms_decision")) >= 2  # still recorded
