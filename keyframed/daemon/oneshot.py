"""Pieces shared by the one-shot commands ``generate`` and ``generate-keyframe``.

Both take a project by its ``assets.json`` (the project root is that file's folder), may be
pinned to one configured backend with ``--backend NAME``, and must say in words why a backend
cannot make what was asked (unreachable, a node class or a model file missing).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from keyframed.daemon.backends import Backend, ComfyBackend
from keyframed.daemon.config import load_settings
from keyframed.daemon.requirements import bound_prompt, lacks
from keyframed.errors import ConfigError, TemplateError
from keyframed.handlers.recipe import Artifact
from keyframed.settings import Settings


def project_root(assets_file: Path) -> Path:
    """The project folder: the folder of ``--assets-file``.

    Raises:
        ConfigError: The file does not exist.
    """
    if not assets_file.is_file():
        raise ConfigError(f"--assets-file {assets_file}: no such file")
    return assets_file.resolve().parent


def one_shot_settings(
    root: Path, backend: str | None, overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """The project's settings with ``overrides``, keeping only backend ``backend`` if given.

    Raises:
        ConfigError: The configuration is invalid, or no backend has that name.
    """
    settings = load_settings(root, env=env, overrides=overrides)
    if backend is None:
        return settings
    chosen = [b for b in settings.backends if b.name == backend]
    if not chosen:
        known = ", ".join(b.name for b in settings.backends)
        raise ConfigError(f"--backend {backend}: no backend of that name is configured "
                          f"(configured: {known})")
    return settings.model_copy(update={"backends": tuple(chosen)})


def why_not(backend: Backend, art: Artifact, root: Path, settings: Settings) -> str:
    """Why ``backend`` cannot make ``art``, as one line naming the backend."""
    if not isinstance(backend, ComfyBackend):
        return f"{backend.name}: cannot make {art.path}"
    where = f"{backend.name} ({backend.config.url})"
    info = backend.info(max_age=0.0) if backend.up else None
    if info is None:
        return f"{where}: cannot reach the ComfyUI server: {backend.last_error or 'no answer'}"
    try:
        missing = lacks(info, bound_prompt(art.recipe, root, settings))
    except TemplateError as exc:
        return f"{where}: {exc}"
    if not missing:
        return f"{where}: cannot make {art.path}"
    return (f"{where} lacks {', '.join(missing)} (run `keyframed doctor` for the fixes)")
