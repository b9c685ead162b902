"""Pieces shared by the one-shot commands ``generate`` and ``generate-keyframe``.

Both take a project by its ``assets.json`` (the project root is that file's folder), may be
pinned to one configured backend with ``--backend NAME``, and must say in words why a backend
cannot make what was asked (unreachable, a node class or a model file missing).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from keyframed.errors import ConfigError
from keyframed.inputs.config import load_settings
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
