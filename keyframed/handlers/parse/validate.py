"""Cross-checks between scene-breakdown.md, assets.json, style.json and the files on disk.

The parsers check each file alone; this module checks that the files agree:

- every name a scene uses is an asset of the right type (a pose used as a character is named
  as such, and unknown names get a did-you-mean);
- every scene has a style: its ``Style``, else style.json's ``default_style``, else the only
  style asset (the plan applies InStyle to everything, so a scene without one is an error);
- every asset's image is usable, or can be generated: a file that exists must be a readable
  image (the loader's :class:`FileFact` says why not), and a missing file needs a description;
- a missing file that nearly matches one that exists (case, image extension, one letter) is an
  error with "did you mean", even with a description: generating it would waste a GPU job and
  give a different-looking asset than the file the director meant;
- the names of a scene whose fields have errors are looked up too (from its outline), so that
  one pass reports every error instead of waves.

Cross-reference errors point at the scene's field line (column 1: the model keeps lines only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from keyframed.errors import Diagnostic
from keyframed.handlers.facts import FileFact
from keyframed.handlers.parse.assets import did_you_mean
from keyframed.handlers.parse.scenes import SceneOutline
from keyframed.handlers.project import ASSET_TYPES, Asset, AssetType, Project, Scene

ASSETS_FILE = "assets.json"
SCENES_FILE = "scene-breakdown.md"
STYLE_FILE = "style.json"
SINGULAR: dict[AssetType, str] = {
    "characters": "character",
    "backgrounds": "background",
    "poses": "pose",
    "styles": "style",
    "objects": "object",
}


def validate(
    project: Project, facts: Mapping[str, FileFact], default_style: str | None = None,
    outlines: Sequence[SceneOutline] = (),
) -> list[Diagnostic]:
    """Check that the project's files agree with each other and with the disk.

    Args:
        project: The parsed project.
        facts: What the disk has at each asset's ``output_path``; a path with no fact is
            taken as missing.
        default_style: style.json's ``default_style``; None falls back to
            ``project.style.default_style``.
        outlines: Every scene section; the names of those that are not in ``project.scenes``
            (their fields had errors) are looked up too.

    Returns:
        Every problem found, sorted by file and position.
    """
    default = default_style if default_style is not None else project.style.default_style
    found = _check_default_style(project, default)
    for scene in project.scenes:
        found += _check_scene(project, scene, default)
    built = {s.number for s in project.scenes}
    for outline in outlines:
        if outline.number not in built:
            found += _check_refs(project, outline.number, outline.refs)
    for asset in project.assets.assets.values():
        found += _check_asset_file(asset, facts.get(asset.output_path))
    return sorted(found, key=lambda d: (d.file, d.line, d.column))


def _lookup(project: Project, type_: AssetType, name: str) -> tuple[str, str]:
    """Return ``("", "")`` if the asset exists, else a message and a suggestion."""
    if project.assets.get(type_, name) is not None:
        return "", ""
    kind = SINGULAR[type_]
    other = [t for t in ASSET_TYPES if project.assets.get(t, name) is not None]
    if other:
        article = "an" if SINGULAR[other[0]][0] in "aeiou" else "a"
        return f"'{name}' is {article} {SINGULAR[other[0]]}, not a {kind}", (
            did_you_mean(name, project.assets.names(type_))
            or f'add it under "{type_}" in {ASSETS_FILE}'
        )
    suggestion = did_you_mean(name, project.assets.names(type_))
    return f"unknown {kind} '{name}'", suggestion or _known(project, type_)


def _known(project: Project, type_: AssetType) -> str:
    names = project.assets.names(type_)
    if not names:
        return f"{ASSETS_FILE} has no {type_}"
    return f"known {type_}: {', '.join(sorted(names))}"


def _references(scene: Scene) -> list[tuple[AssetType, str, str]]:
    """(asset type, name, field_lines key) of every asset name the scene uses."""
    refs: list[tuple[AssetType, str, str]] = [
        ("characters", c, "characters") for c in scene.characters
    ]
    if scene.background:
        refs.append(("backgrounds", scene.background, "background"))
    if scene.style:
        refs.append(("styles", scene.style, "style"))
    refs += [("objects", o, "objects") for o in scene.objects]
    for which, frame in (("start", scene.start), ("end", scene.end)):
        if frame.pose:
            refs.append(("poses", frame.pose, f"{which}.pose"))
    return refs


def _check_refs(project: Project, number: int,
                refs: Sequence[tuple[str, str, int]]) -> list[Diagnostic]:
    """Look up (asset type, name, line) references of scene ``number``."""
    found: list[Diagnostic] = []
    for type_, name, line in refs:
        message, suggestion = _lookup(project, type_, name)  # type: ignore[arg-type]
        if message:
            found.append(Diagnostic(SCENES_FILE, line, 1, f"scene {number}: {message}", suggestion))
    return found


def uses(project: Project, scene: Scene, default: str | None) -> set[tuple[AssetType, str]]:
    """(type, name) of every asset a scene uses, its fallback style included."""
    used: set[tuple[AssetType, str]] = {(t, n) for t, n, _ in _references(scene)}
    style = scene.style or _fallback_style(project, default)
    if style:
        used.add(("styles", style))
    return used


def _check_scene(project: Project, scene: Scene, default: str | None) -> list[Diagnostic]:
    refs = [(t, n, scene.field_lines.get(key, scene.line)) for t, n, key in _references(scene)]
    found = _check_refs(project, scene.number, refs)
    if not scene.style and not _fallback_style(project, default):
        styles = project.assets.names("styles")
        found.append(
            Diagnostic(
                SCENES_FILE,
                scene.line,
                1,
                f"scene {scene.number}: no Style, and {STYLE_FILE} names no default_style"
                + (
                    f" to choose among {len(styles)} styles"
                    if styles
                    else f" ({ASSETS_FILE} has no styles)"
                ),
                "add '**Style**: <name>' to the scene or \"default_style\" to style.json",
            )
        )
    return found


def _fallback_style(project: Project, default: str | None) -> str | None:
    """The style of scenes without one: default_style, else the only style asset."""
    if default:
        return default
    styles = project.assets.names("styles")
    return styles[0] if len(styles) == 1 else None


def _check_default_style(project: Project, default: str | None) -> list[Diagnostic]:
    if not default:
        return []
    message, suggestion = _lookup(project, "styles", default)
    if not message:
        return []
    return [Diagnostic(STYLE_FILE, 1, 1, f"default_style: {message}", suggestion)]


def _check_asset_file(asset: Asset, fact: FileFact | None) -> list[Diagnostic]:
    label = f"{SINGULAR[asset.type]} '{asset.name}'"
    path = asset.output_path
    if fact is not None and fact.error:
        return [Diagnostic(ASSETS_FILE, asset.line, 1, f"{label}: '{path}' {fact.error}")]
    if fact is not None and fact.exists and not fact.is_image:
        return [Diagnostic(ASSETS_FILE, asset.line, 1, f"{label}: '{path}' is not an image")]
    if fact is not None and not fact.exists and fact.near:
        return [
            Diagnostic(
                ASSETS_FILE,
                asset.line,
                1,
                f"{label}: image '{path}' does not exist, but '{fact.near}' does "
                f"(did you mean '{fact.near}'?)",
                f"write \"{fact.near}\" in {ASSETS_FILE}, or rename the file; keyframed does "
                "not generate an asset whose path nearly matches a file you gave",
            )
        ]
    if (fact is None or not fact.exists) and not asset.description:
        return [
            Diagnostic(
                ASSETS_FILE,
                asset.line,
                1,
                f"{label}: image '{path}' does not exist and there is no description "
                "to generate it from",
                'add the image, or a "description" so Phase 2.5 can generate it',
            )
        ]
    return []
