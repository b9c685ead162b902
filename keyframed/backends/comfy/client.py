"""A synchronous client for one ComfyUI-compatible server.

Every request goes through :func:`keyframed.backends.comfy.errors.mapped` (the one place that
decides transient versus permanent) and through the client's :class:`RetryPolicy` (which
retries only transient errors). The client is safe to share between threads: httpx's client
is, and the little state it keeps (uploads done, prompts watched) is under a lock.

The bearer token is sent as an ``Authorization`` header and kept only inside the httpx client
and the WebSocket listener: it is not an attribute, not in ``repr``, not in any log line and not
in any error message.
"""

from __future__ import annotations

import mimetypes
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlsplit

import httpx
import structlog

from keyframed import __version__
from keyframed.backends.comfy.deadline import DeadlineTransport
from keyframed.backends.comfy.errors import (
    ProtocolMismatch,
    is_transient_status,
    mapped,
    summarise_node_errors,
)
from keyframed.backends.comfy.files import (
    UPLOAD_SUBFOLDER,
    load_name,
    stream_view,
    upload_name,
    view_params,
)
from keyframed.backends.comfy.info import (
    MODEL_FOLDERS,
    ServerInfo,
    parse_devices,
    parse_name_list,
)
from keyframed.backends.comfy.jobs import is_jobs_listing, jobs_ahead, parse_job
from keyframed.backends.comfy.progress import ProgressCallback, ProgressListener
from keyframed.backends.comfy.retry import RetryPolicy
from keyframed.backends.comfy.state import (
    Done,
    Failed,
    Lost,
    PromptState,
    Queued,
    Running,
    parse_history,
    queue_ahead,
    queue_position,
)
from keyframed.backends.comfy.verify import DEFAULT_MAX_PIXELS, Expect, verify_image, verify_video
from keyframed.errors import ComfyTransientError
from keyframed.fsio import atomic_writer
from keyframed.redact import register as register_secret
from keyframed.settings import mask_url

# UPLOAD_SUBFOLDER and upload_name are re-exported for callers that import them from here.
__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_TIMEOUT",
    "UPLOAD_SUBFOLDER",
    "ComfyClient",
    "upload_name",
]

log = structlog.get_logger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
# No request (answer included) may take longer than this, however slowly the bytes trickle in.
DEFAULT_DEADLINE = 120.0
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Downloads up to this size stay in memory while they are verified; larger ones spill to disk.
_SPOOL_BYTES = 32 << 20


class ComfyClient:
    """Talks to one ComfyUI server: preflight, upload, submit, lookup, wait, download, cancel.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:8188`` (a path prefix is kept).
        name: the backend name used in logs and errors.
        token: a bearer token, read by the caller from the environment; never logged.
        client_id: ComfyUI's ``client_id`` for WebSocket events; a fresh UUID by default.
        timeout: httpx timeouts per network operation (connect, each read, each write).
        request_deadline: seconds one request may take in all, its answer included
            (downloads get the time :meth:`download` is given instead).
        transport: an httpx transport (tests pass ``httpx.MockTransport``).
        retry: how transient errors are retried.
        websocket: listen to ``/ws`` for progress hints while waiting.
        known_uploads: sha256 → LoadImage name of uploads recorded earlier (the daemon's
            store). Each is checked once with ``/view`` before it is trusted, so a server whose
            input folder was emptied gets the file again.
        on_upload: called with (sha256, name) after each real upload, to record it.
        max_image_pixels: larger downloaded images are refused.
    """

    def __init__(
        self,
        base_url: str,
        *,
        name: str,
        token: str | None = None,
        client_id: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        request_deadline: float = DEFAULT_DEADLINE,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        websocket: bool = True,
        known_uploads: Mapping[str, str] | None = None,
        on_upload: Callable[[str, str], None] | None = None,
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.name = name
        self.client_id = client_id or str(uuid.uuid4())
        self.retry = retry or RetryPolicy()
        headers = {"User-Agent": f"keyframed/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
            register_secret(token)  # scrubbed from every log line and error message
        password = _url_password(base_url)
        if password:
            register_secret(password)  # http://user:pw@host: pw is never shown either
        # Every request goes through the deadline: a server that answers byte by byte must
        # not hold a worker (or the loop, in a preflight) for longer than that.
        bounded = DeadlineTransport(transport or httpx.HTTPTransport(), request_deadline)
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout, transport=bounded
        )
        self.request_deadline = request_deadline
        self._lock = threading.Lock()
        self._uploaded: dict[str, str] = {}
        # One lock per file: jobs running side by side on this server that need the same
        # image send it once (checking and sending under one lock).
        self._upload_locks: dict[str, threading.Lock] = {}
        self._known = dict(known_uploads or {})
        self._on_upload = on_upload
        self._max_pixels = max_image_pixels
        self._closed = False
        # Whether the server has the core jobs API: None until asked (each preflight asks
        # again, so a server upgraded or downgraded behind the same address is followed).
        self._jobs_api: bool | None = None
        self._listener = (
            ProgressListener(self._ws_url(), headers, server=name) if websocket else None
        )

    def __repr__(self) -> str:
        return f"<ComfyClient name={self.name!r} url={mask_url(self.url)!r}>"

    def __enter__(self) -> ComfyClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The base URL without any user:password part."""
        return str(self._http.base_url.copy_with(username=None, password=None))

    @property
    def listening(self) -> bool:
        """True while the progress WebSocket is connected."""
        return self._listener is not None and self._listener.connected

    def start_listening(self) -> None:
        """Open the progress WebSocket now rather than at the first :meth:`wait`.

        Useful before submitting, so that no early progress event is missed; a no-op when
        the client was made with ``websocket=False``.
        """
        if self._listener is not None:
            self._listener.start()

    def close(self) -> None:
        """Close the WebSocket listener and the connection pool; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._listener is not None:
            self._listener.close()
        self._http.close()

    # -- requests ------------------------------------------------------------------------

    def _get_json(self, path: str, *, job: str, what: str, params: Any = None) -> Any:
        """GET a JSON document, retrying transient failures."""
        for attempt in self.retry.retrying(server=self.name, job=job, what=what):
            with attempt, mapped(self.name, job):
                response = self._http.get(path, params=params)
                response.raise_for_status()
                return response.json()
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _post_json(self, path: str, *, job: str, what: str) -> Any:
        """POST without a body to a route that answers JSON, retrying transient failures."""
        for attempt in self.retry.retrying(server=self.name, job=job, what=what):
            with attempt, mapped(self.name, job):
                response = self._http.post(path)
                response.raise_for_status()
                return response.json()
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _post(self, path: str, body: Any, *, job: str, what: str) -> None:
        """POST JSON to a route that answers with an empty body (``/queue``, ``/interrupt``)."""
        for attempt in self.retry.retrying(server=self.name, job=job, what=what):
            with attempt, mapped(self.name, job):
                self._http.post(path, json=body).raise_for_status()

    # -- preflight -----------------------------------------------------------------------

    def preflight(self, folders: tuple[str, ...] = MODEL_FOLDERS) -> ServerInfo:
        """Read what the server offers: node classes, model files, version and devices.

        Args:
            folders: the model folders to list (those the server does not have are empty).

        Raises:
            ComfyTransientError: the server cannot be reached.
            ComfyPermanentError: it does not answer like ComfyUI.
        """
        object_info = self._get_json("/object_info", job="", what="object_info")
        stats = self._get_json("/system_stats", job="", what="system_stats")
        listed = self._get_json("/models", job="", what="models")
        with mapped(self.name):
            if not isinstance(object_info, Mapping):
                raise ProtocolMismatch("/object_info is not an object")
            version, devices = parse_devices(stats)
            present = set(parse_name_list(listed, "/models"))
        models = {f: self._model_files(f) for f in folders if f in present}
        self._jobs_api = self._detect_jobs_api("")
        info = ServerInfo(self.name, version, devices, frozenset(object_info), models, object_info,
                          jobs_api=self._jobs_api)
        log.info(
            "comfy_preflight",
            server=self.name,
            version=version,
            jobs_api=self._jobs_api,
            nodes=len(info.node_classes),
            models={f: len(n) for f, n in models.items()},
            vram_free=info.vram_free,
        )
        return info

    def uses_jobs_api(self, job: str = "") -> bool:
        """Whether prompts are looked up and cancelled through the core jobs API.

        Asked of the server once (at the first preflight or lookup), not per request.
        """
        if self._jobs_api is None:
            self._jobs_api = self._detect_jobs_api(job)
        return self._jobs_api

    def _detect_jobs_api(self, job: str) -> bool:
        """Ask ``GET /api/jobs`` once: a listing means the jobs API, a 404 (or 405, or any
        answer that is not a listing) means an older server, read through ``/history``."""
        params: dict[str, str | int] = {"status": "pending", "limit": 1}
        for attempt in self.retry.retrying(server=self.name, job=job, what="jobs_api"):
            with attempt, mapped(self.name, job):
                response = self._http.get("/api/jobs", params=params)
                if response.status_code in (404, 405):
                    return False
                response.raise_for_status()
                if "json" not in response.headers.get("content-type", ""):
                    return False
                return is_jobs_listing(response.json())
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _model_files(self, folder: str) -> frozenset[str]:
        body = self._get_json(f"/models/{folder}", job="", what="models")
        with mapped(self.name):
            return frozenset(parse_name_list(body, f"/models/{folder}"))

    # -- uploads -------------------------------------------------------------------------

    def upload(self, local: Path, sha256: str, *, job: str = "") -> str:
        """Upload an input image once per server and return the name LoadImage must use.

        The file goes up as ``keyframed/kf-<sha256[:20]><ext>`` without overwrite; ComfyUI
        answers with the name it kept (the same name for the same bytes, or a renamed one
        if another file had that name), and that answer is what is returned.

        Args:
            local: the file to send.
            sha256: its content hash (hex), computed by the caller.
            job: the job this upload is for, for logs.

        Raises:
            ValueError: ``sha256`` is not a lowercase hex sha256.
            ComfyTransientError, ComfyPermanentError: the upload failed.
        """
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        with self._lock:
            gate = self._upload_locks.setdefault(sha256, threading.Lock())
        with gate:
            return self._upload_once(local, sha256, job)

    def _upload_once(self, local: Path, sha256: str, job: str) -> str:
        with self._lock:
            done = self._uploaded.get(sha256)
            known = self._known.get(sha256)
        if done is not None:
            return done
        if known is not None and self._input_exists(known, job):
            return self._remember(sha256, known)
        name = self._send_upload(local, upload_name(local, sha256), job)
        log.info("comfy_uploaded", job=job, server=self.name, name=name, bytes=local.stat().st_size)
        if self._on_upload is not None:
            self._on_upload(sha256, name)
        return self._remember(sha256, name)

    def forget_uploads(self) -> None:
        """Forget which files this server has, so each is checked or sent again.

        For when the server may have lost its input folder (a reinstall, a new machine behind
        the same address): ComfyUI then rejects prompts with "Invalid image file".
        """
        with self._lock:
            self._known.update(self._uploaded)
            self._uploaded.clear()

    def _remember(self, sha256: str, name: str) -> str:
        with self._lock:
            self._uploaded[sha256] = name
        return name

    def _input_exists(self, name: str, job: str) -> bool:
        """Ask ``/view`` whether an upload recorded earlier is still in the input folder."""
        subfolder, _, filename = name.rpartition("/")
        params = {"filename": filename, "subfolder": subfolder, "type": "input"}
        for attempt in self.retry.retrying(server=self.name, job=job, what="view_input"):
            with (
                attempt,
                mapped(self.name, job),
                self._http.stream("GET", "/view", params=params) as response,
            ):
                # Only the status matters; the body is never read. Anything but a success or a
                # "try later" means the file is not usable there: upload it again.
                if is_transient_status(response.status_code):
                    response.raise_for_status()
                return response.is_success
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _send_upload(self, local: Path, filename: str, job: str) -> str:
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        fields = {"subfolder": UPLOAD_SUBFOLDER, "type": "input", "overwrite": "false"}
        for attempt in self.retry.retrying(server=self.name, job=job, what="upload"):
            with attempt, mapped(self.name, job), local.open("rb") as handle:
                response = self._http.post(
                    "/upload/image", files={"image": (filename, handle, mime)}, data=fields
                )
                response.raise_for_status()
                return load_name(response.json())
        raise AssertionError("unreachable: tenacity re-raises the last error")

    # -- prompts -------------------------------------------------------------------------

    def submit(self, prompt: Mapping[str, Any], prompt_id: str, *, job: str = "") -> None:
        """Queue ``prompt`` under ``prompt_id`` (``POST /prompt``).

        A retry after a transient failure first asks the server whether the first attempt
        got through (its answer may have been lost), so one call never queues it twice.

        Raises:
            ComfyPermanentError: the server rejected the prompt (HTTP 400); the message
                names each failing node, its class and ComfyUI's message.
            ComfyTransientError: the server could not be reached.
        """
        body = {"prompt": prompt, "prompt_id": prompt_id, "client_id": self.client_id}
        for attempt in self.retry.retrying(server=self.name, job=job, what="submit"):
            with attempt:
                if attempt.retry_state.attempt_number > 1 and not isinstance(
                    self.lookup(prompt_id, job=job), Lost
                ):
                    log.info(
                        "comfy_submit_got_through", job=job, server=self.name, prompt_id=prompt_id
                    )
                    return
                self._post_prompt(body, prompt_id, job)
                return

    def _post_prompt(self, body: Mapping[str, Any], prompt_id: str, job: str) -> None:
        with mapped(self.name, job):
            response = self._http.post("/prompt", json=body)
            if response.status_code == 409:
                # Newer ComfyUI refuses an id it already has queued or running: an earlier
                # attempt got through (its answer was lost), which is what was wanted.
                log.info("comfy_submit_got_through", job=job, server=self.name,
                         prompt_id=prompt_id, answer=409)
                return
            response.raise_for_status()
            answer = response.json()
            if not isinstance(answer, Mapping):
                raise ProtocolMismatch("POST /prompt did not answer an object")
            if answer.get("prompt_id", prompt_id) != prompt_id:
                # Without our id the prompt cannot be found again; this server is too old.
                raise ProtocolMismatch(
                    f"the server queued the prompt as {answer.get('prompt_id')!r}, not under "
                    "the id keyframed chose (ComfyUI before prompt_id support?)"
                )
        node_errors = answer.get("node_errors")
        if isinstance(node_errors, Mapping) and node_errors:
            # Valid outputs still run; the others were dropped by the server.
            log.warning(
                "comfy_prompt_node_errors",
                job=job,
                server=self.name,
                prompt_id=prompt_id,
                errors=summarise_node_errors(node_errors),
            )
        log.info(
            "comfy_submitted",
            job=job,
            server=self.name,
            prompt_id=prompt_id,
            number=answer.get("number"),
        )

    def lookup(self, prompt_id: str, *, job: str = "") -> PromptState:
        """Where ``prompt_id`` stands: Done, Failed, Running, Queued or Lost.

        With the core jobs API one ``GET /api/jobs/{id}`` says it (and, while queued, the
        listing of waiting jobs how many are ahead). Otherwise ``/history`` is read first
        and again after ``/queue``: a prompt that finished between the two reads is then
        found in history instead of being taken for lost.
        """
        if self.uses_jobs_api(job):
            state = self._job(prompt_id, job)
            if state is not None:
                return state
        return self._legacy_lookup(prompt_id, job)

    def _job(self, prompt_id: str, job: str) -> PromptState | None:
        """The jobs API's answer; None when the route is gone (the server was downgraded)."""
        for attempt in self.retry.retrying(server=self.name, job=job, what="job"):
            with attempt, mapped(self.name, job):
                response = self._http.get(f"/api/jobs/{_segment(prompt_id)}")
                if response.status_code == 404:
                    if _json_error(response):  # {"error": "Job not found"}
                        return Lost()
                    log.info("comfy_jobs_api_gone", server=self.name)
                    self._jobs_api = False
                    return None
                response.raise_for_status()
                state = parse_job(response.json(), prompt_id)
        if isinstance(state, Queued):
            listing = self._get_json("/api/jobs", job=job, what="jobs",
                                     params={"status": "in_progress,pending"})
            with mapped(self.name, job):
                return Queued(ahead=jobs_ahead(listing, prompt_id))
        return state

    def _legacy_lookup(self, prompt_id: str, job: str) -> PromptState:
        state = self._history(prompt_id, job)
        if state is not None:
            return state
        body = self._get_json("/queue", job=job, what="queue")
        with mapped(self.name, job):
            where = queue_position(body, prompt_id)
        if where == "running":
            return Running()
        if where == "queued":
            return Queued(ahead=queue_ahead(body, prompt_id))
        return self._history(prompt_id, job) or Lost()

    def _history(self, prompt_id: str, job: str) -> Done | Failed | None:
        body = self._get_json(f"/history/{_segment(prompt_id)}", job=job, what="history")
        with mapped(self.name, job):
            return parse_history(body, prompt_id)

    def wait(
        self,
        prompt_id: str,
        *,
        timeout: float,
        poll: float = 1.0,
        on_progress: ProgressCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        job: str = "",
    ) -> Done | Failed | Lost:
        """Poll :meth:`lookup` until the prompt is done, failed or lost.

        While waiting, the WebSocket (when enabled) reports progress to ``on_progress``
        (0..1, called from another thread) and cuts a poll short when the prompt finishes;
        without it, polling alone gives the same answer.

        Args:
            prompt_id: the prompt.
            timeout: give up after this many seconds of ``clock``.
            poll: seconds between lookups.
            on_progress: progress hints, thread-safe callback.
            clock: monotonic time source (tests inject one).
            sleep: how to pause between polls; by default, a wait the WebSocket can cut short.
            job: for logs.

        Raises:
            ComfyTransientError: still queued or running at the deadline, or the server
                could not be reached after retries.
        """
        deadline = clock() + timeout
        wake = (
            self._listener.watch(prompt_id, on_progress)
            if self._listener is not None
            else threading.Event()
        )
        try:
            while True:
                state = self.lookup(prompt_id, job=job)
                if isinstance(state, Done | Failed | Lost):
                    return state
                # Where the prompt is in the server's line (0: running), for status.json; a
                # progress callback may take it (the daemon's does), a plain function not.
                note_place = getattr(on_progress, "queued", None)
                if callable(note_place):
                    note_place(state.ahead + 1 if isinstance(state, Queued) else 0)
                remaining = deadline - clock()
                if remaining <= 0:
                    raise ComfyTransientError(
                        f"{self.name}: prompt {prompt_id} still {state.status} after {timeout:g} s",
                        server=self.name,
                        job=job,
                    )
                _pause(wake, min(poll, remaining), sleep)
        finally:
            if self._listener is not None:
                self._listener.unwatch(prompt_id)

    # -- outputs -------------------------------------------------------------------------

    def download(
        self,
        output: Mapping[str, Any],
        dest: Path,
        *,
        expect: Expect,
        size: tuple[int, int] | None = None,
        max_bytes: int,
        deadline: float | None = None,
        job: str = "",
    ) -> str:
        """Fetch one output with ``/view``, check it, and write it atomically to ``dest``.

        The server's file name is only a query parameter; ``dest`` is chosen by the caller.
        The body is streamed with a byte cap, verified (PNG/WebP decoded structure and size;
        video container magic), and only then written. On any failure ``dest`` is untouched
        and no temp file is left.

        Args:
            output: ``{"filename", "subfolder", "type"}`` from the history entry.
            dest: where to write.
            expect: ``"image"`` or ``"video"``.
            size: expected (width, height) of an image, or None.
            max_bytes: refuse bodies larger than this.
            deadline: seconds one download attempt may take in all (a large video may need
                longer than other requests); the client's request deadline by default.
            job: for logs.

        Returns:
            The sha256 hex digest of the written bytes.

        Raises:
            OutputError: the body is too large, or not a valid image/video of ``size``.
            ComfyTransientError, ComfyPermanentError: the request failed.
        """
        with mapped(self.name, job):
            params = view_params(output)
        for attempt in self.retry.retrying(server=self.name, job=job, what="download"):
            with attempt, tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as buffer:
                with mapped(self.name, job):
                    digest, count = stream_view(self._http, params, buffer, max_bytes, deadline)
                self._verify(buffer, expect, size, params["filename"])
                buffer.seek(0)
                with atomic_writer(dest) as handle:
                    shutil.copyfileobj(buffer, handle)
                log.info(
                    "comfy_downloaded",
                    job=job,
                    server=self.name,
                    dest=dest.name,
                    bytes=count,
                    sha256=digest,
                )
                return digest
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _verify(
        self, buffer: IO[bytes], expect: Expect, size: tuple[int, int] | None, name: str
    ) -> None:
        if expect == "image":
            verify_image(buffer, size=size, max_pixels=self._max_pixels, name=name)
        else:
            verify_video(buffer, name=name)

    # -- cancelling ----------------------------------------------------------------------

    def cancel(self, prompt_id: str, *, job: str = "") -> None:
        """Remove ``prompt_id`` from the queue, or interrupt it if it is running.

        With the core jobs API that is one atomic ``POST /api/jobs/{id}/cancel``. Otherwise
        ``/interrupt`` is sent only when the prompt is the one running: servers before
        ComfyUI 0.8 ignore the ``prompt_id`` and would stop whatever runs.
        """
        if self.uses_jobs_api(job):
            body = self._post_json(f"/api/jobs/{_segment(prompt_id)}/cancel", job=job,
                                   what="cancel")
            cancelled = isinstance(body, Mapping) and body.get("cancelled") is True
            log.info("comfy_cancelled", job=job, server=self.name, prompt_id=prompt_id,
                     cancelled=cancelled)
            return
        self._post("/queue", {"delete": [prompt_id]}, job=job, what="queue_delete")
        body = self._get_json("/queue", job=job, what="queue")
        with mapped(self.name, job):
            running = queue_position(body, prompt_id) == "running"
        if running:
            self._post("/interrupt", {"prompt_id": prompt_id}, job=job, what="interrupt")
        log.info(
            "comfy_cancelled", job=job, server=self.name, prompt_id=prompt_id, interrupted=running
        )

    def _ws_url(self) -> str:
        base = self._http.base_url
        scheme = "wss" if base.scheme == "https" else "ws"
        url = base.copy_with(scheme=scheme, path=base.path.rstrip("/") + "/ws")
        return str(url.copy_set_param("clientId", self.client_id))


def _pause(wake: threading.Event, seconds: float, sleep: Callable[[float], None] | None) -> None:
    if sleep is not None:
        sleep(seconds)
        return
    wake.wait(seconds)
    wake.clear()


def _json_error(response: httpx.Response) -> bool:
    """True for a JSON ``{"error": ...}`` body (the jobs API's own 404, not a missing route)."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, Mapping) and "error" in body


def _segment(value: str) -> str:
    """Quote a value for use as one URL path segment."""
    return quote(value, safe="")


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None
