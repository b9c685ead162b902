"""Landscape scenes: keyframe-start from the background (or chain) + style + the start text,
keyframe-end as an edit of keyframe-start, and a copy of keyframe-start as the background layer
(the plan keeps it "for reference"; later scenes chain from it)."""

from __future__ import annotations

from keyframed.handlers.context import PlanContext
from keyframed.handlers.project import Project, Scene
from keyframed.handlers.recipe import Artifact, InputRef, Recipe, Step
from keyframed.handlers.steps.background import background_input, layer_path
from keyframed.handlers.steps.common import asset_input, edit_artifact, fill, scene_style
from keyframed.handlers.steps.composite import keyframe_path


def _edit(
    path: str, step: Step, prompt: str, inputs: list[InputRef], scene: Scene,
    project: Project, ctx: PlanContext, template: str = "qwen_background.json",
) -> Artifact:
    return edit_artifact(
        path, scene, project, ctx, kind="keyframe", step=step, template=template,
        mode="landscape" if step == "landscape" else "edit", prompt=prompt, inputs=inputs,
        pose=False,
    )


def _style_inputs(scene: Scene, project: Project, ctx: PlanContext) -> list[InputRef]:
    style = scene_style(project, scene.style)
    return [asset_input(style, "style", ctx)] if style is not None else []


def landscape_artifacts(
    scene: Scene, project: Project, ctx: PlanContext, chained: str | None
) -> list[Artifact]:
    """keyframe-start, its copy as layers/background.png, and keyframe-end."""
    prompts = ctx.settings.prompts
    style = _style_inputs(scene, project, ctx)
    start_path = keyframe_path(scene, "start")
    start = _edit(
        start_path, "landscape",
        fill(prompts.landscape, frame=scene.start.description),
        [background_input(scene, project, ctx, chained), *style], scene, project, ctx,
    )
    copy = Artifact(
        path=layer_path(scene),
        kind="layer",
        scene=scene.number,
        recipe=Recipe(
            step="copy", template="", mode="copy",
            inputs=(InputRef(path=start_path, role="source", artifact=True),),
        ),
        gate="assets",
    )
    end = _edit(
        keyframe_path(scene, "end"), "landscape",
        fill(prompts.landscape_end, frame=scene.end.description),
        [InputRef(path=start_path, role="source", artifact=True), *style], scene, project, ctx,
    )
    return [start, copy, end]


def object_artifacts(scene: Scene, project: Project, ctx: PlanContext) -> list[Artifact]:
    """Object scenes: InStyle only, object asset(s) + style; the end edits the start."""
    prompts = ctx.settings.prompts
    style = _style_inputs(scene, project, ctx)
    objects = [project.assets.get("objects", o) for o in scene.objects]
    refs = [asset_input(o, "object", ctx) for o in objects if o is not None][:2]
    start_path = keyframe_path(scene, "start")
    start = _edit(
        start_path, "object", fill(prompts.object, frame=scene.start.description),
        [*refs, *style], scene, project, ctx, template="qwen_instyle.json",
    )
    end = _edit(
        keyframe_path(scene, "end"), "object", fill(prompts.object, frame=scene.end.description),
        [InputRef(path=start_path, role="source", artifact=True), *style], scene, project, ctx,
        template="qwen_instyle.json",
    )
    return [start, end]
