"""In-memory queue, history and node-output cache (all lost on restart, like ComfyUI's).

Used only from the server's event loop.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from .values import NodeValue

MAXIMUM_HISTORY_SIZE = 10000


@dataclass
class QueueItem:
    """One queued prompt: ``[number, prompt_id, prompt, extra_data, outputs_to_execute]``."""

    number: float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]

    def as_list(self) -> list[Any]:
        """The item as /queue and history show it."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


@dataclass
class PromptQueue:
    """Pending heap (by number, then prompt id), the running prompt, and the history."""

    on_change: Callable[[], None]
    counter: int = 0
    _heap: list[tuple[float, str, int, QueueItem]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _running: dict[int, QueueItem] = field(default_factory=dict)
    _history: dict[str, dict[str, Any]] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def next_number(self, front: bool) -> int:
        """The server counter for a prompt without ``number`` (negated when ``front``)."""
        number = -self.counter if front else self.counter
        self.counter += 1
        return number

    def put(self, item: QueueItem) -> None:
        """Queue a prompt."""
        heapq.heappush(self._heap, (item.number, item.prompt_id, next(self._seq), item))
        self._wake.set()
        self.on_change()

    async def get(self) -> tuple[int, QueueItem]:
        """Wait for and take the next prompt; it becomes running."""
        while not self._heap:
            self._wake.clear()
            await self._wake.wait()
        item = heapq.heappop(self._heap)[3]
        task_id = next(self._seq)
        self._running[task_id] = item
        self.on_change()
        return task_id, item

    def task_done(self, task_id: int, result: dict[str, Any]) -> None:
        """Move a running prompt to the history with its outputs and status."""
        item = self._running.pop(task_id)
        if len(self._history) > MAXIMUM_HISTORY_SIZE:
            self._history.pop(next(iter(self._history)))
        self._history[item.prompt_id] = {"prompt": item.as_list(), "outputs": {}, **result}
        self.on_change()

    def running(self) -> list[QueueItem]:
        """The running prompts (zero or one)."""
        return list(self._running.values())

    def pending(self) -> list[QueueItem]:
        """Pending prompts in raw heap order (unsorted, as ComfyUI shows them)."""
        return [entry[3] for entry in self._heap]

    def remaining(self) -> int:
        """Pending plus running."""
        return len(self._heap) + len(self._running)

    def wipe(self) -> None:
        """Drop every pending prompt."""
        self._heap = []
        self.on_change()

    def delete(self, prompt_id: Any) -> bool:
        """Drop the first pending prompt with this id."""
        for index, entry in enumerate(self._heap):
            if entry[1] == prompt_id:
                self._heap.pop(index)
                heapq.heapify(self._heap)
                self.on_change()
                return True
        return False

    def history(self, max_items: int | None = None, offset: int = -1) -> dict[str, Any]:
        """History entries oldest first; ``max_items`` alone gives the newest N."""
        if offset < 0 and max_items is not None:
            offset = len(self._history) - max_items
        out: dict[str, Any] = {}
        for index, (key, entry) in enumerate(self._history.items()):
            if index >= offset:
                out[key] = entry
                if max_items is not None and len(out) >= max_items:
                    break
        return out

    def history_item(self, prompt_id: str) -> dict[str, Any]:
        """``{id: entry}``, or ``{}`` while unknown, queued or running."""
        entry = self._history.get(prompt_id)
        return {} if entry is None else {prompt_id: entry}

    def wipe_history(self) -> None:
        """Forget every history entry."""
        self._history.clear()

    def delete_history(self, prompt_id: Any) -> None:
        """Forget one history entry (no error when absent)."""
        self._history.pop(prompt_id, None)


CacheMode = Literal["classic", "lru", "none"]


@dataclass
class CacheEntry:
    """A node's cached result and, for output nodes, its UI dict."""

    value: NodeValue
    ui: dict[str, Any] | None


class NodeCache:
    """The node-output cache keyed by input signature (comfyui-api.md §8).

    ``classic`` keeps only what the new prompt shares with the previous one; ``lru`` keeps up
    to ``size`` entries; ``none`` keeps nothing.
    """

    def __init__(self, mode: CacheMode = "classic", size: int = 0) -> None:
        """Create an empty cache."""
        self.mode = mode
        self.size = size
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()

    def set_prompt(self, keys: Iterable[str]) -> None:
        """Prepare for a prompt whose nodes have these keys."""
        if self.mode == "classic":
            wanted = set(keys)
            for key in [k for k in self._entries if k not in wanted]:
                del self._entries[key]

    def get(self, key: str) -> CacheEntry | None:
        """The entry for a key, if cached."""
        entry = self._entries.get(key)
        if entry is not None and self.mode == "lru":
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: CacheEntry) -> None:
        """Store a node result."""
        if self.mode == "none":
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        if self.mode == "lru":
            while len(self._entries) > max(1, self.size):
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Drop everything (POST /free with free_memory, or a restart)."""
        self._entries.clear()
