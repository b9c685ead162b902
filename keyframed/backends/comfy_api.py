"""A Comfy API v2 surface as a backend: Comfy Cloud, a serverless deployment, comfy-api-proxy.

Built on Comfy-Org's ``comfy-sdk``. It runs the same templates and bindings as the native
backend (:mod:`keyframed.workflows.bind`); reference images become ``core/ASSET`` handles the
SDK uploads once (a ``HEAD /api/v2/assets/by-hash/{blake3}`` first, so bytes the surface
already holds are never sent again, also after a restart of keyframed). Progress comes from the
job's SSE stream; the job poll (``GET /api/v2/jobs/{id}``) is the authority on the outcome, so
a dropped stream only costs progress updates.

Exactly-once across crashes
---------------------------
On the v2 surface the *server* chooses the job id (the proxy mints a uuid4), so keyframed
cannot ask "do you know job X?" before submitting as it does on a native server. Instead each
submission carries an ``Idempotency-Key`` derived from the job like a prompt id
(:func:`keyframed.backends.comfy.prompt_ids.prompt_id_for`: project, artifact path, job, take,
attempt), and the key is recorded in the store (``v2_submissions``) *before* it is sent; the
job id is recorded as soon as the answer arrives.

What a resend under a used key returns (read in comfy-sdk 0.5.0 ``client.submit`` and
comfy-api-proxy 0.1.6 ``app.submit``): keys are single-use and reject-on-duplicate, never a
replay: ``422 idempotency_key_reuse`` (the SDK raises ``IdempotencyKeyReuse``) without the id
of the job the first send created. The proxy releases a key only when ComfyUI definitely
refused the prompt; on an unknown outcome it holds it. Without ``--state-dir`` the proxy
forgets its keys and jobs on restart (a resend then simply creates a job, and
``GET /jobs/{id}`` of a recorded id answers 404).

So after a crash, a job whose key is recorded:

* with a job id: the job is polled (404 means the surface forgot it: the next attempt's key);
* without a job id (keyframed died between the send and recording the answer): the key is
  sent again. Accepted means the first send never arrived. Refused as reused means it did:
  keyframed then lists the surface's jobs (``GET /api/v2/jobs``, the proxy has it) and adopts
  the job whose workflow carries this key in its output ``filename_prefix``. Where listing is
  not available (Comfy Cloud answers 501) the job cannot be found: keyframed submits the next
  attempt's key and the work may run twice. That is the one window where this surface is
  at-least-once instead of exactly-once, and it needs a crash in the milliseconds between
  the send and the store's commit.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Mapping
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import structlog

from keyframed.backends.base import Progress, ServerBackend
from keyframed.backends.comfy.prompt_ids import prompt_id_for
from keyframed.backends.comfy.verify import verify_image, verify_video
from keyframed.daemon.store import Store
from keyframed.errors import (
    ComfyError,
    ComfyExecutionError,
    ComfyPermanentError,
    ComfyTransientError,
    TemplateError,
)
from keyframed.fsio import sha256_file
from keyframed.handlers.recipe import Artifact
from keyframed.settings import BackendSettings, Settings
from keyframed.workflows import templates
from keyframed.workflows.bind import bind

log = structlog.get_logger(__name__)

# How many attempts of one take are skipped over (failed, forgotten, burned keys).
MAX_ATTEMPT_KEYS = 16
# Polling a v2 job: from POLL_FIRST_S, growing by half, never past POLL_CAP_S. The SDK's own
# wait grows to 5 s: a 2 s job was then seen up to 1.7 s after it ended, and a chain of
# dependent jobs lost that on every link (bench.throughput --v2-workers 16: +60 % over the
# ideal bound). The SSE stream ends a wait early where the surface grants one.
POLL_FIRST_S, POLL_CAP_S = 0.1, 1.0
TERMINAL = frozenset({"succeeded", "canceled", "failed", "expired"})
PLACEHOLDER = "kf-asset-{}.png"
# comfy-sdk reads the target from the environment at construction only; building clients for
# several surfaces in one process therefore sets it under this lock and restores it.
_ENV_LOCK = threading.Lock()


def idempotency_key_for(project_id: str, art: Artifact, job_key: str, attempt: int) -> str:
    """The Idempotency-Key of one attempt of one take of a job (deterministic)."""
    return "kf-" + prompt_id_for(f"{project_id}:{art.path}:{job_key}", art.recipe.take, attempt)


def make_client(url: str, api_key: str | None, timeout: float) -> Any:
    """A ``comfy_sdk.Comfy`` for ``url`` (the key is passed, never logged or put in a URL)."""
    from comfy_sdk import Comfy  # imported here: only projects with a v2 backend need it

    with _ENV_LOCK:
        before = os.environ.get("COMFY_BASE_URL")
        os.environ["COMFY_BASE_URL"] = url
        try:
            return Comfy(api_key=api_key, timeout=timeout, client_info="keyframed")
        finally:
            if before is None:
                os.environ.pop("COMFY_BASE_URL", None)
            else:
                os.environ["COMFY_BASE_URL"] = before


@contextlib.contextmanager
def mapped(server: str, job: str = "") -> Iterator[None]:
    """The one place where comfy-sdk's errors become transient or permanent keyframed errors.

    Transient: transport failures, 5xx, 429 (the SDK already waited out ``Retry-After`` on
    submit), a poll that ran out of time. Permanent: every other 4xx (invalid workflow,
    missing asset, bad key, reused idempotency key when not handled by the caller).
    """
    from comfy_sdk import ComfyError as SdkError
    from comfy_sdk import JobFailed

    try:
        yield
    except ComfyError:
        raise
    except JobFailed as exc:
        raise ComfyExecutionError(f"{server}: {exc} ({exc.error})", server=server,
                                  job=job) from exc
    except SdkError as exc:
        status = getattr(exc, "http_status", None)
        text = f"{server}: {exc}"
        if status is None or status >= 500 or status in (408, 429):
            raise ComfyTransientError(text, server=server, job=job) from exc
        raise ComfyPermanentError(text, server=server, job=job) from exc
    except (httpx.HTTPError, httpx.StreamError, TimeoutError, OSError) as exc:
        raise ComfyTransientError(f"{server}: {type(exc).__name__}: {exc}", server=server,
                                  job=job) from exc


class ComfyApiBackend(ServerBackend):
    """One Comfy API v2 surface: asset dedup, idempotent submission, SSE progress, the poll."""

    kind = "comfy-api"

    def __init__(self, config: BackendSettings, settings: Settings, root: Path, store: Store,
                 project_id: str, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        super().__init__(config, settings, root, store, project_id)
        key = (env.get(config.api_key_env) or "").strip() or None
        self.client = make_client(config.url, key, min(60.0, config.timeout_s))
        self._assets: dict[str, Any] = {}  # sha256 -> committed SDK asset handle
        self._jobs: dict[str, Any] = {}  # job key -> SDK job handle, for cancellation
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        self._upload_lock = threading.Lock()
        self.last_error = ""
        self.failures = 0

    # -- capability ---------------------------------------------------------------------------

    def supports(self, art: Artifact) -> bool:
        """True when the template binds; a v2 surface publishes no node or model list.

        A surface that lacks a node or model refuses the job at submit (a permanent error
        naming it); ``doctor`` says that this could not be checked in advance.
        """
        try:
            self._bind(art, [PLACEHOLDER.format(i) for i in range(len(art.recipe.inputs))], "")
        except TemplateError:
            return False
        return True

    # -- execution ----------------------------------------------------------------------------

    def _bind(self, art: Artifact, images: list[str], idem: str) -> dict[str, Any]:
        template, _ = templates.load_template(art.recipe.template, self.root)
        # The key in the output prefix lets a lost submission be found again in the job list.
        prefix = f"keyframed/{self.project_id}/{art.path.rsplit('.', 1)[0]}-{idem[-12:]}"
        return bind(template, art.recipe, images=images, output_prefix=prefix,
                    lora_loader=self.settings.loras.loader)

    def _asset(self, path: Path) -> Any:
        """The SDK asset of an input file, uploaded (or found by hash) once per process."""
        digest = sha256_file(path)
        # Held across the upload: two workers needing one new image must not both send it
        # (each would find the hash absent and upload).
        with self._upload_lock:
            asset = self._assets.get(digest)
            if asset is None:
                asset = self.client.assets.from_file(path)
                asset.commit()  # HEAD by blake3 first: bytes the surface has are not resent
                self._assets[digest] = asset
        return asset

    def _workflow(self, art: Artifact, inputs: Mapping[str, Path], idem: str) -> Any:
        """The bound graph with each reference image replaced by its asset handle."""
        names = [PLACEHOLDER.format(i) for i in range(len(art.recipe.inputs))]
        graph = self._bind(art, names, idem)
        handles = {name: self._asset(inputs[ref.path])
                   for name, ref in zip(names, art.recipe.inputs, strict=True)}
        for node in graph.values():
            for field, value in list(node.get("inputs", {}).items()):
                if isinstance(value, str) and value in handles:
                    node["inputs"][field] = handles[value]
        return self.client.workflows.from_json(graph)

    def execute(self, job_key: str, art: Artifact, inputs: Mapping[str, Path],
                on_progress: Progress) -> bytes:
        """Upload inputs once, submit idempotently (or adopt the recorded job), wait, verify."""
        with mapped(self.name, art.path):
            try:
                job = self._job_for(job_key, art, inputs)
                on_progress.submitted(job.id)
                with self._lock:
                    self._jobs[job_key] = job
                self._follow(job, on_progress)
                _wait(job, self.config.timeout_s)
                if job.status != "succeeded":
                    raise ComfyExecutionError(
                        f"{self.name}: job {job.id} of {art.path} ended {job.status}: "
                        f"{job.error}", server=self.name, job=art.path)
                data = self._download(job, art)
            except ComfyTransientError as exc:
                self.failures += 1
                self.last_error = str(exc)
                raise
            finally:
                with self._lock:
                    self._jobs.pop(job_key, None)
        self.failures = 0
        return data

    def _job_for(self, job_key: str, art: Artifact, inputs: Mapping[str, Path]) -> Any:
        """The job of this take: recorded and alive, found again, or submitted now."""
        from comfy_sdk import IdempotencyKeyReuse, NotFound

        for attempt in range(MAX_ATTEMPT_KEYS):
            idem = idempotency_key_for(self.project_id, art, job_key, attempt)
            known, job_id = self.store.submission(self.name, idem)
            if known and job_id:
                try:
                    job = self.client.jobs.get(job_id)
                except NotFound:
                    continue  # the surface forgot it (a proxy without --state-dir restarted)
                ended = job.status in ("failed", "canceled", "expired")
                if ended and job_key not in self._cancelled:
                    continue  # stays failed: this take runs again under the next key
                return job
            workflow = self._workflow(art, inputs, idem)
            self.store.intend_submission(self.name, idem)
            try:
                job = self.client.submit(workflow, idempotency_key=idem)
            except IdempotencyKeyReuse:
                job = self._find(idem)
                if job is None:
                    log.warning("v2_submission_lost", server=self.name, job=art.path,
                                key=idem)
                    continue
            self.store.note_submission(self.name, idem, job.id)
            log.info("v2_submitted", server=self.name, job=art.path, job_id=job.id)
            return job
        raise ComfyPermanentError(
            f"{self.name}: {art.path}: {MAX_ATTEMPT_KEYS} attempts of take {art.recipe.take} "
            "failed or were lost; write a retry marker for a new take", server=self.name,
            job=art.path)

    def _find(self, idem: str) -> Any | None:
        """The listed job whose workflow carries this key in an output prefix, if listable."""
        from comfy_sdk import ComfyError as SdkError

        tail = idem[-12:]
        try:
            for summary in self.client.list_jobs():
                job = self.client.jobs.get(summary.id)
                graph = job.get_workflow().graph
                prefixes = [str(n.get("inputs", {}).get("filename_prefix", ""))
                            for n in graph.values() if isinstance(n, dict)]
                if any(p.endswith(tail) for p in prefixes):
                    return job
        except SdkError as exc:  # 501 on Comfy Cloud: listing is not on every surface
            log.warning("v2_list_unavailable", server=self.name, error=str(exc))
        return None

    def _follow(self, job: Any, on_progress: Progress) -> None:
        """Progress from the SSE stream; the stream is best-effort, the poll decides."""
        from comfy_sdk import ComfyError as SdkError
        from comfy_sdk import Progress as SdkProgress

        try:
            for event in job.events():
                if isinstance(event, SdkProgress):
                    on_progress(max(0.0, min(1.0, float(event.value))))
        except (SdkError, httpx.HTTPError, httpx.StreamError) as exc:
            # e.g. 429 too_many_streams past the proxy's 8 streams: poll without progress
            log.info("v2_events_unavailable", server=self.name, job=job.id, error=str(exc))

    def _download(self, job: Any, art: Artifact) -> bytes:
        """The job's output of the artifact's kind, read back and verified."""
        video = art.kind == "video"
        outputs = list(job.outputs)
        if not outputs:
            raise ComfyPermanentError(f"{self.name}: job {job.id} of {art.path} has no output",
                                      server=self.name, job=art.path)
        data: bytes = outputs[-1].to_bytes()
        if video:
            verify_video(BytesIO(data), name=art.path)
        else:
            verify_image(BytesIO(data), size=(self.settings.image.width,
                                              self.settings.image.height),
                         max_pixels=self.settings.run.max_image_pixels, name=art.path)
        return data

    def cancel(self, job_key: str, art: Artifact) -> None:
        """Cancel the job of a superseded take if this process holds it."""
        with self._lock:
            job = self._jobs.get(job_key)
            self._cancelled.add(job_key)
        if job is None:
            return
        try:
            with mapped(self.name, art.path):
                job.cancel()
        except ComfyError as exc:
            log.warning("cancel_failed", server=self.name, job=job_key, error=str(exc))

    def health(self) -> dict[str, Any]:
        """For status.json: the URL, never the key."""
        return {"name": self.name, "kind": self.kind, "up": self.failures == 0,
                "url": self.config.shown_url, "version": None,
                "error": self.last_error if self.failures else "", "retry_at": None}

    def close(self) -> None:
        """Close the SDK's connection pool."""
        self.client.close()


def _wait(job: Any, timeout: float) -> None:
    """Poll ``job`` (the authority) until it ends, at short bounded intervals.

    Raises:
        TimeoutError: still not ended after ``timeout`` seconds (mapped as the SDK's is).
    """
    deadline = time.monotonic() + timeout
    delay = POLL_FIRST_S
    pause = threading.Event()
    while True:
        job.refresh()
        if job.status in TERMINAL:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"job {job.id} not terminal after {timeout}s ({job.status})")
        pause.wait(min(delay, left))
        delay = min(delay * 1.5, POLL_CAP_S)
