"""Write to a primary store (InfluxDB) in the background, spilling to a fallback on failure.

The simulation calls :meth:`ResilientWriter.write` every step; that only appends to a
buffer. Full batches go through a bounded queue to a background thread (or a few: see
``workers``), which writes them to the primary store with retries and exponential backoff.
When a batch still fails, that batch and every later one go to the spill store (normally a
:class:`~twin.recording.files.FileStore`, created only when first needed), so:

* nothing is lost — every point ends in exactly one of the two stores;
* nothing is written twice — a batch goes to the spill store only after the primary gave
  up on it, and the primary is not tried again afterwards (switching back and forth would
  scatter one run over two stores in a way that is hard to reason about).

One exception: a batch whose fate is unknown — the request timed out or the connection
dropped after it was sent (a hung server, not a dead one) — may have been written although
no answer came. Retries simply re-send it (InfluxDB overwrites a point with the same series
and time, so re-sending is idempotent). If the writer still gives up, the batch is spilled
and counted in ``points_uncertain`` (a subset of ``points_spilled``): it may be in both
stores. ``twin replay RUN_DIR`` (:mod:`twin.recording.replay`) reconciles: it pushes the
spilled points into InfluxDB afterwards, and since a point written twice is stored once,
InfluxDB then holds every point exactly once.

Error texts are passed through :func:`~twin.recording.errors.redact` with the store's
secrets before they are kept, so the report never carries a password or token.

The bounded queue is deliberate back-pressure: if the primary is slower than the simulation
for long, ``write`` blocks instead of buffering without limit.

For "nothing written twice" to hold on retries, the primary must write each batch in one
request: give it a ``batch_size`` at least as large as the writer's.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from twin.recording.columns import ColumnBatch
from twin.recording.errors import InfluxError, redact
from twin.recording.schema import Point, Store

# Put on the queue by close(): no more batches will follow.
_DONE = None


class _Columns:
    """A batch of column batches for the thread: ``len`` is its rows, as a point list's."""

    __slots__ = ("batches", "rows")

    def __init__(self, batches: list[ColumnBatch]) -> None:
        self.batches = batches
        self.rows = sum(batch.n_rows for batch in batches)

    def __len__(self) -> int:
        return self.rows


def write_to(store: Store, batch: Sequence[Point] | _Columns) -> None:
    """Write a batch of either kind; a store without ``write_columns`` gets points."""
    if not isinstance(batch, _Columns):
        store.write(batch)
    elif hasattr(store, "write_columns"):
        store.write_columns(batch.batches)
    else:
        store.write([point for b in batch.batches for point in b.to_points()])


@dataclass
class WriteReport:
    """What happened to the points given to a :class:`ResilientWriter`.

    Attributes
    ----------
    points_written : int
        Points accepted by the primary store.
    points_spilled : int
        Points written to the spill store instead.
    batches_retried : int
        Batches that needed at least one retry (whether or not a retry succeeded).
    errors : list of str
        Error messages, in order (primary failures, close errors, spill failures).
    spilled : bool
        Whether the spill store was used at all.
    points_lost : int
        Points that reached neither store (the spill store failed too). Should stay 0.
    points_uncertain : int
        Spilled points (counted in ``points_spilled`` too) whose primary write timed out:
        they may also be in the primary. ``twin replay`` makes the primary complete.
    primary_description, spill_description : str
        Where the points went, for :meth:`summary`.
    retries : int
        Retries made on the batch on which the primary was given up, for :meth:`summary`.
    failed_at_start : bool
        The primary could not even be opened (see :func:`open_with_fallback`).
    """

    points_written: int
    points_spilled: int
    batches_retried: int
    errors: list[str]
    spilled: bool
    points_lost: int = 0
    primary_description: str = "primary store"
    spill_description: str = "spill store"
    retries: int = 0
    failed_at_start: bool = False
    points_uncertain: int = 0

    def summary(self) -> str:
        """One line for the log/console, e.g. why and where points were spilled."""
        if not self.spilled and not self.points_lost:
            text = f"{self.points_written:,} points written to {self.primary_description}"
            if self.batches_retried:
                text += f" ({self.batches_retried} batches needed retries)"
            return text
        reason = self.errors[0] if self.errors else "unknown error"
        if self.failed_at_start:
            cause = f"{self.primary_description} unavailable ({reason})"
        elif self.retries:
            cause = f"{self.primary_description} failed after {self.retries} retries ({reason})"
        else:
            cause = f"{self.primary_description} failed ({reason})"
        text = f"{cause}: {self.points_spilled:,} points spilled to {self.spill_description}"
        if self.points_written:
            text += f", {self.points_written:,} written before that"
        if self.points_uncertain:
            text += (
                f"; {self.points_uncertain:,} of the spilled points may also have reached "
                f"{self.primary_description} (no answer came): `twin replay RUN_DIR` sends "
                "the spilled points there, each point ends up stored once"
            )
        if self.points_lost:
            text += f"; {self.points_lost:,} POINTS LOST (spill store failed too)"
        return text


def _retryable(exc: Exception) -> bool:
    """Connection trouble and server-side errors may pass; bad data or auth will not."""
    if isinstance(exc, InfluxError):
        return exc.retryable
    return isinstance(exc, OSError)


def _describe(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    return redact(f"{type(exc).__name__}: {exc}", secrets)


def _fate_unknown(exc: BaseException) -> bool:
    return bool(getattr(exc, "fate_unknown", False))


class ResilientWriter:
    """Non-blocking writer with retries and a spill store; itself a ``Store``.

    Always call :meth:`close` (e.g. in a ``finally``): batches still queued are written
    there, and the background thread is a daemon that would otherwise die with the process.

    Parameters
    ----------
    primary : Store or None
        Where points should go. ``None`` only together with ``failed_reason``.
    make_spill : callable
        Creates the spill store; called at most once, on the first failure.
    batch_size : int
        Points per batch handed to the background thread (and per primary write).
    retries : int
        Retries per batch after the first attempt fails.
    backoff_s, max_backoff_s : float
        Wait ``backoff_s * 2**k`` seconds before retry ``k`` (0-based), at most ``max_backoff_s``.
    queue_batches : int
        Batches that may wait for the thread before :meth:`write` blocks.
    workers : int
        Background threads, each writing one batch at a time: InfluxDB takes two requests
        in flight about twice as fast as one (it parses on another core). With more than
        one, which batches reach the primary before it fails is no longer a prefix, but
        every batch still ends in exactly one store.
    sleep : callable
        Used for the backoff waits (tests pass a fake).
    spill_description : str, optional
        Where spilled points end up (e.g. the folder), for the summary; defaults to the spill
        store's ``description`` attribute if it has one.
    failed_reason : str, optional
        Treat the primary as failed from the start (all points go to the spill store) and
        record this reason; see :func:`open_with_fallback`.
    primary_description : str, optional
        Name of the primary for the summary; defaults to its ``description`` attribute.
    secrets : sequence of str, optional
        Passwords/tokens to redact from every error text the writer keeps.
    """

    def __init__(
        self,
        primary: Store | None,
        make_spill: Callable[[], Store],
        batch_size: int = 5000,
        retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        queue_batches: int = 64,
        workers: int = 1,
        sleep: Callable[[float], None] = time.sleep,
        spill_description: str | None = None,
        failed_reason: str | None = None,
        primary_description: str | None = None,
        secrets: Sequence[str | None] = (),
    ) -> None:
        if primary is None and failed_reason is None:
            raise ValueError("primary is None but no failed_reason was given")
        if batch_size < 1 or retries < 0 or queue_batches < 1 or workers < 1:
            raise ValueError("batch_size, queue_batches and workers must be >= 1, retries >= 0")
        self._secrets = [secret for secret in secrets if secret]
        self._primary = primary
        self._make_spill = make_spill
        self._spill: Store | None = None
        self.batch_size = batch_size
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._spill_description = spill_description
        self._primary_description = redact(
            primary_description
            or str(
                getattr(primary, "description", type(primary).__name__)
                if primary is not None
                else "primary store"
            ),
            self._secrets,
        )
        self._buffer: list[Point] = []
        # column batches apart from points: a queued batch is of one kind, one request
        self._columns: list[ColumnBatch] = []
        self._column_rows = 0
        self._queue: queue.Queue[list[Point] | _Columns | None] = queue.Queue(
            maxsize=queue_batches)
        # Counters below are only touched by the background thread until close() joins it.
        self._failed = failed_reason is not None
        self._failed_at_start = self._failed
        self._retries_before_giving_up = 0
        self._errors: list[str] = (
            [redact(failed_reason, self._secrets)] if failed_reason is not None else []
        )
        self._written = 0
        self._spilled = 0
        self._uncertain = 0
        self._lost = 0
        self._retried = 0
        self._report: WriteReport | None = None
        self._lock = threading.Lock()  # counters, errors and the spill store, across threads
        self._threads = [threading.Thread(target=self._run, name=f"resilient-writer-{k}",
                                          daemon=True) for k in range(workers)]
        for thread in self._threads:
            thread.start()

    # -- producer side (simulation thread) -------------------------------------------------

    def write(self, points: Sequence[Point]) -> None:
        """Buffer points; hand every full batch to the background thread.

        Blocks only when ``queue_batches`` batches are already waiting.
        """
        if self._report is not None:
            raise RuntimeError("ResilientWriter is closed")
        self._buffer.extend(points)
        while len(self._buffer) >= self.batch_size:
            batch = self._buffer[: self.batch_size]
            del self._buffer[: self.batch_size]
            self._put(batch)

    def write_columns(self, batches: Sequence[ColumnBatch]) -> None:
        """Buffer column batches as :meth:`write` buffers points: a batch handed to the
        thread holds ``batch_size`` rows (a column batch is split where needed)."""
        if self._report is not None:
            raise RuntimeError("ResilientWriter is closed")
        for batch in batches:
            start, n = 0, batch.n_rows
            while start < n:
                room = self.batch_size - self._column_rows
                piece = batch if start == 0 and n <= room else batch.slice(start, start + room)
                self._columns.append(piece)
                self._column_rows += piece.n_rows
                start += piece.n_rows
                if self._column_rows >= self.batch_size:
                    self._put_columns()

    def _put_columns(self) -> None:
        columns, self._columns, self._column_rows = self._columns, [], 0
        self._put(_Columns(columns))

    def flush(self) -> None:
        """Hand what is buffered to the background thread now, a short batch if need be
        (live mode: the data should reach the server while it happens)."""
        if self._report is None and self._buffer:
            batch, self._buffer = self._buffer, []
            self._put(batch)
        if self._report is None and self._columns:
            self._put_columns()

    def _put(self, item: list[Point] | _Columns | None) -> None:
        # Wait in slices so a dead thread turns into an error instead of a hang.
        while True:
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if not any(thread.is_alive() for thread in self._threads):
                    raise RuntimeError("ResilientWriter background thread died") from None

    def close(self) -> WriteReport:
        """Flush the rest, wait for the thread, close both stores and report.

        Closing twice returns the same report.
        """
        if self._report is not None:
            return self._report
        if self._buffer:
            self._put(self._buffer)
            self._buffer = []
        if self._columns:
            self._put_columns()
        for _ in self._threads:
            self._put(_DONE)
        for thread in self._threads:
            thread.join()
        for store, role in ((self._primary, "primary"), (self._spill, "spill")):
            if store is None:
                continue
            try:
                store.close()
            except Exception as exc:  # noqa: BLE001 - any store; the report must still come back
                self._errors.append(f"closing {role} store: {_describe(exc, self._secrets)}")
        spill_description = self._spill_description or str(
            getattr(self._spill, "description", "spill store")
        )
        self._report = WriteReport(
            points_written=self._written,
            points_spilled=self._spilled,
            batches_retried=self._retried,
            errors=list(self._errors),
            spilled=self._spill is not None,
            points_lost=self._lost,
            primary_description=self._primary_description,
            spill_description=spill_description,
            retries=self._retries_before_giving_up,
            failed_at_start=self._failed_at_start,
            points_uncertain=self._uncertain,
        )
        return self._report

    # -- background thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is _DONE:
                return
            if not self._failed:
                ok, maybe_delivered = self._write_primary(batch)
                if ok:
                    with self._lock:
                        self._written += len(batch)
                    continue
            else:
                maybe_delivered = False
            if self._write_spill(batch) and maybe_delivered:
                with self._lock:
                    self._uncertain += len(batch)

    def _write_primary(self, batch: list[Point] | _Columns) -> tuple[bool, bool]:
        """Try the primary with retries; on giving up mark it failed. Returns whether it
        was written, and whether it may have been although no answer said so."""
        assert self._primary is not None
        error: Exception | None = None
        maybe_delivered = False
        attempt = 0
        for attempt in range(self.retries + 1):
            if attempt:
                if attempt == 1:
                    with self._lock:
                        self._retried += 1
                self._sleep(min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s))
            try:
                write_to(self._primary, batch)
                return True, False
            # Any store, any failure: the thread must survive to route points to the spill.
            except Exception as exc:  # noqa: BLE001
                error = exc
                # a timed-out request may still be written: re-sending it is idempotent
                maybe_delivered = maybe_delivered or _fate_unknown(exc)
                if not _retryable(exc):
                    break
        with self._lock:
            if not self._failed:  # the first to give up says why
                self._errors.append(_describe(error, self._secrets) if error
                                    else "unknown error")
                self._retries_before_giving_up = attempt
            self._failed = True
        return False, maybe_delivered

    def _write_spill(self, batch: list[Point] | _Columns) -> bool:
        with self._lock:  # one spill store, written by one thread at a time
            try:
                if self._spill is None:
                    self._spill = self._make_spill()
                write_to(self._spill, batch)
                self._spilled += len(batch)
                return True
            except Exception as exc:  # noqa: BLE001 - keep draining the queue; the loss is reported
                self._errors.append(f"spill store: {_describe(exc, self._secrets)}")
                self._lost += len(batch)
                return False


def open_with_fallback(
    make_primary: Callable[[], Store],
    make_spill: Callable[[], Store],
    **kwargs: Any,
) -> ResilientWriter:
    """Build a :class:`ResilientWriter`, even when the primary cannot be created.

    Parameters
    ----------
    make_primary : callable
        Creates the primary store; e.g. an :class:`~twin.recording.influx_v1.InfluxV1Store`,
        whose constructor contacts the server.
    make_spill : callable
        Creates the spill store.
    **kwargs
        Passed on to :class:`ResilientWriter`.

    Returns
    -------
    ResilientWriter
        If ``make_primary`` raised :class:`~twin.recording.errors.InfluxError` or ``OSError``
        (server down, refused), a writer that sends everything to the spill store and reports
        the error; otherwise a normal writer.
    """
    try:
        primary = make_primary()
    except (InfluxError, OSError) as exc:
        reason = _describe(exc, kwargs.get("secrets", ()))
        return ResilientWriter(None, make_spill, failed_reason=reason, **kwargs)
    return ResilientWriter(primary, make_spill, **kwargs)
