"""Every error keyframed raises, in one tree.

::

    KeyframedError                  base of everything below
    ├── ConfigError                 config.toml / keyframed.toml / environment is invalid
    ├── ProjectError                the project's files are invalid; carries Diagnostics
    ├── TemplateError               a workflow template cannot be bound or fails the schema check
    ├── StoreError                  the state database is unreadable or from a newer version
    ├── SpaceError                  the disk holding the project is full (space, inodes, quota)
    ├── OutputError                 a produced file is not what was expected (not a PNG, wrong size)
    ├── DownloadError               a model download failed or did not verify
    └── ComfyError                  anything a ComfyUI-compatible server did; has .server, .job
        ├── ComfyTransientError     worth retrying: refused, reset, timeout, HTTP 5xx
        │   └── ComfyLostError      the prompt is in neither queue nor history (server restarted)
        └── ComfyPermanentError     never retried: HTTP 4xx, node_errors, repeated execution_error
            └── ComfyExecutionError the prompt ran and failed; has .node_id, .node_type

The split between transient and permanent ComfyUI errors is made in exactly one place,
:func:`keyframed.backends.comfy.errors.mapped`, and only transient errors are retried.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnostic:
    """One problem in one input file, located so a person can fix it."""

    file: str
    line: int
    column: int
    message: str
    suggestion: str = ""

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {self.message}"
        return f"{text} ({self.suggestion})" if self.suggestion else text

    def as_dict(self) -> dict[str, object]:
        """Return the JSON form used in status files and ``--json`` output."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "suggestion": self.suggestion,
        }


class KeyframedError(Exception):
    """Base class of every keyframed error."""


class SpaceError(KeyframedError):
    """The disk holding the project is full: no space, no inodes, or over quota. Passes stop
    until it is freed, then go on by themselves; nothing written is half-written."""


class ConfigError(KeyframedError):
    """Configuration is invalid; the message names the file and key."""


class ProjectError(KeyframedError):
    """The project's input files have one or more problems."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))


class TemplateError(KeyframedError):
    """A workflow template is malformed, unbound, or fails the node-schema check."""


class StoreError(KeyframedError):
    """The state database cannot be used as it is."""


class OutputError(KeyframedError):
    """A generated file failed verification."""


class DownloadError(KeyframedError):
    """A model file could not be downloaded or did not verify."""


class ComfyError(KeyframedError):
    """Something a ComfyUI-compatible server did or failed to do."""

    def __init__(self, message: str, *, server: str = "", job: str = "") -> None:
        self.server = server
        self.job = job
        super().__init__(message)


class ComfyTransientError(ComfyError):
    """Worth retrying with backoff: connection refused or reset, timeout, HTTP 5xx."""


class ComfyLostError(ComfyTransientError):
    """The server no longer knows the prompt (it restarted and forgot its queue)."""


class ComfyPermanentError(ComfyError):
    """Retrying will not help: the server rejected the prompt or it keeps failing."""


class ComfyExecutionError(ComfyPermanentError):
    """The prompt was accepted and failed while running."""

    def __init__(
        self, message: str, *, node_id: str = "", node_type: str = "", server: str = "",
        job: str = "",
    ) -> None:
        self.node_id = node_id
        self.node_type = node_type
        super().__init__(message, server=server, job=job)


class StopRequested(Exception):
    """SIGTERM or SIGINT arrived during a reconcile pass: raised between two of its steps
    (scenes, files) so the daemon exits within about a second even on thousands of scenes.

    Not a :class:`KeyframedError`: no handler of errors may take it for one. Every step it
    interrupts is complete on disk and in the store; the next start carries on.
    """
