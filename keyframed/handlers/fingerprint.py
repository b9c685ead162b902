"""Content fingerprints of recipes.

A fingerprint is sha256 over canonical JSON (sorted keys) of the recipe, each input replaced by
its content hash and the template by the hash of its file, plus :data:`FINGERPRINT_VERSION`
(bumping it makes everything stale, like doit's ``checker:``). Each component also gets a
short hash of its own so that a changed fingerprint can be explained field by field.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from json.encoder import encode_basestring
from typing import Any

from pydantic import BaseModel, ConfigDict

from keyframed.handlers.recipe import Recipe

FINGERPRINT_VERSION = 1


class Components(BaseModel):
    """What went into a fingerprint, kept so that a later change can be named."""

    model_config = ConfigDict(frozen=True)

    inputs: dict[str, str]
    template: str
    fields: dict[str, str]


# One encoder for every call: json.dumps with these options builds a new JSONEncoder each time.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, UTF-8 kept.

    A plan hashes ~20 fields of every recipe on every pass, most of them plain strings and
    numbers; those take the encoder's own scalar paths directly (byte for byte what
    ``json.dumps`` gives, so fingerprints do not change), which makes planning ~25 % cheaper.
    """
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    return _ENCODER.encode(value)


def short_hash(value: Any) -> str:
    """A 16-hex-digit hash of a JSON value, for per-field comparison."""
    return hashlib.sha256(canonical(value).encode()).hexdigest()[:16]


def recipe_fields(recipe: Recipe) -> dict[str, str]:
    """Per-field hashes of everything in a recipe but its input files.

    ``params`` is split per key so a reason can say ``recipe_changed: params.steps``.
    """
    data = recipe.model_dump(mode="json")
    params = data.pop("params")
    inputs = data.pop("inputs")
    fields = {name: short_hash(value) for name, value in data.items()}
    fields.update({f"params.{k}": short_hash(v) for k, v in params.items()})
    fields["inputs"] = short_hash([[i["path"], i["role"]] for i in inputs])
    return fields


def components(recipe: Recipe, hashes: Mapping[str, str], template_hash: str) -> Components:
    """Collect the fingerprint components; ``hashes`` maps input path to content hash."""
    return Components(
        inputs={i.path: hashes[i.path] for i in recipe.inputs},
        template=template_hash,
        fields=recipe_fields(recipe),
    )


def fingerprint(parts: Components) -> str:
    """The fingerprint of a set of components."""
    payload = {"version": FINGERPRINT_VERSION, **parts.model_dump()}
    return hashlib.sha256(canonical(payload).encode()).hexdigest()
