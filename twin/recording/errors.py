"""Errors raised by the InfluxDB stores (shared by the 1.x and 2.x clients)."""

from __future__ import annotations


class InfluxError(RuntimeError):
    """Base class: something went wrong talking to InfluxDB.

    Parameters
    ----------
    message : str
        What failed, including the server's own error text when there is one.
    status_code : int or None
        HTTP status of the response, or ``None`` when no response came back
        (connection refused, timeout, DNS failure, ...).
    """

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code

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
