"""What the fake server saw, for tests to assert on ("submitted once", "uploaded once")."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class AcceptedPrompt:
    """A POST /prompt that was queued (status 200)."""

    prompt_id: str
    number: float
    body: dict[str, Any]
    # When the server accepted it (time.time()); benchmarks measure edit-to-submit latency.
    received_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class UploadRecord:
    """A POST /upload/image that succeeded."""

    name: str
    subfolder: str
    type: str
    sha256: str
    size: int
    written: bool  # False when ComfyUI's dedupe reused an identical file


class Records:
    """Thread-safe logs, appended by the server thread and read by tests."""

    def __init__(self) -> None:
        """Start with empty logs."""
        self._lock = threading.Lock()
        self._prompts: list[AcceptedPrompt] = []
        self._uploads: list[UploadRecord] = []
        self._executions: Counter[str] = Counter()
        self._requests: list[tuple[str, str]] = []
        self._files: list[Path] = []
        self._loads: list[tuple[str, str]] = []
        self._started: list[tuple[str, float]] = []
        self._request_times: list[float] = []

    def add_prompt(self, record: AcceptedPrompt) -> None:
        """Log an accepted prompt."""
        with self._lock:
            self._prompts.append(record)

    def add_upload(self, record: UploadRecord) -> None:
        """Log a successful upload."""
        with self._lock:
            self._uploads.append(record)

    def add_execution(self, prompt_id: str) -> None:
        """Log that a prompt started executing."""
        with self._lock:
            self._executions[prompt_id] += 1
            self._started.append((prompt_id, time.time()))

    def add_request(self, method: str, path: str) -> None:
        """Log any HTTP request (before faults apply)."""
        with self._lock:
            self._requests.append((method, path))
            self._request_times.append(time.time())

    def add_files(self, paths: list[Path]) -> None:
        """Log output files written by an execution."""
        with self._lock:
            self._files.extend(paths)

    def add_model_load(self, folder: str, name: str) -> None:
        """Log that a loader node ran (was not cached), i.e. a model file was (re)loaded."""
        with self._lock:
            self._loads.append((folder, name))

    @property
    def prompts(self) -> list[AcceptedPrompt]:
        """Every accepted POST /prompt, in order."""
        with self._lock:
            return list(self._prompts)

    @property
    def prompt_ids(self) -> list[str]:
        """The ids of accepted prompts, in order (repeats show resubmissions)."""
        return [p.prompt_id for p in self.prompts]

    @property
    def uploads(self) -> list[UploadRecord]:
        """Every successful upload, in order."""
        with self._lock:
            return list(self._uploads)

    @property
    def executions(self) -> dict[str, int]:
        """How many times each prompt id started executing."""
        with self._lock:
            return dict(self._executions)

    @property
    def execution_starts(self) -> list[tuple[str, float]]:
        """(prompt id, time.time()) of each execution start, in order (for benchmarks)."""
        with self._lock:
            return list(self._started)

    def execution_count(self, prompt_id: str) -> int:
        """How many times ``prompt_id`` started executing."""
        with self._lock:
            return self._executions[prompt_id]

    @property
    def requests(self) -> list[tuple[str, str]]:
        """Every HTTP request as (method, path), in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def timed_requests(self) -> list[tuple[float, str, str]]:
        """Every HTTP request as (time.time() on arrival, method, path), in arrival order."""
        with self._lock:
            pairs = zip(self._request_times, self._requests, strict=True)
            return [(t, method, path) for t, (method, path) in pairs]

    @property
    def files_written(self) -> list[Path]:
        """Output files written by executions, in order."""
        with self._lock:
            return list(self._files)

    @property
    def model_loads(self) -> list[tuple[str, str]]:
        """Every (folder, file) a loader node loaded, in order: fewer means fewer reloads."""
        with self._lock:
            return list(self._loads)

    def clear(self) -> None:
        """Forget everything logged so far."""
        with self._lock:
            self._prompts.clear()
            self._uploads.clear()
            self._executions.clear()
            self._requests.clear()
            self._files.clear()
            self._loads.clear()
            self._started.clear()
            self._request_times.clear()
