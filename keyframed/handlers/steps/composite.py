"""Step 3 of a character scene: Qwen multi-image composite of background and character layers.

The composite carries only the Lightning LoRA: both layers already have the style, and one
Qwen edit takes three images (background + at most two characters), leaving no slot for a
style reference.
"""

from __future__ import annotations

from keyframed.handlers.context import PlanContext
from keyframed.handlers.project import KeyframeName, Project, Scene
from keyframed.handlers.recipe import Artifact, InputRef
from keyframed.handlers.steps.common import edit_artifact, fill


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
    inputs = [InputRef(path=background.path, role="background", artifact=True)]
    inputs += [InputRef(path=c.path, role="character", artifact=True) for c in characters]
    prompt = fill(ctx.settings.prompts.composite, expression=scene.frame(which).description,
                  camera=scene.camera)
    return edit_artifact(
        keyframe_path(scene, which), scene, project, ctx, kind="keyframe", step="composite",
        template="qwen_composite.json", mode="composite", prompt=prompt, inputs=inputs,
        pose=False,
    )
