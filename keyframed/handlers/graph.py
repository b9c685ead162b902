"""The artifact graph: every output the project calls for, in dependency order."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from keyframed.handlers.context import PlanContext
from keyframed.handlers.memo import PlanMemo
from keyframed.handlers.project import KeyframeName, Project, Scene
from keyframed.handlers.recipe import Artifact
from keyframed.handlers.steps.asset import asset_artifacts
from keyframed.handlers.steps.background import background_layer, chain_sources
from keyframed.handlers.steps.character import character_layers
from keyframed.handlers.steps.composite import composite
from keyframed.handlers.steps.landscape import landscape_artifacts, object_artifacts
from keyframed.handlers.steps.video import video_artifact

KEYFRAMES: tuple[KeyframeName, ...] = ("start", "end")


def scene_artifacts(
    scene: Scene, project: Project, ctx: PlanContext, chained: str | None
) -> list[Artifact]:
    """Artifacts of one scene, by the plan's Workflow Selection Matrix."""
    if scene.type == "landscape":
        out = landscape_artifacts(scene, project, ctx, chained)
    elif scene.type == "object":
        out = object_artifacts(scene, project, ctx)
    else:
        bg = background_layer(scene, project, ctx, chained)
        out = [bg]
        for which in KEYFRAMES:
            chars = character_layers(scene, which, project, ctx)
            out += [*chars, composite(scene, which, bg, chars, project, ctx)]
    return [*out, video_artifact(scene, project, ctx)]


def desired_artifacts(
    project: Project, ctx: PlanContext, memo: PlanMemo | None = None
) -> list[Artifact]:
    """Every artifact of the project in an order where inputs come before their users.

    With the ``memo`` of the last pass, the artifacts of scenes whose inputs are unchanged
    are taken from it (see :mod:`.memo`); the result is the same without it.
    """
    memo = memo if memo is not None else PlanMemo()
    chains = chain_sources(project)
    out = asset_artifacts(project, ctx)
    for scene in sorted(project.scenes, key=lambda s: s.number):
        chained = chains.get(scene.number)
        derive = partial(scene_artifacts, scene, project, ctx, chained)
        out += memo.scene_artifacts(project, ctx, scene, chained, derive)
    memo.keep_scenes({s.number for s in project.scenes})
    return toposort(out)


def toposort(artifacts: Iterable[Artifact]) -> list[Artifact]:
    """Stable topological order (Kahn); the given order breaks ties."""
    items = list(artifacts)
    known = {a.path for a in items}
    done: set[str] = set()
    ordered: list[Artifact] = []
    pending = items
    while pending:
        rest = []
        for art in pending:
            if all(d in done or d not in known for d in art.deps):
                ordered.append(art)
                done.add(art.path)
            else:
                rest.append(art)
        if len(rest) == len(pending):
            cycle = ", ".join(a.path for a in rest)
            raise ValueError(f"dependency cycle among {cycle}")
        pending = rest
    return ordered


def dependents(artifacts: Iterable[Artifact]) -> dict[str, list[str]]:
    """Map each artifact path to the paths that take it as an input."""
    out: dict[str, list[str]] = {}
    for art in artifacts:
        for dep in art.deps:
            out.setdefault(dep, []).append(art.path)
    return out


def closure(artifacts: list[Artifact], targets: Iterable[str]) -> list[Artifact]:
    """The targets and everything they are made from, in the given (build) order.

    A copy step whose source is included comes along (a landscape's keyframe-start is kept as
    its background layer).
    """
    by_path = {a.path: a for a in artifacts}
    todo, seen = list(targets), set()
    while todo:
        path = todo.pop()
        if path in seen or path not in by_path:
            continue
        seen.add(path)
        todo.extend(by_path[path].deps)
    copies = {a.path for a in artifacts if a.recipe.step == "copy"
              and a.recipe.inputs and a.recipe.inputs[0].path in seen}
    return [a for a in artifacts if a.path in seen | copies]
