"""Step 1 of a character scene: the background layer, with background chaining."""

from __future__ import annotations

from keyframed.handlers.context import PlanContext
from keyframed.handlers.project import Project, Scene
from keyframed.handlers.recipe import Artifact, InputRef
from keyframed.handlers.steps.common import asset_input, edit_artifact, fill, scene_style


def layer_path(scene: Scene) -> str:
    """``scene-XX/layers/background.png``."""
    return f"{scene.folder}/layers/background.png"


def chain_sources(project: Project) -> dict[int, str]:
    """For each scene, the background layer it chains from, if any.

    A scene's background takes the layer of the nearest earlier scene (by number) that uses the
    same background asset; the first such scene uses the asset image itself.
    """
    last: dict[str, str] = {}
    sources: dict[int, str] = {}
    for scene in sorted(project.scenes, key=lambda s: s.number):
        if scene.background is None or scene.type == "object":
            continue
        if scene.background in last:
            sources[scene.number] = last[scene.background]
        last[scene.background] = layer_path(scene)
    return sources


def background_input(
    scene: Scene, project: Project, ctx: PlanContext, chained: str | None
) -> InputRef:
    """The background reference: the chained layer, else the background asset."""
    if chained is not None:
        return InputRef(path=chained, role="background", artifact=True)
    asset = project.assets.get("backgrounds", scene.background or "")
    assert asset is not None, "validated before planning"
    return asset_input(asset, "background", ctx)


def background_layer(
    scene: Scene, project: Project, ctx: PlanContext, chained: str | None
) -> Artifact:
    """The background layer: background reference + style reference, InStyle."""
    bg = project.assets.get("backgrounds", scene.background or "")
    style = scene_style(project, scene.style)
    inputs = [background_input(scene, project, ctx, chained)]
    if style is not None:
        inputs.append(asset_input(style, "style", ctx))
    prompt = fill(ctx.settings.prompts.background, description=bg.description if bg else "")
    return edit_artifact(
        layer_path(scene), scene, project, ctx, kind="layer", step="background",
        template="qwen_background.json", mode="edit", prompt=prompt, inputs=inputs, pose=False,
    )
