"""Phase 2.5: generate the asset images that have a description but no image (qwen_t2i)."""

from __future__ import annotations

from keyframed.handlers.context import PlanContext
from keyframed.handlers.project import Asset, Project
from keyframed.handlers.recipe import Artifact, Recipe
from keyframed.handlers.steps.common import fill, is_generated, negative


def referenced_assets(project: Project) -> list[Asset]:
    """Assets some scene uses, in a stable order (unused assets cost no GPU time)."""
    from keyframed.handlers.steps.common import scene_style

    keys: dict[str, Asset] = {}
    for scene in project.scenes:
        wanted: list[Asset | None] = [scene_style(project, scene.style)]
        wanted += [project.assets.get("characters", c) for c in scene.characters]
        wanted += [project.assets.get("objects", o) for o in scene.objects]
        wanted += [project.assets.get("poses", f.pose) for f in (scene.start, scene.end) if f.pose]
        if scene.background:
            wanted.append(project.assets.get("backgrounds", scene.background))
        for asset in wanted:
            if asset is not None:
                keys.setdefault(f"{asset.type}/{asset.name}", asset)
    return [keys[k] for k in sorted(keys)]


def asset_artifact(asset: Asset, project: Project, ctx: PlanContext) -> Artifact:
    """The t2i recipe of one asset, in the project's style (style.json's description)."""
    s = ctx.settings
    path = asset.output_path
    if asset.type == "styles":
        prompt = fill(s.prompts.style_asset, description=asset.description)
    else:
        prompt = fill(s.prompts.asset, description=asset.description,
                      style=project.style.description)
    recipe = Recipe(
        step="asset",
        template="qwen_t2i.json",
        mode="t2i",
        prompt=ctx.with_note(path, prompt),
        negative=negative(project, s),
        models={"unet": s.models.t2i_unet, "clip": s.models.clip, "vae": s.models.vae},
        params={
            "width": s.image.width,
            "height": s.image.height,
            "steps": s.image.t2i_steps,
            "cfg": s.image.t2i_cfg,
            "sampler": s.image.sampler,
            "scheduler": s.image.scheduler,
            "shift": s.image.t2i_shift,
        },
        seed=ctx.seed(path, None),
        take=ctx.take(path),
        backend_kind=s.backend_kind,
    )
    return Artifact(path=path, kind="asset", scene=None, recipe=recipe)


def asset_artifacts(project: Project, ctx: PlanContext) -> list[Artifact]:
    """Every referenced asset keyframed must generate."""
    return [
        asset_artifact(a, project, ctx)
        for a in referenced_assets(project)
        if is_generated(a, ctx)
    ]
