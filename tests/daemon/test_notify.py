"""sd_notify over a real datagram socket: path and abstract namespace."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyframed.daemon import notify

# sun_path holds 108 bytes on Linux, 104 on macOS; leave room for the NUL.
_MAX_SUN_PATH = 100


@pytest.fixture
def receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A bound datagram socket named by $NOTIFY_SOCKET, as systemd would provide."""
    folder = tmp_path
    if len(str(folder / "notify.sock")) > _MAX_SUN_PATH:
        folder = Path(tempfile.mkdtemp(prefix="kfn", dir="/tmp"))
    path = folder / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()
    path.unlink(missing_ok=True)


def _recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode("utf-8")


def test_unset_socket_is_a_noop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify.notify("READY=1") is False
    assert notify.ready() is False
    assert notify.watchdog_ping() is False


def test_unsupported_address_is_a_noop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert notify.ready() is False


def test_missing_socket_returns_false(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert notify.ready() is False


def test_ready_stopping_watchdog(receiver: socket.socket) -> None:
    assert notify.ready() is True
    assert _recv(receiver) == "READY=1"
    assert notify.watchdog_ping() is True
    assert _recv(receiver) == "WATCHDOG=1"
    assert notify.stopping() is True
    assert _recv(receiver) == "STOPPING=1"


def test_raw_notify_sends_exactly_the_state(receiver: socket.socket) -> None:
    assert notify.notify("READY=1\nSTATUS=warming up\nMAINPID=42") is True
    assert _recv(receiver) == "READY=1\nSTATUS=warming up\nMAINPID=42"


def test_status_keeps_one_line(receiver: socket.socket) -> None:
    assert notify.status("3 jobs queued\nscene-02 running") is True
    assert _recv(receiver) == "STATUS=3 jobs queued scene-02 running"


def test_reloading_carries_monotonic_usec(receiver: socket.socket) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notify.reloading() is True
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = _recv(receiver).split("\n")
    assert lines[0] == "RELOADING=1"
    key, _, value = lines[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux-only")
def test_abstract_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"keyframed-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify.ready() is True
        assert sock.recv(4096) == b"READY=1"


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 15.0),
        ("30000000", "self", 15.0),
        ("1000000", "self", 0.5),
        ("30000000", "other", None),
        ("0", None, None),
        ("-5", None, None),
        ("soon", None, None),
        (None, None, None),
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    for key, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(key, raising=False)
        elif value == "self":
            monkeypatch.setenv(key, str(os.getpid()))
        elif value == "other":
            monkeypatch.setenv(key, str(os.getpid() + 1))
        else:
            monkeypatch.setenv(key, value)
    assert notify.watchdog_interval() == expected
