"""Which scenes an input error blocks, so that the rest of the project goes on.

DESIGN §3: an error inside one scene blocks that scene (its artifacts show ``input_error``);
an error that makes the project unreadable blocks all of them. The rules:

- an error in scene-breakdown.md inside a scene's section blocks that scene; one outside every
  scene (a heading whose number cannot be read, "no scenes found") blocks everything, since
  no scene can be named;
- a problem with one asset's image (missing without a description, not an image, a near
  miss) blocks the scenes that use that asset (its fallback style included); an asset that
  no scene uses blocks nothing;
- an error anywhere else (assets.json or style.json that do not parse, an unreadable file, an
  unknown default_style) blocks everything: every name would look unknown;
- a scene whose background chains from a blocked scene's layer is blocked too (with its
  own message): planned alone it would take the asset image instead and be rebuilt twice.

Assets used only by blocked scenes are not generated until a scene that uses them can be
planned: the planner only makes assets that a planned scene refers to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from keyframed.errors import Diagnostic
from keyframed.handlers.parse.scenes import SceneOutline
from keyframed.handlers.parse.validate import ASSETS_FILE, SCENES_FILE, uses
from keyframed.handlers.project import Asset, Project


@dataclass(frozen=True)
class Isolation:
    """The part of the project that can be planned, and why each other scene cannot.

    ``project`` is None when nothing can be planned (the project is unreadable).
    """

    project: Project | None
    blocked: dict[int, list[Diagnostic]] = field(default_factory=dict)


def isolate(
    project: Project, found: Sequence[Diagnostic], outlines: Sequence[SceneOutline],
    default_style: str | None, *, checked: bool,
) -> Isolation:
    """Split the project into the scenes that can be planned and the blocked ones.

    Args:
        project: The project as parsed (only the scenes that parsed cleanly).
        found: Every diagnostic of the load.
        outlines: Every scene section of scene-breakdown.md.
        default_style: style.json's ``default_style``.
        checked: Whether the cross-checks ran (they do not when assets.json or style.json
            have errors); without them, no assets.json error can be pinned to one asset.
    """
    if not found:
        return Isolation(project)
    blocked: dict[int, list[Diagnostic]] = {}
    by_line: dict[int, list[Asset]] = {}
    for asset in project.assets.assets.values():
        by_line.setdefault(asset.line, []).append(asset)
    for diagnostic in found:
        users = _users(project, diagnostic, outlines, default_style, by_line, checked)
        if users is None:
            return Isolation(None)
        for number in users:
            blocked.setdefault(number, []).append(diagnostic)
    _block_chains(project, outlines, blocked)
    scenes = tuple(s for s in project.scenes if s.number not in blocked)
    return Isolation(project.model_copy(update={"scenes": scenes}), blocked)


def _users(
    project: Project, diagnostic: Diagnostic, outlines: Sequence[SceneOutline],
    default_style: str | None, by_line: dict[int, list[Asset]], checked: bool,
) -> set[int] | None:
    """The scenes one diagnostic blocks; None when it blocks the whole project."""
    if diagnostic.file == SCENES_FILE:
        outline = next((o for o in outlines if o.holds(diagnostic.line)), None)
        return {outline.number} if outline is not None else None
    if diagnostic.file != ASSETS_FILE or not checked or diagnostic.line not in by_line:
        return None
    keys = {(a.type, a.name) for a in by_line[diagnostic.line]}
    users = {s.number for s in project.scenes if uses(project, s, default_style) & keys}
    built = {s.number for s in project.scenes}
    users |= {o.number for o in outlines if o.number not in built
              and any((t, n) in keys for t, n, _ in o.refs)}
    return users


def _block_chains(project: Project, outlines: Sequence[SceneOutline],
                  blocked: dict[int, list[Diagnostic]]) -> None:
    """Block the scenes whose background chains from a blocked scene (in scene order, so a
    chain of several scenes is blocked to its end)."""
    scenes = {s.number: s for s in project.scenes}
    # (kind, background) of every scene, from the outline where the scene did not parse.
    shape = {o.number: (o.kind, o.background) for o in outlines}
    shape.update({n: (s.type, s.background) for n, s in scenes.items()})
    last: dict[str, int] = {}
    for number in sorted(shape):
        kind, background = shape[number]
        if background is None or kind == "object":
            continue
        source = last.get(background)
        if source is not None and source in blocked and number not in blocked:
            line = scenes[number].line if number in scenes else 1
            blocked[number] = [Diagnostic(
                SCENES_FILE, line, 1,
                f"scene {number}: waits for scene {source}: its background continues scene "
                f"{source}'s, which has input errors", f"fix scene {source} first")]
        last[background] = number
