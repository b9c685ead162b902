"""One step, one image: the recipes of ``keyframed generate`` (the plan's ``qwen_image.py``).

Each mode builds its recipe with the same pieces the planner's handlers use (prompt templates
from the settings, :func:`~keyframed.handlers.steps.common.lora_stack`, ``edit_models``,
``image_params``), so a single step sends ComfyUI exactly what the daemon would send for the
same images. Every input is an asset image the user already has: nothing here generates
assets (the command checks that the files exist before it runs anything).

What each mode takes (``--prompt`` is optional unless said otherwise):

=============  ==========================================================================
``t2i``        text to image (``qwen_t2i.json``). With ``--prompt``: that text, in the
               style described by ``--style`` (else the project's style.json). Without it:
               exactly one named asset, made from its description as Phase 2.5 would.
``edit``       InStyle restyle (``qwen_background.json`` for ``--background``,
               ``qwen_instyle.json`` for ``--character``): one subject + the style image;
               ``--prompt`` is added to the end of the step's prompt.
``anypose``    ``--character`` moved into ``--pose`` (AnyPose + helper), with InStyle when
               there is a style (``qwen_anypose.json``).
``composite``  ``--background`` image + one or two ``--character`` images, Qwen multi-image
               blending (``qwen_composite.json``); ``--prompt`` is the expression/camera text.
``landscape``  ``--background`` + style + ``--prompt`` (required): the scene description.
=============  ==========================================================================

``auto`` picks, from what was named: background and character → ``composite``; character
with a pose → ``anypose``; character alone → ``edit``; background with a prompt →
``landscape``; background alone → ``edit``; otherwise (only a prompt, a style or a pose) →
``t2i``. The style is ``--style``, else the project's default style (style.json's
``default_style``, or the only style in assets.json), else none (no InStyle LoRA).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from keyframed.handlers.context import PlanContext
from keyframed.handlers.modes import MODES, Mode
from keyframed.handlers.parse.assets import did_you_mean
from keyframed.handlers.project import Asset, AssetType, Project
from keyframed.handlers.recipe import Artifact, ArtifactKind, InputRef, Recipe, Step
from keyframed.handlers.steps.asset import asset_artifact
from keyframed.handlers.steps.common import (
    edit_models,
    fill,
    image_params,
    lora_stack,
    negative,
    scene_style,
)

# The asset names each mode may be given (anything else is a mistake worth saying so).
USES: dict[str, frozenset[str]] = {
    "t2i": frozenset({"character", "background", "pose", "style"}),
    "edit": frozenset({"character", "background", "style"}),
    "anypose": frozenset({"character", "pose", "style"}),
    "composite": frozenset({"character", "background"}),
    "landscape": frozenset({"background", "style"}),
}
_KIND: dict[str, ArtifactKind] = {"t2i": "asset", "composite": "keyframe", "landscape": "keyframe"}
_OPTION: dict[str, str] = {"character": "--character", "background": "--background",
                           "pose": "--pose", "style": "--style"}


class StepError(ValueError):
    """The request does not make sense for its mode (the message says what to change)."""


class StepRequest(BaseModel):
    """What ``keyframed generate`` was asked for.

    ``label`` is the artifact path given to the recipe: it seeds the deterministic seed (when
    ``seed`` is None) and names ComfyUI's output file; the command uses ``generate/<output>``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: str = "auto"
    characters: tuple[str, ...] = ()
    background: str | None = None
    pose: str | None = None
    style: str | None = None
    prompt: str = ""
    seed: int | None = None
    label: str = "generate/image.png"

    def named(self) -> set[str]:
        """Which kinds of asset were named (``character``, ``background``, ...)."""
        given = {"background": self.background, "pose": self.pose, "style": self.style}
        out = {k for k, v in given.items() if v}
        return out | ({"character"} if self.characters else set())


def pick_mode(req: StepRequest) -> Mode:
    """The mode to run: ``req.mode``, or for ``auto`` the rule in the module docstring.

    Raises:
        StepError: The mode is not one of :data:`~keyframed.handlers.modes.MODES`.
    """
    if req.mode not in MODES:
        raise StepError(f"unknown mode {req.mode!r}; use one of {', '.join(MODES)}")
    if req.mode != "auto":
        return req.mode  # type: ignore[return-value]
    if req.characters and req.background:
        return "composite"
    if req.characters:
        return "anypose" if req.pose else "edit"
    if req.background:
        return "landscape" if req.prompt.strip() else "edit"
    return "t2i"


def single_step(req: StepRequest, project: Project, ctx: PlanContext) -> Artifact:
    """The artifact (path ``req.label``) of one generation step.

    Raises:
        StepError: A name is unknown, or the request lacks or has too much for its mode.
    """
    mode = pick_mode(req)
    extra = sorted(req.named() - USES[mode])
    if extra:
        used = ", ".join(_OPTION[k] for k in sorted(USES[mode]))
        raise StepError(f"--mode {mode} does not use {', '.join(_OPTION[k] for k in extra)} "
                        f"(it takes {used})")
    builders = {"t2i": _t2i, "edit": _edit, "anypose": _anypose, "composite": _composite,
                "landscape": _landscape}
    recipe = builders[mode](req, project, ctx)
    return Artifact(path=req.label, kind=_KIND.get(mode, "layer"), scene=None, recipe=recipe)


# -- the modes ---------------------------------------------------------------------------------


def _t2i(req: StepRequest, project: Project, ctx: PlanContext) -> Recipe:
    if req.prompt.strip():
        if req.named() - {"style"}:
            raise StepError("--mode t2i with --prompt takes only --style (the look, as text); "
                            "to make a named asset from its description, leave out --prompt")
        style = _style(req, project)
        text = style.description if style is not None else project.style.description
        recipe = asset_artifact(_stand_in(req.prompt), project, ctx).recipe
        prompt = fill(ctx.settings.prompts.asset, description=req.prompt, style=text)
        return recipe.model_copy(update={"prompt": prompt, "seed": ctx.seed(req.label, req.seed)})
    names = _names(req)
    if len(names) != 1:
        raise StepError("--mode t2i needs --prompt TEXT, or exactly one asset to make from its "
                        "description (for example --style ghibli)")
    asset = _lookup(project, *names[0])
    if not asset.description.strip():
        raise StepError(f"{asset.type[:-1]} '{asset.name}' has no description in assets.json "
                        "to make it from; give --prompt TEXT")
    recipe = asset_artifact(asset, project, ctx).recipe
    return recipe.model_copy(update={"seed": ctx.seed(req.label, req.seed)})


def _edit(req: StepRequest, project: Project, ctx: PlanContext) -> Recipe:
    if bool(req.characters) == bool(req.background) or len(req.characters) > 1:
        raise StepError("--mode edit restyles one subject: give exactly one --background or "
                        "one --character")
    prompts = ctx.settings.prompts
    if req.background:
        bg = _lookup(project, "backgrounds", req.background)
        prompt = fill(prompts.background, description=bg.description)
        return _recipe("background", "qwen_background.json", "edit", _added(prompt, req),
                       [_ref(bg, "background")], req, project, ctx)
    who = _lookup(project, "characters", req.characters[0])
    prompt = fill(prompts.character, description=who.description)
    return _recipe("character", "qwen_instyle.json", "edit", _added(prompt, req),
                   [_ref(who, "identity")], req, project, ctx)


def _anypose(req: StepRequest, project: Project, ctx: PlanContext) -> Recipe:
    if len(req.characters) != 1 or not req.pose:
        raise StepError("--mode anypose needs one --character and a --pose")
    who = _lookup(project, "characters", req.characters[0])
    pose = _lookup(project, "poses", req.pose)
    prompt = fill(ctx.settings.prompts.anypose, description=who.description)
    return _recipe("character", "qwen_anypose.json", "anypose", _added(prompt, req),
                   [_ref(who, "identity"), _ref(pose, "pose")], req, project, ctx)


def _composite(req: StepRequest, project: Project, ctx: PlanContext) -> Recipe:
    if not req.background or not 1 <= len(req.characters) <= 2:
        raise StepError("--mode composite needs a --background and one or two --character "
                        "(one Qwen edit takes at most three images)")
    bg = _lookup(project, "backgrounds", req.background)
    refs = [_ref(bg, "background")]
    refs += [_ref(_lookup(project, "characters", c), "character") for c in req.characters]
    prompt = fill(ctx.settings.prompts.composite, expression=req.prompt, camera="")
    return _recipe("composite", "qwen_composite.json", "composite", prompt, refs, req, project,
                   ctx, style=False)


def _landscape(req: StepRequest, project: Project, ctx: PlanContext) -> Recipe:
    if not req.background or not req.prompt.strip():
        raise StepError("--mode landscape needs a --background and --prompt with the scene's "
                        "description")
    bg = _lookup(project, "backgrounds", req.background)
    prompt = fill(ctx.settings.prompts.landscape, frame=req.prompt)
    return _recipe("landscape", "qwen_background.json", "landscape", prompt,
                   [_ref(bg, "background")], req, project, ctx)


# -- shared pieces -----------------------------------------------------------------------------


def _recipe(
    step: Step, template: str, mode: str, prompt: str, inputs: list[InputRef],
    req: StepRequest, project: Project, ctx: PlanContext, *, style: bool = True,
) -> Recipe:
    """A Qwen-Image-Edit recipe; the style image goes last and brings the InStyle LoRA."""
    s = ctx.settings
    look = _style(req, project) if style else None
    if look is not None:
        inputs = [*inputs, _ref(look, "style")]
    return Recipe(
        step=step,
        template=template,
        mode=mode,
        prompt=prompt,
        negative=negative(project, s),
        inputs=tuple(inputs),
        loras=lora_stack(s, pose=mode == "anypose", style=look is not None),
        models=edit_models(s),
        params=image_params(s),
        seed=ctx.seed(req.label, req.seed),
        backend_kind=s.backend_kind,
    )


def _style(req: StepRequest, project: Project) -> Asset | None:
    if req.style:
        return _lookup(project, "styles", req.style)
    return scene_style(project, None)


def _names(req: StepRequest) -> list[tuple[AssetType, str]]:
    out: list[tuple[AssetType, str]] = [("characters", c) for c in req.characters]
    pairs: list[tuple[AssetType, str | None]] = [
        ("backgrounds", req.background), ("poses", req.pose), ("styles", req.style)]
    return out + [(t, n) for t, n in pairs if n]


def _lookup(project: Project, type_: AssetType, name: str) -> Asset:
    """The named asset, or a StepError naming the type and the closest name."""
    asset = project.assets.get(type_, name)
    if asset is not None:
        return asset
    known = project.assets.names(type_)
    hint = did_you_mean(name, known) or (f"known: {', '.join(known)}" if known else
                                          f"assets.json has no {type_}")
    raise StepError(f"unknown {type_[:-1]} '{name}' in assets.json ({hint})")


def _ref(asset: Asset, role: str) -> InputRef:
    """An input that is the asset's image, which the user supplied (or made earlier)."""
    return InputRef(path=asset.output_path, role=role)


def _added(prompt: str, req: StepRequest) -> str:
    extra = req.prompt.strip()
    return f"{prompt} {extra}" if extra else prompt


def _stand_in(text: str) -> Asset:
    """An asset for a free t2i prompt, so the t2i recipe comes from the Phase 2.5 builder."""
    return Asset(type="objects", name="prompt", description=text)

