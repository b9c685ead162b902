"""Progress hints from ComfyUI's WebSocket, read in a background thread.

ComfyUI keeps one socket per ``clientId`` (a second connection with the same id replaces the
first), so each client has one listener shared by all the prompts it waits for. The socket is
only a hint: a listener that cannot connect, or a server that never sends anything, changes
nothing, because completion is always read from ``/history``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from websockets.sync.client import ClientConnection, connect

__all__ = ["ProgressCallback", "ProgressListener"]

log = structlog.get_logger(__name__)

# websockets logs every request header at DEBUG, the bearer token included; its logger for our
# connections is pinned above DEBUG so that no logging setup can make it print the token.
_ws_logger = logging.getLogger("keyframed.backends.comfy.websocket")
_ws_logger.setLevel(logging.INFO)

ProgressCallback = Callable[[float], None]
# Progress of prompts nobody waits for yet is kept (the last value each) for so many prompts.
_LATEST_KEPT = 256


@dataclass
class _Watch:
    on_progress: ProgressCallback | None
    wake: threading.Event = field(default_factory=threading.Event)


class ProgressListener:
    """Reads ``/ws?clientId=...`` and routes events to the prompts being waited for."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        server: str,
        open_timeout: float = 5.0,
        reconnect_s: float = 5.0,
    ) -> None:
        self._url = url
        self._headers = dict(headers)
        self._server = server
        self._open_timeout = open_timeout
        self._reconnect_s = reconnect_s
        self._watches: dict[str, _Watch] = {}
        self._lock = threading.RLock()
        self._latest: OrderedDict[str, float] = OrderedDict()
        self._stop = threading.Event()
        self._ws: ClientConnection | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<ProgressListener server={self._server!r}>"

    @property
    def connected(self) -> bool:
        """True while the socket is open."""
        with self._lock:
            return self._ws is not None

    def start(self) -> None:
        """Connect in the background (again after each failure) until :meth:`close`."""
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name=f"comfy-ws-{self._server}", daemon=True
                )
                self._thread.start()

    def watch(self, prompt_id: str, on_progress: ProgressCallback | None) -> threading.Event:
        """Start routing ``prompt_id``'s events; return an Event set when it finishes.

        ``on_progress`` is called with a fraction in 0..1 from the listener thread (and once
        from this one when progress arrived before the call). Calls never overlap.
        """
        watch = _Watch(on_progress)
        with self._lock:
            self._watches[prompt_id] = watch
            latest = self._latest.get(prompt_id)
            if latest is not None:  # events that came before the wait began
                self._report(watch, latest)
        self.start()
        return watch.wake

    def unwatch(self, prompt_id: str) -> None:
        """Stop routing ``prompt_id``'s events."""
        with self._lock:
            self._watches.pop(prompt_id, None)

    def close(self) -> None:
        """Stop the thread and close the socket; safe to call twice."""
        self._stop.set()
        with self._lock:
            ws, thread = self._ws, self._thread
        if ws is not None:
            ws.close_socket()  # wakes the reader at once, even on a silent server
        if thread is not None:
            # A thread stuck opening a socket to a hung server ends on its own (open_timeout).
            thread.join(timeout=1.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as exc:  # any failure only ends the hints until a reconnect
                log.debug("comfy_ws_down", server=self._server, error=f"{type(exc).__name__}")
            self._stop.wait(self._reconnect_s)

    def _listen(self) -> None:
        with connect(
            self._url,
            additional_headers=self._headers,
            open_timeout=self._open_timeout,
            close_timeout=1.0,
            logger=_ws_logger,
            max_size=1 << 24,
        ) as ws:
            with self._lock:
                if self._stop.is_set():
                    return
                self._ws = ws
            try:
                for message in ws:
                    if isinstance(message, str):  # binary frames are previews
                        self._dispatch(message)
            finally:
                with self._lock:
                    self._ws = None

    def _dispatch(self, message: str) -> None:
        try:
            event = json.loads(message)
        except ValueError:
            return
        data = event.get("data") if isinstance(event, dict) else None
        if not isinstance(data, dict):
            return
        prompt_id, kind = str(data.get("prompt_id")), event.get("type")
        fraction = _fraction(data) if kind == "progress" else None
        with self._lock:
            watch = self._watches.get(prompt_id)
            if fraction is not None:
                self._remember(prompt_id, fraction)
                if watch is not None:
                    self._report(watch, fraction)
        if watch is not None and kind == "executing" and data.get("node") is None:
            # Sent after the history entry is written: time to poll again.
            watch.wake.set()

    def _remember(self, prompt_id: str, fraction: float) -> None:
        self._latest[prompt_id] = fraction
        self._latest.move_to_end(prompt_id)
        while len(self._latest) > _LATEST_KEPT:
            self._latest.popitem(last=False)

    def _report(self, watch: _Watch, fraction: float) -> None:
        # Called with the lock held, so reports for one prompt never overtake each other.
        if watch.on_progress is None:
            return
        try:
            watch.on_progress(fraction)
        except Exception as exc:  # a faulty callback must not end the hints for others
            log.warning("comfy_progress_callback_failed", server=self._server, error=str(exc))


def _fraction(data: dict[str, Any]) -> float | None:
    value, maximum = data.get("value"), data.get("max")
    if not isinstance(value, int | float) or not isinstance(maximum, int | float) or maximum <= 0:
        return None
    return min(1.0, max(0.0, value / maximum))
