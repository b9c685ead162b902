"""Where a prompt stands on a server, read from ``/history/{id}`` and ``/queue``.

``/history`` is the authority on completion: ComfyUI writes the entry in the same step that
takes the prompt off the running list, while WebSocket events (``execution_success`` is sent
before the entry exists) are only hints. Servers with the core jobs API are read through
:mod:`keyframed.backends.comfy.jobs` instead, into the same states.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from keyframed.backends.comfy.errors import ProtocolMismatch

__all__ = [
    "Done",
    "Failed",
    "Lost",
    "PromptState",
    "Queued",
    "Running",
    "failure",
    "parse_history",
    "queue_position",
]


@dataclass(frozen=True)
class Done:
    """The prompt ran to the end; ``outputs`` is the history entry's ``outputs``."""

    outputs: Mapping[str, Any]
    entry: Mapping[str, Any] = field(repr=False)
    status: ClassVar[str] = "done"


@dataclass(frozen=True)
class Failed:
    """The prompt ran and stopped on an ``execution_error`` or ``execution_interrupted``."""

    message: str
    node_id: str = ""
    node_type: str = ""
    interrupted: bool = False
    exception_type: str = ""
    status: ClassVar[str] = "failed"


@dataclass(frozen=True)
class Running:
    """The prompt is executing now."""

    status: ClassVar[str] = "running"


@dataclass(frozen=True)
class Queued:
    """The prompt waits in the queue; ``ahead`` prompts are before it (running ones too)."""

    status: ClassVar[str] = "queued"
    ahead: int = 0


@dataclass(frozen=True)
class Lost:
    """The server knows nothing of the prompt (never received, or it restarted)."""

    status: ClassVar[str] = "lost"


PromptState = Done | Failed | Running | Queued | Lost


def parse_history(body: Any, prompt_id: str) -> Done | Failed | None:
    """Read the answer of ``GET /history/{prompt_id}``.

    Args:
        body: the decoded JSON; ``{}`` while the id is unknown, queued or running.
        prompt_id: the id asked for.

    Returns:
        Done or Failed when the entry exists, None when it does not.

    Raises:
        ProtocolMismatch: the body is not shaped like ComfyUI's.
    """
    if not isinstance(body, Mapping):
        raise ProtocolMismatch(f"/history/{{id}} gave {type(body).__name__}, not an object")
    entry = body.get(prompt_id)
    if entry is None:
        return None
    if not isinstance(entry, Mapping):
        raise ProtocolMismatch("a history entry is not an object")
    # The entry repeats the queue item [number, prompt_id, prompt, ...]: one filed under our id
    # that holds another prompt is the server's mix-up, and its outputs are not ours.
    item = entry.get("prompt")
    owner = item[1] if isinstance(item, list) and len(item) > 1 else None
    if isinstance(owner, str) and owner != prompt_id:
        raise ProtocolMismatch(
            f"the history entry for {prompt_id} belongs to prompt {owner[:80]!r}"
        )
    outputs = entry.get("outputs") or {}
    if not isinstance(outputs, Mapping):
        raise ProtocolMismatch("a history entry's outputs is not an object")
    status = entry.get("status")
    # Servers older than the status field wrote history only for finished prompts.
    if status is None or (isinstance(status, Mapping) and status.get("status_str") == "success"):
        return Done(outputs=outputs, entry=entry)
    if not isinstance(status, Mapping):
        raise ProtocolMismatch("a history entry's status is not an object")
    return failure(status)


def failure(status: Mapping[str, Any]) -> Failed:
    """The failure a finished prompt's ``status`` reports (its last error or interruption)."""
    messages = status.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if not (isinstance(message, Sequence) and len(message) == 2):
            continue
        kind, data = message
        if not isinstance(data, Mapping):
            continue
        if kind == "execution_error":
            return Failed(
                message=str(data.get("exception_message") or "execution error").strip(),
                node_id=str(data.get("node_id") or ""),
                node_type=str(data.get("node_type") or ""),
                exception_type=str(data.get("exception_type") or ""),
            )
        if kind == "execution_interrupted":
            return Failed(
                message="execution interrupted",
                node_id=str(data.get("node_id") or ""),
                node_type=str(data.get("node_type") or ""),
                interrupted=True,
            )
    return Failed(message=f"status {status.get('status_str')!r} without an error message")


def queue_ahead(body: Any, prompt_id: str) -> int:
    """How many prompts of a ``GET /queue`` answer run or wait before ``prompt_id`` (ComfyUI
    runs pending prompts in the order of their number, the item's first element)."""
    running = body.get("queue_running", []) if isinstance(body, Mapping) else []
    pending = body.get("queue_pending", []) if isinstance(body, Mapping) else []
    items = [i for i in pending if isinstance(i, list) and len(i) > 1] \
        if isinstance(pending, list) else []
    mine = [i[0] for i in items if i[1] == prompt_id]
    if not mine:
        return 0
    before = sum(1 for i in items if isinstance(i[0], int | float) and i[0] < mine[0])
    return before + (len(running) if isinstance(running, list) else 0)


def queue_position(body: Any, prompt_id: str) -> Literal["running", "queued"] | None:
    """Find ``prompt_id`` in the answer of ``GET /queue``.

    Raises:
        ProtocolMismatch: the body is not shaped like ComfyUI's.
    """
    if not isinstance(body, Mapping):
        raise ProtocolMismatch(f"/queue gave {type(body).__name__}, not an object")
    places: tuple[tuple[str, Literal["running", "queued"]], ...] = (
        ("queue_running", "running"),
        ("queue_pending", "queued"),
    )
    for key, where in places:
        items = body.get(key, [])
        if not isinstance(items, list):
            raise ProtocolMismatch(f"/queue {key} is not a list")
        # Each item is [number, prompt_id, prompt, extra_data, outputs_to_execute].
        if any(isinstance(i, list) and len(i) > 1 and i[1] == prompt_id for i in items):
            return where
    return None
