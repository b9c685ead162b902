"""Where a prompt stands, read from ComfyUI's core jobs API (``/api/jobs``).

Newer ComfyUI (docs/comfyui-jobs-api.md says which source was read) answers
``GET /api/jobs/{id}`` with one job dict whatever the state: ``pending`` or ``in_progress``
from the queue, ``completed``, ``failed`` or ``cancelled`` from the history entry, which the
server looks at first. One request therefore says what ``/history/{id}``, ``/queue`` and
``/history/{id}`` again say on older servers, with no window in which a finishing prompt
looks lost. An unknown id is a 404 with ``{"error": "Job not found"}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from keyframed.backends.comfy.errors import ProtocolMismatch
from keyframed.backends.comfy.state import Done, Failed, Queued, Running, failure

__all__ = ["is_jobs_listing", "jobs_ahead", "parse_job"]

_FINISHED_BADLY = ("failed", "cancelled")


def is_jobs_listing(body: Any) -> bool:
    """True when ``body`` is the answer of ``GET /api/jobs`` (``jobs`` and ``pagination``)."""
    return (isinstance(body, Mapping) and isinstance(body.get("jobs"), list)
            and isinstance(body.get("pagination"), Mapping))


def parse_job(body: Any, prompt_id: str) -> Done | Failed | Running | Queued:
    """Read the answer of ``GET /api/jobs/{prompt_id}``.

    A pending job is ``Queued(ahead=0)``: how many run before it is the listing's to say
    (:func:`jobs_ahead`).

    Raises:
        ProtocolMismatch: the body is not shaped like ComfyUI's, or is another prompt's.
    """
    if not isinstance(body, Mapping):
        raise ProtocolMismatch(f"/api/jobs/{{id}} gave {type(body).__name__}, not an object")
    if body.get("id") != prompt_id:
        raise ProtocolMismatch(f"the job asked for as {prompt_id} is {str(body.get('id'))[:80]!r}")
    status = body.get("status")
    if status == "pending":
        return Queued()
    if status == "in_progress":
        return Running()
    if status == "completed":
        return _done(body, prompt_id)
    if status in _FINISHED_BADLY:
        return _failed(body, cancelled=status == "cancelled")
    raise ProtocolMismatch(f"a job's status is {str(status)[:40]!r}")


def _done(body: Mapping[str, Any], prompt_id: str) -> Done:
    outputs = body.get("outputs")
    if not isinstance(outputs, Mapping):
        raise ProtocolMismatch("a completed job has no outputs object")
    found = body.get("workflow")
    workflow: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    # Shaped like a history entry for pick_output; the jobs API does not say which nodes were
    # the prompt's outputs, so the output nodes are taken in the order the server ran them.
    item: list[Any] = [body.get("priority"), prompt_id, workflow.get("prompt"),
                       workflow.get("extra_data"), []]
    entry = {"prompt": item, "outputs": outputs, "status": body.get("execution_status")}
    return Done(outputs=outputs, entry=entry)


def _failed(body: Mapping[str, Any], cancelled: bool) -> Failed:
    # The raw status (the history entry's) names the node; execution_error is its last error.
    status = body.get("execution_status")
    if isinstance(status, Mapping) and status.get("messages"):
        found = failure(status)
        return replace(found, interrupted=True) if cancelled else found
    if cancelled:
        return Failed(message="execution interrupted", interrupted=True)
    error = body.get("execution_error")
    error = error if isinstance(error, Mapping) else {}
    return Failed(
        message=str(error.get("exception_message") or "execution error").strip(),
        node_id=str(error.get("node_id") or ""),
        node_type=str(error.get("node_type") or ""),
        exception_type=str(error.get("exception_type") or ""),
    )


def jobs_ahead(body: Any, prompt_id: str) -> int:
    """How many jobs of a ``GET /api/jobs?status=in_progress,pending`` answer run or wait
    before ``prompt_id`` (ComfyUI takes pending prompts by their priority, the ``number``)."""
    if not is_jobs_listing(body):
        raise ProtocolMismatch("/api/jobs did not answer a listing")
    jobs = [j for j in body["jobs"] if isinstance(j, Mapping)]
    running = sum(1 for j in jobs if j.get("status") == "in_progress")
    pending = [j for j in jobs if j.get("status") == "pending"
               and isinstance(j.get("priority"), int | float)]
    mine = [j["priority"] for j in pending if j.get("id") == prompt_id]
    if not mine:
        return 0
    return running + sum(1 for j in pending if j["priority"] < mine[0])
