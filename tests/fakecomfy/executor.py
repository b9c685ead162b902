"""Runs one queued prompt the way ComfyUI 0.8.0 reports it, writing real output files.

Event order per node (see transcripts/prompt_ok.json): ``progress_state`` (running),
``executing``, then for samplers ``progress_state``/``progress`` per step, ``executed`` for
output nodes, ``progress_state`` (finished). A cached output node only replays ``executed`` and
a finished ``progress_state``. The prompt ends with ``execution_success``, ``execution_error``
or ``execution_interrupted``; the worker then writes history and sends ``executing{node:null}``.
"""

from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from . import render, timing
from .catalog import NodeCatalog
from .faults import Faults, PromptFailure
from .files import Dirs, annotated_path, sha256_file
from .graph import CycleError, ancestors, execution_order, links, signatures
from .hub import Hub
from .models import MODEL_INPUTS
from .outputs import SAVERS, SaveContext
from .records import Records
from .state import CacheEntry, NodeCache, QueueItem
from .values import DEFAULT_SIZE, NodeValue, compute_value

SELF_HASHING = ("LoadImage", "LoadImageMask")  # IS_CHANGED = sha256 of the file
MEDIA_TYPES = ("IMAGE", "LATENT", "VIDEO", "MASK")


class Interrupted(Exception):
    """POST /interrupt reached the running node."""


class NodeFailed(Exception):
    """A node raised during execution."""

    def __init__(self, exception_type: str, message: str, traceback: list[str]) -> None:
        """Remember what ComfyUI would report."""
        super().__init__(message)
        self.exception_type = exception_type
        self.message = message
        self.traceback = traceback


def _count(value: Any) -> int:
    """A positive int input, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def now_ms() -> int:
    """Milliseconds since the epoch, ComfyUI's timestamp unit."""
    return int(time.time() * 1000)


@dataclass
class _Run:
    item: QueueItem
    client: str | None
    sigs: dict[str, str]
    cached: set[str]
    values: dict[str, NodeValue] = field(default_factory=dict)
    messages: list[list[Any]] = field(default_factory=list)
    progress: dict[str, dict[str, Any]] = field(default_factory=dict)
    executed: list[str] = field(default_factory=list)
    ui: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)
    started: float = 0.0
    failure: PromptFailure | None = None
    fail_at: str | None = None

    @property
    def prompt_id(self) -> str:
        return self.item.prompt_id


class Executor:
    """Executes prompts one at a time inside the server's event loop."""

    def __init__(
        self,
        catalog: NodeCatalog,
        dirs: Dirs,
        hub: Hub,
        faults: Faults,
        records: Records,
        cache: NodeCache,
    ) -> None:
        """Wire the executor to the server's parts."""
        self.catalog, self.dirs, self.hub = catalog, dirs, hub
        self.faults, self.records, self.cache = faults, records, cache
        self.interrupt = asyncio.Event()
        self.client: str | None = None
        self.last_node: str | None = None
        self._running: str | None = None

    def request_interrupt(self, prompt_id: str | None = None) -> bool:
        """Interrupt the running prompt (only if it has ``prompt_id``, when given).

        Returns whether a prompt was running to be interrupted.
        """
        if self._running is not None and prompt_id in (None, self._running):
            self.interrupt.set()
            return True
        return False

    async def run(self, item: QueueItem) -> dict[str, Any]:
        """Execute a prompt; return its history ``status``, ``outputs`` and ``meta``."""
        self.interrupt.clear()
        self._running = item.prompt_id
        self.client = item.extra_data.get("client_id")
        self.records.add_execution(item.prompt_id)
        run = self._prepare(item)
        ctx = SaveContext(self.dirs, item.prompt, item.extra_data.get("extra_pnginfo"),
                          video_data=self.faults.video_bytes)
        try:
            success = await self._execute(run, ctx)
        finally:
            self.records.add_files(ctx.written)
            self._running = None
            self.last_node = None
        status = {"status_str": "success" if success else "error", "completed": success}
        return {"status": {**status, "messages": run.messages}, "outputs": run.ui, "meta": run.meta}

    # -- preparation ----------------------------------------------------------------------
    def _prepare(self, item: QueueItem) -> _Run:
        prompt = item.prompt
        needed = ancestors(prompt, item.outputs)
        sigs = signatures(
            prompt, needed, lambda n: self._is_changed(prompt[n]), self.catalog.takes_unique_id
        )
        self.cache.set_prompt(sigs.values())
        cached = {n for n, key in sigs.items() if self.cache.get(key) is not None}
        run = _Run(item, self.client, sigs, cached)
        for node_id in cached:
            entry = self.cache.get(sigs[node_id])
            if entry is not None:
                run.values[node_id] = entry.value
        run.failure = self.faults.take_prompt_failure()
        return run

    def _is_changed(self, node: dict[str, Any]) -> Any:
        if node["class_type"] in SELF_HASHING and isinstance(node["inputs"].get("image"), str):
            path = annotated_path(self.dirs, node["inputs"]["image"])
            return sha256_file(path) if path is not None and path.is_file() else ""
        return ""

    def _image_size(self, name: str) -> tuple[int, int] | None:
        path = annotated_path(self.dirs, name)
        if path is None or not path.is_file():
            return None
        try:
            with Image.open(path) as image:
                return image.size
        except OSError:
            return None

    def _plan_time(self, run: _Run, order: list[str]) -> dict[str, tuple[float, float]]:
        work = [n for n in order if n not in run.cached or n == run.fail_at]
        steps = {n: s for n in work if (s := self._steps(run, n))}
        savers = {n for n in work if run.item.prompt[n]["class_type"] in SAVERS}
        return timing.plan(work, steps, savers, self.faults.seconds_for(run.item.prompt))

    @staticmethod
    def _steps(run: _Run, node_id: str) -> int:
        """Sampling steps the node runs: KSamplerAdvanced runs only start..end of ``steps``."""
        inputs = run.item.prompt[node_id]["inputs"]
        steps = _count(inputs.get("steps"))
        if run.item.prompt[node_id]["class_type"] == "KSamplerAdvanced" and steps:
            start, end = _count(inputs.get("start_at_step")), inputs.get("end_at_step")
            last = min(steps, end) if isinstance(end, int) and not isinstance(end, bool) else steps
            return max(0, last - start)
        return steps

    def _fail_target(self, run: _Run, order: list[str]) -> str | None:
        if run.failure is None or not order:
            return None
        wanted = run.failure.node_type
        for node_id in order:
            class_type = run.item.prompt[node_id]["class_type"]
            if node_id not in run.cached and wanted in (None, class_type):
                return node_id
        return order[-1]

    # -- execution ------------------------------------------------------------------------
    async def _execute(self, run: _Run, ctx: SaveContext) -> bool:
        self._message(run, "execution_start", {"prompt_id": run.prompt_id, "timestamp": now_ms()})
        cached_ids = [n for n in run.item.prompt if n in run.cached]
        self._message(
            run,
            "execution_cached",
            {"nodes": cached_ids, "prompt_id": run.prompt_id, "timestamp": now_ms()},
        )
        try:
            order = execution_order(
                run.item.prompt, run.item.outputs, run.cached, self.catalog.is_output
            )
        except CycleError as ex:
            self._error(run, run.item.outputs[0], NodeFailed("Exception", str(ex), []))
            return False
        run.fail_at = self._fail_target(run, order)
        run.windows = self._plan_time(run, order)
        run.started = asyncio.get_running_loop().time()
        return await self._run_nodes(run, ctx, order)

    async def _run_nodes(self, run: _Run, ctx: SaveContext, order: list[str]) -> bool:
        first = True
        for node_id in order:
            try:
                if node_id in run.cached and node_id != run.fail_at:
                    self._replay(run, node_id)
                    continue
                await self._run_node(run, ctx, node_id, first)
                first = False
            except Interrupted:
                self._interrupted(run, node_id)
                return False
            except NodeFailed as failed:
                self._error(run, node_id, failed)
                return False
        self._message(run, "execution_success", {"prompt_id": run.prompt_id, "timestamp": now_ms()})
        return True

    def _replay(self, run: _Run, node_id: str) -> None:
        entry = self.cache.get(run.sigs[node_id])
        if entry is not None and entry.ui:
            self._output(run, node_id, entry.ui)
        self._progress(run, node_id, "finished", 1, 1)

    async def _run_node(self, run: _Run, ctx: SaveContext, node_id: str, first: bool) -> None:
        node = run.item.prompt[node_id]
        class_type = node["class_type"]
        self._progress(run, node_id, "running", 0.0, 1.0)
        self._client_send(
            run, "executing", {"node": node_id, "display_node": node_id, "prompt_id": run.prompt_id}
        )
        self.last_node = node_id
        await self._pause(0)
        if node_id == run.fail_at and run.failure is not None:
            f = run.failure
            raise NodeFailed(f.exception_type, f.exception_message, list(f.traceback))
        await self._hold(run, node_id, class_type, first)
        upstream = self._upstream(run, node)
        value = compute_value(
            class_type, node["inputs"], run.sigs[node_id], upstream, self._image_size
        )
        run.values[node_id] = value
        ui = self._save(ctx, class_type, node["inputs"], upstream)
        await self._work(run, node_id, value)  # after saving: the file's time counts as work
        self.cache.put(run.sigs[node_id], CacheEntry(value, ui))
        if ui:
            self._output(run, node_id, ui)
        current_max = run.progress[node_id]["max"]
        self._progress(run, node_id, "finished", current_max, current_max)
        run.executed.append(node_id)
        self._note_loads(class_type, node["inputs"])

    def _note_loads(self, class_type: str, inputs: dict[str, Any]) -> None:
        for (loader, name), folder in MODEL_INPUTS.items():
            if loader == class_type and isinstance(inputs.get(name), str):
                self.records.add_model_load(folder, inputs[name])

    def _upstream(self, run: _Run, node: dict[str, Any]) -> dict[str, NodeValue]:
        """Values of linked inputs, image/latent/video inputs first (they carry the size)."""
        types = {spec.name: spec.type for spec in self.catalog.inputs(node["class_type"])}
        linked = [(name, src) for name, src, _ in links(node) if src in run.values]
        linked.sort(key=lambda pair: types.get(pair[0]) not in MEDIA_TYPES)
        return {name: run.values[src] for name, src in linked}

    def _save(
        self,
        ctx: SaveContext,
        class_type: str,
        inputs: dict[str, Any],
        upstream: dict[str, NodeValue],
    ) -> dict[str, Any] | None:
        saver = SAVERS.get(class_type)
        if saver is None:
            return None
        try:
            ui = saver(ctx, inputs, upstream)
        except (OSError, ValueError) as ex:
            raise NodeFailed("Exception", str(ex), []) from ex
        return self._hostile(ui)

    def _hostile(self, ui: dict[str, Any]) -> dict[str, Any]:
        name, subfolder = self.faults.hostile_output_name, self.faults.hostile_output_subfolder
        if (name is None and subfolder is None) or "images" not in ui:
            return ui
        images = []
        for image in ui["images"]:
            hostile = {
                **image,
                "filename": name if name is not None else image["filename"],
                "subfolder": subfolder if subfolder is not None else image["subfolder"],
            }
            root = self.dirs.by_type(image["type"])
            if root is not None:
                real = root / image["subfolder"] / image["filename"]
                self.faults.alias(hostile["type"], hostile["subfolder"], hostile["filename"],
                                  str(real))
            images.append(hostile)
        return {**ui, "images": images}

    async def _hold(self, run: _Run, node_id: str, class_type: str, first: bool) -> None:
        if not self.faults.should_hold(node_id, class_type, first):
            return
        self.faults.note_held(run.prompt_id, node_id)
        while self.faults.holding():
            await self._pause(0.01)

    async def _work(self, run: _Run, node_id: str, value: NodeValue) -> None:
        start, end = run.windows.get(node_id, (0.0, 0.0))
        steps = self._steps(run, node_id)
        clock = asyncio.get_running_loop().time
        if not steps:
            await self._pause(run.started + end - clock())
            return
        for step in range(1, steps + 1):
            await self._pause(run.started + start + (end - start) * step / steps - clock())
            self._progress(run, node_id, "running", step, steps)
            self._broadcast_if_no_client(
                run,
                "progress",
                {"value": step, "max": steps, "prompt_id": run.prompt_id, "node": node_id},
            )
            if self.faults.previews:
                frame = render.preview_frame(f"{value.sig}:{step}", value.size or DEFAULT_SIZE)
                self.hub.send_bytes(frame, run.client)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but end at once with :class:`Interrupted` when an interrupt comes."""
        if self.interrupt.is_set():
            raise Interrupted
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(self.interrupt.wait(), seconds)
        except TimeoutError:
            return
        raise Interrupted

    # -- reporting ------------------------------------------------------------------------
    def _output(self, run: _Run, node_id: str, ui: dict[str, Any]) -> None:
        run.ui[node_id] = ui
        run.meta[node_id] = {
            "node_id": node_id,
            "display_node": node_id,
            "parent_node": None,
            "real_node_id": node_id,
        }
        data = {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": run.prompt_id}
        self._client_send(run, "executed", data)

    def _progress(self, run: _Run, node_id: str, state: str, value: float, maximum: float) -> None:
        run.progress[node_id] = {
            "value": value,
            "max": maximum,
            "state": state,
            "node_id": node_id,
            "prompt_id": run.prompt_id,
            "display_node_id": node_id,
            "parent_node_id": None,
            "real_node_id": node_id,
        }
        data = {"prompt_id": run.prompt_id, "nodes": copy.deepcopy(run.progress)}
        self._broadcast_if_no_client(run, "progress_state", data)

    def _interrupted(self, run: _Run, node_id: str) -> None:
        data = {
            "prompt_id": run.prompt_id,
            "node_id": node_id,
            "node_type": run.item.prompt[node_id]["class_type"],
            "executed": list(run.executed),
            "timestamp": now_ms(),
        }
        run.messages.append(["execution_interrupted", data])
        self.hub.send("execution_interrupted", data, run.client)

    def _error(self, run: _Run, node_id: str, failed: NodeFailed) -> None:
        node = run.item.prompt[node_id]
        data = {
            "prompt_id": run.prompt_id,
            "node_id": node_id,
            "node_type": node["class_type"],
            "executed": list(run.executed),
            "exception_message": failed.message,
            "exception_type": failed.exception_type,
            "traceback": failed.traceback,
            "current_inputs": self._formatted_inputs(node),
            "current_outputs": list(run.item.prompt),
            "timestamp": now_ms(),
        }
        self._message(run, "execution_error", data)

    def _formatted_inputs(self, node: dict[str, Any]) -> dict[str, list[Any]]:
        declared = {spec.name: spec for spec in self.catalog.inputs(node["class_type"])}
        formatted: dict[str, list[Any]] = {}
        for name, value in node["inputs"].items():
            if name not in declared:
                continue
            if isinstance(value, list):
                formatted[name] = [f"<{declared[name].type} from node {value[0]}>"]
            elif value is None or isinstance(value, int | float | bool | str):
                formatted[name] = [value]
            else:
                formatted[name] = [str(value)]
        return formatted

    def _message(self, run: _Run, event: str, data: dict[str, Any]) -> None:
        """A status message: kept for history, sent only to the prompt's client."""
        run.messages.append([event, data])
        self._client_send(run, event, data)

    def _client_send(self, run: _Run, event: str, data: dict[str, Any]) -> None:
        if run.client is not None:
            self.hub.send(event, data, run.client)

    def _broadcast_if_no_client(self, run: _Run, event: str, data: dict[str, Any]) -> None:
        self.hub.send(event, data, run.client)
