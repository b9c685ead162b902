"""Secrets are never shown: known secrets are scrubbed from log lines and error messages.

A bearer token is read from the environment and sent only as an ``Authorization`` header
(:class:`~keyframed.backends.comfy.client.ComfyClient` registers it here). keyframed's own
messages never include headers, but a server, or a reverse proxy in front of it, may echo the
request's headers into an error page, and keyframed quotes a snippet of error pages. So every
error message made from a server's answer, every job error stored, and every log line goes
through :func:`redact`, which replaces each registered secret with :data:`MARK`.
"""

from __future__ import annotations

import threading
from collections.abc import MutableMapping
from typing import Any

MARK = "[redacted]"
# Shorter values would scrub ordinary words out of messages; no real token is this short.
MIN_LENGTH = 6

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


def register(secret: str | None) -> None:
    """Remember a secret so that it is scrubbed from everything shown from now on."""
    global _secrets
    if not secret or len(secret) < MIN_LENGTH:
        return
    with _lock:
        if secret not in _secrets:
            # Longest first: a secret that contains another is scrubbed whole.
            _secrets = tuple(sorted({*_secrets, secret}, key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by :data:`MARK`."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MARK)
    return text


def redact_event(
    logger: Any, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: scrub secrets from every string in a log line (run it after
    exceptions are formatted, before rendering)."""
    if _secrets:
        for key, value in event.items():
            event[key] = _scrub(value)
    return event


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    return value
