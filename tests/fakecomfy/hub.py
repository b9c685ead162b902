"""WebSocket clients and an ordered outbox (ComfyUI sends through one queue as well)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import WSCloseCode, web

from .faults import Faults

BINARY = ""  # the outbox's event name for a binary frame: ComfyUI queues both kinds in order


class Hub:
    """Connected sockets by client id, and the task that sends messages in order."""

    def __init__(self, faults: Faults) -> None:
        """Create an idle hub; call :meth:`start` inside the event loop."""
        self._faults = faults
        self._clients: dict[str, web.WebSocketResponse] = {}
        self._outbox: asyncio.Queue[tuple[str, Any, str | None]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the sender task."""
        self._task = asyncio.get_running_loop().create_task(self._send_loop())

    async def stop(self) -> None:
        """Close every socket and stop sending."""
        for ws in list(self._clients.values()):
            with contextlib.suppress(Exception):
                await ws.close(code=WSCloseCode.GOING_AWAY)
        self._clients.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def register(self, sid: str, ws: web.WebSocketResponse) -> None:
        """Attach a socket; a reconnect with the same id replaces the old one."""
        self._clients[sid] = ws

    def unregister(self, sid: str, ws: web.WebSocketResponse) -> None:
        """Detach a socket, unless a newer one already took its id."""
        if self._clients.get(sid) is ws:
            del self._clients[sid]

    def connected(self, sid: str) -> bool:
        """Whether a socket with this id is attached."""
        return sid in self._clients

    def send(self, event: str, data: Any, sid: str | None = None) -> None:
        """Queue a message for one client, or for all when ``sid`` is None."""
        self._outbox.put_nowait((event, data, sid))

    def send_bytes(self, data: bytes, sid: str | None = None) -> None:
        """Queue a binary frame (a preview) for one client, or for all when ``sid`` is None."""
        self._outbox.put_nowait((BINARY, data, sid))

    async def close_all(self) -> None:
        """Close every socket (clients see the connection end) but keep serving."""
        for ws in list(self._clients.values()):
            with contextlib.suppress(Exception):
                await ws.close(code=WSCloseCode.GOING_AWAY)

    async def _send_loop(self) -> None:
        while True:
            event, data, sid = await self._outbox.get()
            if self._faults.ws_silent:
                continue
            targets = list(self._clients.values()) if sid is None else [self._clients.get(sid)]
            for ws in targets:
                if ws is None or ws.closed:
                    continue
                with contextlib.suppress(ConnectionError, RuntimeError):
                    if event == BINARY:
                        await ws.send_bytes(data)
                    else:
                        await ws.send_str(json.dumps({"type": event, "data": data}))
