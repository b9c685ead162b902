"""Fault injection for the fake ComfyUI, switchable at run time from any thread.

HTTP faults match a route pattern: ``"POST /prompt"``, ``"/history/*"`` (any method) or ``"*"``.
Paths are matched without the ``/api`` prefix, with shell-style globs.
"""

from __future__ import annotations

import fnmatch
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

# The execution error recorded in prompt_qwen_models_empty_execution_error.json.
DEFAULT_EXCEPTION_TYPE = "safetensors._safetensors_rust.SafetensorError"
DEFAULT_EXCEPTION_MESSAGE = "Error while deserializing header: header too small\n"
DEFAULT_TRACEBACK = (
    '  File "/opt/ComfyUI/execution.py", line 518, in execute\n    output_data, output_ui, '
    "has_subgraph, has_pending_tasks = await get_output_data(prompt_id, unique_id, obj, "
    "input_data_all)\n",
    '  File "/opt/ComfyUI/comfy/utils.py", line 64, in load_torch_file\n    with '
    'safetensors.safe_open(ckpt, framework="pt", device=device.type) as f:\n',
)
WRONG_SHAPE_BODY: Any = ["wrong", "shape"]

ViewMode = Literal["normal", "not_png", "huge", "wrong_size"]
# The size of the valid PNG served in "wrong_size" mode (no keyframed job asks for it).
WRONG_SIZE = (24, 16)


def normalise_path(path: str) -> str:
    """Drop the ``/api`` prefix the frontend uses, so both forms match the same rule."""
    return path[4:] if path.startswith("/api/") else path


def route_matches(pattern: str, method: str, path: str) -> bool:
    """Whether ``METHOD /path`` matches a rule pattern (``"GET /view"``, ``"/history/*"``)."""
    want_method, _, want_path = pattern.strip().rpartition(" ")
    if want_method and want_method.upper() != method.upper():
        return False
    return fnmatch.fnmatchcase(normalise_path(path), normalise_path(want_path))


@dataclass
class Respond:
    """Answer with this status and body instead of handling the request."""

    status: int
    body: Any = None


@dataclass
class Drop:
    """Reset the connection; with ``after_handling`` the request is handled first."""

    after_handling: bool = False


@dataclass
class Hang:
    """Hold the request until the rule is released."""

    released: threading.Event


@dataclass
class Trickle:
    """Handle the request, then send the body one byte every ``interval`` seconds."""

    interval: float


@dataclass
class Flood:
    """Answer 200 with a JSON array of ``total`` bytes, streamed (chunked, no length)."""

    total: int


Action = Respond | Drop | Hang | Trickle | Flood


@dataclass
class _Rule:
    pattern: str
    action: Action
    remaining: int | None  # None: until released


@dataclass(frozen=True)
class PromptFailure:
    """How the next prompts fail: at the first executed node of ``node_type`` (any if None)."""

    node_type: str | None = None
    exception_type: str = DEFAULT_EXCEPTION_TYPE
    exception_message: str = DEFAULT_EXCEPTION_MESSAGE
    traceback: tuple[str, ...] = DEFAULT_TRACEBACK


@dataclass
class _Hold:
    node_id: str | None
    class_type: str | None
    held: list[tuple[str, str]] = field(default_factory=list)


class Faults:
    """Thread-safe switches read by the server's routes and executor."""

    def __init__(self, job_seconds: float = 0.0) -> None:
        """Create with no fault active; ``job_seconds`` is the simulated duration of a job."""
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._failures: list[PromptFailure] = []
        self._hold: _Hold | None = None
        self._held = threading.Condition(self._lock)
        self.job_seconds = job_seconds
        # ComfyUI sends previews only with --preview-method other than none (its default).
        self.previews = False
        # A duration per prompt (its API-format graph) instead of ``job_seconds``: benchmarks
        # spread job times the way real ones spread.
        self.job_time: Callable[[dict[str, Any]], float] | None = None
        self.ws_silent = False
        self.hostile_output_name: str | None = None
        # What SaveVideo writes instead of its MP4-shaped stand-in: a real video a test made
        # (the stand-in's samples do not decode).
        self.video_bytes: bytes | None = None
        self.hostile_output_subfolder: str | None = None
        self.view_mode: ViewMode = "normal"
        self.huge_view_bytes = 256 * 1024 * 1024
        # False: the huge body is sent without Content-Length (chunked), so only counting the
        # bytes received can stop it.
        self.huge_view_declared = True
        self._aliases: dict[tuple[str, str, str], str] = {}

    def seconds_for(self, prompt: dict[str, Any]) -> float:
        """How long the prompt's job lasts."""
        return self.job_time(prompt) if self.job_time is not None else self.job_seconds

    # -- HTTP -----------------------------------------------------------------------------
    def fail_next(self, route: str, n: int = 1, status: int = 500, body: Any = None) -> None:
        """Answer the next ``n`` matching requests with ``status`` (and ``body``, if given)."""
        self._add(_Rule(route, Respond(status, body), n))

    def wrong_shape_next(self, route: str, n: int = 1, body: Any = WRONG_SHAPE_BODY) -> None:
        """Answer the next ``n`` matching requests 200 with JSON of an unexpected shape."""
        self._add(_Rule(route, Respond(200, body), n))

    def drop_next(self, route: str, n: int = 1, after_handling: bool = False) -> None:
        """Reset the connection of the next ``n`` matching requests.

        Args:
            route: The route pattern.
            n: How many requests.
            after_handling: Handle the request first (a prompt is queued, an upload stored),
                then reset instead of answering: the client cannot tell whether it worked.
        """
        self._add(_Rule(route, Drop(after_handling), n))

    def flood_next(self, route: str, n: int = 1, total: int = 4 << 30) -> None:
        """Answer the next ``n`` matching requests with ``total`` bytes of JSON (4 GiB by
        default), streamed from a reused buffer so the server itself stays small."""
        self._add(_Rule(route, Flood(total), n))

    def hang(self, route: str) -> None:
        """Never answer matching requests until :meth:`release` (then they are handled)."""
        self._add(_Rule(route, Hang(threading.Event()), None))

    def trickle(self, route: str, interval: float = 0.05, n: int | None = None) -> None:
        """Answer matching requests normally, but one byte of body every ``interval`` seconds.

        A server (or a proxy) that is this slow never trips a per-read timeout; only a
        deadline on the whole request stops it. Lasts until :meth:`release` unless ``n``.
        """
        self._add(_Rule(route, Trickle(interval), n))

    def release(self, route: str | None = None) -> None:
        """End :meth:`hang` and :meth:`trickle` for ``route`` (all routes if None).

        Held requests go on; bodies already trickling carry on at their pace.
        """
        with self._lock:
            keep = []
            for rule in self._rules:
                if isinstance(rule.action, Hang | Trickle) and route in (None, rule.pattern):
                    if isinstance(rule.action, Hang):
                        rule.action.released.set()
                else:
                    keep.append(rule)
            self._rules = keep

    def take(self, method: str, path: str) -> Action | None:
        """The action for a request (consuming one use of a counted rule), or None."""
        with self._lock:
            for rule in self._rules:
                if route_matches(rule.pattern, method, path):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining <= 0:
                            self._rules.remove(rule)
                    return rule.action
        return None

    def _add(self, rule: _Rule) -> None:
        if rule.remaining is not None and rule.remaining < 1:
            raise ValueError("n must be at least 1")
        with self._lock:
            self._rules.append(rule)

    # -- hostile outputs -------------------------------------------------------------------
    def alias(self, kind: str, subfolder: str, filename: str, real: str) -> None:
        """Serve the file at ``real`` for ``/view`` of a hostile (type, subfolder, filename).

        A hostile server serves whatever names it reports, so the client's own checks, not the
        server's path rules, must be what refuses them.
        """
        with self._lock:
            self._aliases[(kind, subfolder, filename)] = real

    def aliased(self, kind: str, subfolder: str, filename: str) -> str | None:
        """The real file behind a hostile name reported earlier, if any."""
        with self._lock:
            return self._aliases.get((kind, subfolder, filename))

    # -- execution ------------------------------------------------------------------------
    def fail_next_prompts(
        self,
        n: int = 1,
        node_type: str | None = None,
        exception_type: str = DEFAULT_EXCEPTION_TYPE,
        exception_message: str = DEFAULT_EXCEPTION_MESSAGE,
    ) -> None:
        """Make the next ``n`` executed prompts end in ``execution_error``.

        The error happens at the first executed node of class ``node_type`` (any class when
        None; the last node to run when no node matches), with a real ComfyUI error's shape.
        """
        failure = PromptFailure(node_type, exception_type, exception_message)
        with self._lock:
            self._failures.extend([failure] * n)

    def take_prompt_failure(self) -> PromptFailure | None:
        """The failure planned for the prompt that starts now, if any."""
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def hold_jobs(self, node_id: str | None = None, class_type: str | None = None) -> None:
        """Pause jobs when they reach a node (by id, class, or the first node run) until released.

        A held job is "running" for /queue; an interrupt ends it. A fully cached job runs no
        node and is not held. Like every fault, a hold survives :meth:`FakeComfy.restart`.
        """
        with self._lock:
            self._hold = _Hold(node_id, class_type)

    def release_jobs(self) -> None:
        """Let held jobs go on and stop holding new ones."""
        with self._lock:
            self._hold = None

    def should_hold(self, node_id: str, class_type: str, first: bool) -> bool:
        """Whether the executor must pause before running this node."""
        with self._lock:
            hold = self._hold
            if hold is None:
                return False
            if hold.node_id is None and hold.class_type is None:
                return first
            return node_id == hold.node_id or class_type == hold.class_type

    def note_held(self, prompt_id: str, node_id: str) -> None:
        """Record that the executor is now paused (wakes :meth:`wait_held`)."""
        with self._held:
            if self._hold is not None:
                self._hold.held.append((prompt_id, node_id))
            self._held.notify_all()

    def holding(self) -> bool:
        """Whether jobs are still to be held (False once released)."""
        with self._lock:
            return self._hold is not None

    def wait_held(self, timeout: float = 10.0) -> tuple[str, str]:
        """Block until a job is paused by :meth:`hold_jobs`; return (prompt_id, node_id).

        Raises:
            TimeoutError: No job was held in time.
        """
        deadline = time.monotonic() + timeout
        with self._held:
            while self._hold is None or not self._hold.held:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no job reached the hold point")
                self._held.wait(left)
            return self._hold.held[-1]

    # -- everything -----------------------------------------------------------------------
    def reset(self) -> None:
        """Switch every fault off (releasing hung requests and held jobs)."""
        self.release()
        with self._lock:
            self._rules.clear()
            self._failures.clear()
            self._hold = None
        self.ws_silent = False
        self.hostile_output_name = None
        self.hostile_output_subfolder = None
        self.view_mode = "normal"
        self.huge_view_declared = True
        with self._lock:
            self._aliases.clear()
