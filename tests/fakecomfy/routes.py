"""HTTP and WebSocket routes of the fake ComfyUI (every route also under ``/api``)."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import mimetypes
import os
import socket
import struct
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from .core import Core
from .executor import now_ms
from .faults import WRONG_SIZE, Drop, Flood, Hang, Respond, Trickle
from .files import inside, upload_name, view_path
from .jobs import get_job, is_job_id, list_jobs
from .models import MODEL_FOLDERS
from .records import AcceptedPrompt, UploadRecord
from .render import png_bytes
from .state import QueueItem
from .validation import validate_prompt

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")
FORCED_DOWNLOAD = {
    "text/html",
    "text/html-sandboxed",
    "application/xhtml+xml",
    "text/javascript",
    "text/css",
}
MAX_UPLOAD_SIZE = 100 * 1024 * 1024
# What the jobs-API look-alike reports: the comfyui_version.py of the snapshot its shapes were
# read from (docs/comfyui-jobs-api.md).
JOBS_API_VERSION = "0.38.1"
FEATURES = {
    "supports_preview_metadata": True,
    "max_upload_size": MAX_UPLOAD_SIZE,
    "extension": {"manager": {"supports_v4": True}},
}


def _empty_ok() -> web.Response:
    # POST /queue, /interrupt, /free, /history answer 200 with an empty body, not JSON.
    return web.Response(status=200)


def _reset_connection(request: web.Request) -> None:
    """Close the client's connection with a TCP reset (SO_LINGER 0), mid-request."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _canned(action: Respond) -> web.Response:
    if action.body is None:
        return web.Response(status=action.status)
    if isinstance(action.body, bytes):
        return web.Response(status=action.status, body=action.body)
    if isinstance(action.body, str):
        return web.Response(status=action.status, text=action.body)
    return web.json_response(action.body, status=action.status)


class Routes:
    """The handlers, bound to one :class:`Core`."""

    def __init__(self, core: Core, jobs_api: bool = False) -> None:
        """Bind handlers to a server core; ``jobs_api`` serves the core jobs API too."""
        self.core = core
        self.jobs_api = jobs_api

    def app(self) -> web.Application:
        """An aiohttp application with every route and the fault middleware."""
        app = web.Application(client_max_size=MAX_UPLOAD_SIZE, middlewares=[self._faults])
        table: list[tuple[str, str, Handler]] = [
            ("GET", "/", self.index),
            ("GET", "/ws", self.websocket),
            ("POST", "/prompt", self.post_prompt),
            ("GET", "/prompt", self.get_prompt),
            ("GET", "/queue", self.get_queue),
            ("POST", "/queue", self.post_queue),
            ("POST", "/interrupt", self.post_interrupt),
            ("POST", "/free", self.post_free),
            ("GET", "/history", self.get_history),
            ("GET", "/history/{prompt_id}", self.get_history_item),
            ("POST", "/history", self.post_history),
            ("POST", "/upload/image", self.upload_image),
            ("GET", "/view", self.view),
            ("GET", "/object_info", self.object_info),
            ("GET", "/object_info/{node_class}", self.object_info_class),
            ("GET", "/system_stats", self.system_stats),
            ("GET", "/models", self.models),
            ("GET", "/models/{folder}", self.models_folder),
            ("GET", "/embeddings", self.embeddings),
            ("GET", "/features", self.features),
        ]
        # ComfyUI registers these as /api/jobs..., and serves every route again under /api.
        # The 0.8.0 look-alike keeps the cancel route: comfy-api-proxy cancels through it.
        table.append(("POST", "/api/jobs/{prompt_id}/cancel", self.cancel_job))
        if self.jobs_api:
            table += [
                ("GET", "/api/jobs", self.get_jobs),
                ("GET", "/api/jobs/{prompt_id}", self.get_job),
                ("POST", "/api/jobs/cancel", self.cancel_jobs),
            ]
        for method, path, handler in table:
            app.router.add_route(method, path, handler)
            if path != "/":
                app.router.add_route(method, "/api" + path, handler)
        return app

    @web.middleware
    async def _faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.core.records.add_request(request.method, request.path)
        action = self.core.faults.take(request.method, request.path)
        if isinstance(action, Hang):
            while not action.released.is_set():
                if self.core.closing:
                    _reset_connection(request)
                    raise asyncio.CancelledError
                await asyncio.sleep(0.01)
        elif isinstance(action, Respond):
            return _canned(action)
        elif isinstance(action, Flood):
            return await self._flood(request, action.total)
        elif isinstance(action, Drop) and not action.after_handling:
            _reset_connection(request)
            return web.Response(status=500)
        response = await handler(request)
        if isinstance(action, Drop):
            _reset_connection(request)
        if isinstance(action, Trickle):
            return await self._trickle(request, response, action.interval)
        return response

    async def _flood(self, request: web.Request, total: int) -> web.StreamResponse:
        """A JSON array of ``total`` bytes, chunked: a server gone mad, or a hostile one."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = memoryview(b"0," * (512 * 1024))
        sent = 0
        try:
            await response.write(b"[")
            while sent < total and not self.core.closing:
                await response.write(chunk)
                sent += len(chunk)
            await response.write(b"0]")
        except (ConnectionError, RuntimeError):
            pass  # the client gave up, which is what a careful client does
        return response

    async def _trickle(
        self, request: web.Request, response: web.StreamResponse, interval: float
    ) -> web.StreamResponse:
        """Send ``response`` again, one byte of body every ``interval`` seconds."""
        if isinstance(response, web.FileResponse):
            body = Path(str(response._path)).read_bytes()
        elif isinstance(response, web.Response) and isinstance(response.body, bytes):
            body = response.body
        else:
            return response
        slow = web.StreamResponse(status=response.status)
        slow.content_type = response.content_type
        slow.content_length = len(body)
        await slow.prepare(request)
        try:
            for index in range(len(body)):
                if self.core.closing:
                    break
                await slow.write(body[index : index + 1])
                await asyncio.sleep(interval)
        except (ConnectionError, RuntimeError):
            pass  # the client gave up, which is what a careful client does
        return slow

    # -- prompts --------------------------------------------------------------------------
    async def post_prompt(self, request: web.Request) -> web.Response:
        """Validate and queue a prompt (comfyui-api.md §1)."""
        body = await request.json()
        queue = self.core.queue
        if "number" in body:
            number: float = float(body["number"])
        else:
            number = queue.next_number(front="front" in body and bool(body["front"]))
        if "prompt" not in body:
            error = {
                "type": "no_prompt",
                "message": "No prompt provided",
                "details": "No prompt provided",
                "extra_info": {},
            }
            return web.json_response({"error": error, "node_errors": {}}, status=400)
        received = copy.deepcopy(body)
        prompt = body["prompt"]
        if self.jobs_api and body.get("prompt_id") is not None:
            refused = self._refused_id(body["prompt_id"])
            if refused is not None:
                return refused
        prompt_id = str(body.get("prompt_id", uuid.uuid4()))
        if self.jobs_api and body.get("prompt_id") is None:
            prompt_id = str(uuid.uuid4())  # absent or null: the server mints the id
        targets = body.get("partial_execution_targets")
        result = validate_prompt(prompt, self.core.catalog, self.core.custom_checks(), targets)
        extra_data = body.get("extra_data", {})
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        if not result.ok:
            return web.json_response(
                {"error": result.error, "node_errors": result.node_errors}, status=400
            )
        for key in SENSITIVE_EXTRA_DATA_KEYS:
            extra_data.pop(key, None)
        extra_data["create_time"] = now_ms()
        queue.put(QueueItem(number, prompt_id, prompt, extra_data, result.outputs))
        self.core.records.add_prompt(AcceptedPrompt(prompt_id, number, received))
        return web.json_response(
            {"prompt_id": prompt_id, "number": number, "node_errors": result.node_errors}
        )

    def _refused_id(self, prompt_id: Any) -> web.Response | None:
        """Newer ComfyUI's rules for a client's id: a canonical UUID, not already queued."""
        if not is_job_id(prompt_id):
            error = {
                "type": "invalid_prompt_id",
                "message": "prompt_id must be a valid UUID",
                "details": "prompt_id must be a UUID string in canonical lowercase hyphenated "
                "form; omit it to let the server generate one",
                "extra_info": {},
            }
            return web.json_response({"error": error, "node_errors": {}}, status=400)
        queued = [*self.core.queue.pending(), *self.core.queue.running()]
        if any(item.prompt_id == prompt_id for item in queued):
            return web.json_response({"error": "prompt_id already exists"}, status=409)
        return None

    async def get_prompt(self, request: web.Request) -> web.Response:
        """``{"exec_info": {"queue_remaining": N}}``."""
        return web.json_response(self.core.queue_info())

    async def get_queue(self, request: web.Request) -> web.Response:
        """Running and pending items (pending in raw heap order)."""
        queue = self.core.queue
        return web.json_response(
            {
                "queue_running": [item.as_list() for item in queue.running()],
                "queue_pending": [item.as_list() for item in queue.pending()],
            }
        )

    async def post_queue(self, request: web.Request) -> web.Response:
        """``{"clear": true}`` and/or ``{"delete": [ids]}`` on pending items only."""
        body = await request.json()
        if body.get("clear"):
            self.core.queue.wipe()
        if "delete" in body:
            for prompt_id in body["delete"]:
                self.core.queue.delete(prompt_id)
        return _empty_ok()

    async def post_interrupt(self, request: web.Request) -> web.Response:
        """Interrupt the running prompt; with ``{"prompt_id"}`` only if that one runs."""
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = {}
        prompt_id = body.get("prompt_id")
        self.core.interrupt(prompt_id if prompt_id else None)
        return _empty_ok()

    # -- the core jobs API (newer ComfyUI; jobs.py) ----------------------------------------
    async def get_jobs(self, request: web.Request) -> web.Response:
        """``GET /api/jobs``: every job, filtered, sorted and paged; 400 on a bad query."""
        status, body = list_jobs(self.core.queue, request.rel_url.query)
        return web.json_response(body, status=status)

    async def get_job(self, request: web.Request) -> web.Response:
        """``GET /api/jobs/{id}``: one job, with outputs once finished; 404 if unknown."""
        job = get_job(self.core.queue, request.match_info["prompt_id"])
        if job is None:
            return web.json_response({"error": "Job not found"}, status=404)
        return web.json_response(job)

    def _cancel(self, prompt_id: str) -> bool:
        """Dequeue a pending prompt or interrupt the running one; False when it was neither."""
        if self.core.queue.delete(prompt_id):
            return True
        return self.core.interrupt(prompt_id)

    async def cancel_job(self, request: web.Request) -> web.Response:
        """``POST /api/jobs/{id}/cancel``: ``{"cancelled": bool}``, 200 also for unknown ids."""
        return web.json_response({"cancelled": self._cancel(request.match_info["prompt_id"])})

    async def cancel_jobs(self, request: web.Request) -> web.Response:
        """``POST /api/jobs/cancel`` with ``{"job_ids": [...]}``; malformed ids are a 400."""
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return web.json_response({"error": "Request body must be valid JSON"}, status=400)
        ids = body.get("job_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            return web.json_response({"error": "job_ids must be a list"}, status=400)
        bad = [i if isinstance(i, str) else repr(i) for i in ids if not is_job_id(i)]
        if bad:
            return web.json_response(
                {"error": "job_ids contains invalid id(s)", "invalid_ids": bad}, status=400
            )
        cancelled = [self._cancel(i) for i in ids]
        return web.json_response({"cancelled": any(cancelled)})

    async def post_free(self, request: web.Request) -> web.Response:
        """``free_memory`` also drops the node-output cache."""
        body = await request.json()
        if body.get("free_memory"):
            self.core.cache.clear()
        return _empty_ok()

    # -- history --------------------------------------------------------------------------
    async def get_history(self, request: web.Request) -> web.Response:
        """``?max_items=N&offset=K``; a non-integer raises (500), as in ComfyUI."""
        query = request.rel_url.query
        max_items = int(query["max_items"]) if "max_items" in query else None
        offset = int(query["offset"]) if "offset" in query else -1
        return web.json_response(self.core.queue.history(max_items, offset))

    async def get_history_item(self, request: web.Request) -> web.Response:
        """``{id: entry}``, or ``{}`` while unknown, queued or running."""
        return web.json_response(self.core.queue.history_item(request.match_info["prompt_id"]))

    async def post_history(self, request: web.Request) -> web.Response:
        """``{"clear": true}`` and/or ``{"delete": [ids]}``."""
        body = await request.json()
        if body.get("clear"):
            self.core.queue.wipe_history()
        if "delete" in body:
            for prompt_id in body["delete"]:
                self.core.queue.delete_history(prompt_id)
        return _empty_ok()

    # -- files ----------------------------------------------------------------------------
    async def upload_image(self, request: web.Request) -> web.Response:
        """Multipart upload with ComfyUI's rename/dedupe/traversal rules (§4)."""
        post = await request.post()
        image: Any = post.get("image")
        kind = post.get("type")
        kind = "input" if kind is None else str(kind)
        root = self.core.dirs.by_type(kind)
        if root is None:
            raise ValueError(f"unknown upload type {kind!r}")  # ComfyUI fails with a 500 too
        if not (image and image.file) or not image.filename:
            return web.Response(status=400)
        subfolder = str(post.get("subfolder", ""))
        folder = os.path.join(root, os.path.normpath(subfolder))
        if not inside(root, os.path.join(folder, image.filename)):
            return web.Response(status=400)
        data = image.file.read()
        os.makedirs(folder, exist_ok=True)
        overwrite = post.get("overwrite") in ("true", "1")
        name, write = upload_name(Path(folder), image.filename, data, overwrite)
        if write:
            Path(folder, name).write_bytes(data)
        self.core.records.add_upload(
            UploadRecord(name, subfolder, kind, _sha256(data), len(data), write)
        )
        return web.json_response({"name": name, "subfolder": subfolder, "type": kind})

    async def view(self, request: web.Request) -> web.StreamResponse:
        """Serve an output/input/temp file (§5), or a hostile body when a fault says so."""
        query = dict(request.rel_url.query)
        alias = self.core.faults.aliased(
            query.get("type", "output"), query.get("subfolder", ""), query.get("filename", "")
        )
        found = Path(alias) if alias is not None else view_path(self.core.dirs, query)
        if isinstance(found, int):
            return web.Response(status=found)
        mode = self.core.faults.view_mode
        if mode == "not_png":
            return web.Response(body=b"<html>this is not an image</html>", content_type="image/png")
        if mode == "huge":
            return await self._huge(request)
        if mode == "wrong_size":
            return web.Response(body=png_bytes("wrong-size", WRONG_SIZE), content_type="image/png")
        content_type = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        if content_type in FORCED_DOWNLOAD:
            content_type = "application/octet-stream"
        headers = {"Content-Disposition": f'filename="{found.name}"', "Content-Type": content_type}
        return web.FileResponse(found, headers=headers)

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        total = self.core.faults.huge_view_bytes
        if self.core.faults.huge_view_declared:
            response.content_length = total
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        # Streamed from one reused buffer: gigabytes cost the server a mebibyte of memory.
        zeros = memoryview(bytes(1024 * 1024))
        chunk: bytes | memoryview = b"\x89PNG\r\n\x1a\n" + bytes(len(zeros) - 8)
        sent = 0
        try:
            while sent < total:
                piece = chunk[: total - sent]
                await response.write(piece)
                sent += len(piece)
                chunk = zeros
        except (ConnectionError, RuntimeError):
            pass  # the client gave up, which is what a careful client does
        return response

    # -- introspection --------------------------------------------------------------------
    async def object_info(self, request: web.Request) -> web.Response:
        """Every node class, with current model and input-image lists."""
        return web.json_response(self.core.catalog.object_info())

    async def object_info_class(self, request: web.Request) -> web.Response:
        """``{class: info}``, or ``{}`` for an unknown class."""
        name = request.match_info["node_class"]
        catalog = self.core.catalog
        return web.json_response({name: catalog.class_info(name)} if catalog.has(name) else {})

    async def system_stats(self, request: web.Request) -> web.Response:
        """The shape ComfyUI 0.8.0 reports for a ``--cpu`` server."""
        ram = 25276502016
        system = {
            "os": sys.platform,
            "ram_total": ram,
            "ram_free": ram // 2,
            "comfyui_version": JOBS_API_VERSION if self.jobs_api else "0.8.0",
            "required_frontend_version": "1.35.9",
            "installed_templates_version": "0.7.67",
            "required_templates_version": "0.7.67",
            "python_version": sys.version,
            "pytorch_version": "fake",
            "embedded_python": False,
            "argv": ["main.py", "--cpu", "--fake"],
        }
        device = {
            "name": "cpu",
            "type": "cpu",
            "index": None,
            "vram_total": ram,
            "vram_free": ram // 2,
            "torch_vram_total": ram,
            "torch_vram_free": ram // 2,
        }
        return web.json_response({"system": system, "devices": [device]})

    async def models(self, request: web.Request) -> web.Response:
        """The model folder names."""
        return web.json_response(list(MODEL_FOLDERS))

    async def models_folder(self, request: web.Request) -> web.Response:
        """Sorted installed files of a folder; 404 for an unknown folder."""
        folder = request.match_info["folder"]
        if folder not in MODEL_FOLDERS:
            return web.Response(status=404)
        return web.json_response(self.core.catalog.models(folder))

    async def embeddings(self, request: web.Request) -> web.Response:
        """Embedding names without their extension."""
        names = self.core.catalog.models("embeddings")
        return web.json_response([os.path.splitext(n)[0] for n in names])

    async def features(self, request: web.Request) -> web.Response:
        """The server feature flags."""
        return web.json_response(FEATURES)

    async def index(self, request: web.Request) -> web.Response:
        """A stand-in for the frontend page."""
        return web.Response(text="<html><body>fake ComfyUI</body></html>", content_type="text/html")

    # -- websocket ------------------------------------------------------------------------
    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        """``/ws?clientId=...``: status with ``sid`` first, then the prompt events (§6)."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.rel_url.query.get("clientId") or uuid.uuid4().hex
        hub, executor = self.core.hub, self.core.executor
        hub.register(sid, ws)
        try:
            hub.send("status", {"status": self.core.queue_info(), "sid": sid}, sid)
            if executor.client == sid and executor.last_node is not None:
                hub.send("executing", {"node": executor.last_node}, sid)
            first = True
            async for message in ws:
                if first and message.type == WSMsgType.TEXT and _is_feature_flags(message.data):
                    hub.send("feature_flags", FEATURES, sid)
                first = False
        finally:
            hub.unregister(sid, ws)
        return ws


def _is_feature_flags(text: str) -> bool:
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        return False
    return isinstance(message, dict) and message.get("type") == "feature_flags"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
