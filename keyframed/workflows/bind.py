"""Binding a ComfyUI API-format workflow template to a recipe.

The convention (also in ``docs/workflows.md``; a user's own template in a project's
``workflows/`` folder follows the same rules):

**Placeholders.** A node input whose value is a JSON string of exactly the form
``"{{name}}"`` (the whole value, no spaces) is replaced by the bound value of ``name``, which
keeps its type: ``"{{steps}}"`` becomes the integer ``6``, ``"{{cfg}}"`` the float ``1.0``,
``"{{prompt}}"`` a string. ``"{{name?}}"`` is an *optional* placeholder: when ``name`` is not
bound the input is removed (ComfyUI then uses the node's default). Any other string holding
``{{`` and ``}}`` is a malformed placeholder and a :class:`TemplateError`. Bound values are
never scanned again, so a prompt that contains ``{{`` is safe.

The names that can be bound, from the recipe:

==================  ====================================================================
``prompt``          ``recipe.prompt`` (str)
``negative``        ``recipe.negative`` (str; ``""`` when there is none)
``seed``            ``recipe.seed`` (int)
``take``            ``recipe.take`` (int)
``output_prefix``   the ``output_prefix`` argument: SaveImage / SaveVideo ``filename_prefix``
``image1`` …        the ``images`` argument, in recipe input order: the uploaded file names
                    that ``LoadImage`` reads (``image1`` = ``recipe.inputs[0]``, …)
every key of        ``recipe.models``: the packaged templates use ``unet``, ``clip``,
``recipe.models``   ``vae`` (Qwen) and ``unet_high``, ``unet_low``, ``clip``, ``vae`` (Wan)
every key of        ``recipe.params``: the packaged templates use ``width``, ``height``,
``recipe.params``   ``steps``, ``cfg``, ``sampler``, ``scheduler``, ``shift`` and, for
                    ``wan_flf2v.json``, also ``length``, ``fps`` and ``split_step``
==================  ====================================================================

A key of ``recipe.models`` or ``recipe.params`` that repeats another name (a built-in or the
other mapping) is a :class:`TemplateError`: one name must mean one thing.

**Image slots.** ``image<N>`` placeholders are slots filled in order. A slot beyond the
number of images given is *unbound*: the node holding it (the ``LoadImage``) is removed, and
so is every input that links to a removed node. A node that loses all its links that way
(the ``FluxKontextImageScale`` behind the ``LoadImage``) is removed too; a node that keeps
other links (``TextEncodeQwenImageEditPlus``) only loses the dangling inputs, so
``image3`` is simply absent. Such inputs must be optional ones; the schema check
(:mod:`keyframed.workflows.schema_check`) reports a required input that went missing. If the
removal would take away a terminal node (one nothing links to, i.e. the output), the slot is
required and binding fails. More images than the template has slots is an error too: an input
must never be silently ignored.

**LoRA chain.** A node input whose value is ``"{{lora_chain:SRC}}"`` or
``"{{lora_chain:SRC:GROUP}}"`` marks where a model link goes through the recipe's LoRAs: ``SRC``
is the id of the node whose output 0 is the MODEL (the ``UNETLoader``). Binding inserts one
loader node per LoRA, in ``recipe.loras`` order, each taking the previous one's MODEL, and
links the marked input to the last one (straight to ``[SRC, 0]`` when no LoRA applies). A
marker with ``GROUP`` takes only the LoRAs whose ``role`` starts with ``GROUP``; without one it
takes them all. ``wan_flf2v.json`` puts ``wan_high*`` LoRAs on the high-noise expert and
``wan_low*`` LoRAs on the low-noise one. Every LoRA of the recipe must land on at least one
chain, and a recipe with LoRAs bound to a template without a marker is an error; a template
without a marker and a recipe without LoRAs bind fine. See :mod:`keyframed.workflows.lora_chain`
for the loader classes and their input names.

**Errors.** A required placeholder (``"{{name}}"``) that is not bound is a
:class:`TemplateError` that names the node id, its class and the input.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

from keyframed.errors import TemplateError
from keyframed.handlers.recipe import ParamValue, Recipe
from keyframed.workflows import lora_chain

Node = dict[str, Any]
Prompt = dict[str, Node]

NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
PLACEHOLDER_RE = re.compile(rf"^\{{\{{({NAME_PATTERN})(\?)?\}}\}}$")
IMAGE_SLOT_RE = re.compile(r"^image([1-9][0-9]*)$")
BUILTIN_NAMES = ("prompt", "negative", "seed", "take", "output_prefix")


def bind(
    template: Mapping[str, Any],
    recipe: Recipe,
    *,
    images: Sequence[str],
    output_prefix: str,
    lora_loader: str = "LoraLoaderModelOnly",
) -> Prompt:
    """Bind a workflow template to a recipe, giving a prompt ComfyUI can run.

    Args:
        template: The API-format template (node id → ``{"class_type", "inputs"}``); never
            mutated.
        recipe: The recipe whose prompt, seed, models, params and LoRAs are bound.
        images: Uploaded file names of ``recipe.inputs``, in the same order (slot order).
        output_prefix: The ``filename_prefix`` of the output node.
        lora_loader: The LoRA loader class (``settings.loras.loader``).

    Returns:
        A new API-format prompt.

    Raises:
        TemplateError: The template is malformed, a required placeholder is unbound, there are
            more images than slots, or the LoRAs do not fit the template's markers.
        ValueError: ``images`` does not have one name per recipe input.
    """
    if len(images) != len(recipe.inputs):
        raise ValueError(f"bind needs one image per recipe input: {len(images)} names for "
                         f"{len(recipe.inputs)} inputs")
    prompt = copy.deepcopy(nodes_of(template))
    _check_slot_count(prompt, len(images))
    prompt = drop_unbound_slots(prompt, len(images))
    lora_chain.insert_chains(prompt, recipe.loras, lora_loader)
    values = bound_values(recipe, images, output_prefix)
    _substitute(prompt, values)
    return prompt


def placeholders(template: Mapping[str, Any]) -> set[str]:
    """Return the names of every placeholder in a template (LoRA markers excluded).

    Args:
        template: An API-format template.

    Returns:
        Names such as ``{"prompt", "seed", "image1", "unet"}``; ``"{{x?}}"`` gives ``x``.
    """
    names: set[str] = set()
    for nid, node in nodes_of(template).items():
        for key, value in node["inputs"].items():
            parsed = parse_placeholder(value, nid, node, key)
            if parsed is not None:
                names.add(parsed[0])
    return names


def bound_values(
    recipe: Recipe, images: Sequence[str], output_prefix: str
) -> dict[str, ParamValue]:
    """Every name a template can use, with its value, for one recipe.

    Raises:
        TemplateError: A models or params key repeats a name bound elsewhere.
    """
    values: dict[str, ParamValue] = {
        "prompt": recipe.prompt,
        "negative": recipe.negative,
        "seed": recipe.seed,
        "take": recipe.take,
        "output_prefix": output_prefix,
    }
    values.update({f"image{i}": name for i, name in enumerate(images, start=1)})
    for source, mapping in (("models", recipe.models), ("params", recipe.params)):
        for key, value in mapping.items():
            if key in values or IMAGE_SLOT_RE.match(key):
                raise TemplateError(f"recipe.{source} key '{key}' repeats a name that is "
                                    "already bound; rename it")
            values[key] = value
    return values


def nodes_of(template: Mapping[str, Any]) -> Prompt:
    """Check a template's shape and return it typed as a prompt (not copied).

    Raises:
        TemplateError: It is not an object of nodes with ``class_type`` and ``inputs``.
    """
    if not isinstance(template, Mapping) or not template:
        raise TemplateError("a workflow template must be a non-empty JSON object of nodes "
                            "(ComfyUI API format, 'Export (API)')")
    for nid, node in template.items():
        if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
            raise TemplateError(f"template node {nid}: not a node with a 'class_type' "
                                "(is this the UI format rather than the API format?)")
        if not isinstance(node.get("inputs", {}), Mapping):
            raise TemplateError(f"template node {nid} ({node['class_type']}): 'inputs' "
                                "must be an object")
    return {str(k): _with_inputs(v) for k, v in template.items()}


def _with_inputs(node: Mapping[str, Any]) -> Node:
    """A node dict that surely has an ``inputs`` key (some exports omit it when empty)."""
    out = dict(node)
    out.setdefault("inputs", {})
    return out


def parse_placeholder(value: object, nid: str, node: Node, key: str) -> tuple[str, bool] | None:
    """Parse an input value: ``(name, optional)`` for a placeholder, None for anything else.

    Raises:
        TemplateError: The value looks like a placeholder but is malformed.
    """
    if not isinstance(value, str) or "{{" not in value:
        return None
    match = PLACEHOLDER_RE.match(value)
    if match is not None:
        return match.group(1), match.group(2) == "?"
    if lora_chain.parse_marker(value) is not None:
        return None
    raise TemplateError(f"node {nid} ({node['class_type']}): input '{key}' has a malformed "
                        f"placeholder {value!r}; a placeholder is the whole value, like "
                        "\"{{name}}\"")


def is_link(value: object) -> bool:
    """True for an API-format link ``[source_node_id, output_index]``."""
    return (isinstance(value, list) and len(value) == 2
            and isinstance(value[0], str | int) and isinstance(value[1], int))


def _slot_of(value: object) -> int | None:
    """The slot number of an ``"{{imageN}}"`` / ``"{{imageN?}}"`` value, else None."""
    if not isinstance(value, str):
        return None
    match = PLACEHOLDER_RE.match(value)
    slot = IMAGE_SLOT_RE.match(match.group(1)) if match else None
    return int(slot.group(1)) if slot else None


def _slots(prompt: Prompt) -> dict[str, int]:
    """Node id → the highest image slot it holds, for nodes that hold one."""
    held: dict[str, int] = {}
    for nid, node in prompt.items():
        found = [s for s in map(_slot_of, node["inputs"].values()) if s is not None]
        if found:
            held[nid] = max(found)
    return held


def _check_slot_count(prompt: Prompt, count: int) -> None:
    """Refuse more images than the template has slots."""
    top = max(_slots(prompt).values(), default=0)
    if count > top:
        raise TemplateError(f"the recipe has {count} reference images but the template has "
                            f"only {top} image slot(s) ('{{{{image1}}}}'..)")


def drop_unbound_slots(prompt: Prompt, count: int) -> Prompt:
    """Remove the nodes of image slots beyond ``count`` and what only they fed.

    Raises:
        TemplateError: Dropping a slot would remove a terminal (output) node.
    """
    removed = {nid for nid, slot in _slots(prompt).items() if slot > count}
    if not removed:
        return prompt
    terminal = _terminal_nodes(prompt)
    changed = True
    while changed:
        changed = False
        for nid, node in prompt.items():
            if nid in removed or not _drop_dangling(node, removed):
                continue
            changed = True
            if not any(map(_is_link_or_marker, node["inputs"].values())):
                if nid in terminal:
                    raise TemplateError(f"node {nid} ({node['class_type']}) needs an image "
                                        f"slot above {count}, but the recipe has {count} "
                                        "image(s)")
                removed.add(nid)
    return {nid: node for nid, node in prompt.items() if nid not in removed}


def _drop_dangling(node: Node, removed: set[str]) -> bool:
    """Delete the node's inputs that link to removed nodes; True if any was deleted."""
    inputs = node["inputs"]
    dangling = [k for k, v in inputs.items() if is_link(v) and str(v[0]) in removed]
    for key in dangling:
        del inputs[key]
    return bool(dangling)


def _is_link_or_marker(value: object) -> bool:
    return is_link(value) or lora_chain.parse_marker(value) is not None


def _terminal_nodes(prompt: Prompt) -> set[str]:
    """Nodes no other node links to: the outputs of a well-formed template."""
    used = {str(v[0]) for node in prompt.values() for v in node["inputs"].values() if is_link(v)}
    return set(prompt) - used


def _substitute(prompt: Prompt, values: Mapping[str, ParamValue]) -> None:
    """Replace every placeholder in place; collect all unbound required ones into one error."""
    unbound: list[str] = []
    for nid, node in prompt.items():
        inputs = node["inputs"]
        for key, value in list(inputs.items()):
            parsed = parse_placeholder(value, nid, node, key)
            if parsed is None:
                continue
            name, optional = parsed
            if name in values:
                inputs[key] = values[name]
            elif optional:
                del inputs[key]
            else:
                unbound.append(f"node {nid} ({node['class_type']}): input '{key}' needs "
                               f"'{{{{{name}}}}}', which the recipe does not bind")
    if unbound:
        raise TemplateError("; ".join(unbound))
