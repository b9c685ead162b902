"""Build the configured backends of a project."""

from __future__ import annotations

import hashlib
from pathlib import Path

from keyframed.backends.base import Backend
from keyframed.backends.comfy_api import ComfyApiBackend
from keyframed.backends.native import ComfyBackend
from keyframed.backends.preview import PreviewBackend
from keyframed.daemon.store import Store
from keyframed.handlers.project import StyleFile
from keyframed.settings import Settings


def project_id(root: Path) -> str:
    """A short stable id of a project folder, keeping projects apart on shared servers."""
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]


def make_backends(settings: Settings, root: Path, store: Store, style: StyleFile) -> list[Backend]:
    """Build the configured backends."""
    pid = project_id(root)
    out: list[Backend] = []
    for cfg in settings.backends:
        if cfg.kind == "preview":
            out.append(PreviewBackend(cfg, settings, style))
        elif cfg.kind == "comfy-api":
            out.append(ComfyApiBackend(cfg, settings, root, store, pid))
        else:
            out.append(ComfyBackend(cfg, settings, root, store, pid))
    return out
