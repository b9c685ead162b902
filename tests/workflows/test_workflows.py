"""Workflow templates, the binding convention, and the object_info schema check."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from keyframed.errors import TemplateError
from keyframed.handlers.recipe import InputRef, LoraSpec, ParamValue, Recipe
from keyframed.settings import Settings
from keyframed.workflows.bind import bind, placeholders
from keyframed.workflows.schema_check import (
    check_prompt,
    check_template,
    model_folder,
    required_classes,
    required_models,
    types_match,
)
from keyframed.workflows.templates import PACKAGED_DIR, load_template, template_hash

SETTINGS = Settings()
QWEN_EDIT = ("qwen_background.json", "qwen_anypose.json", "qwen_instyle.json",
             "qwen_composite.json")
ALL_TEMPLATES = (*QWEN_EDIT, "qwen_t2i.json", "wan_flf2v.json")
IMAGE_PARAMS = ("width", "height", "steps", "cfg", "sampler", "scheduler", "shift")
# What docs/workflows.md promises each packaged template binds.
EDIT_NAMES = {"prompt", "negative", "seed", "output_prefix", "unet", "clip", "vae",
              "image1", "image2", "image3", *IMAGE_PARAMS}
DOCUMENTED = {
    **{name: EDIT_NAMES for name in QWEN_EDIT},
    "qwen_t2i.json": EDIT_NAMES - {"image1", "image2", "image3"},
    "wan_flf2v.json": {"prompt", "negative", "seed", "output_prefix", "unet_high", "unet_low",
                       "clip", "vae", "image1", "image2", "length", "fps", "split_step",
                       *IMAGE_PARAMS},
}


# ---------------------------------------------------------------- recipes built by hand


def lora(role: str, strength: float) -> LoraSpec:
    """A LoRA of the configured stack, by its settings name."""
    return LoraSpec(role=role, file=getattr(SETTINGS.loras, role).file, strength=strength)


def edit_recipe(template: str, n_images: int, loras: tuple[LoraSpec, ...],
                **params: ParamValue) -> Recipe:
    """A Qwen-Image-Edit recipe as the step handlers make them."""
    i = SETTINGS.image
    base: dict[str, ParamValue] = {"width": i.width, "height": i.height, "steps": i.steps,
                                   "cfg": i.cfg, "sampler": i.sampler,
                                   "scheduler": i.scheduler, "shift": i.shift}
    roles = ("identity", "pose", "style", "extra")
    return Recipe(
        step="character", template=template, mode="edit",
        prompt="Make the person in image 1 do the exact same pose of the person in image 2.",
        negative="blurry",
        inputs=tuple(InputRef(path=f"assets/x/{k}.png", role=roles[k]) for k in range(n_images)),
        loras=loras,
        models={"unet": SETTINGS.models.edit_unet, "clip": SETTINGS.models.clip,
                "vae": SETTINGS.models.vae},
        params={**base, **params}, seed=123456789, take=1,
    )


ANYPOSE_STACK = (lora("lightning", 1.0), lora("anypose", 0.55), lora("anypose_helper", 0.55),
                 lora("instyle", 0.45))
INSTYLE_STACK = (lora("lightning", 1.0), lora("instyle", 0.5))


def t2i_recipe() -> Recipe:
    i = SETTINGS.image
    return Recipe(
        step="asset", template="qwen_t2i.json", mode="t2i", prompt="A samurai in red armor.",
        models={"unet": SETTINGS.models.t2i_unet, "clip": SETTINGS.models.clip,
                "vae": SETTINGS.models.vae},
        params={"width": i.width, "height": i.height, "steps": i.t2i_steps, "cfg": i.t2i_cfg,
                "sampler": i.sampler, "scheduler": i.scheduler, "shift": i.t2i_shift},
        seed=7,
    )


def video_recipe(n_images: int = 2, loras: tuple[LoraSpec, ...] | None = None) -> Recipe:
    v, m = SETTINGS.video, SETTINGS.models
    stack = (lora("wan_high", 1.0), lora("wan_low", 1.0)) if loras is None else loras
    return Recipe(
        step="video", template="wan_flf2v.json", mode="video",
        prompt="Samurai slowly sits down. Camera: static.",
        inputs=tuple(InputRef(path=f"scene-01/keyframe-{k}.png", role=k, artifact=True)
                     for k in ("start", "end")[:n_images]),
        loras=stack,
        models={"unet_high": m.wan_high, "unet_low": m.wan_low, "clip": m.wan_clip,
                "vae": m.wan_vae},
        params={"width": v.width, "height": v.height, "fps": v.fps, "length": 81,
                "duration": 5.0, "steps": v.steps, "split_step": v.split_step, "cfg": v.cfg,
                "shift": v.shift, "sampler": "euler", "scheduler": "simple"},
        seed=99,
    )


RECIPES = {
    "qwen_background.json": edit_recipe("qwen_background.json", 2, INSTYLE_STACK),
    "qwen_anypose.json": edit_recipe("qwen_anypose.json", 3, ANYPOSE_STACK),
    "qwen_instyle.json": edit_recipe("qwen_instyle.json", 2, INSTYLE_STACK),
    "qwen_composite.json": edit_recipe("qwen_composite.json", 3, (lora("lightning", 1.0),)),
    "qwen_t2i.json": t2i_recipe(),
    "wan_flf2v.json": video_recipe(),
}


def installed() -> dict[str, list[str]]:
    """The model files settings.py names, as GET /models/<folder> would list them."""
    m, loras = SETTINGS.models, SETTINGS.loras
    roles = ("lightning", "anypose", "anypose_helper", "instyle", "wan_high", "wan_low")
    return {
        "diffusion_models": [m.edit_unet, m.t2i_unet, m.wan_high, m.wan_low],
        "text_encoders": [m.clip, m.wan_clip],
        "vae": [m.vae, m.wan_vae],
        "loras": [getattr(loras, r).file for r in roles],
    }


def images_for(recipe: Recipe) -> list[str]:
    return [f"kf_{k}.png" for k in range(len(recipe.inputs))]


def bound(name: str, recipe: Recipe | None = None, **kw: Any) -> dict[str, Any]:
    template, _ = load_template(name, None)
    recipe = recipe or RECIPES[name]
    return bind(template, recipe, images=images_for(recipe), output_prefix="kf/scene-01/x", **kw)


@pytest.fixture(scope="module")
def object_info(shared_dir: Path) -> dict[str, Any]:
    info: dict[str, Any] = json.loads((shared_dir / "comfyui" / "object_info.json").read_text())
    return info


def messages_about(messages: list[str], node: str) -> list[str]:
    return [m for m in messages if m.startswith(f"node {node} ")]


def chain(prompt: dict[str, Any], start: list[Any], until: str) -> list[tuple[str, float]]:
    """Walk MODEL links back from ``start`` to node ``until``: the LoRAs met, in stack order."""
    found: list[tuple[str, float]] = []
    nid = start[0]
    while nid != until:
        node = prompt[nid]
        assert node["class_type"] == "LoraLoaderModelOnly", node
        found.append((node["inputs"]["lora_name"], node["inputs"]["strength_model"]))
        nid = node["inputs"]["model"][0]
    return found[::-1]


# ---------------------------------------------------------------- the six templates


@pytest.mark.parametrize("name", ALL_TEMPLATES)
def test_packaged_template_binds_and_passes_the_schema_check(
    name: str, object_info: dict[str, Any]
) -> None:
    prompt = bound(name)
    assert check_prompt(prompt, object_info, installed()) == []
    assert check_template(load_template(name, None)[0], object_info, SETTINGS) == []


@pytest.mark.parametrize("name", ALL_TEMPLATES)
def test_packaged_template_placeholders_are_the_documented_ones(name: str) -> None:
    template, _ = load_template(name, None)
    assert placeholders(template) == DOCUMENTED[name]
    docs = (Path(__file__).resolve().parents[2] / "docs" / "workflows.md").read_text()
    assert f"`{name}`" in docs


def test_bound_values_keep_their_types_and_prompt_text_is_not_rescanned() -> None:
    recipe = edit_recipe("qwen_anypose.json", 3, ANYPOSE_STACK)
    recipe = recipe.model_copy(update={"prompt": "literal {{seed}} stays"})
    prompt = bound("qwen_anypose.json", recipe)
    sampler = prompt["40"]["inputs"]
    assert sampler["seed"] == 123456789 and type(sampler["seed"]) is int
    assert sampler["steps"] == 6 and type(sampler["steps"]) is int
    assert sampler["cfg"] == 1.0 and type(sampler["cfg"]) is float
    assert sampler["sampler_name"] == "euler"
    assert prompt["20"]["inputs"]["prompt"] == "literal {{seed}} stays"
    assert prompt["21"]["inputs"]["prompt"] == "blurry"
    assert prompt["60"]["inputs"]["filename_prefix"] == "kf/scene-01/x"
    assert [prompt[n]["inputs"]["image"] for n in ("10", "12", "14")] == \
        ["kf_0.png", "kf_1.png", "kf_2.png"]


def test_bind_never_mutates_the_template() -> None:
    template, _ = load_template("qwen_anypose.json", None)
    before = copy.deepcopy(template)
    bind(template, RECIPES["qwen_anypose.json"], images=["a", "b", "c"], output_prefix="p")
    bind(template, edit_recipe("qwen_anypose.json", 1, ()), images=["a"], output_prefix="p")
    assert template == before


def test_wan_template_wiring(object_info: dict[str, Any]) -> None:
    prompt = bound("wan_flf2v.json")
    high, low = prompt["13"]["inputs"], prompt["14"]["inputs"]
    assert (high["start_at_step"], high["end_at_step"]) == (0, SETTINGS.video.split_step)
    assert low["start_at_step"] == SETTINGS.video.split_step
    assert (high["add_noise"], low["add_noise"]) == ("enable", "disable")
    assert low["latent_image"] == ["13", 0]
    assert prompt["16"]["inputs"]["fps"] == SETTINGS.video.fps
    assert prompt["12"]["inputs"]["length"] == 81


# ---------------------------------------------------------------- the LoRA chain


def test_lora_chain_is_in_recipe_order_with_recipe_strengths() -> None:
    prompt = bound("qwen_anypose.json")
    got = chain(prompt, prompt["4"]["inputs"]["model"], until="1")
    assert got == [(x.file, x.strength) for x in ANYPOSE_STACK]
    assert got[1:] == [(SETTINGS.loras.anypose.file, 0.55),
                       (SETTINGS.loras.anypose_helper.file, 0.55),
                       (SETTINGS.loras.instyle.file, 0.45)]


def test_reversed_stack_gives_reversed_chain() -> None:
    recipe = edit_recipe("qwen_anypose.json", 3, tuple(reversed(ANYPOSE_STACK)))
    prompt = bound("qwen_anypose.json", recipe)
    got = chain(prompt, prompt["4"]["inputs"]["model"], until="1")
    assert got == [(x.file, x.strength) for x in reversed(ANYPOSE_STACK)]


def test_no_loras_links_the_model_straight_through() -> None:
    prompt = bound("qwen_t2i.json")
    assert prompt["4"]["inputs"]["model"] == ["1", 0]
    assert not any(n["class_type"] == "LoraLoaderModelOnly" for n in prompt.values())


def test_wan_loras_go_on_their_expert_by_role() -> None:
    stack = (lora("wan_high", 1.0), lora("wan_low", 0.8),
             LoraSpec(role="wan_high_extra", file="extra_high.safetensors", strength=0.3))
    prompt = bound("wan_flf2v.json", video_recipe(loras=stack))
    high = chain(prompt, prompt["5"]["inputs"]["model"], until="1")
    low = chain(prompt, prompt["6"]["inputs"]["model"], until="2")
    assert high == [(SETTINGS.loras.wan_high.file, 1.0), ("extra_high.safetensors", 0.3)]
    assert low == [(SETTINGS.loras.wan_low.file, 0.8)]


def test_lora_matching_no_marker_group_is_an_error() -> None:
    stack = (lora("wan_high", 1.0), lora("lightning", 1.0))
    with pytest.raises(TemplateError, match="lightning"):
        bound("wan_flf2v.json", video_recipe(loras=stack))


def test_loras_on_a_template_without_marker_are_an_error_and_no_loras_bind() -> None:
    template, _ = load_template("qwen_t2i.json", None)
    template["4"]["inputs"]["model"] = ["1", 0]
    with_loras = t2i_recipe().model_copy(update={"loras": INSTYLE_STACK})
    with pytest.raises(TemplateError, match="no '\\{\\{lora_chain"):
        bind(template, with_loras, images=[], output_prefix="p")
    prompt = bind(template, t2i_recipe(), images=[], output_prefix="p")
    assert prompt["4"]["inputs"]["model"] == ["1", 0]


def test_nunchaku_loader_uses_its_input_names() -> None:
    prompt = bound("qwen_background.json", lora_loader="NunchakuQwenImageLoraLoader")
    loaders = [n for n in prompt.values() if n["class_type"] == "NunchakuQwenImageLoraLoader"]
    assert [n["inputs"]["lora_strength"] for n in loaders] == [1.0, 0.5]
    assert all(set(n["inputs"]) == {"model", "lora_name", "lora_strength"} for n in loaders)


def test_unknown_loader_and_missing_chain_source_are_errors() -> None:
    with pytest.raises(TemplateError, match="unknown LoRA loader 'LoraLoader'"):
        bound("qwen_background.json", lora_loader="LoraLoader")
    template, _ = load_template("qwen_background.json", None)
    template["4"]["inputs"]["model"] = "{{lora_chain:77}}"
    with pytest.raises(TemplateError, match=r"node 4 \(ModelSamplingAuraFlow\).*node 77"):
        bind(template, RECIPES["qwen_background.json"], images=["a", "b"], output_prefix="p")


def test_inserted_loader_ids_do_not_collide() -> None:
    template, _ = load_template("qwen_anypose.json", None)
    template["61"] = template.pop("60")  # the id the first loader would otherwise take
    prompt = bind(template, RECIPES["qwen_anypose.json"], images=["a", "b", "c"],
                  output_prefix="p")
    assert prompt["61"]["class_type"] == "SaveImage"
    assert sum(n["class_type"] == "LoraLoaderModelOnly" for n in prompt.values()) == 4


# ---------------------------------------------------------------- image slots


@pytest.mark.parametrize("name", QWEN_EDIT)
def test_two_images_in_a_three_slot_template_drop_the_third_slot(
    name: str, object_info: dict[str, Any]
) -> None:
    template, _ = load_template(name, None)
    prompt = bound(name, edit_recipe(name, 2, INSTYLE_STACK))
    assert "14" not in prompt and "15" not in prompt  # LoadImage image3 and its scaler
    assert set(prompt) >= set(template) - {"14", "15"}
    for enc in ("20", "21"):
        assert "image3" not in prompt[enc]["inputs"]
        assert prompt[enc]["inputs"]["image2"] == ["13", 0]
    assert check_prompt(prompt, object_info, installed()) == []


def test_one_image_keeps_only_the_first_slot(object_info: dict[str, Any]) -> None:
    prompt = bound("qwen_instyle.json", edit_recipe("qwen_instyle.json", 1, INSTYLE_STACK))
    assert [n for n in prompt if prompt[n]["class_type"] == "LoadImage"] == ["10"]
    assert set(prompt["20"]["inputs"]) == {"clip", "vae", "prompt", "image1"}
    assert check_prompt(prompt, object_info, installed()) == []


def test_video_with_one_frame_drops_the_end_image(object_info: dict[str, Any]) -> None:
    prompt = bound("wan_flf2v.json", video_recipe(n_images=1))
    assert "11" not in prompt and "end_image" not in prompt["12"]["inputs"]
    assert prompt["12"]["inputs"]["start_image"] == ["10", 0]
    assert check_prompt(prompt, object_info, installed()) == []


def test_more_images_than_slots_is_an_error() -> None:
    with pytest.raises(TemplateError, match=r"4 reference images.*only 3"):
        bound("qwen_composite.json", edit_recipe("qwen_composite.json", 4, ()).model_copy(
            update={"loras": (lora("lightning", 1.0),)}))


def test_a_slot_the_output_depends_on_alone_is_required() -> None:
    template = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "{{image1}}"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0],
                                                    "filename_prefix": "{{output_prefix}}"}},
    }
    recipe = Recipe(step="asset", template="t.json", mode="t2i")
    with pytest.raises(TemplateError, match=r"node 3 \(SaveImage\)"):
        bind(template, recipe, images=[], output_prefix="p")


def test_image_count_must_match_recipe_inputs() -> None:
    template, _ = load_template("qwen_anypose.json", None)
    with pytest.raises(ValueError, match="one image per recipe input"):
        bind(template, RECIPES["qwen_anypose.json"], images=["a"], output_prefix="p")


# ---------------------------------------------------------------- placeholders and errors


def test_unbound_required_placeholder_names_node_class_and_input() -> None:
    recipe = RECIPES["qwen_anypose.json"]
    params = {k: v for k, v in recipe.params.items() if k != "steps"}
    with pytest.raises(TemplateError) as err:
        bound("qwen_anypose.json", recipe.model_copy(update={"params": params}))
    assert "node 40 (KSampler): input 'steps'" in str(err.value)
    assert "{{steps}}" in str(err.value)


def test_optional_placeholder_is_dropped_when_unbound_and_bound_when_given() -> None:
    template, _ = load_template("qwen_t2i.json", None)
    template["40"]["inputs"]["denoise"] = "{{denoise?}}"
    assert "denoise" in placeholders(template)
    prompt = bind(template, t2i_recipe(), images=[], output_prefix="p")
    assert "denoise" not in prompt["40"]["inputs"]
    recipe = t2i_recipe().model_copy(update={"params": {**t2i_recipe().params, "denoise": 0.8}})
    prompt = bind(template, recipe, images=[], output_prefix="p")
    assert prompt["40"]["inputs"]["denoise"] == 0.8


@pytest.mark.parametrize("value", ["{{ seed }}", "seed={{seed}}", "{{seed}}x", "{{lora_chain:}}"])
def test_malformed_placeholder_is_an_error(value: str) -> None:
    template, _ = load_template("qwen_t2i.json", None)
    template["40"]["inputs"]["seed"] = value
    with pytest.raises(TemplateError, match=r"node 40 \(KSampler\): input 'seed'.*malformed"):
        bind(template, t2i_recipe(), images=[], output_prefix="p")


def test_recipe_key_repeating_a_builtin_name_is_an_error() -> None:
    recipe = t2i_recipe().model_copy(update={"params": {**t2i_recipe().params, "seed": 1}})
    with pytest.raises(TemplateError, match="params key 'seed'"):
        bound("qwen_t2i.json", recipe)


@pytest.mark.parametrize("template", [[], {}, {"1": {"inputs": {}}}, {"1": "x"},
                                      {"1": {"class_type": "X", "inputs": []}}])
def test_malformed_templates_are_errors(template: Any) -> None:
    with pytest.raises(TemplateError):
        bind(template, t2i_recipe(), images=[], output_prefix="p")


# ---------------------------------------------------------------- the schema check


def broken(mutate: Any) -> dict[str, Any]:
    prompt = bound("qwen_anypose.json")
    mutate(prompt)
    return prompt


@pytest.mark.parametrize(("mutate", "node", "needle"), [
    (lambda p: p["30"].update(class_type="EmptySD4LatentImage"), "30", "unknown node class"),
    (lambda p: p["40"]["inputs"].pop("steps"), "40", "required input 'steps' is missing"),
    (lambda p: p["61"]["inputs"].update(lora_name="AnyPose.safetensors"), "61",
     "not installed (not in models/loras)"),
    (lambda p: p["1"]["inputs"].update(unet_name="other.safetensors"), "1",
     "not in models/diffusion_models"),
    (lambda p: p["50"]["inputs"].update(samples=["99", 0]), "50", "node 99, which does not"),
    (lambda p: p["4"]["inputs"].update(shift=250.0), "4", "above the maximum 100.0"),
    (lambda p: p["30"]["inputs"].update(width=8), "30", "below the minimum 16"),
    (lambda p: p["40"]["inputs"].update(steps=4.5), "40", "expects INT"),
    (lambda p: p["40"]["inputs"].update(cfg="1.0"), "40", "expects FLOAT"),
    (lambda p: p["40"]["inputs"].update(positive=["1", 0]), "40",
     "wants CONDITIONING but links to output 0 of node 1 (UNETLoader), which is MODEL"),
    (lambda p: p["40"]["inputs"].update(latent_image=["30", 1]), "40", "has 1 output(s)"),
    (lambda p: p["40"]["inputs"].update(model=[5, 0]), "40", "malformed link"),
    (lambda p: p["40"]["inputs"].update(model="MODEL"), "40", "expects a link from a MODEL"),
    (lambda p: p["40"]["inputs"].update(sampler_name="euler_x"), "40", "not one of the options"),
    (lambda p: p["2"]["inputs"].update(type="qwen"), "2", "not one of the options"),
    (lambda p: p["40"]["inputs"].update(seed="{{seed}}"), "40", "unbound placeholder"),
    (lambda p: p["40"]["inputs"].update(sede=1), "40", "'sede' is not an input of KSampler"),
])
def test_broken_prompt_is_caught_naming_the_node(
    mutate: Any, node: str, needle: str, object_info: dict[str, Any]
) -> None:
    messages = check_prompt(broken(mutate), object_info, installed())
    mine = messages_about(messages, node)
    assert any(needle in m for m in mine), messages
    cls = broken(mutate)[node]["class_type"]
    assert all(f"node {node} ({cls})" in m for m in mine)


def test_v3_combo_options_are_checked(object_info: dict[str, Any]) -> None:
    prompt = bound("qwen_anypose.json")
    prompt["11"] = {"class_type": "ImageScaleToTotalPixels", "inputs": {
        "image": ["10", 0], "upscale_method": "lanczos", "megapixels": 1.0,
        "resolution_steps": 1}}
    assert check_prompt(prompt, object_info, installed()) == []
    prompt["11"]["inputs"]["upscale_method"] = "sinc"
    assert messages_about(check_prompt(prompt, object_info, installed()), "11") == [
        "node 11 (ImageScaleToTotalPixels): input 'upscale_method' = 'sinc' is not one of the "
        "options ['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos']"]


def test_model_lists_without_installed_models_fail_like_comfyui(
    object_info: dict[str, Any]
) -> None:
    messages = check_prompt(bound("qwen_t2i.json"), object_info, models=None)
    assert {m.split(":")[0] for m in messages} == {
        "node 1 (UNETLoader)", "node 2 (CLIPLoader)", "node 3 (VAELoader)"}


def test_output_node_count(object_info: dict[str, Any]) -> None:
    prompt = bound("qwen_t2i.json")
    del prompt["60"]
    assert check_prompt(prompt, object_info, installed()) == [
        "the prompt has no output node (SaveImage, SaveVideo, …)"]
    prompt = bound("qwen_t2i.json")
    prompt["61"] = {"class_type": "PreviewImage", "inputs": {"images": ["50", 0]}}
    assert any("2 output nodes (60 (SaveImage), 61 (PreviewImage))" in m
               for m in check_prompt(prompt, object_info, installed()))


def test_check_template_reports_a_broken_template(object_info: dict[str, Any]) -> None:
    template, _ = load_template("qwen_background.json", None)
    template["40"]["inputs"]["denoise"] = 2.0
    template["30"]["class_type"] = "EmptyLatentImageXL"
    messages = check_template(template, object_info, SETTINGS)
    assert any(m.startswith("node 40 (KSampler): input 'denoise' = 2.0 is above") for m in messages)
    assert any(m.startswith("node 30 (EmptyLatentImageXL): unknown node class") for m in messages)
    template["4"]["inputs"]["model"] = "{{lora_chain:404}}"
    assert check_template(template, object_info, SETTINGS)[0].startswith("node 4 ")


def test_check_template_with_nunchaku_loader_reports_it_missing(
    object_info: dict[str, Any]
) -> None:
    settings = Settings(loras=SETTINGS.loras.model_copy(
        update={"loader": "NunchakuQwenImageLoraLoader"}))
    template, _ = load_template("qwen_anypose.json", None)
    messages = check_template(template, object_info, settings)
    assert messages and all("NunchakuQwenImageLoraLoader" in m for m in messages)


def transcript(shared_dir: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((shared_dir / "comfyui" / "transcripts" / name).read_text())
    return data


@pytest.mark.parametrize("name", [
    "prompt_invalid_float_out_of_range.json", "prompt_invalid_lora_not_in_list.json",
    "prompt_invalid_missing_required_input.json",
])
def test_flags_the_nodes_a_real_comfyui_rejected(
    name: str, shared_dir: Path, object_info: dict[str, Any]
) -> None:
    data = transcript(shared_dir, name)
    rejected = set(data["response"]["body"]["node_errors"])
    messages = check_prompt(data["request"]["prompt"], object_info)
    flagged = {m.split(" ")[1] for m in messages if m.startswith("node ")}
    assert flagged == rejected, messages


@pytest.mark.parametrize(("name", "needle"), [
    ("prompt_invalid_unknown_class.json", "node 1 (NoSuchNode): unknown node class"),
    ("prompt_invalid_no_output_node.json", "no output node"),
])
def test_rejects_what_comfyui_rejected_without_node_errors(
    name: str, needle: str, shared_dir: Path, object_info: dict[str, Any]
) -> None:
    messages = check_prompt(transcript(shared_dir, name)["request"]["prompt"], object_info)
    assert any(needle in m for m in messages), messages


@pytest.mark.parametrize("name", ["prompt_ok.json",
                                  "prompt_qwen_models_empty_execution_error.json"])
def test_accepts_what_comfyui_accepted(
    name: str, shared_dir: Path, object_info: dict[str, Any]
) -> None:
    prompt = transcript(shared_dir, name)["request"]["prompt"]
    models = {k: sorted(v) for k, v in required_models(prompt).items()}
    assert check_prompt(prompt, object_info, models) == []


def test_types_match_follows_comfyui() -> None:
    assert types_match("IMAGE", "IMAGE")
    assert types_match("IMAGE,MASK", "MASK")
    assert types_match("*", "MODEL") and types_match("LATENT", "*")
    assert not types_match("MODEL", "CLIP")


def test_model_folders_and_requirements() -> None:
    assert model_folder("UNETLoader", "unet_name") == "diffusion_models"
    assert model_folder("CLIPLoader", "clip_name") == "text_encoders"
    assert model_folder("CLIPVisionLoader", "clip_name") == "clip_vision"
    assert model_folder("VAELoader", "vae_name") == "vae"
    assert model_folder("NunchakuQwenImageLoraLoader", "lora_name") == "loras"
    assert model_folder("KSampler", "seed") is None
    prompt = bound("wan_flf2v.json")
    need = required_models(prompt)
    assert need["diffusion_models"] == {SETTINGS.models.wan_high, SETTINGS.models.wan_low}
    assert need["loras"] == {SETTINGS.loras.wan_high.file, SETTINGS.loras.wan_low.file}
    assert {"WanFirstLastFrameToVideo", "KSamplerAdvanced", "SaveVideo"} <= \
        required_classes(prompt)


# ---------------------------------------------------------------- loading and overrides


def test_packaged_template_hash_is_the_file_sha256() -> None:
    template, digest = load_template("qwen_anypose.json", None)
    data = (PACKAGED_DIR / "qwen_anypose.json").read_bytes()
    assert digest == hashlib.sha256(data).hexdigest()
    assert template == json.loads(data)
    template["1"]["class_type"] = "changed"  # the caller's copy, not the cache
    assert load_template("qwen_anypose.json", None)[0]["1"]["class_type"] == "UNETLoader"


def test_project_override_is_used_and_its_hash_differs(
    tmp_path: Path, object_info: dict[str, Any]
) -> None:
    """A user's own template, written to the same convention, replaces the packaged one."""
    user = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "{{unet}}",
                                                     "weight_dtype": "fp8_e4m3fn"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "{{clip}}",
                                                     "type": "qwen_image",
                                                     "device": "{{clip_device?}}"}},
        "3": {"class_type": "VAELoader", "inputs": {"vae_name": "{{vae}}"}},
        "4": {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": "{{lora_chain:1}}",
                                                                "shift": 2.5}},
        "5": {"class_type": "LoadImage", "inputs": {"image": "{{image1}}"}},
        "6": {"class_type": "ImageScaleToTotalPixels", "inputs": {
            "image": ["5", 0], "upscale_method": "lanczos", "megapixels": 1.0,
            "resolution_steps": 8}},
        "7": {"class_type": "LoadImage", "inputs": {"image": "{{image2}}"}},
        "8": {"class_type": "TextEncodeQwenImageEditPlus", "inputs": {
            "clip": ["2", 0], "vae": ["3", 0], "prompt": "{{prompt}}", "image1": ["6", 0],
            "image2": ["7", 0]}},
        "9": {"class_type": "VAEEncode", "inputs": {"pixels": ["6", 0], "vae": ["3", 0]}},
        "10": {"class_type": "KSampler", "inputs": {
            "model": ["4", 0], "seed": "{{seed}}", "steps": 8, "cfg": 1.0,
            "sampler_name": "res_multistep", "scheduler": "beta", "positive": ["8", 0],
            "negative": ["8", 0], "latent_image": ["9", 0], "denoise": 1.0}},
        "11": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["3", 0]}},
        "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0],
                                                     "filename_prefix": "{{output_prefix}}"}},
    }
    (tmp_path / "workflows").mkdir()
    path = tmp_path / "workflows" / "qwen_instyle.json"
    path.write_text(json.dumps(user))
    template, digest = load_template("qwen_instyle.json", tmp_path)
    assert template == user
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest != load_template("qwen_instyle.json", None)[1]
    assert template_hash("qwen_instyle.json", tmp_path) == digest
    assert load_template("qwen_anypose.json", tmp_path)[1] == \
        load_template("qwen_anypose.json", None)[1]
    recipe = RECIPES["qwen_instyle.json"]
    prompt = bind(template, recipe, images=["a.png", "b.png"], output_prefix="p")
    assert "device" not in prompt["2"]["inputs"]  # optional and unbound: ComfyUI's default
    assert check_prompt(prompt, object_info, installed()) == []
    assert check_template(template, object_info, SETTINGS) == []
    template["10"]["inputs"]["denoise"] = "{{denoise?}}"  # but denoise is a required input
    assert check_prompt(bind(template, recipe, images=["a.png", "b.png"], output_prefix="p"),
                        object_info, installed()) == [
        "node 10 (KSampler): required input 'denoise' is missing"]
    assert check_template(template, object_info, SETTINGS) == [
        "node 10 (KSampler): required input 'denoise' is missing"]


def test_edited_override_gets_a_new_hash(tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    path = tmp_path / "workflows" / "qwen_t2i.json"
    path.write_text(json.dumps({"1": {"class_type": "A", "inputs": {}}}))
    first = template_hash("qwen_t2i.json", tmp_path)
    path.write_text(json.dumps({"1": {"class_type": "B", "inputs": {}}}))
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse-clock filesystem
    assert template_hash("qwen_t2i.json", tmp_path) != first
    assert load_template("qwen_t2i.json", tmp_path)[0]["1"]["class_type"] == "B"


@pytest.mark.parametrize(("name", "content", "needle"), [
    ("../qwen_t2i.json", None, "plain file name"),
    ("sub/qwen_t2i.json", None, "plain file name"),
    ("nope.json", None, "no workflow template 'nope.json'"),
    ("mine.json", "{not json", "not valid JSON"),
    ("mine.json", "[1, 2]", "JSON object of nodes"),
])
def test_bad_template_files_are_template_errors(
    tmp_path: Path, name: str, content: str | None, needle: str
) -> None:
    (tmp_path / "workflows").mkdir()
    if content is not None:
        (tmp_path / "workflows" / name).write_text(content)
    with pytest.raises(TemplateError, match=needle):
        load_template(name, tmp_path)


def test_override_symlinked_out_of_the_project_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.json"
    outside.write_text("{}")
    project = tmp_path / "project"
    (project / "workflows").mkdir(parents=True)
    (project / "workflows" / "qwen_t2i.json").symlink_to(outside)
    with pytest.raises(TemplateError, match="outside the project"):
        load_template("qwen_t2i.json", project)
