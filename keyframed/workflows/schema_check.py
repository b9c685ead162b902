"""Check an API-format prompt against a ComfyUI server's ``/object_info``, before sending it.

:func:`check_prompt` mirrors what ComfyUI's own validation would reject, and is somewhat
stricter where a template is more likely wrong than meant (it checks every node, not only the
ancestors of outputs; it reports inputs the class does not declare; an INT must be an integer
rather than something ``int()`` would truncate; a template must have exactly one output node,
because keyframed takes the one file it writes). Every message names the node id and class.

Model-list COMBOs (``unet_name``, ``clip_name``, ``vae_name``, ``lora_name``, …) are checked
against the recorded options plus, when ``models`` is given, the names ``GET /models/<folder>``
lists: a recorded ``object_info`` from a server without models has empty lists there. The
folder of each such input is :func:`model_folder`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from keyframed.errors import TemplateError
from keyframed.handlers.recipe import InputRef, LoraSpec, ParamValue, Recipe
from keyframed.settings import Settings
from keyframed.workflows import bind as binding
from keyframed.workflows import lora_chain

Models = Mapping[str, Collection[str]]

# Input name → models folder (as GET /models names it; "unet" and "clip" are legacy aliases
# ComfyUI serves from diffusion_models and text_encoders).
_FOLDER_BY_INPUT = {
    "unet_name": "diffusion_models",
    "clip_name": "text_encoders",
    "clip_name1": "text_encoders",
    "clip_name2": "text_encoders",
    "clip_name3": "text_encoders",
    "clip_name4": "text_encoders",
    "vae_name": "vae",
    "lora_name": "loras",
    "ckpt_name": "checkpoints",
    "control_net_name": "controlnet",
    "style_model_name": "style_models",
    "gligen_name": "gligen",
    "hypernetwork_name": "hypernetworks",
    "photomaker_model_name": "photomaker",
}
# Classes where the same input name means another folder.
_FOLDER_BY_CLASS_INPUT = {
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("LatentUpscaleModelLoader", "model_name"): "latent_upscale_models",
    ("ModelPatchLoader", "name"): "model_patches",
}
_PLAIN_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")


def model_folder(class_type: str, input_name: str) -> str | None:
    """The ``models/<folder>`` a model-list input of a node class picks its file from."""
    return _FOLDER_BY_CLASS_INPUT.get((class_type, input_name)) or _FOLDER_BY_INPUT.get(input_name)


def check_prompt(
    prompt: Mapping[str, Any], object_info: Mapping[str, Any], models: Models | None = None
) -> list[str]:
    """Find what ComfyUI would reject in a prompt (and what is surely a template mistake).

    Args:
        prompt: The API-format prompt (node id → ``{"class_type", "inputs"}``).
        object_info: The server's ``GET /object_info`` answer.
        models: Installed model files by folder (``GET /models/<folder>``), or None to trust
            the COMBO lists of ``object_info`` alone.

    Returns:
        Human-readable problems, each naming the node id and class; empty when it is fine.
    """
    if not isinstance(prompt, Mapping) or not prompt:
        return ["the prompt is not a non-empty object of nodes"]
    messages: list[str] = []
    for nid, node in prompt.items():
        messages += _check_node(str(nid), node, prompt, object_info, models)
    messages += _check_outputs(prompt, object_info)
    return messages


def _check_node(
    nid: str, node: object, prompt: Mapping[str, Any], object_info: Mapping[str, Any],
    models: Models | None,
) -> list[str]:
    if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
        return [f"node {nid}: has no 'class_type'"]
    cls = node["class_type"]
    where = f"node {nid} ({cls})"
    info = object_info.get(cls)
    if not isinstance(info, Mapping):
        return [f"{where}: unknown node class '{cls}' (not installed on this server)"]
    inputs = node.get("inputs", {})
    if not isinstance(inputs, Mapping):
        return [f"{where}: 'inputs' is not an object"]
    required, optional = _declared(info)
    messages = [f"{where}: required input '{name}' is missing"
                for name in required if name not in inputs]
    for name, value in inputs.items():
        spec = required.get(name, optional.get(name))
        if spec is None:
            messages.append(f"{where}: input '{name}' is not an input of {cls}")
            continue
        problem = _check_input(cls, name, value, spec, prompt, object_info, models)
        if problem:
            messages.append(f"{where}: input '{name}' {problem}")
    return messages


def _declared(info: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The required and optional input specs of a class (hidden inputs are never sent)."""
    spec = info.get("input") or {}
    return dict(spec.get("required") or {}), dict(spec.get("optional") or {})


def _spec_type(spec: Any) -> tuple[str, list[Any] | None, Mapping[str, Any]]:
    """``(type, combo options or None, extras)`` of an input spec, for both COMBO encodings."""
    if not isinstance(spec, list | tuple) or not spec:
        return "*", None, {}
    extras = spec[1] if len(spec) > 1 and isinstance(spec[1], Mapping) else {}
    if isinstance(spec[0], list):
        return "COMBO", list(spec[0]), extras
    if spec[0] == "COMBO":
        return "COMBO", list(extras.get("options") or []), extras
    return str(spec[0]), None, extras


def _check_input(
    cls: str, name: str, value: Any, spec: Any, prompt: Mapping[str, Any],
    object_info: Mapping[str, Any], models: Models | None,
) -> str | None:
    """One input's problem, phrased to follow "input 'x' ", or None."""
    kind, options, extras = _spec_type(spec)
    if isinstance(value, list):
        return _check_link(value, kind, prompt, object_info)
    if isinstance(value, Mapping) and "__value__" in value:
        return None  # a literal list, wrapped as ComfyUI asks
    if isinstance(value, str) and binding.PLACEHOLDER_RE.match(value):
        return f"still holds the unbound placeholder {value}"
    if kind == "COMBO":
        return _check_combo(cls, name, value, options or [], extras, models)
    if kind in _PLAIN_TYPES:
        return _check_plain(kind, value, extras)
    if kind == "*":
        return None
    return f"expects a link from a {kind} output, not the constant {value!r}"


def _check_link(
    value: list[Any], kind: str, prompt: Mapping[str, Any], object_info: Mapping[str, Any]
) -> str | None:
    if len(value) != 2 or not isinstance(value[0], str) or type(value[1]) is not int:
        return f"is a malformed link {value!r} (want [\"<node id>\", <output index>])"
    source, index = value
    node = prompt.get(source)
    if not isinstance(node, Mapping):
        return f"links to node {source}, which does not exist"
    info = object_info.get(node.get("class_type", ""))
    if not isinstance(info, Mapping):
        return None  # the source's unknown class is reported on the source itself
    outputs = list(info.get("output") or [])
    if not 0 <= index < len(outputs):
        return (f"links to output {index} of node {source} ({node['class_type']}), which has "
                f"{len(outputs)} output(s)")
    out_type = "COMBO" if isinstance(outputs[index], list) else str(outputs[index])
    if not types_match(out_type, kind):
        return (f"wants {kind} but links to output {index} of node {source} "
                f"({node['class_type']}), which is {out_type}")
    return None


def types_match(received: str, wanted: str) -> bool:
    """ComfyUI's rule: ``*`` matches anything, else comma-separated type sets must overlap."""
    if received == wanted or "*" in (received, wanted):
        return True
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in wanted.split(",")}
    return "*" in got or "*" in want or bool(got & want)


def _check_combo(
    cls: str, name: str, value: Any, options: list[Any], extras: Mapping[str, Any],
    models: Models | None,
) -> str | None:
    if extras.get("image_upload") or extras.get("video_upload"):
        return None  # ComfyUI's own validator checks these (the uploaded file exists)
    if value in options:
        return None
    folder = model_folder(cls, name)
    if folder is not None and models is not None:
        if value in models.get(folder, []):
            return None
        return f"= {value!r} is not installed (not in models/{folder})"
    shown = options if len(options) <= 20 else f"a list of {len(options)}"
    return f"= {value!r} is not one of the options {shown}"


def _check_plain(kind: str, value: Any, extras: Mapping[str, Any]) -> str | None:
    if kind == "STRING":
        return None if isinstance(value, str) else f"expects a string, got {value!r}"
    if kind == "BOOLEAN":
        return None if isinstance(value, bool) else f"expects true or false, got {value!r}"
    ok = isinstance(value, int) if kind == "INT" else isinstance(value, int | float)
    if isinstance(value, bool) or not ok:
        return f"expects {kind}, got {type(value).__name__} {value!r}"
    low, high = extras.get("min"), extras.get("max")
    if isinstance(low, int | float) and value < low:
        return f"= {value!r} is below the minimum {low}"
    if isinstance(high, int | float) and value > high:
        return f"= {value!r} is above the maximum {high}"
    return None


def _check_outputs(prompt: Mapping[str, Any], object_info: Mapping[str, Any]) -> list[str]:
    """Exactly one output node: keyframed fetches the one file its output node saves."""
    outputs = [
        f"{nid} ({node['class_type']})" for nid, node in prompt.items()
        if isinstance(node, Mapping) and _is_output(object_info.get(node.get("class_type", "")))
    ]
    if len(outputs) == 1:
        return []
    if not outputs:
        return ["the prompt has no output node (SaveImage, SaveVideo, …)"]
    return [f"the prompt has {len(outputs)} output nodes ({', '.join(outputs)}); keyframed "
            "needs exactly one"]


def _is_output(info: object) -> bool:
    return isinstance(info, Mapping) and bool(info.get("output_node"))


def required_models(prompt: Mapping[str, Any]) -> dict[str, set[str]]:
    """Model files a bound prompt needs, by folder: what a backend must have to run it."""
    needed: dict[str, set[str]] = {}
    for node in prompt.values():
        for name, value in node.get("inputs", {}).items():
            folder = model_folder(node.get("class_type", ""), name)
            if folder is not None and isinstance(value, str):
                needed.setdefault(folder, set()).add(value)
    return needed


def required_classes(prompt: Mapping[str, Any]) -> set[str]:
    """Node classes a bound prompt uses: what a backend must have installed to run it."""
    return {str(node.get("class_type")) for node in prompt.values()}


def check_template(
    template: Mapping[str, Any], object_info: Mapping[str, Any], settings: Settings
) -> list[str]:
    """Check a template's structure: bind it with stand-in values, then :func:`check_prompt`.

    Every image slot is filled, every LoRA marker gets one LoRA of its group (with the loader
    of ``settings.loras.loader``), and every other required placeholder a value valid for the
    input it sits in, so what remains are the template's own mistakes: unknown classes or
    inputs, constants out of range, wrong links, a missing output. Optional ``{{name?}}``
    placeholders stay unbound, so one on a required input is reported as missing.

    Returns:
        The problems found, each naming the node; empty when the template is usable.
    """
    try:
        recipe, images, models = _stand_ins(binding.nodes_of(template), object_info, settings)
        prompt = binding.bind(template, recipe, images=images, output_prefix="keyframed/check",
                              lora_loader=settings.loras.loader)
    except TemplateError as exc:
        return [str(exc)]
    return check_prompt(prompt, object_info, models)


def _stand_ins(
    prompt: binding.Prompt, object_info: Mapping[str, Any], settings: Settings
) -> tuple[Recipe, list[str], dict[str, list[str]]]:
    """A recipe, image names and installed models that bind every placeholder validly."""
    models: dict[str, list[str]] = {}
    values: dict[str, ParamValue] = {}
    slots = 0
    for nid, node in prompt.items():
        info = object_info.get(node["class_type"])
        for key, raw in node["inputs"].items():
            parsed = binding.parse_placeholder(raw, nid, node, key)
            if parsed is None or parsed[0] in values:
                continue
            slot = binding.IMAGE_SLOT_RE.match(parsed[0])
            if slot:
                slots = max(slots, int(slot.group(1)))
            elif not parsed[1]:  # optional ones stay unbound: check the inputs they drop
                values[parsed[0]] = _stand_in(node["class_type"], key, info, models, parsed[0])
    loras = _stand_in_loras(prompt, settings, models)
    recipe = _recipe(values, loras, slots)
    return recipe, [f"check_{i}.png" for i in range(1, slots + 1)], models


def _stand_in(
    cls: str, key: str, info: object, models: dict[str, list[str]], name: str
) -> ParamValue:
    """A value the input accepts: its default, its first option, or a stand-in model file."""
    required, optional = _declared(info) if isinstance(info, Mapping) else ({}, {})
    kind, options, extras = _spec_type(required.get(key, optional.get(key)))
    default = extras.get("default")
    if kind == "COMBO" and options:
        choice = default if default in options else options[0]
        return choice if isinstance(choice, int | float | str) else str(choice)
    folder = model_folder(cls, key)
    if kind == "COMBO" and folder is not None:
        models.setdefault(folder, []).append(f"{name}.safetensors")
        return f"{name}.safetensors"
    if kind in ("INT", "FLOAT"):
        value = default if isinstance(default, int | float) else extras.get("min", 0)
        return float(value) if kind == "FLOAT" else int(value)
    if kind == "BOOLEAN":
        return bool(default)
    return "check"


def _stand_in_loras(
    prompt: binding.Prompt, settings: Settings, models: dict[str, list[str]]
) -> tuple[LoraSpec, ...]:
    """One LoRA per marker group; a group named like a ``[loras]`` entry uses its file."""
    loras: list[LoraSpec] = []
    for group in dict.fromkeys(m.group for m in lora_chain.markers(prompt)):
        role = group or "lightning"
        configured = getattr(settings.loras, role, None)
        file = getattr(configured, "file", f"{role}.safetensors")
        models.setdefault("loras", []).append(file)
        loras.append(LoraSpec(role=role, file=file, strength=1.0))
    return tuple(loras)


def _recipe(values: dict[str, ParamValue], loras: tuple[LoraSpec, ...], slots: int) -> Recipe:
    seed, take = values.pop("seed", 0), values.pop("take", 0)
    values.pop("output_prefix", None)
    return Recipe(
        step="asset",
        template="check",
        mode="check",
        prompt=str(values.pop("prompt", "check")),
        negative=str(values.pop("negative", "")),
        seed=seed if isinstance(seed, int) else 0,
        take=take if isinstance(take, int) else 0,
        inputs=tuple(InputRef(path=f"check_{i}.png", role="check") for i in range(slots)),
        loras=loras,
        params=values,
    )
