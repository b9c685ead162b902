"""Parse ``assets.json``: the plan's asset library, with a located error for every problem.

The format is the plan's::

    {"characters": {"samurai": {"description": "...",
                                "identity_ref": "assets/characters/samurai.png"}},
     "backgrounds": {...}, "poses": {...}, "styles": {...}, "objects": {...}}

Decisions (beyond the plan):

- Every top-level key is optional; an unknown one is an error with a did-you-mean.
- An asset has ``description`` (string) and an image path under ``identity_ref`` (the plan's
  key for characters) or ``ref_image`` (the others). Either key is accepted for any type; giving
  both is an error. ``null`` means "no image": the image is then generated at
  ``assets/<type>/<name>.png`` from the description (Phase 2.5).
- Image paths are relative POSIX paths inside the project: absolute paths, backslashes and
  ``..`` components are refused here (symlinks are checked by the loader, which sees the disk).
  Paths are normalised (``./a//b.png`` becomes ``a/b.png``) so they compare equal everywhere.
- Asset names match ``^[A-Za-z0-9_-]+$`` so they are safe in file names and prompts.
- All errors of the file are reported at once.
"""

from __future__ import annotations

import difflib
import posixpath
import re

from keyframed.errors import Diagnostic
from keyframed.handlers.parse.jsonpos import JMember, parse_json, type_name
from keyframed.handlers.project import ASSET_TYPES, Asset, AssetLibrary, AssetType

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
IMAGE_KEYS = ("identity_ref", "ref_image")
ASSET_FIELDS = ("description", *IMAGE_KEYS)
PRIVATE_DIR = ".keyframed"


def did_you_mean(word: str, choices: list[str] | tuple[str, ...], cutoff: float = 0.6) -> str:
    """Return ``"did you mean 'x'?"`` for the closest choice, or ``""`` when none is close."""
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=cutoff)
    return f"did you mean '{lowered[close[0]]}'?" if close else ""


def path_problem(path: str) -> str:
    """Return why ``path`` is not an acceptable project-relative image path, or ``""``.

    Only the text is judged here; symlinks leaving the project are the loader's to find.
    """
    if not path.strip():
        return "is empty"
    if "\x00" in path:
        return "contains a NUL character"
    if "\\" in path:
        return "uses backslashes; write a POSIX path with '/'"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "is absolute; give a path relative to the project folder"
    parts = path.split("/")
    if ".." in parts:
        return "uses '..'; give a path inside the project folder without '..'"
    if normalise_path(path).split("/")[0] == PRIVATE_DIR:
        return f"points into {PRIVATE_DIR}/, which belongs to the daemon"
    if normalise_path(path) == ".":
        return "names the project folder itself, not a file"
    return ""


def normalise_path(path: str) -> str:
    """Normalise a relative POSIX path that :func:`path_problem` accepted."""
    return posixpath.normpath(path)


class _Collector:
    """Collects diagnostics for one file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.found: list[Diagnostic] = []

    def add(self, line: int, column: int, message: str, suggestion: str = "") -> None:
        self.found.append(Diagnostic(self.file, line, column, message, suggestion))


def parse_assets(text: str, file: str = "assets.json") -> tuple[AssetLibrary, list[Diagnostic]]:
    """Parse assets.json text into an :class:`AssetLibrary`.

    Args:
        text: The file's text.
        file: The name used in diagnostics.

    Returns:
        The library (with every asset that parsed cleanly) and every diagnostic of the file.
    """
    root, found = parse_json(text, file)
    if root is None:
        return AssetLibrary(), found
    out = _Collector(file)
    out.found.extend(found)
    if root.kind != "object":
        out.add(
            root.line, root.column, f"expected a JSON object of asset types, got {type_name(root)}"
        )
        return AssetLibrary(), out.found
    assets: dict[str, Asset] = {}
    for member in root.members:
        if member.key not in ASSET_TYPES:
            out.add(
                member.line,
                member.column,
                f"unknown asset type '{member.key}' (expected one of {', '.join(ASSET_TYPES)})",
                did_you_mean(member.key, ASSET_TYPES),
            )
            continue
        _parse_group(member, out, assets)
    return AssetLibrary(assets=assets), sorted(out.found, key=lambda d: (d.line, d.column))


def _parse_group(group: JMember, out: _Collector, assets: dict[str, Asset]) -> None:
    """Parse one ``"characters": {...}`` group into ``assets``."""
    type_: AssetType = group.key  # type: ignore[assignment]  # checked by the caller
    if group.node.kind != "object":
        out.add(
            group.node.line,
            group.node.column,
            f"'{type_}' must be an object of named assets, got {type_name(group.node)}",
        )
        return
    for member in group.node.members:
        asset = _parse_asset(type_, member, out)
        key = AssetLibrary.key(type_, member.key)
        if asset is not None and key not in assets:  # a duplicate key is already reported
            assets[key] = asset


def _parse_asset(type_: AssetType, member: JMember, out: _Collector) -> Asset | None:
    """Parse one named asset; return None (after reporting) when it is unusable."""
    label = f"{type_} '{member.key}'"
    ok = True
    if not NAME_RE.match(member.key):
        out.add(
            member.line,
            member.column,
            f"invalid asset name '{member.key}'",
            "use only letters, digits, '_' and '-'",
        )
        ok = False
    node = member.node
    if node.kind != "object":
        out.add(node.line, node.column, f"{label} must be an object, got {type_name(node)}")
        return None
    fields = {m.key: m for m in node.members}
    for field_member in node.members:
        if field_member.key not in ASSET_FIELDS:
            out.add(
                field_member.line,
                field_member.column,
                f"unknown field '{field_member.key}' in {label} "
                f"(expected {', '.join(ASSET_FIELDS)})",
                did_you_mean(field_member.key, ASSET_FIELDS),
            )
            ok = False
    description = _description(fields.get("description"), label, out)
    image, image_ok = _image(fields, label, out)
    if not (ok and image_ok and description is not None):
        return None
    return Asset(
        type=type_, name=member.key, description=description, image=image, line=member.line
    )


def _description(member: JMember | None, label: str, out: _Collector) -> str | None:
    """The description string ("" when absent); None after reporting a wrong type."""
    if member is None:
        return ""
    if member.node.kind != "string":
        out.add(
            member.node.line,
            member.node.column,
            f"'description' of {label} must be a string, got {type_name(member.node)}",
        )
        return None
    return str(member.node.value).strip()


def _image(fields: dict[str, JMember], label: str, out: _Collector) -> tuple[str | None, bool]:
    """The normalised image path (or None) and whether it was acceptable."""
    given = [fields[k] for k in IMAGE_KEYS if k in fields]
    if len(given) > 1:
        second = given[1]
        out.add(
            second.line,
            second.column,
            f"{label} has both 'identity_ref' and 'ref_image'",
            "keep one of them",
        )
        return None, False
    if not given:
        return None, True
    member = given[0]
    node = member.node
    if node.kind == "null":
        return None, True
    if node.kind != "string":
        out.add(
            node.line,
            node.column,
            f"'{member.key}' of {label} must be a path string, got {type_name(node)}",
        )
        return None, False
    path = str(node.value)
    problem = path_problem(path)
    if problem:
        out.add(node.line, node.column, f"'{member.key}' of {label}: path '{path}' {problem}")
        return None, False
    return normalise_path(path), True
