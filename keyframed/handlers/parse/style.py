"""Parse ``style.json``: the project's look (Phase 1 of the plan).

Every field is optional: ``name``, ``description`` (strings, used in prompts),
``default_style`` (the style asset used by scenes without a Style; string or null),
``palette`` (a list of ``"#rrggbb"`` colours, used by the preview renderer) and
``negative_prompt`` (string). Other tools write more keys into style.json, so an unknown key is
ignored unless it looks like a misspelling of a known one (then it is an error with a
suggestion: a typo in ``default_style`` would otherwise silently change every scene's style).
"""

from __future__ import annotations

import re

from keyframed.errors import Diagnostic
from keyframed.handlers.parse.assets import did_you_mean
from keyframed.handlers.parse.jsonpos import JMember, parse_json, type_name
from keyframed.handlers.project import StyleFile

STRING_FIELDS = ("name", "description", "negative_prompt")
STYLE_FIELDS = (*STRING_FIELDS, "default_style", "palette")
COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


def parse_style(text: str, file: str = "style.json") -> tuple[StyleFile, list[Diagnostic]]:
    """Parse style.json text into a :class:`StyleFile`.

    Args:
        text: The file's text.
        file: The name used in diagnostics.

    Returns:
        The style (defaults where a field is absent or wrong) and every diagnostic of the file.
    """
    root, found = parse_json(text, file)
    if root is None:
        return StyleFile(), found
    if root.kind != "object":
        msg = f"expected a JSON object, got {type_name(root)}"
        return StyleFile(), [*found, Diagnostic(file, root.line, root.column, msg)]
    values: dict[str, object] = {}
    for member in root.members:
        problem = _check(member, file, values)
        if problem is not None:
            found.append(problem)
    return StyleFile.model_validate(values), sorted(found, key=lambda d: (d.line, d.column))


def _check(member: JMember, file: str, values: dict[str, object]) -> Diagnostic | None:
    """Store one field's value in ``values``, or return why it is wrong."""
    node, key = member.node, member.key
    if key not in STYLE_FIELDS:
        hint = did_you_mean(key, STYLE_FIELDS, cutoff=0.8)
        if hint:
            return Diagnostic(file, member.line, member.column, f"unknown field '{key}'", hint)
        return None
    if key in STRING_FIELDS or key == "default_style":
        nullable = key == "default_style"
        if node.kind == "string" or (nullable and node.kind == "null"):
            values[key] = node.value.strip() if isinstance(node.value, str) else None
            return None
        expected = "a string or null" if nullable else "a string"
        return Diagnostic(
            file, node.line, node.column, f"'{key}' must be {expected}, got {type_name(node)}"
        )
    return _palette(member, file, values)


def _palette(member: JMember, file: str, values: dict[str, object]) -> Diagnostic | None:
    """Check ``palette``: a list of ``#rrggbb`` strings."""
    node = member.node
    if node.kind != "array":
        return Diagnostic(
            file, node.line, node.column, f"'palette' must be a list, got {type_name(node)}"
        )
    if not node.items:
        return None  # an empty palette keeps the default colours
    for item in node.items:
        if item.kind != "string" or not COLOUR_RE.match(str(item.value)):
            shown = item.value if item.kind == "string" else type_name(item)
            return Diagnostic(
                file,
                item.line,
                item.column,
                f"palette colour {shown!r} is not of the form '#rrggbb'",
                "for example '#d90429'",
            )
    values["palette"] = tuple(str(i.value).lower() for i in node.items)
    return None
