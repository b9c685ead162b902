"""Signals: real signals sent to this process set the right flags and wake the loop."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from keyframed.daemon.signals import Signals

_DEADLINE = 5.0  # generous upper bound for the helper thread; the wait returns as soon as set


def test_sighup_sets_reload_only() -> None:
    woke = threading.Event()
    with Signals(wake=woke.set) as sig:
        os.kill(os.getpid(), signal.SIGHUP)
        assert sig.reload.wait(_DEADLINE)
        assert woke.wait(_DEADLINE)
        assert not sig.stop.is_set()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signals_set_stop(signum: int) -> None:
    woke = threading.Event()
    with Signals(wake=woke.set) as sig:
        os.kill(os.getpid(), signum)
        assert sig.stop.wait(_DEADLINE)
        assert woke.wait(_DEADLINE)
        assert not sig.reload.is_set()


def test_reload_can_be_cleared_and_set_again() -> None:
    with Signals() as sig:
        os.kill(os.getpid(), signal.SIGHUP)
        assert sig.reload.wait(_DEADLINE)
        sig.reload.clear()
        os.kill(os.getpid(), signal.SIGHUP)
        assert sig.reload.wait(_DEADLINE)


def test_second_sigint_raises_keyboard_interrupt() -> None:
    with Signals() as sig:
        os.kill(os.getpid(), signal.SIGINT)
        assert sig.stop.wait(_DEADLINE)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            threading.Event().wait(_DEADLINE)  # the handler interrupts this wait


def test_second_sigterm_does_not_raise() -> None:
    with Signals() as sig:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        assert sig.stop.wait(_DEADLINE)


def test_failing_wake_hook_does_not_lose_later_signals() -> None:
    calls: list[int] = []
    second = threading.Event()

    def wake() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        second.set()

    with Signals(wake=wake) as sig:
        os.kill(os.getpid(), signal.SIGHUP)
        assert sig.reload.wait(_DEADLINE)
        sig.reload.clear()
        os.kill(os.getpid(), signal.SIGHUP)
        assert second.wait(_DEADLINE)
        assert sig.reload.is_set()


def test_close_restores_previous_handlers() -> None:
    def mine(signum: int, frame: object) -> None:
        return None

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    signal.signal(signal.SIGHUP, mine)
    try:
        sig = Signals()
        assert signal.getsignal(signal.SIGHUP) != mine
        sig.close()
        sig.close()  # idempotent
        assert signal.getsignal(signal.SIGHUP) == mine
        assert signal.getsignal(signal.SIGTERM) == saved[signal.SIGTERM]
        assert signal.getsignal(signal.SIGINT) == saved[signal.SIGINT]
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def test_must_be_created_in_main_thread() -> None:
    errors: list[BaseException] = []
    before = signal.getsignal(signal.SIGHUP)

    def create() -> None:
        try:
            Signals()
        except ValueError as exc:
            errors.append(exc)

    thread = threading.Thread(target=create)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert signal.getsignal(signal.SIGHUP) == before
