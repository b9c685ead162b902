"""Step 3 of a character scene: Qwen multi-image composite of background and character layers.

The composite carries only the Lightning LoRA: both layers already have the style, and one
Qwen edit takes three images (background + at most two characters), leaving no slot for a
style reference.
"""

from __future__ import annotations

from keyframed.handlers.common import edit_models, fill, image_params, lora_stack, negative
from keyframed.handlers.context import PlanContext
from keyframed.handlers.project import KeyframeName, Project, Scene
from keyframed.handlers.recipe import Artifact, InputRef, Recipe


def keyframe_path(scene: Scene, which: KeyframeName) -> str:
    """``scene-XX/keyframe-start.png`` or ``-end``."""
    return f"{scene.folder}/keyframe-{which}.png"


def composite(
    scene: Scene,
    which: KeyframeName,
    background: Artifact,
    characters: list[Artifact],
    project: Project,
    ctx: PlanContext,
) -> Artifact:
    """The keyframe: background layer + character layer(s), "Place character naturally…"."""
    s = ctx.settings
    path = keyframe_path(scene, which)
    inputs = [InputRef(path=background.path, role="background", artifact=True)]
    inputs += [InputRef(path=c.path, role="character", artifact=True) for c in characters]
    prompt = fill(
        s.prompts.composite, expression=scene.frame(which).description, camera=scene.camera
    )
    recipe = Recipe(
        step="composite",
        template="qwen_composite.json",
        mode="composite",
        prompt=ctx.with_note(path, prompt),
        negative=negative(project, s),
        inputs=tuple(inputs),
        loras=lora_stack(s, pose=False, style=False),
        models=edit_models(s),
        params=image_params(s),
        seed=ctx.seed(path, scene.seed),
        take=ctx.take(path),
        backend_kind=s.backend_kind,
    )
    return Artifact(path=path, kind="keyframe", scene=scene.number, recipe=recipe, gate="assets")
