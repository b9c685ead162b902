"""FakeComfy: a ComfyUI 0.8.0 look-alike (or, with ``jobs_api``, a newer one) serving real HTTP
on 127.0.0.1 from its own thread."""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
from collections.abc import Coroutine, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from .catalog import NodeCatalog, list_input_images, load_object_info
from .core import Core
from .faults import Faults
from .files import Dirs
from .records import Records
from .routes import Routes
from .state import CacheMode

T = TypeVar("T")


class FakeComfy:
    """A fake ComfyUI server for tests and benchmarks.

    It validates prompts against a recorded ``object_info.json``, runs them one at a time in
    priority order, writes real output files, speaks ComfyUI's WebSocket protocol, and can be
    told to misbehave through :attr:`faults`. What it received is in :attr:`records`.

    Example:
        >>> with FakeComfy(object_info_path, tmp_path) as comfy:  # doctest: +SKIP
        ...     httpx.get(comfy.url + "/queue")
    """

    def __init__(
        self,
        object_info: Path | Mapping[str, Any],
        base_dir: Path,
        *,
        output_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Mapping[str, Iterable[str]] | None = None,
        job_seconds: float = 0.0,
        cache_mode: CacheMode = "classic",
        cache_size: int = 0,
        previews: bool = False,
        jobs_api: bool = False,
        workers: int = 1,
    ) -> None:
        """Configure a server (call :meth:`start` to serve).

        Args:
            object_info: Path of ``object_info.json``, or its parsed content.
            base_dir: Where ``input/``, ``output/`` and ``temp/`` live.
            output_dir: Another output folder, if not ``base_dir/output``.
            host: Address to bind.
            port: Port to bind; 0 picks a free one (kept across restarts).
            models: Installed model files per folder; None for :data:`DEFAULT_MODELS`.
            job_seconds: Simulated duration of each job.
            cache_mode: ``classic`` (ComfyUI's default), ``lru`` or ``none``.
            cache_size: Entries kept in ``lru`` mode.
            previews: Send a JPEG preview frame per sampler step (``--preview-method``).
            jobs_api: Also serve newer ComfyUI's core jobs API (``/api/jobs``), report its
                version, and refuse non-UUID and already-queued prompt ids as it does;
                without it the server is the recorded 0.8.0.
            workers: Prompts run side by side (ComfyUI runs one; more stand for the GPUs
                of a deployment behind one queue, for throughput benchmarks).
        """
        info = load_object_info(object_info) if isinstance(object_info, Path) else dict(object_info)
        self.dirs = Dirs.under(base_dir, output_dir)
        self.catalog = NodeCatalog(
            info, dict(models) if models is not None else None, self._input_images
        )
        self.faults = Faults(job_seconds)
        self.faults.previews = previews
        self.records = Records()
        self.host = host
        self.port = port
        self._cache = (cache_mode, cache_size)
        self.jobs_api = jobs_api
        self.workers = workers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._core: Core | None = None
        self._runner: web.AppRunner | None = None

    # -- addresses ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:<port>/ws``."""
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def is_up(self) -> bool:
        """Whether the server is accepting connections."""
        return self._runner is not None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> FakeComfy:
        """Start the thread and serve; returns self."""
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._loop_main, args=(ready,), name=f"fakecomfy-{id(self):x}", daemon=True
        )
        self._thread.start()
        ready.wait()
        try:
            self._call(self._up())
        except BaseException:
            self.stop()  # e.g. the port is taken: do not leave the loop thread behind
            raise
        return self

    def stop(self) -> None:
        """Stop serving and end the thread (idempotent)."""
        if self._loop is None or self._thread is None:
            return
        if self._runner is not None:
            self._call(self._down())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop = None
        self._thread = None

    def go_down(self, clear_uploads: bool = False) -> None:
        """Stop listening like a crashed ComfyUI: connections refused, queue and history lost.

        Args:
            clear_uploads: Also delete the input folder (a fresh machine).
        """
        if self._runner is not None:
            self._call(self._down())
        if clear_uploads:
            self.dirs.wipe_input()

    def come_up(self) -> None:
        """Listen again on the same port with an empty queue, history and cache."""
        if self._runner is None:
            shutil.rmtree(self.dirs.temp, ignore_errors=True)  # ComfyUI wipes temp at start
            self.dirs.temp.mkdir(parents=True, exist_ok=True)
            self._call(self._up())

    def restart(self, clear_uploads: bool = False) -> None:
        """:meth:`go_down` then :meth:`come_up`: a ComfyUI restart on the same port."""
        self.go_down(clear_uploads)
        self.come_up()

    def __enter__(self) -> FakeComfy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- runtime controls -----------------------------------------------------------------
    def set_models(self, folder: str, names: Iterable[str]) -> None:
        """Replace the installed files of a model folder (lists update at once)."""
        self.catalog.set_models(folder, names)

    def install_model(self, folder: str, name: str) -> None:
        """Add one file to a model folder."""
        self.catalog.set_models(folder, [*self.catalog.models(folder), name])

    def close_websockets(self) -> None:
        """Close every WebSocket (clients must reconnect); HTTP keeps working."""
        core = self._require_core()
        self._call(core.hub.close_all())

    def queue_remaining(self) -> int:
        """Pending plus running prompts."""
        core = self._require_core()
        remaining: int = self._call(_value(core.queue.remaining))
        return remaining

    def history(self) -> dict[str, Any]:
        """A snapshot of the whole history, keyed by prompt id."""
        core = self._require_core()
        history: dict[str, Any] = self._call(_value(core.queue.history))
        return history

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until nothing is pending or running.

        Raises:
            TimeoutError: Still busy after ``timeout`` seconds.
        """
        core = self._require_core()

        async def idle() -> None:
            while core.queue.remaining():
                await asyncio.sleep(0.005)

        self._call(asyncio.wait_for(idle(), timeout), timeout + 5)

    # -- internals ------------------------------------------------------------------------
    def _input_images(self) -> list[str]:
        return list_input_images(self.dirs.input)

    def _loop_main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the fake ComfyUI is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _require_core(self) -> Core:
        if self._core is None:
            raise RuntimeError("the fake ComfyUI is down")
        return self._core

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        return sock

    async def _up(self) -> None:
        sock = self._bind()  # first: a taken port fails before anything is started
        core = Core(self.catalog, self.dirs, self.faults, self.records, *self._cache,
                    workers=self.workers)
        core.start()
        app = Routes(core, self.jobs_api).app()
        runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._core, self._runner = core, runner

    async def _down(self) -> None:
        core, runner = self._core, self._runner
        self._core, self._runner = None, None
        if core is not None:
            await core.stop()
        if runner is not None:
            await runner.cleanup()


async def _value(getter: Any) -> Any:
    return getter()
