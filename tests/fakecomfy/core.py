"""The server's state and its worker, living inside one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from dataclasses import dataclass, field
from typing import Any

from .catalog import NodeCatalog
from .executor import Executor, now_ms
from .faults import Faults
from .files import Dirs, annotated_path
from .hub import Hub
from .records import Records
from .state import CacheMode, NodeCache, PromptQueue, QueueItem
from .validation import CustomCheck

log = logging.getLogger(__name__)


@dataclass
class Core:
    """Queue, history, cache, sockets and the worker of one running fake server."""

    catalog: NodeCatalog
    dirs: Dirs
    faults: Faults
    records: Records
    cache_mode: CacheMode = "classic"
    cache_size: int = 0
    # ComfyUI runs one prompt at a time; more stand for a deployment's GPUs behind one queue.
    workers: int = 1
    hub: Hub = field(init=False)
    queue: PromptQueue = field(init=False)
    cache: NodeCache = field(init=False)
    executor: Executor = field(init=False)
    executors: list[Executor] = field(init=False)
    closing: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.hub = Hub(self.faults)
        self.queue = PromptQueue(on_change=self.queue_updated)
        self.cache = NodeCache(self.cache_mode, self.cache_size)
        self.executors = [
            Executor(self.catalog, self.dirs, self.hub, self.faults, self.records, self.cache)
            for _ in range(max(1, self.workers))
        ]
        self.executor = self.executors[0]

    def start(self) -> None:
        """Start sending WebSocket messages and executing the queue."""
        self.hub.start()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._work(e)) for e in self.executors]

    async def stop(self) -> None:
        """Stop the worker (a running prompt is lost) and close the sockets."""
        self.closing = True
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.hub.stop()

    def interrupt(self, prompt_id: str | None) -> bool:
        """Interrupt the running prompt ``prompt_id`` (every running one for None)."""
        hits = [e.request_interrupt(prompt_id) for e in self.executors]
        return any(hits)

    def queue_info(self) -> dict[str, Any]:
        """``{"exec_info": {"queue_remaining": N}}``."""
        return {"exec_info": {"queue_remaining": self.queue.remaining()}}

    def queue_updated(self) -> None:
        """Tell every socket the queue changed (ComfyUI's ``status`` broadcast)."""
        self.hub.send("status", {"status": self.queue_info()})

    def custom_checks(self) -> dict[str, dict[str, CustomCheck]]:
        """Inputs nodes validate themselves: LoadImage's file must exist."""

        def image_exists(name: Any) -> bool | str:
            path = annotated_path(self.dirs, name) if isinstance(name, str) else None
            return True if path is not None and path.is_file() else f"Invalid image file: {name}"

        return {"LoadImage": {"image": image_exists}, "LoadImageMask": {"image": image_exists}}

    async def _work(self, executor: Executor) -> None:
        while True:
            task_id, item = await self.queue.get()
            try:
                result = await executor.run(item)
            except Exception as ex:  # a bug in the fake: record it where tests will see it
                log.exception("fake ComfyUI failed to execute %s", item.prompt_id)
                result = _crash_result(item, ex)
            self.queue.task_done(task_id, result)
            client = item.extra_data.get("client_id")
            if client is not None:
                self.hub.send("executing", {"node": None, "prompt_id": item.prompt_id}, client)


def _crash_result(item: QueueItem, ex: Exception) -> dict[str, Any]:
    error = {
        "prompt_id": item.prompt_id,
        "node_id": item.outputs[0] if item.outputs else "",
        "node_type": "",
        "executed": [],
        "exception_message": f"fake ComfyUI bug: {ex}",
        "exception_type": type(ex).__qualname__,
        "traceback": traceback.format_tb(ex.__traceback__),
        "current_inputs": {},
        "current_outputs": [],
        "timestamp": now_ms(),
    }
    status = {"status_str": "error", "completed": False, "messages": [["execution_error", error]]}
    return {"status": status, "outputs": {}, "meta": {}}
