"""The systemd notification protocol (sd_notify) without any C dependency.

A notification is one ``AF_UNIX``/``SOCK_DGRAM`` datagram of ``KEY=VALUE`` lines sent to the
socket named by ``$NOTIFY_SOCKET``; a leading ``@`` names a socket in Linux's abstract namespace
(see sd_notify(3); the protocol is declared stable). When ``$NOTIFY_SOCKET`` is unset (a terminal,
launchd, tests) every call is a no-op that returns False, so callers never need to check.

Failures to send are reported as False rather than raised: a daemon must not die because its
supervisor went away, and if watchdog pings stop arriving systemd restarts the unit anyway.
"""

from __future__ import annotations

import os
import socket
import time

__all__ = [
    "notify",
    "ready",
    "reloading",
    "status",
    "stopping",
    "watchdog_interval",
    "watchdog_ping",
]


def _address(raw: str) -> str | None:
    """Turn ``$NOTIFY_SOCKET`` into an address for ``sendto``; None when unsupported."""
    if raw.startswith("@"):
        # Abstract namespace: a leading NUL byte instead of a path (Linux only).
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    return None  # e.g. "vsock:..." from newer systemd; not needed for a user unit


def notify(state: str) -> bool:
    """Send one notification datagram to the service manager.

    Args:
        state: newline-separated ``KEY=VALUE`` assignments, e.g. ``"READY=1"``.

    Returns:
        True if the datagram was sent; False when ``$NOTIFY_SOCKET`` is unset or unusable, or
        sending failed.
    """
    address = _address(os.environ.get("NOTIFY_SOCKET", ""))
    if address is None:
        return False
    try:
        # Python sockets are close-on-exec already (PEP 446), so no child inherits this one.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode("utf-8"), address)
    except OSError:
        return False
    return True


def ready() -> bool:
    """Tell systemd start-up (or a reload) is complete (``READY=1``)."""
    return notify("READY=1")


def stopping() -> bool:
    """Tell systemd a graceful shutdown has begun (``STOPPING=1``)."""
    return notify("STOPPING=1")


def reloading() -> bool:
    """Tell systemd a configuration reload has begun.

    ``MONOTONIC_USEC`` is required by ``Type=notify-reload`` and harmless otherwise; send
    :func:`ready` again once the reload is done.
    """
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")


def status(text: str) -> bool:
    """Set the one-line status shown by ``systemctl status``.

    Newlines would start new assignments in the datagram, so they become spaces.
    """
    line = " ".join(text.splitlines())
    return notify(f"STATUS={line}")


def watchdog_ping() -> bool:
    """Reset the service watchdog (``WATCHDOG=1``); call only while the loop makes progress."""
    return notify("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """How often to call :func:`watchdog_ping`, in seconds, or None when no watchdog is set.

    systemd sets ``$WATCHDOG_USEC`` (from ``WatchdogSec=``) and ``$WATCHDOG_PID``; sd_notify(3)
    advises pinging every half of the timeout. A ``$WATCHDOG_PID`` naming another process means
    the variables were inherited and are not meant for this one.
    """
    pid = os.environ.get("WATCHDOG_PID")
    if pid is not None and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000
