"""One real recipe per workflow template, for checking a server before any project needs it.

``keyframed doctor`` binds each template with the recipe the planner would make under the
given settings (the real LoRA stack, model names and sampling values), so what it checks on a
server (node classes, model files, input schemas) is exactly what jobs will ask for. The
recipes come from a small made-up project run through :func:`desired_artifacts`, so they can
never drift from what the handlers build.
"""

from __future__ import annotations

from keyframed.handlers.context import PlanContext
from keyframed.handlers.graph import desired_artifacts
from keyframed.handlers.project import Asset, AssetLibrary, AssetType, FrameSpec, Project, Scene
from keyframed.handlers.recipe import Recipe
from keyframed.settings import Settings

# The six packaged templates, in the plan's order of use.
TEMPLATES: tuple[str, ...] = (
    "qwen_t2i.json",
    "qwen_background.json",
    "qwen_anypose.json",
    "qwen_instyle.json",
    "qwen_composite.json",
    "wan_flf2v.json",
)


def _asset(type_: AssetType, name: str) -> Asset:
    return Asset(type=type_, name=name, description=f"probe {name}")


def probe_project() -> Project:
    """A character scene with a pose at the start and none at the end, and one asset to make.

    That calls for every template: the style image is described but absent (``qwen_t2i``),
    a background layer (``qwen_background``), a character layer with a pose
    (``qwen_anypose``) and one without (``qwen_instyle``), two composites
    (``qwen_composite``) and the video (``wan_flf2v``).
    """
    assets = [_asset("characters", "c"), _asset("poses", "p"), _asset("backgrounds", "b"),
              _asset("styles", "s")]
    scene = Scene(
        number=1, title="probe", type="character", characters=("c",), background="b",
        style="s", start=FrameSpec(pose="p", expression="calm"),
        end=FrameSpec(expression="smiling"), motion="turns", camera="static",
    )
    library = AssetLibrary(assets={AssetLibrary.key(a.type, a.name): a for a in assets})
    return Project(title="probe", assets=library, scenes=(scene,))


def template_recipes(settings: Settings) -> dict[str, Recipe]:
    """Template file name → the first recipe of the probe project that uses it."""
    project = probe_project()
    present = frozenset(a.output_path for a in project.assets.assets.values()
                        if a.type != "styles")
    ctx = PlanContext(settings=settings, existing=present)
    out: dict[str, Recipe] = {}
    for art in desired_artifacts(project, ctx):
        if art.recipe.template:
            out.setdefault(art.recipe.template, art.recipe)
    return out
