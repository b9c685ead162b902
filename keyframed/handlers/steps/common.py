"""Pieces every image step shares: LoRA stacks, model names, sampling params, asset inputs."""

from __future__ import annotations

from keyframed.handlers.context import PlanContext
from keyframed.handlers.project import Asset, Project, Scene
from keyframed.handlers.recipe import (
    Artifact,
    ArtifactKind,
    InputRef,
    LoraSpec,
    ParamValue,
    Recipe,
    Step,
)
from keyframed.settings import Settings


def lora_stack(settings: Settings, *, pose: bool, style: bool = True) -> tuple[LoraSpec, ...]:
    """The plan's stacking order: Lightning → AnyPose + helper (with a pose) → InStyle.

    When AnyPose and InStyle are stacked, each takes its reduced ``stacked_strength``.
    """
    loras = settings.loras
    both = pose and style
    light = loras.lightning
    stack = [LoraSpec(role="lightning", file=light.file, strength=light.strength)]
    if pose:
        for role, lora in (("anypose", loras.anypose), ("anypose_helper", loras.anypose_helper)):
            stacked = lora.stacked_strength
            strength = stacked if both and stacked is not None else lora.strength
            stack.append(LoraSpec(role=role, file=lora.file, strength=strength))
    if style:
        ins = loras.instyle
        stacked = ins.stacked_strength
        strength = stacked if both and stacked is not None else ins.strength
        stack.append(LoraSpec(role="instyle", file=ins.file, strength=strength))
    return tuple(stack)


def edit_models(settings: Settings) -> dict[str, str]:
    """Model files of the Qwen-Image-Edit graphs."""
    m = settings.models
    return {"unet": m.edit_unet, "clip": m.clip, "vae": m.vae}


def image_params(settings: Settings) -> dict[str, ParamValue]:
    """Sampling parameters of the Qwen edit steps."""
    i = settings.image
    return {
        "width": i.width,
        "height": i.height,
        "steps": i.steps,
        "cfg": i.cfg,
        "sampler": i.sampler,
        "scheduler": i.scheduler,
        "shift": i.shift,
    }


def asset_input(asset: Asset, role: str, ctx: PlanContext) -> InputRef:
    """An input that is an asset image: an artifact when keyframed generates it."""
    return InputRef(path=asset.output_path, role=role, artifact=is_generated(asset, ctx))


def is_generated(asset: Asset, ctx: PlanContext) -> bool:
    """True when keyframed makes this asset's image (Phase 2.5).

    That is when the asset has a description and its image is absent or was written by
    keyframed; an image the user put there is always the user's.
    """
    path = asset.output_path
    if path in ctx.owned:
        return True
    return bool(asset.description) and path not in ctx.existing


def scene_style(project: Project, style_name: str | None) -> Asset | None:
    """The style asset of a scene: its Style, else style.json's default, else the only one."""
    name = style_name or project.style.default_style
    if name is None:
        styles = project.assets.names("styles")
        name = styles[0] if len(styles) == 1 else None
    return project.assets.get("styles", name) if name else None


def negative(project: Project, settings: Settings) -> str:
    """The negative prompt: style.json's, else config's."""
    return project.style.negative_prompt or settings.prompts.negative


def fill(template: str, **values: str) -> str:
    """Fill a prompt template, tidying empty fields and doubled punctuation."""
    text = template.format_map({k: v.strip() for k, v in values.items()})
    while ". ." in text or ".." in text or " ." in text:
        text = text.replace(". .", ".").replace("..", ".").replace(" .", ".")
    return " ".join(text.split()).strip(". ") + "."


def edit_artifact(
    path: str, scene: Scene, project: Project, ctx: PlanContext, *, kind: ArtifactKind,
    step: Step, template: str, mode: str, prompt: str, inputs: list[InputRef], pose: bool,
) -> Artifact:
    """A Qwen-Image-Edit artifact of a scene, gated on ``assets.approved``.

    Every edit step shares the models, sampling, negative prompt, seed, take and backend; the
    LoRA stack follows the plan's order, with InStyle whenever a style reference is an input.
    """
    s = ctx.settings
    style = any(i.role == "style" for i in inputs)
    recipe = Recipe(
        step=step,
        template=template,
        mode=mode,
        prompt=ctx.with_note(path, prompt),
        negative=negative(project, s),
        inputs=tuple(inputs),
        loras=lora_stack(s, pose=pose, style=style),
        models=edit_models(s),
        params=image_params(s),
        seed=ctx.seed(path, scene.seed),
        take=ctx.take(path),
        backend_kind=s.backend_kind,
    )
    return Artifact(path=path, kind=kind, scene=scene.number, recipe=recipe, gate="assets")
