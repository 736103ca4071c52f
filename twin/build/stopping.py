"""Stopping a run early: SIGINT (Ctrl-C) and SIGTERM become an orderly stop.

A signal handler does as little as it can. While the world runs it only sets a flag and asks
mosaik's event loop (thread-safely, which also wakes a loop that sleeps in live mode) to
cancel its tasks: the simulators stop at their next ``await``, between two steps, so a
recorder step — points to the store, KPIs, progress — is never cut in half. The caller then
shuts the world down and writes what was simulated. Before the world runs (preparing, wiring)
there is no loop to stop: the handler raises :class:`RunInterrupted` at once. After it has run,
the results are being written: the handler only notes the signal, so they are written whole.
A second signal while a stop is pending raises :class:`RunInterrupted` at once, wherever the
program is.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

#: The signals a run stops on, and the exit status of a run they stopped (128 + number).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(Exception):
    """The run was stopped by a signal (or mosaik stopped it early) before its end."""

    def __init__(self, signum: int | None = None, message: str = "") -> None:
        self.signum = signum
        super().__init__(message or f"interrupted by {signal_name(signum)}")


def signal_name(signum: int | None) -> str:
    if signum is None:
        return "an interrupt"
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_status(signum: int | None) -> int:
    """The shell's convention for a process stopped by a signal: 128 + its number."""
    return 128 + (signum if signum is not None else signal.SIGINT)


class StopRequest:
    """Whether (and by which signal) a stop was asked for, and what to do about it now.

    ``on_request`` is what the current phase does when a stop is asked for: ``None`` raises
    :class:`RunInterrupted` in the handler (nothing to wind down yet); a callable is called
    instead (e.g. stop the world's event loop); :meth:`defer` makes it only note the signal.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.on_request: Callable[[], None] | None = None
        self._deferred = False

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal_name(self.signum)

    def defer(self) -> None:
        """From now on a signal is only noted (the results are being written)."""
        self._deferred = True
        self.on_request = None

    def request(self, signum: int) -> None:
        """What the signal handler calls."""
        again = self.requested
        self.signum = signum
        if self._deferred:
            return
        if again or self.on_request is None:
            raise RunInterrupted(signum)
        self.on_request()

    def check(self) -> None:
        """Raise :class:`RunInterrupted` if a stop was asked for."""
        if self.requested and not self._deferred:
            raise RunInterrupted(self.signum)


@contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[StopRequest]:
    """Route SIGINT and SIGTERM to ``stop`` inside the block; the previous handlers after it.

    Only the main thread can install signal handlers: elsewhere the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, _frame):
        stop.request(signum)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
