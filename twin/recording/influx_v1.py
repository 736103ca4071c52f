"""Store for InfluxDB 1.x over its HTTP API (``/write`` line protocol, ``/query`` InfluxQL).

Kept to plain ``requests`` calls: the 1.x API is three endpoints, and this works with any
1.x server (including old distribution packages) without a client library.
"""

from __future__ import annotations

import base64
from typing import Any, Sequence

import requests
import urllib3

from twin.recording.columns import ColumnBatch
from twin.recording.errors import (
    InfluxError,
    InfluxQueryError,
    InfluxWriteError,
    redact,
)
from twin.recording.lineprotocol import batch_bodies, to_lines
from twin.recording.schema import FieldValue, Point

#: Keys every row from :meth:`InfluxV1Store.query` has besides its columns.
_ROW_KEYS = frozenset({"name", "tags"})


def quote_identifier(name: str) -> str:
    """Quote an InfluxQL identifier (database, measurement, key): ``"name"``."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fate_unknown(exc: requests.RequestException) -> bool:
    """Whether the request may have reached the server although no answer came back.

    A refused or timed-out *connection* delivered nothing; a read timeout (a hung server
    accepts connections in its kernel backlog and answers later, or never) or a connection
    dropped mid-request may have delivered the whole body.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.Timeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return not isinstance(
            reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
        )
    return False


def _error_text(response: requests.Response) -> str:
    """The server's error message: the ``error`` member of its JSON reply, else the raw body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return response.text.strip()


class InfluxV1Store:
    """Write points to (and query) one InfluxDB 1.x database.

    Parameters
    ----------
    url : str
        Base URL of the server, e.g. ``http://127.0.0.1:8086``.
    database : str
        Database to write to. Construction checks that it takes writes (an empty write,
        which any user with WRITE on it may make) and creates it only when the server says
        it does not exist, which needs admin rights.
    username, password : str, optional
        Sent as HTTP Basic authentication (the ``Authorization`` header), only when given;
        never in the URL. Error messages never contain the password.
    batch_size : int
        Points per ``/write`` request.
    timeout_s : float
        Per-request timeout in seconds.

    Raises
    ------
    InfluxWriteError
        The server cannot be reached, refused the credentials, or the database is missing
        and could not be created.
    """

    def __init__(
        self,
        url: str,
        database: str,
        username: str | None = None,
        password: str | None = None,
        batch_size: int = 5000,
        timeout_s: float = 10.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.url = url.rstrip("/")
        self.database = database
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self._secrets = [password] if password else []
        if password:  # the Basic credential as it travels, should a server echo it
            basic = f"{username or ''}:{password}".encode()
            self._secrets.append(base64.b64encode(basic).decode("ascii"))
        self._session = requests.Session()
        if username is not None or password is not None:
            self._session.auth = (username or "", password or "")
        try:
            self._ensure_database()
        except InfluxWriteError:
            self._session.close()
            raise

    def _ensure_database(self) -> None:
        """Check the database takes writes; create it only when the server says it is missing.

        An empty ``/write`` answers 204 when the database exists and the user may write to
        it, 404 "database not found" when it does not exist (then ``CREATE DATABASE``, which
        needs admin rights), 401/403 for bad credentials or missing permission.
        """
        response = self._post("/write", {"db": self.database}, b"", InfluxWriteError)
        if response.status_code == 204 or response.status_code >= 500:
            return  # server trouble: the writes will retry (or spill) as they do mid-run
        text = _error_text(response)
        if response.status_code == 404 and "database not found" in text:
            create = f"CREATE DATABASE {quote_identifier(self.database)}"
            try:
                self._post_query(create, error=InfluxWriteError)
            except InfluxWriteError as exc:
                raise InfluxWriteError(
                    f"database {self.database!r} does not exist and could not be created "
                    f"(creating it needs admin rights): {exc}",
                    exc.status_code,
                ) from exc
            return
        raise InfluxWriteError(
            self._redact(
                f"InfluxDB at {self.url} refused writes to database {self.database!r} "
                f"(HTTP {response.status_code}): {text}"
            ),
            response.status_code,
        )

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)

    @property
    def description(self) -> str:
        """Human-readable target, used in summaries."""
        return redact(f"InfluxDB at {self.url} (database {self.database!r})")

    def _post(
        self, path: str, params: dict[str, str], data: bytes | None, error: type[InfluxError]
    ) -> requests.Response:
        try:
            return self._session.post(
                f"{self.url}{path}",
                params=params,
                data=data,
                headers={"Content-Type": "text/plain; charset=utf-8"} if data is not None else None,
                timeout=self.timeout_s,
            )
        except requests.RequestException as exc:
            raise error(
                self._redact(f"cannot reach InfluxDB at {self.url}: {exc}"),
                fate_unknown=data is not None and _fate_unknown(exc),
            ) from exc

    def _post_query(
        self, influxql: str, error: type[InfluxError] = InfluxQueryError
    ) -> list[dict[str, Any]]:
        """Run InfluxQL and return the ``results`` list, raising on any statement error."""
        params = {"q": influxql, "epoch": "ns"}
        if self.database:
            params["db"] = self.database
        response = self._post("/query", params, None, error)
        if response.status_code != 200:
            raise error(
                self._redact(
                    f"InfluxDB query failed (HTTP {response.status_code}): "
                    f"{_error_text(response)}"
                ),
                response.status_code,
            )
        results: list[dict[str, Any]] = response.json().get("results", [])
        for result in results:
            if "error" in result:
                raise error(
                    self._redact(f"InfluxDB query {influxql!r} failed: {result['error']}"),
                    response.status_code,
                )
        return results

    def write(self, points: Sequence[Point]) -> None:
        """Send points as line protocol, ``batch_size`` points per request.

        Raises
        ------
        InfluxWriteError
            No connection, or any answer other than ``204 No Content`` (the server's error
            text is in the message, its status in ``status_code``). Earlier chunks of the same
            call may already be written then.
        """
        for start in range(0, len(points), self.batch_size):
            self._send(to_lines(points[start : start + self.batch_size]))

    def write_columns(self, batches: Sequence[ColumnBatch]) -> None:
        """Send column batches as line protocol (formatted from the columns, no points),
        ``batch_size`` rows per request; raises as :meth:`write`."""
        for body in batch_bodies(batches, self.batch_size):
            self._send(body)

    def _send(self, body: str) -> None:
        if not body:
            return
        params = {"db": self.database, "precision": "ns"}
        response = self._post("/write", params, body.encode("utf-8"), InfluxWriteError)
        if response.status_code != 204:
            raise InfluxWriteError(
                self._redact(
                    f"InfluxDB rejected the write (HTTP {response.status_code}): "
                    f"{_error_text(response)}"
                ),
                response.status_code,
            )

    def query(self, influxql: str) -> list[dict[str, Any]]:
        """Run InfluxQL and return one dict per result row.

        Each row is ``{"name": measurement, "tags": {...}, "time": int ns, column: value, ...}``.
        ``tags`` holds the series' tags when the query groups by them (``GROUP BY *``); then
        the other columns are exactly the fields, ``None`` where a point lacks one. Tags with
        an empty value (InfluxDB's way of saying "not set") are left out of ``tags``.

        Note that JSON cannot tell ``1.0`` from ``1``: integral floats come back as ``int``.
        :meth:`read_points` fixes that using the field types the server reports.
        """
        rows: list[dict[str, Any]] = []
        for result in self._post_query(influxql):
            for series in result.get("series", []):
                name = series.get("name", "")
                tags = {key: value for key, value in (series.get("tags") or {}).items() if value}
                columns = series["columns"]
                clash = _ROW_KEYS.intersection(columns)
                if clash:
                    raise InfluxQueryError(
                        f"column(s) {sorted(clash)} of {name!r} clash with the row keys "
                        f"{sorted(_ROW_KEYS)}; rename them in the query with AS"
                    )
                for values in series.get("values", []):
                    row: dict[str, Any] = {"name": name, "tags": dict(tags)}
                    row.update(zip(columns, values))
                    rows.append(row)
        return rows

    def field_types(self, measurement: str) -> dict[str, str]:
        """Field name -> InfluxDB type (``float``, ``integer``, ``boolean``, ``string``)."""
        rows = self.query(f"SHOW FIELD KEYS FROM {quote_identifier(measurement)}")
        return {row["fieldKey"]: row["fieldType"] for row in rows}

    def read_points(self, measurement: str, where: str = "") -> list[Point]:
        """Read one measurement back as points (time order), with the written Python types.

        Parameters
        ----------
        measurement : str
            Measurement name.
        where : str, optional
            InfluxQL condition without the ``WHERE`` keyword, e.g. ``"run = 'r1'"``.
        """
        types = self.field_types(measurement)
        condition = f" WHERE {where}" if where else ""
        rows = self.query(f"SELECT * FROM {quote_identifier(measurement)}{condition} GROUP BY *")
        return [row_to_point(row, types) for row in rows]

    def ping(self) -> bool:
        """Whether the server answers ``/ping`` with ``204``."""
        try:
            response = self._session.get(f"{self.url}/ping", timeout=self.timeout_s)
        except requests.RequestException:
            return False
        return response.status_code == 204

    def close(self) -> None:
        """Release the HTTP connections. Writes are synchronous, so nothing is pending."""
        self._session.close()


def row_to_point(row: dict[str, Any], field_types: dict[str, str]) -> Point:
    """Turn a ``GROUP BY *`` row from :meth:`InfluxV1Store.query` back into a point.

    Parameters
    ----------
    row : dict
        A row: ``name``, ``tags``, ``time`` (ns) and field columns.
    field_types : dict
        From :meth:`InfluxV1Store.field_types`; ``float`` fields are turned back into
        ``float`` (JSON delivers ``1.0`` as ``1``).
    """
    fields: dict[str, FieldValue] = {}
    for key, value in row.items():
        if key in ("name", "tags", "time") or value is None:
            continue
        fields[key] = float(value) if field_types.get(key) == "float" else value
    return Point(row["name"], int(row["time"]), dict(row["tags"]), fields)
