"""What a recipe needs from a ComfyUI server, and what a given server lacks of it.

The recipe is bound to its template (a project's override wins) with stand-in image names, and
the bound prompt says which node classes and model files it uses. ``doctor`` and the one-shot
``generate`` commands use this to explain, in words, why a server cannot run a job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keyframed.daemon import templates
from keyframed.daemon.comfy.info import ServerInfo
from keyframed.handlers.bind import bind
from keyframed.handlers.recipe import Recipe
from keyframed.handlers.schema_check import required_classes, required_models
from keyframed.settings import Settings


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
