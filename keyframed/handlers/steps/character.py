"""Step 2 of a character scene: one character layer per keyframe and character.

The identity is always the original asset (never chained). With a pose, AnyPose + helper move
the character into it (qwen_anypose); without one, InStyle alone restyles it (qwen_instyle).
"""

from __future__ import annotations

from keyframed.handlers.context import PlanContext
from keyframed.handlers.project import KeyframeName, Project, Scene
from keyframed.handlers.recipe import Artifact, InputRef
from keyframed.handlers.steps.common import asset_input, edit_artifact, fill, scene_style


def layer_path(scene: Scene, which: KeyframeName, character: str) -> str:
    """``character-start.png``, or ``character-<name>-start.png`` when a scene has two."""
    if len(scene.characters) > 1:
        return f"{scene.folder}/layers/character-{character}-{which}.png"
    return f"{scene.folder}/layers/character-{which}.png"


def character_layer(
    scene: Scene, which: KeyframeName, character: str, project: Project, ctx: PlanContext
) -> Artifact:
    """The recipe of one character layer."""
    path = layer_path(scene, which, character)
    identity = project.assets.get("characters", character)
    assert identity is not None, "validated before planning"
    frame = scene.frame(which)
    pose = project.assets.get("poses", frame.pose) if frame.pose else None
    style = scene_style(project, scene.style)
    inputs: list[InputRef] = [asset_input(identity, "identity", ctx)]
    if pose is not None:
        inputs.append(asset_input(pose, "pose", ctx))
    if style is not None:
        inputs.append(asset_input(style, "style", ctx))
    prompts = ctx.settings.prompts
    template = prompts.anypose if pose is not None else prompts.character
    return edit_artifact(
        path, scene, project, ctx, kind="layer", step="character",
        template="qwen_anypose.json" if pose is not None else "qwen_instyle.json",
        mode="anypose" if pose is not None else "edit",
        prompt=fill(template, description=identity.description), inputs=inputs,
        pose=pose is not None,
    )


def character_layers(
    scene: Scene, which: KeyframeName, project: Project, ctx: PlanContext
) -> list[Artifact]:
    """Every character layer of one keyframe, in the scene's character order."""
    return [character_layer(scene, which, c, project, ctx) for c in scene.characters]
