"""ComfyUI's core jobs API (``/api/jobs``), as newer ComfyUI serves it beside ``/history``.

Written from ComfyUI's own source (``comfy_execution/jobs.py`` and the routes in
``server.py``; the commits read are in docs/comfyui-jobs-api.md), not copied: a job is one
dict whatever its state, built from the queue (``pending``, ``in_progress``) or from the
history entry (``completed``, ``failed``, ``cancelled``). Looking a job up checks history
first, then the running and pending items, so a prompt that finishes while the server
answers is never reported as unknown. Keys whose value is None are left out (ComfyUI's
``prune_dict``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from .state import PromptQueue, QueueItem

PENDING, IN_PROGRESS = "pending", "in_progress"
COMPLETED, FAILED, CANCELLED = "completed", "failed", "cancelled"
STATUSES = (PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED)
PREVIEWABLE = frozenset({"images", "video", "audio", "3d", "text"})
_END_EVENTS = ("execution_success", "execution_error", "execution_interrupted")


def _pruned(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _workflow_id(extra_data: Mapping[str, Any]) -> Any:
    workflow = (extra_data.get("extra_pnginfo") or {}).get("workflow") or {}
    return workflow.get("id") if isinstance(workflow, Mapping) else None


def queue_job(item: QueueItem, status: str) -> dict[str, Any]:
    """A pending or running prompt as a job (no outputs yet)."""
    return _pruned({
        "id": item.prompt_id, "status": status, "priority": item.number,
        "create_time": item.extra_data.get("create_time"),
        "outputs_count": 0, "previewable_outputs_count": 0,
        "workflow_id": _workflow_id(item.extra_data),
    })


def _events(status: Mapping[str, Any]) -> dict[str, Any]:
    """Start and end times, the error, the node errors and whether it was interrupted."""
    found: dict[str, Any] = {"start": None, "end": None, "error": None, "node_errors": [],
                             "interrupted": False}
    for entry in status.get("messages") or []:
        if not (isinstance(entry, list | tuple) and len(entry) >= 2 and
                isinstance(entry[1], Mapping)):
            continue
        event, data = entry[0], entry[1]
        if event == "execution_start":
            found["start"] = data.get("timestamp")
        elif event in _END_EVENTS:
            found["end"] = data.get("timestamp")
            found["error"] = data if event == "execution_error" else found["error"]
            found["interrupted"] = found["interrupted"] or event == "execution_interrupted"
        elif event == "execution_node_error":
            found["node_errors"].append(data)
    return found


def _file_items(outputs: Mapping[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for node_id, ui in outputs.items():
        if not isinstance(ui, Mapping):
            continue
        for media, items in ui.items():
            if media == "animated" or not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, dict):
                    yield node_id, media, item


def _preview(outputs: Mapping[str, Any]) -> tuple[int, int, dict[str, Any] | None]:
    """Output count, previewable count, and the preview (a saved file first, then any)."""
    count = previewable = 0
    saved: dict[str, Any] | None = None
    other: dict[str, Any] | None = None
    for node_id, media, item in _file_items(outputs):
        count += 1
        if media not in PREVIEWABLE:
            continue
        previewable += 1
        enriched = {**item, "nodeId": node_id, "mediaType": item.get("mediaType", media)}
        if item.get("type") == "output" and saved is None:
            saved = enriched
        elif other is None:
            other = enriched
    return count, previewable, saved or other


def history_job(prompt_id: str, entry: Mapping[str, Any], full: bool) -> dict[str, Any]:
    """A finished prompt as a job; ``full`` adds outputs, status, errors and the workflow."""
    number, _, prompt, extra_data = entry["prompt"][:4]
    status = entry.get("status") or {}
    found = _events(status)
    status_str = status.get("status_str")
    state = COMPLETED
    if status_str == "error":
        state = CANCELLED if found["interrupted"] else FAILED
    outputs = entry.get("outputs") or {}
    count, previewable, preview = _preview(outputs)
    errors = len(found["node_errors"]) or int(found["error"] is not None)
    job = _pruned({
        "id": prompt_id, "status": state, "priority": number,
        "create_time": extra_data.get("create_time"),
        "execution_start_time": found["start"], "execution_end_time": found["end"],
        "execution_error": found["error"],
        "completion_status": "success" if status_str == "success" else None,
        "has_errors": bool(errors) if status else None,
        "execution_error_count": errors if status else None,
        "outputs_count": count, "previewable_outputs_count": previewable,
        "preview_output": preview, "workflow_id": _workflow_id(extra_data),
    })
    if full:
        job.update(outputs=outputs, execution_status=entry.get("status"),
                   execution_errors=found["node_errors"],
                   workflow={"prompt": prompt, "extra_data": extra_data})
    return job


def get_job(queue: PromptQueue, prompt_id: str) -> dict[str, Any] | None:
    """``GET /api/jobs/{id}``: history first, then running, then pending; None if unknown."""
    entry = queue.history_item(prompt_id).get(prompt_id)
    if entry is not None:
        return history_job(prompt_id, entry, full=True)
    for items, status in ((queue.running(), IN_PROGRESS), (queue.pending(), PENDING)):
        for item in items:
            if item.prompt_id == prompt_id:
                return queue_job(item, status)
    return None


def _positive(query: Mapping[str, str], key: str) -> int | str | None:
    if key not in query:
        return None
    try:
        return int(query[key])
    except ValueError:
        return f"{key} must be an integer"


def _query_error(query: Mapping[str, str]) -> str | None:
    wanted = [s.strip().lower() for s in query.get("status", "").split(",") if s.strip()]
    bad = [s for s in wanted if s not in STATUSES]
    if bad:
        return (f"Invalid status value(s): {', '.join(bad)}. "
                f"Valid values: {', '.join(STATUSES)}")
    if query.get("sort_by", "created_at").lower() not in ("created_at", "execution_duration"):
        return "sort_by must be 'created_at' or 'execution_duration'"
    if query.get("sort_order", "desc").lower() not in ("asc", "desc"):
        return "sort_order must be 'asc' or 'desc'"
    limit, offset = _positive(query, "limit"), _positive(query, "offset")
    if isinstance(limit, str) or isinstance(offset, str):
        return limit if isinstance(limit, str) else str(offset)
    if limit is not None and limit <= 0:
        return "limit must be a positive integer"
    return None


def _duration(job: Mapping[str, Any]) -> int:
    start, end = job.get("execution_start_time", 0), job.get("execution_end_time", 0)
    return end - start if start and end else 0


def list_jobs(queue: PromptQueue, query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    """``GET /api/jobs``: (HTTP status, body) with ``jobs`` and ``pagination``."""
    error = _query_error(query)
    if error is not None:
        return 400, {"error": error}
    wanted = [s.strip().lower() for s in query.get("status", "").split(",") if s.strip()]
    wanted = wanted or list(STATUSES)
    jobs = [queue_job(i, IN_PROGRESS) for i in queue.running()] if IN_PROGRESS in wanted else []
    jobs += [queue_job(i, PENDING) for i in queue.pending()] if PENDING in wanted else []
    for prompt_id, entry in queue.history().items():
        job = history_job(prompt_id, entry, full=False)
        jobs += [job] if job["status"] in wanted else []
    if query.get("workflow_id"):
        jobs = [j for j in jobs if j.get("workflow_id") == query["workflow_id"]]
    by_duration = query.get("sort_by", "created_at").lower() == "execution_duration"
    jobs.sort(key=_duration if by_duration else lambda j: j.get("create_time", 0),
              reverse=query.get("sort_order", "desc").lower() == "desc")
    total = len(jobs)
    offset = max(0, int(query.get("offset", 0)))
    limit = int(query["limit"]) if "limit" in query else None
    page = jobs[offset:] if limit is None else jobs[offset:offset + limit]
    more = offset + len(page) < total
    return 200, {"jobs": page,
                 "pagination": {"offset": offset, "limit": limit, "total": total,
                                "has_more": more}}


def is_job_id(value: Any) -> bool:
    """A job id in canonical lowercase hyphenated UUID form (what ComfyUI accepts)."""
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False
