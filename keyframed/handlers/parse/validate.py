"""Cross-checks between scene-breakdown.md, assets.json, style.json and the files on disk.

The parsers check each file alone; this module checks that the files agree:

- every name a scene uses is an asset of the right type (a pose used as a character is named
  as such, and unknown names get a did-you-mean);
- every scene has a style: its ``Style``, else style.json's ``default_style``, else the only
  style asset (the plan applies InStyle to everything, so a scene without one is an error);
- every asset's image is usable, or can be generated: a file that exists must be a readable
  image (the loader's :class:`FileFact` says why not), and a missing file needs a description.

Cross-reference errors point at the scene's field line (column 1: the model keeps lines only).
"""

from __future__ import annotations

from collections.abc import Mapping

from keyframed.errors import Diagnostic
from keyframed.handlers.facts import FileFact
from keyframed.handlers.parse.assets import did_you_mean
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
    project: Project, facts: Mapping[str, FileFact], default_style: str | None = None
) -> list[Diagnostic]:
    """Check that the project's files agree with each other and with the disk.

    Args:
        project: The parsed project.
        facts: What the disk has at each asset's ``output_path``; a path with no fact is
            taken as missing.
        default_style: style.json's ``default_style``; None falls back to
            ``project.style.default_style``.

    Returns:
        Every problem found, sorted by file and position.
    """
    default = default_style if default_style is not None else project.style.default_style
    found = _check_default_style(project, default)
    for scene in project.scenes:
        found += _check_scene(project, scene, default)
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


def _check_scene(project: Project, scene: Scene, default: str | None) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for type_, name, key in _references(scene):
        message, suggestion = _lookup(project, type_, name)
        if message:
            line = scene.field_lines.get(key, scene.line)
            found.append(
                Diagnostic(SCENES_FILE, line, 1, f"scene {scene.number}: {message}", suggestion)
            )
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
