"""Run one job on one ComfyUI server, idempotently.

``run_job`` can be called again for the same job at any time (after a crash, a timeout, a
transient error) and does not run the prompt twice: it first asks the server about the job's
deterministic ``prompt_id`` and only submits when the server knows nothing of it.

An ``execution_error`` fails the job with :class:`ComfyExecutionError`. The rule that only a
*repeated* execution error is final belongs to the caller: it may run the same take once more
under ``prompt_id_for(fingerprint, take, attempt + 1)`` (the failed id stays failed in history).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import structlog

from keyframed.backends.comfy.client import ComfyClient
from keyframed.backends.comfy.progress import ProgressCallback
from keyframed.backends.comfy.state import Done, Failed, Lost, PromptState
from keyframed.backends.comfy.verify import Expect
from keyframed.errors import ComfyExecutionError, ComfyLostError, ComfyPermanentError

__all__ = ["DEFAULT_MAX_BYTES", "JobOutcome", "pick_output", "run_job"]

log = structlog.get_logger(__name__)

DEFAULT_MAX_BYTES = 2 << 30
# File kinds keyframed can verify, by extension of the server's file name.
_SUFFIXES: Mapping[str, frozenset[str]] = {
    "image": frozenset({".png", ".webp"}),
    "video": frozenset({".mp4", ".webm", ".webp"}),
}
# UI keys under which output nodes report files (SaveVideo and SaveWEBM use "images";
# VideoHelperSuite's combine node uses "gifs").
_FILE_KEYS = ("images", "videos", "gifs")


@dataclass(frozen=True)
class JobOutcome:
    """What a finished job produced.

    Attributes:
        sha256: the hash of the file written to ``dest``.
        prompt_id: the prompt that produced it.
        outputs: the history entry's ``outputs`` (all nodes).
        output: the one entry that was downloaded (``filename``, ``subfolder``, ``type``).
    """

    sha256: str
    prompt_id: str
    outputs: Mapping[str, Any] = field(repr=False)
    output: Mapping[str, Any]


def run_job(
    client: ComfyClient,
    *,
    prompt: Mapping[str, Any],
    prompt_id: str,
    dest: Path,
    expect: Expect,
    size: tuple[int, int] | None = None,
    timeout: float,
    max_lost_resubmits: int = 3,
    on_progress: ProgressCallback | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    poll: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] | None = None,
    job: str = "",
    cancelled: Callable[[], bool] = lambda: False,
    known: PromptState | None = None,
) -> JobOutcome:
    """Make sure ``prompt`` has run under ``prompt_id`` and write its output to ``dest``.

    Before anything is submitted the server is asked about ``prompt_id``: done → download;
    queued or running → wait; failed → error; unknown → submit, then wait. A prompt that
    vanishes while waited for (the server restarted) is submitted again, at most
    ``max_lost_resubmits`` times.

    Args:
        client: the server's client.
        prompt: the bound API-format workflow (inputs already uploaded).
        prompt_id: from :func:`prompt_id_for`.
        dest: where the output goes (chosen by the caller, never by the server).
        expect: ``"image"`` or ``"video"``.
        size: expected (width, height) of an image.
        timeout: seconds for the whole job, resubmissions included.
        max_lost_resubmits: how many times a lost prompt is submitted again.
        on_progress: progress hints 0..1 (called from another thread).
        max_bytes: refuse larger outputs.
        poll: seconds between history polls.
        clock: monotonic clock (tests inject one).
        sleep: pause between polls (tests inject one).
        job: for logs and errors.
        cancelled: True once the caller cancelled the prompt (a superseded job): a prompt the
            server no longer knows is then not submitted again.
        known: where the server had ``prompt_id`` when the caller just asked (saves asking
            again: three requests).

    Raises:
        ComfyExecutionError: the prompt failed on the server (message, node id and type).
        ComfyLostError: it vanished more than ``max_lost_resubmits`` times.
        ComfyPermanentError: the server rejected it, or it produced no ``expect`` output.
        ComfyTransientError: timeout, or the server could not be reached.
        OutputError: the output is not a valid file of ``size``.
    """
    deadline = clock() + timeout
    state: PromptState = known if known is not None else client.lookup(prompt_id, job=job)
    log.info(
        "comfy_job_start", job=job, server=client.name, prompt_id=prompt_id, found=state.status
    )
    losses = 0
    while True:
        if isinstance(state, Done):
            # A large video may need more than one request's deadline: the job's time is left.
            seconds = max(deadline - clock(), client.request_deadline)
            return _fetch(client, state, prompt_id, dest, expect, size, max_bytes, seconds, job)
        if isinstance(state, Failed):
            raise _execution_error(client.name, job, prompt_id, state)
        if isinstance(state, Lost):
            if cancelled():  # taken off the queue on purpose, not lost
                raise ComfyPermanentError(f"{client.name}: prompt {prompt_id} was cancelled; "
                                          "not submitted again", server=client.name, job=job)
            client.submit(prompt, prompt_id, job=job)
        state = client.wait(
            prompt_id,
            timeout=max(0.0, deadline - clock()),
            poll=poll,
            on_progress=on_progress,
            clock=clock,
            sleep=sleep,
            job=job,
        )
        if isinstance(state, Lost):
            losses += 1
            log.warning(
                "comfy_prompt_lost",
                job=job,
                server=client.name,
                prompt_id=prompt_id,
                resubmit=losses,
                of=max_lost_resubmits,
            )
            if losses > max_lost_resubmits:
                raise ComfyLostError(
                    f"{client.name}: prompt {prompt_id} vanished from queue and history "
                    f"{losses} times (server restarting?)",
                    server=client.name,
                    job=job,
                )


def _fetch(
    client: ComfyClient,
    done: Done,
    prompt_id: str,
    dest: Path,
    expect: Expect,
    size: tuple[int, int] | None,
    max_bytes: int,
    seconds: float,
    job: str,
) -> JobOutcome:
    output = pick_output(done, expect)
    if output is None:
        raise ComfyPermanentError(
            f"{client.name}: prompt {prompt_id} finished without an {expect} output",
            server=client.name,
            job=job,
        )
    digest = client.download(
        output, dest, expect=expect, size=size, max_bytes=max_bytes, deadline=seconds, job=job
    )
    return JobOutcome(sha256=digest, prompt_id=prompt_id, outputs=done.outputs, output=output)


def _execution_error(server: str, job: str, prompt_id: str, failed: Failed) -> ComfyExecutionError:
    where = f" at node {failed.node_id} ({failed.node_type})" if failed.node_id else ""
    return ComfyExecutionError(
        f"{server}: prompt {prompt_id} failed{where}: {failed.message}",
        node_id=failed.node_id,
        node_type=failed.node_type,
        server=server,
        job=job,
    )


def pick_output(done: Done, expect: Expect) -> Mapping[str, Any] | None:
    """The first file of kind ``expect`` among the output nodes of a finished prompt.

    Nodes are taken in the order of the entry's ``outputs_to_execute`` (the prompt's output
    nodes), then any others; files saved to ``output`` are preferred to ``temp`` previews.
    """
    files = [
        f for f in _files(done) if PurePosixPath(f["filename"]).suffix.lower() in _SUFFIXES[expect]
    ]
    saved = [f for f in files if f.get("type", "output") == "output"]
    chosen = saved or files
    return chosen[0] if chosen else None


def _files(done: Done) -> Iterator[Mapping[str, Any]]:
    for node in _node_order(done):
        ui = done.outputs.get(node)
        if not isinstance(ui, Mapping):
            continue
        for key in _FILE_KEYS:
            items = ui.get(key)
            for item in items if isinstance(items, list) else []:
                if isinstance(item, Mapping) and isinstance(item.get("filename"), str):
                    yield item


def _node_order(done: Done) -> list[str]:
    prompt = done.entry.get("prompt")
    # History's "prompt" is [number, prompt_id, prompt, extra_data, outputs_to_execute].
    wanted = prompt[4] if isinstance(prompt, Sequence) and len(prompt) > 4 else []
    first = [str(n) for n in wanted if str(n) in done.outputs] if isinstance(wanted, list) else []
    return first + [n for n in done.outputs if n not in first]
