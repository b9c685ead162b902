"""Insert a recipe's LoRA stack into a template at its ``{{lora_chain:...}}`` markers.

A marker is a node input value ``"{{lora_chain:SRC}}"`` or ``"{{lora_chain:SRC:GROUP}}"``;
``SRC`` is the id of the node whose output 0 is the MODEL, ``GROUP`` a LoRA role prefix (see
:mod:`keyframed.workflows.bind` for the whole convention). Each LoRA becomes one loader node;
the loader class comes from ``settings.loras.loader`` and its input names from
:data:`LORA_LOADERS`:

=============================  =========  ===========  ==================
loader class                   model in   file input   strength input
=============================  =========  ===========  ==================
``LoraLoaderModelOnly``        model      lora_name    strength_model
``NunchakuQwenImageLoraLoader``  model    lora_name    lora_strength
=============================  =========  ===========  ==================

Only model-only loaders fit: the chain carries a MODEL link, output 0 of each loader. Loader
nodes get fresh numeric ids above the template's highest numeric id, in chain order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from keyframed.errors import TemplateError
from keyframed.handlers.recipe import LoraSpec

MARKER_RE = re.compile(r"^\{\{lora_chain:([^:{}\s]+)(?::([A-Za-z0-9_]+))?\}\}$")


class LoaderInputs(NamedTuple):
    """Input names of one LoRA loader class."""

    model: str
    file: str
    strength: str


LORA_LOADERS: dict[str, LoaderInputs] = {
    "LoraLoaderModelOnly": LoaderInputs("model", "lora_name", "strength_model"),
    "NunchakuQwenImageLoraLoader": LoaderInputs("model", "lora_name", "lora_strength"),
}


class Marker(NamedTuple):
    """One ``{{lora_chain:...}}`` occurrence in a template."""

    node: str
    input: str
    source: str
    group: str


def parse_marker(value: object) -> tuple[str, str] | None:
    """Return ``(source_node_id, group)`` for a marker value, None for anything else."""
    if not isinstance(value, str):
        return None
    match = MARKER_RE.match(value)
    return (match.group(1), match.group(2) or "") if match else None


def markers(prompt: dict[str, dict[str, Any]]) -> list[Marker]:
    """Every LoRA-chain marker of a template, in node and input order."""
    found: list[Marker] = []
    for nid, node in prompt.items():
        for key, value in node.get("inputs", {}).items():
            parsed = parse_marker(value)
            if parsed is not None:
                found.append(Marker(nid, key, *parsed))
    return found


def insert_chains(
    prompt: dict[str, dict[str, Any]], loras: Sequence[LoraSpec], loader: str
) -> None:
    """Replace every marker of ``prompt`` (in place) by a chain of loader nodes.

    Raises:
        TemplateError: Unknown loader class, a marker's source node is missing, a LoRA fits no
            marker, or the recipe has LoRAs and the template no marker.
    """
    found = markers(prompt)
    if not found:
        if loras:
            raise TemplateError(f"the recipe has {len(loras)} LoRA(s) but the template has no "
                                "'{{lora_chain:<model node id>}}' marker to put them on")
        return
    names = _loader_inputs(loader)
    _check_coverage(found, loras)
    ids = _fresh_ids(prompt)
    for mark in found:
        if mark.source not in prompt:
            raise TemplateError(f"node {mark.node} ({prompt[mark.node]['class_type']}): input "
                                f"'{mark.input}' chains LoRAs from node {mark.source}, which "
                                "does not exist")
        link: list[str | int] = [mark.source, 0]
        for lora in (x for x in loras if x.role.startswith(mark.group)):
            nid = next(ids)
            prompt[nid] = _loader_node(loader, names, link, lora)
            link = [nid, 0]
        prompt[mark.node]["inputs"][mark.input] = link


def _loader_inputs(loader: str) -> LoaderInputs:
    try:
        return LORA_LOADERS[loader]
    except KeyError:
        known = ", ".join(sorted(LORA_LOADERS))
        raise TemplateError(f"unknown LoRA loader '{loader}' (loras.loader); known: {known}")\
            from None


def _check_coverage(found: Iterable[Marker], loras: Sequence[LoraSpec]) -> None:
    """Every LoRA must go on at least one chain: a dropped LoRA would go unnoticed."""
    groups = {m.group for m in found}
    lost = [x.role for x in loras if not any(x.role.startswith(g) for g in groups)]
    if lost:
        raise TemplateError(f"LoRA role(s) {', '.join(lost)} match no lora_chain marker group "
                            f"of the template (groups: {sorted(groups)})")


def _fresh_ids(prompt: dict[str, dict[str, Any]]) -> Iterator[str]:
    """Numeric ids above the template's highest numeric id, skipping any in use."""
    top = max((int(k) for k in prompt if k.isdigit()), default=0)
    n = top
    while True:
        n += 1
        if str(n) not in prompt:
            yield str(n)


def _loader_node(
    loader: str, names: LoaderInputs, link: list[str | int], lora: LoraSpec
) -> dict[str, Any]:
    return {
        "class_type": loader,
        "inputs": {names.model: link, names.file: lora.file, names.strength: lora.strength},
        "_meta": {"title": f"LoRA {lora.role}"},
    }
