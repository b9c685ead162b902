"""A native ComfyUI server as a backend: preflight, uploads, binding, idempotent jobs, download."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import structlog

from keyframed.backends.base import Progress
from keyframed.backends.comfy.client import DEFAULT_DEADLINE, ComfyClient
from keyframed.backends.comfy.info import ServerInfo
from keyframed.backends.comfy.prompt_ids import prompt_id_for
from keyframed.backends.comfy.retry import RetryPolicy
from keyframed.backends.comfy.run import DEFAULT_MAX_BYTES, run_job
from keyframed.backends.comfy.state import Failed, PromptState
from keyframed.daemon.store import Store
from keyframed.errors import ComfyError, ComfyPermanentError, ComfyTransientError, TemplateError
from keyframed.fsio import sha256_file
from keyframed.handlers.recipe import Artifact
from keyframed.redact import register as register_secret
from keyframed.settings import BackendSettings, Settings
from keyframed.workflows import templates
from keyframed.workflows.bind import bind
from keyframed.workflows.schema_check import check_prompt

log = structlog.get_logger(__name__)

DOWNLOAD_PREFIX = "kf-dl-"
# How many failed runs of one take are skipped over before the last id is reused.
MAX_ATTEMPT_IDS = 16
# ComfyUI's LoadImage check when a file is not in its input folder.
INPUTS_LOST = "Invalid image file"
MODEL_FOLDER = {"unet": "diffusion_models", "unet_high": "diffusion_models",
                "unet_low": "diffusion_models", "clip": "text_encoders", "vae": "vae"}


class ComfyBackend:
    """One ComfyUI server: preflight, uploads, binding, idempotent submission, download."""

    kind = "comfyui"

    def __init__(self, config: BackendSettings, settings: Settings, root: Path, store: Store,
                 project_id: str, env: Mapping[str, str] | None = None,
                 client: ComfyClient | None = None) -> None:
        env = os.environ if env is None else env
        self.name = config.name
        self.max_in_flight = config.max_in_flight
        self.config = config
        self.settings = settings
        self.root = root
        self.store = store
        self.project_id = project_id
        run = settings.run
        self.client = client or ComfyClient(
            config.url, name=config.name, token=token_for(settings, config, env),
            timeout=_timeouts(config.timeout_s),
            request_deadline=min(DEFAULT_DEADLINE, config.timeout_s),
            retry=RetryPolicy(attempts=run.max_attempts, initial=run.retry_initial_s,
                              max_delay=run.retry_max_s),
            # Uploads recorded in the store are checked once against the server, so a server
            # whose input folder was wiped gets the files again.
            known_uploads=store.uploads(config.name),
            on_upload=lambda digest, name: store.add_upload(config.name, digest, name),
        )
        self._info: ServerInfo | None = None
        self._info_at = 0.0
        self._lock = threading.Lock()
        self.down_until = 0.0
        self.retry_at = 0.0
        self.failures = 0
        self.last_error = ""
        # Prompts of superseded jobs: their workers must not submit them again when the
        # server, having deleted them from its queue, no longer knows them.
        self._cancelled: set[str] = set()

    # -- capability -----------------------------------------------------------------------

    def info(self, max_age: float = 300.0) -> ServerInfo | None:
        """The server's node classes and model lists, refreshed now and then."""
        with self._lock:
            now = time.monotonic()
            if self._info is None or now - self._info_at > max_age:
                try:
                    self._info = self.client.preflight()
                    self._info_at = now
                    self.mark_up()
                except ComfyError as exc:
                    self.mark_down(str(exc))
                    return None
            return self._info

    def mark_down(self, why: str) -> None:
        """Take the backend out of rotation until a probe after the backoff answers.

        The backoff is the job retries' (``run.retry_initial_s`` doubling up to
        ``run.retry_max_s``): a server that comes back is used again within that time.
        """
        run = self.settings.run
        self.failures += 1
        self.last_error = why
        wait = min(run.retry_max_s, run.retry_initial_s * 2.0 ** min(self.failures, 20))
        self.down_until = time.monotonic() + wait
        self.retry_at = time.time() + wait  # wall clock, for status.json and the loop's sleep
        log.warning("backend_down", server=self.name, error=why, retry_in=round(wait, 3))

    def mark_up(self) -> None:
        """The backend answered."""
        if self.failures:
            log.info("backend_up", server=self.name)
        self.failures = 0
        self.down_until = 0.0

    @property
    def up(self) -> bool:
        """False from a failure until a later request or probe succeeds."""
        return self.failures == 0

    def ready(self) -> bool:
        """True when jobs may go to the server now.

        A backend that is down gets no job until its backoff has passed and a fresh
        preflight answers, so an outage costs probes, not the retries of the jobs.
        """
        if self.failures == 0:
            return True
        if time.monotonic() < self.down_until:
            return False
        return self.info(max_age=0.0) is not None

    def supports(self, art: Artifact) -> bool:
        """True when the server is ready and has every node, model and LoRA the job needs."""
        if not self.ready():
            return False
        info = self.info()
        if info is None:
            return False
        try:
            prompt = self._bind(art, [f"probe-{i}.png" for i in range(len(art.recipe.inputs))])
        except TemplateError:
            return False
        classes = {n["class_type"] for n in prompt.values()}
        if not classes <= set(info.node_classes):
            return False
        models = [(MODEL_FOLDER[k], v) for k, v in art.recipe.models.items() if k in MODEL_FOLDER]
        models += [("loras", lo.file) for lo in art.recipe.loras]
        return all(info.has_model(folder, name) for folder, name in models)

    # -- execution ----------------------------------------------------------------------------

    def _bind(self, art: Artifact, images: list[str]) -> dict[str, Any]:
        template, _ = templates.load_template(art.recipe.template, self.root)
        prefix = f"keyframed/{self.project_id}/{art.path.rsplit('.', 1)[0]}"
        return bind(template, art.recipe, images=images, output_prefix=prefix,
                    lora_loader=self.settings.loras.loader)

    def _upload(self, inputs: Mapping[str, Path], art: Artifact, job_key: str) -> list[str]:
        return [self.client.upload(inputs[ref.path], sha256_file(inputs[ref.path]), job=job_key)
                for ref in art.recipe.inputs]

    def execute(self, job_key: str, art: Artifact, inputs: Mapping[str, Path],
                on_progress: Progress) -> bytes:
        """Upload inputs once, bind, submit idempotently, wait, download and verify.

        A server that lost its input folder (restarted on a fresh disk) rejects the prompt
        with "Invalid image file": the inputs are then checked and sent again, once.
        """
        try:
            return self._run(job_key, art, inputs, on_progress)
        except ComfyPermanentError as exc:
            if INPUTS_LOST not in str(exc) or not art.recipe.inputs:
                raise
            log.warning("comfy_inputs_lost", server=self.name, job=art.path, error=str(exc))
            self.client.forget_uploads()
            return self._run(job_key, art, inputs, on_progress)

    def _run(self, job_key: str, art: Artifact, inputs: Mapping[str, Path],
             on_progress: Progress) -> bytes:
        prompt = self._bind(art, self._upload(inputs, art, job_key))
        info = self.info()
        if info is not None:
            problems = check_prompt(prompt, info.object_info, info.models)
            if problems:
                raise TemplateError(f"{art.recipe.template}: " + "; ".join(problems))
        video = art.kind == "video"
        size = None if video else (self.settings.image.width, self.settings.image.height)
        # An image of the expected size cannot be larger than this; a video gets the default.
        cap = DEFAULT_MAX_BYTES if size is None else image_byte_cap(*size)
        prompt_id, known = self._choose_prompt(job_key, art)
        self._cancelled.discard(prompt_id)  # a job for this very prompt is wanted (again)
        on_progress.submitted(prompt_id)
        state = self.root / ".keyframed"
        with tempfile.TemporaryDirectory(prefix=DOWNLOAD_PREFIX, dir=state) as tmp:
            dest = Path(tmp) / ("out.mp4" if video else "out.png")
            try:
                run_job(self.client, prompt=prompt, prompt_id=prompt_id, dest=dest,
                        expect="video" if video else "image", size=size,
                        timeout=self.config.timeout_s,
                        max_lost_resubmits=self.settings.run.lost_resubmits,
                        on_progress=on_progress, max_bytes=cap, job=art.path,
                        cancelled=lambda: prompt_id in self._cancelled, known=known)
            except ComfyTransientError as exc:
                self.mark_down(str(exc))
                raise
            self.mark_up()
            return dest.read_bytes()

    def _prompt_id(self, job_key: str, art: Artifact) -> str:
        """The job's prompt id (see :meth:`_choose_prompt`)."""
        return self._choose_prompt(job_key, art)[0]

    def _choose_prompt(self, job_key: str, art: Artifact) -> tuple[str, PromptState]:
        """The job's prompt id, its first attempt the server has not seen fail, and where
        the server has it (so the job does not ask again).

        A failed prompt stays failed in ComfyUI's history, so running the same recipe again
        after a failure (a new job, or ``generate-keyframe`` asked again) needs the next id.
        The artifact's path is part of the id: two artifacts can have the very same recipe (a
        scene with a fixed Seed and one pose at both ends), and under one id a server ran
        the prompt twice, or one artifact's job waited on the other's prompt.
        """
        key = f"{self.project_id}:{art.path}:{job_key}"
        for attempt in range(MAX_ATTEMPT_IDS):
            prompt_id = prompt_id_for(key, art.recipe.take, attempt)
            state = self.client.lookup(prompt_id, job=job_key)
            if not isinstance(state, Failed):
                break
        return prompt_id, state

    def cancel(self, job_key: str, art: Artifact) -> None:
        """Remove the prompt from the queue or interrupt it."""
        try:
            prompt_id = self._prompt_id(job_key, art)
            self._cancelled.add(prompt_id)
            self.client.cancel(prompt_id, job=job_key)
        except ComfyError as exc:
            log.warning("cancel_failed", server=self.name, job=job_key, error=str(exc))

    def health(self) -> dict[str, Any]:
        """Reachability and version for status.json; when down, when it is next probed."""
        info = self._info
        return {
            "name": self.name, "kind": self.kind, "up": self.up,
            "url": self.config.shown_url, "version": info.version if info else None,
            "error": self.last_error if not self.up else "",
            "retry_at": None if self.up else round(self.retry_at, 3),
        }

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()


def image_byte_cap(width: int, height: int) -> int:
    """The most bytes a PNG or WebP of this size may take, metadata included.

    Uncompressed RGBA with PNG's filter bytes is ``4 * w * h + h``; twice that plus 16 MiB
    leaves room for ComfyUI's embedded workflow text. A server sending more is refused early
    instead of filling memory or the disk.
    """
    return 8 * width * height + (16 << 20)


def _timeouts(job_seconds: float) -> httpx.Timeout:
    """httpx timeouts per network operation, never longer than the job's own timeout."""
    return httpx.Timeout(min(60.0, job_seconds), connect=min(5.0, job_seconds))


def token_for(settings: Settings, config: BackendSettings, env: Mapping[str, str]) -> str | None:
    """The bearer token for a backend: from the environment, and only for a server the user's
    own configuration names (DESIGN §6 "Secrets"); a server that only a project's
    keyframed.toml names gets none, and a line in the log says why."""
    token = env.get(config.token_env) or None
    if token is None or settings.may_send_token(config):
        return token
    register_secret(token)  # never sent, and never shown either
    log.warning("token_withheld", backend=config.name, server=config.shown_url,
                why="only the project's keyframed.toml names this server; name it in your own "
                    "config.toml to send it the token")
    return None
