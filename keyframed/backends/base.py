"""What the loop needs from a place that runs jobs, and how a job reports progress.

A backend turns one artifact (with its input files) into the bytes of its output. Writing
them into the project is the loop's job, so every backend gets the same atomic, recorded
write.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from keyframed.handlers.recipe import Artifact

if TYPE_CHECKING:
    from keyframed.daemon.store import Store
    from keyframed.settings import BackendSettings, Settings


class Progress(Protocol):
    """How a backend reports on a running job (from its worker thread)."""

    def __call__(self, value: float) -> None:
        """The fraction done, 0..1."""

    def submitted(self, prompt_id: str) -> None:
        """The id the server knows the job by (ComfyUI's prompt id), once it is chosen."""


class NoProgress:
    """A :class:`Progress` that shows nothing (one-off runs)."""

    def __call__(self, value: float) -> None:
        """Ignore the fraction."""

    def submitted(self, prompt_id: str) -> None:
        """Ignore the id."""


class Backend(Protocol):
    """What the loop needs from a place that runs jobs."""

    name: str
    kind: str
    max_in_flight: int

    def supports(self, art: Artifact) -> bool:
        """True when this backend can make the artifact (nodes, models, LoRAs present)."""

    def execute(self, job_key: str, art: Artifact, inputs: Mapping[str, Path],
                on_progress: Progress) -> bytes:
        """Make the artifact and return its bytes; raise a KeyframedError on failure."""

    def cancel(self, job_key: str, art: Artifact) -> None:
        """Stop a superseded job if it is queued or running."""

    def health(self) -> dict[str, Any]:
        """Health for status.json."""

    def close(self) -> None:
        """Release connections."""


class ServerBackend:
    """What every server kind keeps: its configured name and limits, the project, its store."""

    def __init__(self, config: BackendSettings, settings: Settings, root: Path, store: Store,
                 project_id: str) -> None:
        """Remember the backend's own config and the project it builds for."""
        self.name = config.name
        self.max_in_flight = config.max_in_flight
        self.config = config
        self.settings = settings
        self.root = root
        self.store = store
        self.project_id = project_id
