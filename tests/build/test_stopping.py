"""StopRequest and the signal handlers (no world: tests/test_stop.py runs whole runs)."""

from __future__ import annotations

import os
import signal

import pytest

from twin.build.stopping import RunInterrupted, StopRequest, exit_status, stop_on_signals


def test_a_stop_raises_before_the_world_runs_and_winds_it_down_while_it_runs():
    stop = StopRequest()
    with pytest.raises(RunInterrupted, match="interrupted by SIGTERM") as raised:
        stop.request(signal.SIGTERM)  # nothing to wind down yet: at once
    assert raised.value.signum == signal.SIGTERM and stop.requested

    stop, calls = StopRequest(), []
    stop.on_request = lambda: calls.append("cancel")
    stop.request(signal.SIGINT)
    assert calls == ["cancel"] and stop.name == "SIGINT"
    with pytest.raises(RunInterrupted):
        stop.check()
    with pytest.raises(RunInterrupted):  # asked twice: at once, wherever it is
        stop.request(signal.SIGINT)
    stop.defer()  # writing the results: only noted
    stop.request(signal.SIGTERM)
    stop.check()
    assert stop.signum == signal.SIGTERM and calls == ["cancel"]


def test_exit_status_is_128_plus_the_signal():
    assert exit_status(signal.SIGINT) == 130 and exit_status(signal.SIGTERM) == 143
    assert exit_status(None) == 130


def test_the_handlers_are_installed_for_the_block_only():
    before = signal.getsignal(signal.SIGTERM)
    stop, calls = StopRequest(), []
    stop.on_request = lambda: calls.append("cancel")
    with stop_on_signals(stop):
        os.kill(os.getpid(), signal.SIGTERM)  # handled in this (main) thread
    assert calls == ["cancel"] and stop.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before
