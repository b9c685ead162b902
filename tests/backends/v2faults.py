"""A fault-injecting HTTP forwarder in front of the v2 surface (the real comfy-api-proxy).

It passes every request through (streaming, so SSE works) unless a rule says otherwise:
answer the next N matching requests with a status and headers (429 with ``Retry-After``,
503), or cut the next N event streams after their first chunk.
"""

from __future__ import annotations

import asyncio
import fnmatch
import threading
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from tests.backends.apiproxy import free_port

SESSION = web.AppKey("session", aiohttp.ClientSession)
HOP = {"transfer-encoding", "content-length", "connection", "keep-alive", "content-encoding"}


@dataclass
class Rule:
    """Answer ``n`` requests matching ``pattern`` ("METHOD /path/glob") with ``status``."""

    pattern: str
    n: int
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = '{"error": {"code": "injected", "message": "injected by the test"}}'


class V2Faults:
    """The forwarder: ``.url`` to point keyframed at, ``.fail_next`` / ``.drop_streams``."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.port = free_port()
        self.rules: list[Rule] = []
        self.drops = 0
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        """Where keyframed connects."""
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, pattern: str, n: int, status: int, **headers: str) -> None:
        """The next ``n`` requests matching ``pattern`` get ``status`` (and the headers)."""
        with self._lock:
            self.rules.append(Rule(pattern, n, status, dict(headers)))

    def drop_streams(self, n: int) -> None:
        """The next ``n`` SSE streams are cut after their first chunk."""
        with self._lock:
            self.drops += n

    def start(self) -> V2Faults:
        """Serve on a thread; returns once listening."""
        self._thread.start()
        assert self._ready.wait(10), "the v2 fault forwarder did not start"
        if self.error is not None:
            raise AssertionError(f"the v2 fault forwarder failed: {self.error!r}")
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _rule_for(self, key: str) -> Rule | None:
        with self._lock:
            self.hits[key] += 1
            for rule in self.rules:
                if rule.n > 0 and fnmatch.fnmatch(key, rule.pattern):
                    rule.n -= 1
                    return rule
        return None

    def _take_drop(self) -> bool:
        with self._lock:
            if self.drops > 0:
                self.drops -= 1
                return True
        return False

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        key = f"{request.method} {request.path}"
        rule = self._rule_for(key)
        if rule is not None:
            return web.Response(status=rule.status, text=rule.body, headers=rule.headers,
                                content_type="application/json")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        body = await request.read()
        session: aiohttp.ClientSession = request.app[SESSION]
        try:
            return await self._pass(request, session, headers, body)
        except aiohttp.ClientConnectionError:  # the surface is down: a load balancer's 502
            return web.Response(status=502, text='{"error": {"code": "bad_gateway"}}',
                                content_type="application/json")

    async def _pass(self, request: web.Request, session: aiohttp.ClientSession,
                    headers: dict[str, str], body: bytes) -> web.StreamResponse:
        async with session.request(request.method, self.target + request.path_qs,
                                   headers=headers, data=body or None,
                                   allow_redirects=False) as up:
            out = web.StreamResponse(status=up.status, headers={
                k: v for k, v in up.headers.items() if k.lower() not in HOP})
            await out.prepare(request)
            drop = request.path.endswith("/events") and self._take_drop()
            async for chunk in up.content.iter_any():
                await out.write(chunk)
                if drop:
                    # cut the connection mid-stream, as a load balancer's idle timeout does
                    assert request.transport is not None
                    request.transport.close()
                    return out
            await out.write_eof()
            return out

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def setup() -> None:
            app = web.Application()
            app[SESSION] = aiohttp.ClientSession(auto_decompress=False)
            app.router.add_route("*", "/{tail:.*}", self._forward)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()

        try:
            self._loop.run_until_complete(setup())
        except BaseException as exc:  # shown by start(), not lost in a thread
            self.error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
