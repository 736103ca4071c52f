"""DMS decisions as Grafana annotations, posted while the run records them.

With ``GRAFANA_URL`` and ``GRAFANA_TOKEN`` (a service-account token) in the environment,
every ``dms_decision`` point is also posted to Grafana's annotation API with
`grafana-client <https://github.com/grafana-toolbox/grafana-client>`_: time = the
decision's scenario time, tags ``dms``, the function, action and mode and the run, text =
target and reason. Without them, the dashboards' annotation queries read ``dms_decision``
from InfluxDB instead. Grafana being away must not stop a run: a failed post is counted,
and after a few failures in a row the annotator gives up and says so once.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from twin.recording.errors import redact
from twin.recording.schema import DMS_DECISION, Point, Store

log = logging.getLogger(__name__)

#: Consecutive failed posts after which the annotator stops trying.
GIVE_UP_AFTER = 3


class GrafanaAnnotator:
    """Posts decision points to Grafana.

    Parameters
    ----------
    client : grafana_client.GrafanaApi
        Connected to the Grafana server (``GrafanaApi.from_url(url, credential=token)``).
    """

    def __init__(self, client: Any):
        self.client = client
        self.posted = 0
        self.failed = 0
        self._in_a_row = 0
        self.gave_up = False

    def post(self, points: Sequence[Point]) -> None:
        for p in points:
            if p.measurement != DMS_DECISION or self.gave_up:
                continue
            t_ms = p.time_ns // 1_000_000
            tags = ["dms", p.tags.get("function", ""), p.tags.get("action", ""),
                    p.tags.get("mode", ""), f"run:{p.tags.get('run', '')}"]
            text = f"{p.tags.get('element', '')}: {p.fields.get('reason', '')}"
            try:
                self.client.annotations.add_annotation(time_from=t_ms, time_to=t_ms,
                                                       tags=[t for t in tags if t], text=text)
            except Exception as exc:  # the server's problem must not end the run
                self.failed += 1
                self._in_a_row += 1
                if self._in_a_row >= GIVE_UP_AFTER:
                    self.gave_up = True
                    log.warning("Grafana annotations: giving up after %d failed posts (%s)",
                                self._in_a_row, redact(str(exc)))
                continue
            self.posted += 1
            self._in_a_row = 0

    def summary(self) -> dict[str, int | bool]:
        return {"posted": self.posted, "failed": self.failed, "gave_up": self.gave_up}


def annotator_from_env(env: Mapping[str, str]) -> GrafanaAnnotator | None:
    """A connected annotator when ``GRAFANA_URL`` and ``GRAFANA_TOKEN`` are set."""
    url, token = env.get("GRAFANA_URL"), env.get("GRAFANA_TOKEN")
    if not url or not token:
        return None
    from grafana_client import GrafanaApi  # only when asked for

    return GrafanaAnnotator(GrafanaApi.from_url(url, credential=token))


class AnnotatingStore:
    """A store that also posts the decisions it is given to Grafana."""

    def __init__(self, inner: Store, annotator: GrafanaAnnotator):
        self.inner, self.annotator = inner, annotator

    def write(self, points: Sequence[Point]) -> None:
        self.inner.write(points)
        self.annotator.post(points)

    def flush(self) -> None:
        flush = getattr(self.inner, "flush", None)
        if flush is not None:
            flush()

    def close(self) -> Any:
        return self.inner.close()
