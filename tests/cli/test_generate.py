"""``keyframed generate-keyframe`` and ``keyframed generate`` against the fake ComfyUI.

Needs the fake ComfyUI fixtures (``tests.fakecomfy.fixtures``) and ../shared (object_info).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from keyframed.backends.comfy.client import UPLOAD_SUBFOLDER, upload_name
from keyframed.cli.main import main
from keyframed.handlers.context import PlanContext
from keyframed.handlers.project import Asset, AssetLibrary, Project
from keyframed.handlers.single import StepError, StepRequest, pick_mode, single_step
from keyframed.settings import Settings
from tests.fakecomfy import FakeComfy
from tests.planning import copy_sample

WIDTH, HEIGHT = 256, 144
LIGHTNING = "Qwen-Image-Edit-2511-Lightning-4steps-V1.0-bf16.safetensors"
ANYPOSE = "2511-AnyPose-base-000006250.safetensors"
HELPER = "2511-AnyPose-helper-00006000.safetensors"
INSTYLE = "InStyle-0.5.safetensors"
# The two described assets of the sample without an image, in distinct colours.
MADE_ASSETS = {"assets/backgrounds/temple_courtyard.png": (40, 120, 60),
               "assets/styles/ghibli.png": (200, 150, 90)}

Prompt = dict[str, dict[str, Any]]


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The person's own ~/.config/keyframed/config.toml must not leak into the tests."""
    monkeypatch.setenv("KEYFRAMED_CONFIG", str(tmp_path / "no-user-config.toml"))


def make_project(tmp_path: Path, comfy: FakeComfy, *, with_assets: bool = True) -> Path:
    """The sample on the fake server, approval left manual (the command must force auto)."""
    root = copy_sample(tmp_path / "samurai")
    (root / "keyframed.toml").write_text(
        f'approval = "manual"\n[image]\nwidth = {WIDTH}\nheight = {HEIGHT}\n'
        f'[[backends]]\nname = "fake"\nkind = "comfyui"\nurl = "{comfy.url}"\n'
        "timeout_s = 60\n",
        encoding="utf-8",
    )
    if with_assets:
        for rel, colour in MADE_ASSETS.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (96, 64), colour).save(root / rel)
    return root


def keyframe_args(root: Path, scene: int, which: str, *extra: str,
                  output_dir: Path | None = None) -> list[str]:
    out = output_dir or root / f"scene-{scene:02d}"
    return ["generate-keyframe", "--scene", str(scene), "--keyframe", which,
            "--assets-file", str(root / "assets.json"),
            "--scene-breakdown", str(root / "scene-breakdown.md"),
            "--output-dir", str(out), "--timeout", "60", *extra]


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (WIDTH, HEIGHT)
        image.load()


def prompts(comfy: FakeComfy) -> list[Prompt]:
    return [p.body["prompt"] for p in comfy.records.prompts]


def of_class(prompt: Prompt, cls: str) -> list[dict[str, Any]]:
    return [n for n in prompt.values() if n["class_type"] == cls]


def output_prefix(prompt: Prompt) -> str:
    (save,) = of_class(prompt, "SaveImage")
    value: str = save["inputs"]["filename_prefix"]
    return value


def lora_chain(prompt: Prompt) -> list[tuple[str, float]]:
    """The LoRAs between the UNETLoader and the model sampling node, UNET side first."""
    (sampling,) = of_class(prompt, "ModelSamplingAuraFlow")
    chain = []
    link = sampling["inputs"]["model"]
    while prompt[link[0]]["class_type"] == "LoraLoaderModelOnly":
        node = prompt[link[0]]["inputs"]
        chain.append((node["lora_name"], node["strength_model"]))
        link = node["model"]
    assert prompt[link[0]]["class_type"] == "UNETLoader"
    return chain[::-1]


def loaded_images(prompt: Prompt) -> list[str]:
    return sorted(n["inputs"]["image"] for n in of_class(prompt, "LoadImage"))


def uploaded_as(path: Path) -> str:
    """The name LoadImage uses for a file keyframed uploaded."""
    return f"{UPLOAD_SUBFOLDER}/{upload_name(path, sha(path))}"


# -- generate-keyframe -------------------------------------------------------------------------


def test_keyframe_runs_the_three_steps_in_order_and_uploads_each_image_once(
    tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(tmp_path, fake_comfy)
    code, out, err = run(capsys, keyframe_args(root, 1, "start"))
    assert code == 0, err
    scene = root / "scene-01"
    bg, char, key = (scene / "layers/background.png", scene / "layers/character-start.png",
                     scene / "keyframe-start.png")
    for path in (bg, char, key):
        assert_png(path)

    sent = prompts(fake_comfy)
    assert [output_prefix(p).split("/", 2)[2] for p in sent] == [
        "scene-01/layers/background", "scene-01/layers/character-start",
        "scene-01/keyframe-start"]
    background, character, composite = sent
    for prompt in sent:
        assert {"UNETLoader", "TextEncodeQwenImageEditPlus", "KSampler", "SaveImage"} <= {
            n["class_type"] for n in prompt.values()}
    # Step 1: background asset + style, InStyle. Step 2: AnyPose + helper + InStyle, stacked
    # strengths. Step 3: the two layers, Lightning only, the plan's composite prompt.
    temple = root / "assets/backgrounds/temple_courtyard.png"
    ghibli = root / "assets/styles/ghibli.png"
    samurai, standing = root / "assets/characters/samurai.png", root / "assets/poses/standing.png"
    assert loaded_images(background) == sorted(uploaded_as(p) for p in (temple, ghibli))
    assert lora_chain(background) == [(LIGHTNING, 1.0), (INSTYLE, 0.5)]
    assert loaded_images(character) == sorted(uploaded_as(p) for p in (samurai, standing, ghibli))
    assert lora_chain(character) == [(LIGHTNING, 1.0), (ANYPOSE, 0.55), (HELPER, 0.55),
                                     (INSTYLE, 0.45)]
    assert loaded_images(composite) == sorted(uploaded_as(p) for p in (bg, char))
    assert lora_chain(composite) == [(LIGHTNING, 1.0)]
    (positive, _negative) = of_class(composite, "TextEncodeQwenImageEditPlus")
    assert positive["inputs"]["prompt"].startswith("Place character naturally in background scene")

    uploads = Counter(u.sha256 for u in fake_comfy.records.uploads)
    assert set(uploads) == {sha(p) for p in (temple, ghibli, samurai, standing, bg, char)}
    assert set(uploads.values()) == {1}  # the style is used twice and sent once
    assert out.count("generated") == 3 and str(key) in out

    # The same request again: everything is reused and nothing reaches the server.
    before = (len(fake_comfy.records.prompts), len(fake_comfy.records.uploads))
    code, out, err = run(capsys, keyframe_args(root, 1, "start"))
    assert code == 0, err
    assert (len(fake_comfy.records.prompts), len(fake_comfy.records.uploads)) == before
    assert out.count("reused") == 3 and "generated" not in out


def test_missing_asset_images_are_made_first(
    tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(tmp_path, fake_comfy, with_assets=False)
    code, _out, err = run(capsys, keyframe_args(root, 1, "start"))
    assert code == 0, err
    steps = [output_prefix(p).split("/", 2)[2] for p in prompts(fake_comfy)]
    assert sorted(steps[:2]) == ["assets/backgrounds/temple_courtyard", "assets/styles/ghibli"]
    assert steps[2:] == ["scene-01/layers/background", "scene-01/layers/character-start",
                         "scene-01/keyframe-start"]
    for prompt in prompts(fake_comfy)[:2]:
        assert not of_class(prompt, "LoadImage") and of_class(prompt, "CLIPTextEncode")
    for rel in MADE_ASSETS:
        assert (root / rel).is_file()


def test_landscape_keyframe_keeps_its_background_layer_and_copies_out(
    tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(tmp_path, fake_comfy)
    sunset = root / "assets/backgrounds/mountain_sunset.png"
    Image.new("RGB", (96, 64), (230, 120, 40)).save(sunset)
    outside = tmp_path / "delivery"
    code, out, err = run(capsys, keyframe_args(root, 2, "start", output_dir=outside))
    assert code == 0, err
    (prompt,) = prompts(fake_comfy)
    assert output_prefix(prompt).endswith("scene-02/keyframe-start")
    assert lora_chain(prompt) == [(LIGHTNING, 1.0), (INSTYLE, 0.5)]
    key, layer = root / "scene-02/keyframe-start.png", root / "scene-02/layers/background.png"
    assert_png(key)
    assert layer.read_bytes() == key.read_bytes()
    assert (outside / "keyframe-start.png").read_bytes() == key.read_bytes()
    assert (outside / "layers/background.png").read_bytes() == layer.read_bytes()
    assert "landscape flow" in out and "copied" in out


def test_a_comfyui_failure_exits_1_with_its_message_and_a_new_run_retries(
    tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(tmp_path, fake_comfy)
    fake_comfy.faults.fail_next_prompts(n=20, exception_message="header too small for KSampler")
    code, _out, err = run(capsys, keyframe_args(root, 1, "start"))
    assert code == 1
    assert "scene-01/layers/background.png" in err and "header too small for KSampler" in err
    assert not (root / "scene-01/keyframe-start.png").exists()

    fake_comfy.faults.reset()
    code, out, err = run(capsys, keyframe_args(root, 1, "start"))
    assert code == 0, err
    assert_png(root / "scene-01/keyframe-start.png")
    assert out.count("generated") == 3


def test_an_unreachable_server_ends_the_run_with_the_reason(
    tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(tmp_path, fake_comfy)
    fake_comfy.go_down()
    code, _out, err = run(capsys, keyframe_args(root, 1, "start"))
    assert code == 1
    assert "cannot reach the ComfyUI server" in err and fake_comfy.url in err


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (["--mode", "landscape"], ["--mode landscape", "'character'", "--mode composite"]),
        (["--mode", "anypose"], ["--mode anypose", "'character'", "keyframed generate --mode"]),
        (["--scene", "9"], ["no scene 9", "scenes: 1, 2, 3"]),
        (["--output-dir", "ROOT"], ["inside the project it must be scene 1's folder"]),
        (["--output-dir", "ROOT/scene-02"], ["inside the project it must be scene 1's folder"]),
        (["--scene-breakdown", "ELSEWHERE"], ["same folder as --assets-file"]),
        (["--backend", "gpu9"], ["--backend gpu9", "configured: fake"]),
    ],
)
def test_bad_requests_are_clear_errors(
    tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str],
    change: list[str], expected: list[str],
) -> None:
    root = make_project(tmp_path, fake_comfy)
    elsewhere = tmp_path / "other" / "scene-breakdown.md"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes((root / "scene-breakdown.md").read_bytes())
    args = keyframe_args(root, 1, "start")
    value = change[1].replace("ROOT", str(root)).replace("ELSEWHERE", str(elsewhere))
    if change[0] in args:
        args[args.index(change[0]) + 1] = value
    else:
        args += [change[0], value]
    code, _out, err = run(capsys, args)
    assert code == 1
    for text in expected:
        assert text in err
    assert fake_comfy.records.prompts == []


# -- generate (one step) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "chain", "images", "prompt_start"),
    [
        (["--character", "samurai", "--pose", "meditation"],  # auto → anypose, default style
         [(LIGHTNING, 1.0), (ANYPOSE, 0.55), (HELPER, 0.55), (INSTYLE, 0.45)], 3,
         "Make the person in image 1 do the exact same pose"),
        (["--mode", "edit", "--background", "temple_courtyard", "--style", "ghibli"],
         [(LIGHTNING, 1.0), (INSTYLE, 0.5)], 2, "Make an image in the style of image 2"),
        (["--background", "temple_courtyard", "--character", "samurai", "--prompt", "calm"],
         [(LIGHTNING, 1.0)], 2, "Place character naturally in background scene. calm."),
        (["--mode", "t2i", "--prompt", "a red paper lantern"], [], 0, "a red paper lantern"),
    ],
    ids=["anypose", "edit", "composite", "t2i"],
)
def test_generate_one_step_writes_a_png_with_the_expected_lora_chain(
    tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str],
    options: list[str], chain: list[tuple[str, float]], images: int, prompt_start: str,
) -> None:
    root = make_project(tmp_path, fake_comfy)
    output = tmp_path / "out" / "image.png"
    args = ["generate", *options, "--assets-file", str(root / "assets.json"),
            "--output", str(output)]
    code, out, err = run(capsys, args)
    assert code == 0, err
    assert_png(output)
    (prompt,) = prompts(fake_comfy)
    assert lora_chain(prompt) == chain
    assert len(of_class(prompt, "LoadImage")) == images
    encoders = of_class(prompt, "TextEncodeQwenImageEditPlus") or of_class(prompt, "CLIPTextEncode")
    assert encoders[0]["inputs"].get("prompt", encoders[0]["inputs"].get("text")).startswith(
        prompt_start)
    assert f"wrote {output}" in out

    # Same command, same recipe, same prompt id: the finished image is fetched, not remade.
    output.unlink()
    code, _out, err = run(capsys, args)
    assert code == 0, err
    assert len(fake_comfy.records.prompts) == 1
    assert_png(output)


def test_generate_refuses_a_missing_asset_image_and_says_how_to_make_it(
    tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(tmp_path, fake_comfy, with_assets=False)
    args = ["generate", "--character", "samurai", "--assets-file", str(root / "assets.json"),
            "--output", str(tmp_path / "x.png")]
    code, _out, err = run(capsys, args)
    assert code == 1
    assert "assets/styles/ghibli.png (style) does not exist" in err
    assert "keyframed generate --mode t2i --style ghibli" in err
    assert fake_comfy.records.prompts == [] and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--character", "samuraj"], "unknown character 'samuraj' in assets.json (did you mean"),
        (["--mode", "landscape", "--background", "temple_courtyard"], "needs a --background and "
         "--prompt"),
        (["--mode", "landscape", "--background", "temple_courtyard", "--pose", "standing",
          "--prompt", "x"], "--mode landscape does not use --pose"),
        (["--mode", "edit"], "exactly one --background or one --character"),
        (["--output-is-jpg"], "must be a .png file"),
    ],
)
def test_generate_bad_requests(
    tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str],
    options: list[str], expected: str,
) -> None:
    root = make_project(tmp_path, fake_comfy)
    output = tmp_path / ("x.jpg" if options == ["--output-is-jpg"] else "x.png")
    options = ["--character", "samurai"] if options == ["--output-is-jpg"] else options
    args = ["generate", *options, "--assets-file", str(root / "assets.json"),
            "--output", str(output)]
    code, _out, err = run(capsys, args)
    assert code == 1
    assert expected in err
    assert fake_comfy.records.prompts == []


# -- the pure part: mode choice and recipes ----------------------------------------------------


def _library() -> Project:
    assets = [Asset(type="characters", name="ann", description="a woman", image="a.png"),
              Asset(type="poses", name="sit", description="sitting", image="p.png"),
              Asset(type="backgrounds", name="sea", description="the sea", image="b.png"),
              Asset(type="styles", name="ink", description="ink wash", image="s.png"),
              Asset(type="styles", name="oil", description="oil paint")]
    return Project(assets=AssetLibrary(assets={f"{a.type}/{a.name}": a for a in assets}))


@pytest.mark.parametrize(
    ("given", "mode"),
    [
        ({"characters": ("ann",), "background": "sea"}, "composite"),
        ({"characters": ("ann",), "pose": "sit"}, "anypose"),
        ({"characters": ("ann",)}, "edit"),
        ({"background": "sea", "prompt": "dusk"}, "landscape"),
        ({"background": "sea"}, "edit"),
        ({"prompt": "a boat"}, "t2i"),
        ({"style": "oil"}, "t2i"),
    ],
)
def test_auto_mode(given: dict[str, Any], mode: str) -> None:
    assert pick_mode(StepRequest(**given)) == mode


def test_recipes_follow_the_plan() -> None:
    project, ctx = _library(), PlanContext(settings=Settings())
    pose = single_step(StepRequest(characters=("ann",), pose="sit", style="ink", seed=7),
                       project, ctx)
    assert [(i.path, i.role, i.artifact) for i in pose.recipe.inputs] == [
        ("a.png", "identity", False), ("p.png", "pose", False), ("s.png", "style", False)]
    assert pose.recipe.template == "qwen_anypose.json" and pose.recipe.seed == 7
    # Two styles and no default: no style, so no InStyle.
    plain = single_step(StepRequest(characters=("ann",)), project, ctx)
    assert [lo.role for lo in plain.recipe.loras] == ["lightning"]
    sheet = single_step(StepRequest(mode="t2i", style="oil"), project, ctx)
    assert sheet.recipe.template == "qwen_t2i.json" and "oil paint" in sheet.recipe.prompt
    same = single_step(StepRequest(mode="t2i", style="oil"), project, ctx)
    assert same.recipe.seed == sheet.recipe.seed  # deterministic from the label
    with pytest.raises(StepError, match="at most three images"):
        single_step(StepRequest(mode="composite", background="sea",
                                characters=("ann", "ann", "ann")), project, ctx)
    with pytest.raises(StepError, match="unknown mode"):
        pick_mode(StepRequest(mode="video"))
