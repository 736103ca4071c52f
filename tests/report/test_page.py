"""The embedded HTML report (twin.report): contents from real runs, and the page as headless
Chromium renders it (no console errors, every plot drawn)."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from twin.report import (
    MAX_POINTS,
    RunDirectoryError,
    format_value,
    interruptions,
    kpi_group,
    kpi_unit,
    per_step,
    write_report,
)
from twin.report.grid_sections import dms_text
from twin.runner import run_scenario

ROOT = Path(__file__).resolve().parents[2]
FLISR_SCENARIO = ROOT / "scenarios" / "flisr_three_loads.yaml"

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def default_run(default_day) -> Path:
    """The default day, as shipped (the report the acceptance names; shared)."""
    return default_day.run_dir


@pytest.fixture(scope="module")
def flisr_run(tmp_path_factory) -> Path:
    """flisr_three_loads, 1 h: the fault at 10 min, repaired 20 min after the crew arrives."""
    base = tmp_path_factory.mktemp("flisr")
    data = yaml.safe_load(FLISR_SCENARIO.read_text())
    # faults is a list, which --set cannot reach into: change a copy of the file instead
    data["faults"][0].update(after="10min", repair_time="20min")
    scenario = base / "flisr.yaml"
    scenario.write_text(yaml.safe_dump(data, sort_keys=False))
    run_scenario(scenario, out=base / "run", overrides=["duration=60min", "dms.cycle=10min"])
    return base / "run"


def _self_contained(page: str) -> None:
    """No script, style sheet, font or image is fetched from anywhere."""
    assert not re.search(r"<script[^>]*\ssrc\s*=", page, re.I)
    assert not re.search(r"<link[^>]*stylesheet", page, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", page, re.I)
    assert not re.search(r"<(img|iframe)[^>]*\ssrc\s*=\s*['\"]?https?:", page, re.I)


# ------------------------------------------------------------------- pure functions


def test_interruptions_from_supply_samples():
    # A is off from 00:10 (two samples) and back at 00:12:30; B is off from 00:11 to the end.
    t = pd.Timestamp("2026-01-01")
    minute = pd.Timedelta(minutes=1)
    load = pd.DataFrame({
        "time": [t, t + 10 * minute, t + 11 * minute, t + 12.5 * minute, t, t + 11 * minute],
        "element": ["A", "A", "A", "A", "B", "B"],
        "supplied": pd.array([True, False, False, True, True, False], dtype="boolean"),
    })
    off = interruptions(load, end=t + 20 * minute)
    assert off["element"].tolist() == ["A", "B"]
    assert off["off"].tolist() == [t + 10 * minute, t + 11 * minute]
    assert off["back"].tolist() == [t + 12.5 * minute, t + 20 * minute]
    assert off["duration_min"].tolist() == pytest.approx([2.5, 9.0])
    assert interruptions(load.assign(supplied=True), end=None).empty


def test_per_step_bins_a_year_to_at_most_max_points():
    # a year at 15 min: 35,040 steps × 3 buses must come out as at most MAX_POINTS points
    times = pd.date_range("2026-01-01", periods=35_040, freq="15min")
    frame = pd.DataFrame({"time": np.repeat(times, 3), "element": ["a", "b", "c"] * len(times),
                          "vm_pu": np.tile([0.97, 1.0, 1.03], len(times))})
    step = per_step(frame, "vm_pu", ("min", "mean", "max"))
    assert len(step) <= MAX_POINTS
    assert step["min"].min() == pytest.approx(0.97) and step["max"].max() == pytest.approx(1.03)
    assert step["mean"].to_numpy() == pytest.approx(1.0)
    few = per_step(frame.head(300), "vm_pu", ("sum",))  # 100 steps: one point per step
    assert len(few) == 100 and few["sum"].to_numpy() == pytest.approx(3.0)


def test_kpi_units_groups_and_formats():
    assert kpi_unit("energy_losses_mwh") == "MWh"
    assert kpi_unit("vm_min_pu") == "p.u."
    assert kpi_unit("max_line_loading_percent") == "%"
    assert kpi_unit("saidi_min") == "min"
    assert kpi_unit("voltage_violation_bus_minutes") == "bus·min"
    assert kpi_unit("customer_minutes_interrupted") == "customer·min"
    assert kpi_unit("crew_jobs") == ""
    assert kpi_group("energy_not_supplied_mwh") == "Reliability and protection"
    assert kpi_group("energy_losses_mwh") == "Energy and power flow"
    assert kpi_group("ev_energy_short_mwh") == "DER, EV and battery"
    assert kpi_group("se_error_max_pu") == "DMS"
    assert format_value("vm_min_pu", 0.955112944) == "0.9551"
    assert format_value("load_energy_mwh", 574.896296078) == "574.896"
    assert format_value("telemetry_values_delivered", 142208) == "142,208"
    assert format_value("caidi_min", None) == "n/a"
    assert format_value("voltage_band_pu", [0.95, 1.05]) == "0.9500 – 1.0500"


def test_not_a_run_directory(tmp_path):
    with pytest.raises(RunDirectoryError, match="no run.json"):
        write_report(tmp_path)
    with pytest.raises(RunDirectoryError, match="no such directory"):
        write_report(tmp_path / "missing")
    assert not (tmp_path / "report.html").exists()


def test_run_without_a_file_store_gets_its_kpis(tmp_path):
    # an InfluxDB run that spilled nothing has run.json and kpis.json but no store/
    (tmp_path / "run.json").write_text(json.dumps({
        "run_id": "influx-run", "scenario": "s", "seed": 1, "start": "2026-01-01T00:00:00+00:00",
        "simulated_s": 3600.0, "recording": {"kind": "influx", "target": "http://db:8086"}}))
    (tmp_path / "kpis.json").write_text(json.dumps({"saidi_min": 12.5, "vm_min_pu": 0.97}))
    page = write_report(tmp_path).read_text(encoding="utf-8")
    assert ">12.500</td>" in page and ">0.9700</td>" in page
    assert "no file store" in page and "http://db:8086" in page
    assert "Plotly" not in page and len(page) < 20_000  # no figure, so no plotly.js either


# --------------------------------------------------------------------- from real runs


@pytest.mark.slow
def test_report_of_the_default_scenario(default_run):
    path = write_report(default_run)
    assert path == default_run / "report.html" and path.is_file()
    assert path.stat().st_size < 10e6
    page = path.read_text(encoding="utf-8")
    _self_contained(page)
    assert page.count("<script") == page.count("</script>")
    assert page.count("Plotly.newPlot(") >= 6
    for title in ("Key performance indicators", "Network", "Voltage band", "Bus voltage heatmap",
                  "Line and transformer loading", "DER, EV and battery", "PV and wind",
                  "Batteries", "EV fleet", "Communication health",
                  "Telemetry latency per RTU", "Messages lost per RTU", "Reliability"):
        assert f">{html.escape(title)}" in page, title
    run = json.loads((default_run / "run.json").read_text())
    assert html.escape(run["run_id"]) in page and f"{run['speed_up']}× real time" in page
    kpis = json.loads((default_run / "kpis.json").read_text())
    # which DMS the KPIs judge: in the header (the default scenario runs the built-in one)
    assert kpis["dms"]["class"] == "twin.dms.builtin:BuiltinDMS"
    assert html.escape(dms_text(kpis["dms"])) in page
    for key, value in kpis.items():  # every KPI: its key, the exact value, the shown value
        if key == "dms":
            continue
        assert html.escape(key) in page, key
        assert f'title="{html.escape(json.dumps(value))}"' in page, key
        assert f">{html.escape(format_value(key, value))}</td>" in page, key
    assert f">{kpis['vm_min_pu']:.4f}</td>" in page  # stated, not only through format_value
    assert "Every load was supplied throughout the run." in page
    for rtu in ("RTU Substation", "RTU Bus 6", "RTU S1"):  # latency and loss tables
        assert page.count(f"<td>{rtu}</td>") >= 2, rtu


def test_network_map_shows_each_elements_worst_value_at_its_position(default_run, tmp_path):
    from twin.recording.files import read_measurement
    from twin.report import load_run, network_figure

    fig = network_figure(load_run(default_run))
    traces = {t.name: t for t in fig.data if t.name}
    store = default_run / "store"
    geo = read_measurement(store, "grid_geo")
    bus = read_measurement(store, "bus")
    # every bus at its recorded place, coloured by the recorded voltage furthest from 1 p.u.
    buses = traces["buses"]
    assert len(buses.x) == 15 == (geo["kind"] == "bus").sum()
    worst = {e: g.loc[(g["vm_pu"] - 1).abs().idxmax(), "vm_pu"] for e, g in bus.groupby("element")}
    for text, colour in zip(buses.hovertext, buses.marker.color):
        name = text.split(":")[0]
        assert colour == pytest.approx(worst[name], abs=5e-5), name
    # the bus furthest from 1 p.u. over the run is the map's (and the KPIs') extreme
    kpis = json.loads((default_run / "kpis.json").read_text())
    assert max(abs(c - 1) for c in buses.marker.color) == pytest.approx(
        max(abs(kpis["vm_min_pu"] - 1), abs(kpis["vm_max_pu"] - 1)), abs=5e-5)
    # lines and trafos: a dot every ninth of their length, coloured by their peak loading
    dots = traces["lines, transformers"]
    peaks = pd.concat([read_measurement(store, m) for m in ("line", "trafo")]).groupby(
        "element")["loading_percent"].max().dropna()
    assert len(dots.x) == 9 * len(peaks)
    for text, colour in zip(dots.hovertext, dots.marker.color):
        assert colour == pytest.approx(peaks[text.split(":")[0]], abs=0.05)
    # a run without positions has no map (older runs, grids without geodata)
    copy = shutil.copytree(default_run, tmp_path / "run")
    shutil.rmtree(copy / "store" / "grid_geo")
    assert network_figure(load_run(copy)) is None
    assert ">Network<" not in write_report(copy).read_text(encoding="utf-8")


@pytest.mark.slow
def test_report_of_a_fault_with_flisr(flisr_run):
    page = write_report(flisr_run).read_text(encoding="utf-8")
    _self_contained(page)
    for title in ("DMS decisions and protection", "Decisions (7)", "Protection events",
                  "Command outcomes", "Reliability", "Interruptions"):
        assert f">{html.escape(title)}" in page, title
    from twin.recording.files import read_measurement

    decisions = read_measurement(flisr_run / "store", "dms_decision")
    assert len(decisions) == 7
    cells = [f"<td>{html.escape(reason)}</td>" for reason in decisions["reason"]]
    for cell in cells:
        assert cell in page, cell
    # the table is in time order: locating the fault first, closing Breaker 3 last
    assert "locate" in decisions["action"].iloc[0] and "Breaker 3" in cells[-1]
    assert page.index(cells[0]) < page.index(cells[-1])
    for kind in ("fault", "trip", "lockout", "repaired"):
        assert f"<td>{kind}</td>" in page, kind
    # Load R2 (behind the fault) is off from the trip at 10:10 until after the repair;
    # Load R3 is back over Breaker 4 within seconds (momentary)
    assert re.search(r"<td>Load R2</td><td>2026-01-14 10:10:00\.000</td><td>2026-01-14 "
                     r"10:36:[0-9.]+</td><td>26\.[0-9]+</td><td>sustained</td>", page)
    assert re.search(r"<td>Load R3</td><td>2026-01-14 10:10:00\.000</td><td>2026-01-14 "
                     r"10:10:0[0-9.]+</td><td>0\.[0-9]+</td><td>momentary</td>", page)
    kpis = json.loads((flisr_run / "kpis.json").read_text())
    for key in ("saifi", "saidi_min", "caidi_min", "maifi", "energy_not_supplied_mwh",
                "customers_interrupted"):
        assert f">{format_value(key, kpis[key])}</td>" in page, key


# ------------------------------------------------------------------ headless Chromium


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium; skipped if missing, unless the test set-up promised it (CI).

    Module-scoped and named before ``default_run``, so a skip costs no scenario run."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("REQUIRE_INFLUX") == "1":
            pytest.fail("REQUIRE_INFLUX=1 (the full test set-up) but chromium is not installed; "
                        "scripts/test.sh installs Debian's chromium package")
        pytest.skip("chromium not installed (Debian package chromium)")
    return path


class _DevTools:
    """Chromium driven over the DevTools protocol on a pipe (fds 3 and 4, no port, no
    WebSocket library): console messages come with their level, which the log of
    ``--enable-logging=stderr`` does not give (every message is INFO:CONSOLE there)."""

    def __init__(self, chromium: str, profile: Path, width_px: int, height_px: int):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def child_fds():  # the protocol's fixed descriptors: 3 = commands in, 4 = answers out
            commands, answers = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(commands, 3)
            os.dup2(answers, 4)

        self.process = subprocess.Popen(
            [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
             "--remote-debugging-pipe", "--no-first-run", "--no-default-browser-check",
             "--hide-scrollbars", f"--user-data-dir={profile}",
             f"--window-size={width_px},{height_px}", "about:blank"],
            preexec_fn=child_fds, close_fds=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._id = 0
        self.events: list[dict] = []
        self.session = None

    def call(self, method: str, params: dict | None = None, timeout_s: float = 60.0) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if self.session is not None and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self._id:
                    if "error" in answer:
                        raise RuntimeError(f"{method}: {answer['error']}")
                    return answer.get("result", {})
                self.events.append(answer)
            if time.monotonic() > deadline:
                raise TimeoutError(f"chromium did not answer {method} in {timeout_s} s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium closed the pipe during {method}")
            self._buffer += chunk

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression,
                                                "awaitPromise": True, "returnByValue": True})
        return result["result"].get("value")

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout_s=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


_DRAWN = """new Promise(done => {
  // plotly draws some parts (the heatmap's image) a frame later: wait for its promises,
  // then two animation frames
  const plots = [...document.querySelectorAll('.plotly-graph-div')];
  Promise.all(plots.map(gd => Promise.all(gd._promises || [])))
    .catch(() => null)
    .then(() => requestAnimationFrame(() => requestAnimationFrame(() => done(true))));
})"""

_PLOT_BOXES = """[...document.querySelectorAll('.plotly-graph-div')].map(gd => {
  const r = gd.getBoundingClientRect();
  return {id: gd.id, x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height};
})"""


def render(chromium: str, page: Path, screenshot: Path, width_px: int = 1400) -> dict:
    """Load ``page`` in headless Chromium; a full-page screenshot and what went wrong.

    Returns
    -------
    dict
        ``errors``: console messages of level error and uncaught exceptions (text);
        ``plots``: the plot divs' boxes in page pixels; ``png``: the screenshot's path.
    """
    profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
    browser = _DevTools(chromium, Path(profile.name), width_px, 3000)
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})
        browser.session = browser.call("Target.attachToTarget", {
            "targetId": target["targetId"], "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            browser.call(f"{domain}.enable")
        browser.call("Emulation.setDeviceMetricsOverride", {
            "width": width_px, "height": 3000, "deviceScaleFactor": 1, "mobile": False})
        browser.call("Page.navigate", {"url": page.resolve().as_uri()})
        deadline = time.monotonic() + 60
        while not any(e.get("method") == "Page.loadEventFired" for e in browser.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{page} did not finish loading in 60 s")
            browser.evaluate("new Promise(r => setTimeout(() => r(1), 50))")
        browser.evaluate(_DRAWN)
        # the whole page in one picture: make the viewport as tall as the document
        height_px = int(browser.evaluate("document.documentElement.scrollHeight"))
        browser.call("Emulation.setDeviceMetricsOverride", {
            "width": width_px, "height": height_px, "deviceScaleFactor": 1, "mobile": False})
        browser.evaluate(_DRAWN)
        plots = browser.evaluate(_PLOT_BOXES)
        # optimizeForSpeed: Chromium then encodes with the "up" filter only, which the small
        # reader below decodes vectorised (it handles the other filters, only slower)
        shot = browser.call("Page.captureScreenshot", {"format": "png",
                                                       "optimizeForSpeed": True})
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    finally:
        browser.close()
        profile.cleanup()
    errors = []
    for event in browser.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                   for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append(details.get("exception", {}).get("description")
                          or details.get("text", "exception"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            errors.append(params["entry"].get("text", ""))
    return {"errors": errors, "plots": plots, "png": screenshot}


def read_png(path: Path) -> np.ndarray:
    """8-bit RGB(A), non-interlaced PNG → uint8 array (height, width, channels).

    A minimal reader (numpy + zlib; pillow is not a dependency): the filter of each row is
    undone vectorised for None/Sub/Up and row by row in Python for Average/Paeth.
    """
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat = 8, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, "unsupported PNG"
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    channels = 3 if colour == 2 else 4
    stride = width * channels
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(height, stride + 1)
    filters, rows = raw[:, 0], raw[:, 1:].astype(np.int32)
    out = np.zeros((height, stride), np.int32)
    previous = np.zeros(stride, np.int32)
    for y in range(height):
        row, kind = rows[y], filters[y]
        if kind == 0:
            line = row
        elif kind == 1:  # Sub: running sum per channel along the row
            line = np.cumsum(row.reshape(width, channels), axis=0).reshape(stride) & 0xFF
        elif kind == 2:  # Up
            line = (row + previous) & 0xFF
        else:  # Average (3) or Paeth (4): each byte needs its decoded left neighbour
            line = np.zeros(stride, np.int32)
            for i in range(stride):
                left = int(line[i - channels]) if i >= channels else 0
                up = int(previous[i])
                if kind == 3:
                    line[i] = (row[i] + (left + up) // 2) & 0xFF
                else:
                    upper_left = int(previous[i - channels]) if i >= channels else 0
                    p = left + up - upper_left
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - upper_left)
                    pred = left if pa <= pb and pa <= pc else (up if pb <= pc else upper_left)
                    line[i] = (row[i] + pred) & 0xFF
        out[y] = line
        previous = line
    return out.astype(np.uint8).reshape(height, width, channels)[:, :, :3]


def plot_pixels(image: np.ndarray, box: dict) -> dict:
    """What is drawn inside one plot's box: coloured share and number of colours.

    "Coloured" pixels are saturated ones (max − min channel > 60): the traces, the heatmap,
    the shaded band. Text, axes and grid lines are grey and do not count, so a plot with
    axes but no data scores ~0.
    """
    x0, y0 = max(0, int(box["x"])), max(0, int(box["y"]))
    x1, y1 = min(image.shape[1], int(box["x"] + box["w"])), min(image.shape[0],
                                                                int(box["y"] + box["h"]))
    region = image[y0:y1, x0:x1].reshape(-1, 3).astype(np.int32)
    if region.size == 0:
        return {"coloured_share": 0.0, "colours": 0, "non_white_share": 0.0}
    spread = region.max(axis=1) - region.min(axis=1)
    packed = (region[:, 0] << 16) | (region[:, 1] << 8) | region[:, 2]
    return {"coloured_share": float((spread > 60).mean()),
            "colours": int(np.unique(packed).size),
            "non_white_share": float((region.min(axis=1) < 235).mean())}


def check_plots_drawn(result: dict) -> list[str]:
    """Problems with the plots of one rendering (empty list: every plot drawn)."""
    image = read_png(result["png"])
    problems = []
    if not result["plots"]:
        problems.append("no plot on the page")
    for box in result["plots"]:
        stats = plot_pixels(image, box)
        if stats["coloured_share"] < 0.001 or stats["colours"] < 40:
            problems.append(f"{box['id']} looks empty: {stats}")
    return problems


@pytest.mark.slow
def test_report_renders_in_headless_chromium(chromium, default_run, tmp_path):
    report = write_report(default_run)
    drawn = render(chromium, report, tmp_path / "report.png")
    assert drawn["errors"] == []
    assert len(drawn["plots"]) >= 6
    assert check_plots_drawn(drawn) == []
    image = read_png(drawn["png"])
    assert image.shape[1] == 1400 and image.shape[0] > 3000

    # The same checks fail on the same page without plotly.js: the page raises errors and
    # every plot box stays blank. That is what the checks above would see if plotting broke.
    page = report.read_text(encoding="utf-8")
    start = page.index('<script type="text/javascript">')
    broken = tmp_path / "no_plotly.html"
    broken.write_text(page[:start] + page[page.index("</script>", start) + 9:],
                      encoding="utf-8")
    blank = render(chromium, broken, tmp_path / "no_plotly.png")
    assert any("Plotly is not defined" in error for error in blank["errors"])
    assert len(check_plots_drawn(blank)) == len(blank["plots"]) == len(drawn["plots"])
