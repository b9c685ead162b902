"""What a recipe needs from a ComfyUI server, and what a given server lacks of it.

The recipe is bound to its template (a project's override wins) with stand-in image names, and
the bound prompt says which node classes and model files it uses. ``doctor`` and the one-shot
``generate`` commands use this to explain, in words, why a server cannot run a job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keyframed.backends.base import Backend
from keyframed.backends.comfy.info import ServerInfo
from keyframed.backends.native import ComfyBackend
from keyframed.errors import TemplateError
from keyframed.handlers.recipe import Artifact, Recipe
from keyframed.settings import Settings
from keyframed.workflows import templates
from keyframed.workflows.bind import bind
from keyframed.workflows.schema_check import required_classes, required_models


def bound_prompt(recipe: Recipe, root: Path | None, settings: Settings) -> dict[str, Any]:
    """The recipe bound to its template, with ``probe-N.png`` standing in for the images.

    Raises:
        TemplateError: The template is missing or does not bind.
    """
    template, _ = templates.load_template(recipe.template, root)
    images = [f"probe-{n}.png" for n in range(1, len(recipe.inputs) + 1)]
    return bind(template, recipe, images=images, output_prefix="keyframed/probe",
                lora_loader=settings.loras.loader)


def model_pairs(prompt: dict[str, Any]) -> list[tuple[str, str]]:
    """(folder, file name) of every model file the prompt loads, sorted."""
    return sorted((folder, name) for folder, names in required_models(prompt).items()
                  for name in names)


def lacks(info: ServerInfo, prompt: dict[str, Any]) -> list[str]:
    """What the server lacks to run the prompt: ``node X`` and ``folder/file`` lines."""
    return info.missing(nodes=required_classes(prompt), models=model_pairs(prompt))


def why_not(backend: Backend, art: Artifact, root: Path, settings: Settings) -> str:
    """Why ``backend`` cannot make ``art``, as one line naming the backend."""
    if not isinstance(backend, ComfyBackend):
        return f"{backend.name}: cannot make {art.path}"
    where = f"{backend.name} ({backend.config.shown_url})"
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


def lacking(backend: Backend, art: Artifact, root: Path, settings: Settings) -> str:
    """Why ``backend`` cannot make ``art``, short, for status files and the ``no_backend``
    reason: ``gpu1 lacks loras/InStyle-0.5.safetensors``, or ``gpu1 cannot reach the ComfyUI
    server at URL: why``."""
    if not isinstance(backend, ComfyBackend):
        return f"{backend.name} cannot make {art.kind} {art.path}"
    info = backend.info() if backend.up else None
    if info is None:
        return (f"{backend.name} cannot reach the ComfyUI server at {backend.config.shown_url}: "
                f"{backend.last_error or 'no answer'}")
    try:
        missing = lacks(info, bound_prompt(art.recipe, root, settings))
    except TemplateError as exc:
        return f"{backend.name}: {exc}"
    return f"{backend.name} lacks {', '.join(missing)}" if missing else \
        f"{backend.name} cannot make {art.path}"
