"""Errors raised by the InfluxDB stores (shared by the 1.x and 2.x clients), and
:func:`redact`, which every error text passes before it reaches run.json, the report, a log
or the console."""

from __future__ import annotations

import re
from typing import Iterable
from urllib.parse import quote, quote_plus

#: What a redacted secret is replaced by.
REDACTED = "***"

# userinfo in a URL: scheme://user:password@host or scheme://token@host
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]+@")
# credentials in a query string: ?u=..&p=.. (InfluxDB 1.x), token=, password=, ...
_QUERY_SECRET = re.compile(
    r"(?i)([?&](?:p|password|token|access_token|api_key|apikey|auth)=)[^&\s#'\"]*")
# an Authorization header shown in a message
_AUTH_HEADER = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:basic|bearer|token)\s+)"
                          r"[A-Za-z0-9+/=._~-]+")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without secrets: every given secret (password, token) is replaced by ``***``,
    and so is userinfo in URLs (``http://user:pw@host`` -> ``http://***@host``), credential
    query parameters (``p=``, ``password=``, ``token=``, ...) and Authorization header values.

    Use it wherever an error becomes text that is stored or shown.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
        # URL-encoded forms appear in request URLs inside exception messages
        for encoded in {quote(secret, safe=""), quote_plus(secret)}:
            if encoded != secret:
                text = text.replace(encoded, REDACTED)
    text = _USERINFO.sub(rf"\1{REDACTED}@", text)
    text = _QUERY_SECRET.sub(rf"\1{REDACTED}", text)
    return _AUTH_HEADER.sub(rf"\1{REDACTED}", text)


class InfluxError(RuntimeError):
    """Base class: something went wrong talking to InfluxDB.

    Parameters
    ----------
    message : str
        What failed, including the server's own error text when there is one.
    status_code : int or None
        HTTP status of the response, or ``None`` when no response came back
        (connection refused, timeout, DNS failure, ...).
    fate_unknown : bool
        The request may have reached the server although no answer came back (a read
        timeout from a hung server, a connection dropped mid-request): its points may be
        written. Re-sending them is harmless (InfluxDB overwrites a point with the same
        series and time), so such a batch is retried and, if it is spilled, marked as
        possibly written too (``twin replay`` then makes InfluxDB complete, each point once).
    """

    def __init__(
        self, message: str, status_code: int | None = None, fate_unknown: bool = False
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.fate_unknown = fate_unknown

    @property
    def retryable(self) -> bool:
        """Whether trying the same request again may help.

        No response, 5xx (server trouble) and 429 (rate limit) are transient; other 4xx
        (bad data, wrong credentials, missing database) will fail the same way again.
        """
        return self.status_code is None or self.status_code >= 500 or self.status_code == 429


class InfluxWriteError(InfluxError):
    """A write (or the database set-up before writing) was not accepted."""


class InfluxQueryError(InfluxError):
    """A query failed or returned an error."""
