"""Store for InfluxDB 2.x (and 1.8+/3.x servers that offer ``/api/v2/write``).

Uses the official ``influxdb-client`` with synchronous writes: batching and retrying are done
by :class:`~twin.recording.resilient.ResilientWriter`, not by the client, so there is one
place that decides what happens when the server is down. The client's own retries stay off
(its default) for the same reason.
"""

from __future__ import annotations

import json
from typing import Sequence

import urllib3
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from twin.recording.columns import ColumnBatch
from twin.recording.errors import InfluxWriteError, redact
from twin.recording.lineprotocol import batch_bodies, to_lines
from twin.recording.schema import Point


def _api_error_text(exc: ApiException) -> str:
    """The server's ``message`` from its JSON error body, else the raw body or reason."""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if body:
        try:
            parsed = json.loads(body)
        except ValueError:
            return str(body).strip()
        if isinstance(parsed, dict) and "message" in parsed:
            return str(parsed["message"])
        return str(body).strip()
    return str(exc.reason or "no response body")


def _not_delivered(exc: BaseException) -> bool:
    """Whether the request certainly did not reach the server (no connection was made)."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        exc = exc.reason or exc
    return isinstance(
        exc,
        (
            urllib3.exceptions.NewConnectionError,
            urllib3.exceptions.ConnectTimeoutError,
            ConnectionRefusedError,
        ),
    )


class InfluxV2Store:
    """Write points to one InfluxDB 2.x bucket.

    Parameters
    ----------
    url : str
        Base URL of the server, e.g. ``http://127.0.0.1:8086``.
    bucket, org : str
        Target bucket and its organisation (name or ID). The bucket must exist.
    token : str
        API token with write permission on the bucket.
    batch_size : int
        Points per write request.
    timeout_s : float
        Per-request timeout in seconds.

    Notes
    -----
    Construction does not contact the server; the first :meth:`write` does.
    """

    def __init__(
        self,
        url: str,
        bucket: str,
        org: str,
        token: str,
        batch_size: int = 5000,
        timeout_s: float = 10.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.url = url.rstrip("/")
        self.bucket = bucket
        self.org = org
        self.batch_size = batch_size
        self._secrets = [token] if token else []
        # The client takes its timeout in milliseconds.
        self._client = InfluxDBClient(
            url=self.url, token=token, org=org, timeout=int(timeout_s * 1000)
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    @property
    def description(self) -> str:
        """Human-readable target, used in summaries."""
        return redact(f"InfluxDB at {self.url} (bucket {self.bucket!r})")

    def write(self, points: Sequence[Point]) -> None:
        """Send points as line protocol, ``batch_size`` points per request.

        Raises
        ------
        InfluxWriteError
            No connection, or the server refused the write (its message and status code are
            in the exception). Earlier chunks of the same call may already be written then.
        """
        for start in range(0, len(points), self.batch_size):
            self._send(to_lines(points[start : start + self.batch_size]))

    def write_columns(self, batches: Sequence[ColumnBatch]) -> None:
        """Send column batches as line protocol (formatted from the columns, no points),
        ``batch_size`` rows per request; raises as :meth:`write`."""
        for body in batch_bodies(batches, self.batch_size):
            self._send(body)

    def _send(self, body: str) -> None:
        if body:
            try:
                self._write_api.write(
                    bucket=self.bucket, org=self.org, record=body, write_precision=WritePrecision.NS
                )
            except ApiException as exc:
                raise InfluxWriteError(
                    redact(
                        f"InfluxDB rejected the write (HTTP {exc.status}): "
                        f"{_api_error_text(exc)}",
                        self._secrets,
                    ),
                    exc.status,
                ) from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                # no answer: a refused connection delivered nothing, anything later may have
                raise InfluxWriteError(
                    redact(f"cannot reach InfluxDB at {self.url}: {exc}", self._secrets),
                    fate_unknown=not _not_delivered(exc),
                ) from exc

    def ping(self) -> bool:
        """Whether the server answers its ``/ping`` endpoint."""
        return bool(self._client.ping())

    def close(self) -> None:
        """Release the client. Writes are synchronous, so nothing is pending."""
        self._write_api.close()
        self._client.close()
