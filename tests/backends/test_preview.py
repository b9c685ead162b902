"""The preview renderer: every step gives a real image of the configured size, deterministically."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageStat

from keyframed.backends import preview_render as preview
from keyframed.errors import OutputError
from keyframed.handlers.recipe import Artifact, InputRef, Recipe, Step
from keyframed.render.imaging import load_image

W, H = 128, 72
PALETTE = ("#2b2d42", "#8d99ae", "#edf2f4", "#ef233c", "#d90429")
RED, GREEN, BLUE, ORANGE = (200, 20, 20), (30, 160, 40), (20, 40, 220), (240, 140, 10)

Inputs = dict[str, Path]


def _artifact(
    path: str,
    step: Step,
    inputs: list[tuple[str, str]],
    prompt: str = "a lone samurai on a windy hill at dusk",
    seed: int = 0,
    params: dict[str, int | float | str | bool] | None = None,
) -> Artifact:
    refs = tuple(InputRef(path=p, role=r, artifact=p.startswith("scene-")) for p, r in inputs)
    return Artifact(
        path=path,
        kind="keyframe",
        scene=1,
        recipe=Recipe(
            step=step,
            template="t.json",
            mode="edit",
            prompt=prompt,
            inputs=refs,
            seed=seed,
            params=params or {},
        ),
    )


@pytest.fixture
def files(tmp_path: Path) -> Inputs:
    """Reference images of several formats and modes, keyed like recipe input paths."""
    background = Image.new("RGB", (300, 200), GREEN)
    ImageDraw.Draw(background).ellipse((80, 30, 220, 170), fill=(230, 220, 60))
    identity = Image.new("RGB", (120, 240), (255, 255, 255))
    ImageDraw.Draw(identity).rectangle((35, 20, 85, 230), fill=RED)
    pose = Image.new("L", (80, 160), 0)
    ImageDraw.Draw(pose).line((40, 10, 40, 150), fill=255, width=6)
    made = {
        "assets/backgrounds/hill.png": (background, "hill.png"),
        "assets/characters/ronin.jpg": (identity, "ronin.jpg"),
        "assets/poses/stand.png": (pose, "stand.png"),
        "assets/styles/blue.png": (Image.new("RGB", (40, 40), BLUE), "blue.png"),
        "assets/styles/orange.png": (Image.new("RGB", (40, 40), ORANGE), "orange.png"),
        "assets/objects/cup.png": (_rgba_object(), "cup.png"),
    }
    result: Inputs = {}
    for key, (image, name) in made.items():
        image.save(tmp_path / name)
        result[key] = tmp_path / name
    return result


def _rgba_object() -> Image.Image:
    cup = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    ImageDraw.Draw(cup).rectangle((30, 30, 70, 90), fill=(120, 60, 20, 255))
    return cup


def _render(artifact: Artifact, inputs: Inputs, max_pixels: int = 64_000_000) -> bytes:
    return preview.render(
        artifact, inputs, width=W, height=H, palette=PALETTE, max_pixels=max_pixels
    )


def _open(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def _add(files: Inputs, tmp_path: Path, key: str, data: bytes) -> None:
    path = tmp_path / key.replace("/", "_")
    path.write_bytes(data)
    files[key] = path


BG = "assets/backgrounds/hill.png"
STYLE = "assets/styles/blue.png"
IDENTITY = "assets/characters/ronin.jpg"
POSE = "assets/poses/stand.png"

IMAGE_CASES: dict[str, tuple[str, Step, list[tuple[str, str]]]] = {
    "asset": ("assets/characters/ronin.png", "asset", []),
    "asset_styled": ("assets/backgrounds/dojo.png", "asset", [(STYLE, "style")]),
    "background": (
        "scene-01/layers/background.png",
        "background",
        [(BG, "background"), (STYLE, "style")],
    ),
    "landscape": (
        "scene-02/keyframe-start.png",
        "landscape",
        [(BG, "background"), (STYLE, "style")],
    ),
    "object": (
        "scene-03/keyframe-start.png",
        "object",
        [("assets/objects/cup.png", "object"), (STYLE, "style")],
    ),
    "character": (
        "scene-01/layers/character-start.png",
        "character",
        [(IDENTITY, "identity"), (POSE, "pose"), (STYLE, "style")],
    ),
    "character_no_pose": (
        "scene-01/layers/character-end.png",
        "character",
        [(IDENTITY, "identity"), (STYLE, "style")],
    ),
}


@pytest.mark.parametrize("case", sorted(IMAGE_CASES))
def test_each_image_step_gives_a_png_of_the_configured_size(files: Inputs, case: str) -> None:
    path, step, inputs = IMAGE_CASES[case]
    data = _render(_artifact(path, step, inputs), files)
    im = _open(data)
    assert (im.format, im.size, im.mode) == ("PNG", (W, H), "RGB")
    assert data == _render(_artifact(path, step, inputs), files), "same inputs, same bytes"


@pytest.mark.parametrize("size", [(64, 64), (1024, 576), (200, 1000)])
def test_any_configured_size_is_honoured(files: Inputs, size: tuple[int, int]) -> None:
    artifact = _artifact("scene-01/layers/background.png", "background", [(BG, "background")])
    data = preview.render(artifact, files, width=size[0], height=size[1], palette=PALETTE)
    assert _open(data).size == size


def _mean(data: bytes) -> list[float]:
    return list(ImageStat.Stat(_open(data).convert("RGB")).mean)


@pytest.mark.parametrize("step", ["background", "landscape", "object", "character"])
def test_a_style_change_is_visible(files: Inputs, step: Step) -> None:
    source = IDENTITY if step == "character" else BG
    role = "identity" if step == "character" else "background"
    blue = _render(_artifact("x.png", step, [(source, role), (STYLE, "style")]), files)
    orange = _render(
        _artifact("x.png", step, [(source, role), ("assets/styles/orange.png", "style")]), files
    )
    assert blue != orange
    mean_blue, mean_orange = _mean(blue), _mean(orange)
    assert mean_blue[2] - mean_blue[0] > mean_orange[2] - mean_orange[0] + 10


def test_landscape_end_edits_the_start_keyframe(files: Inputs, tmp_path: Path) -> None:
    start = _render(
        _artifact(
            "scene-02/keyframe-start.png", "landscape", [(BG, "background"), (STYLE, "style")]
        ),
        files,
    )
    _add(files, tmp_path, "scene-02/keyframe-start.png", start)
    end = _artifact(
        "scene-02/keyframe-end.png",
        "landscape",
        [("scene-02/keyframe-start.png", "source"), (STYLE, "style")],
        prompt="the sun has set",
    )
    data = _render(end, files)
    assert _open(data).size == (W, H)
    assert data != start


def test_asset_card_follows_palette_and_seed(files: Inputs) -> None:
    card = _artifact("assets/characters/ronin.png", "asset", [], seed=1)
    dark = preview.render(card, files, width=W, height=H, palette=["#101010", "#202020"])
    light = preview.render(card, files, width=W, height=H, palette=["#f0f0f0", "#e0e0e0"])
    assert _mean(dark)[0] < _mean(light)[0]
    reseeded = _artifact("assets/characters/ronin.png", "asset", [], seed=2)
    assert _render(card, files) != _render(reseeded, files)


def test_asset_card_with_a_bad_palette_still_renders(files: Inputs) -> None:
    card = _artifact("assets/characters/ronin.png", "asset", [])
    data = preview.render(card, files, width=W, height=H, palette=["not a colour", ""])
    assert _open(data).size == (W, H)


def _character_layer(files: Inputs, tmp_path: Path, key: str, identity: str = IDENTITY) -> None:
    layer = _render(_artifact(key, "character", [(identity, "identity"), (STYLE, "style")]), files)
    _add(files, tmp_path, key, layer)


def _reddish(im: Image.Image, xy: tuple[int, int]) -> bool:
    r, g, _ = im.getpixel(xy)  # type: ignore[misc]
    return int(r) > int(g) + 20


def test_composite_places_one_character_in_the_centre(files: Inputs, tmp_path: Path) -> None:
    _character_layer(files, tmp_path, "scene-01/layers/character-start.png")
    _add(files, tmp_path, "scene-01/layers/background.png", Path(files[BG]).read_bytes())
    artifact = _artifact(
        "scene-01/keyframe-start.png",
        "composite",
        [
            ("scene-01/layers/background.png", "background"),
            ("scene-01/layers/character-start.png", "character"),
        ],
    )
    im = _open(_render(artifact, files)).convert("RGB")
    assert im.size == (W, H)
    row = int(H * 0.6)
    assert _reddish(im, (W // 2, row))
    assert not _reddish(im, (W // 8, row)) and not _reddish(im, (W * 7 // 8, row))


def test_composite_places_two_characters_at_the_thirds(files: Inputs, tmp_path: Path) -> None:
    _character_layer(files, tmp_path, "scene-01/layers/character-a-start.png")
    _character_layer(files, tmp_path, "scene-01/layers/character-b-start.png")
    artifact = _artifact(
        "scene-01/keyframe-start.png",
        "composite",
        [
            (BG, "background"),
            ("scene-01/layers/character-a-start.png", "character"),
            ("scene-01/layers/character-b-start.png", "character"),
        ],
    )
    data = _render(artifact, files)
    im = _open(data).convert("RGB")
    row = int(H * 0.6)
    assert _reddish(im, (W // 3, row)) and _reddish(im, (W * 2 // 3, row))
    assert not _reddish(im, (W // 2, row)), "the backdrop between the figures is keyed out"
    assert data == _render(artifact, files)


def test_composite_keys_a_user_layer_without_metadata(files: Inputs, tmp_path: Path) -> None:
    # A plain photo on white (no keyframed metadata): the white border colour is keyed out.
    Image.new("RGB", (160, 90), GREEN).save(tmp_path / "plain.png")
    files["plain"] = tmp_path / "plain.png"
    artifact = _artifact(
        "scene-01/keyframe-start.png",
        "composite",
        [("plain", "background"), (IDENTITY, "character")],
    )
    im = _open(_render(artifact, files)).convert("RGB")
    row = int(H * 0.6)
    assert _reddish(im, (W // 2, row))
    # The figure is 70 % of the height and half as wide: x = W/2 - 10 is inside the photo's
    # white margin, which must show the background.
    r, g, _ = im.getpixel((W // 2 - 10, row))  # type: ignore[misc]
    assert int(g) > int(r) + 50, "no white box around the figure"


def test_figure_of_cuts_the_figure_out_of_a_character_layer(files: Inputs, tmp_path: Path) -> None:
    _character_layer(files, tmp_path, "layer")
    layer = load_image(files["layer"])
    figure = preview.figure_of(layer)
    assert 10 <= figure.height < H and figure.width < W // 2
    alpha = figure.getchannel("A")
    assert alpha.getpixel((0, 0)) == 0, "the photo's white backdrop is keyed out"
    assert alpha.getpixel((figure.width // 2, figure.height // 2)) == 255


@pytest.mark.parametrize("mode", ["RGBA", "P", "PA", "L", "LA", "1", "I;16", "I", "F", "CMYK"])
def test_inputs_of_any_mode_are_handled(files: Inputs, tmp_path: Path, mode: str) -> None:
    base = Image.open(files[BG]).convert("RGB")
    if mode in {"I;16", "I", "F"}:
        image = (
            base.convert("L").point(lambda v: v * 200).convert(mode)
            if mode != "F"
            else base.convert("F")
        )
    elif mode == "PA":
        image = base.convert("P").convert("PA")
    else:
        image = base.convert(mode)
    name = tmp_path / ("odd.tif" if mode in {"F", "CMYK", "PA", "I"} else "odd.png")
    image.save(name)
    files["odd"] = name
    data = _render(_artifact("x.png", "background", [("odd", "background")]), files)
    assert _open(data).size == (W, H)


def test_sixteen_bit_input_is_scaled_not_clipped(tmp_path: Path) -> None:
    deep = Image.new("I;16", (8, 8), 32768)
    deep.save(tmp_path / "deep.png")
    assert 120 <= load_image(tmp_path / "deep.png").getpixel((0, 0))[0] <= 135  # type: ignore[index]


def test_oversized_input_is_refused_without_touching_pillow(files: Inputs) -> None:
    before = Image.MAX_IMAGE_PIXELS
    artifact = _artifact("x.png", "background", [(BG, "background")])
    with pytest.raises(OutputError, match="more than the limit"):
        _render(artifact, files, max_pixels=300 * 200 - 1)
    assert before == Image.MAX_IMAGE_PIXELS


def test_missing_or_corrupt_inputs_raise_output_error(files: Inputs, tmp_path: Path) -> None:
    artifact = _artifact("x.png", "background", [("absent", "background")])
    with pytest.raises(OutputError, match="not provided"):
        _render(artifact, files)
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    files["absent"] = tmp_path / "junk.png"
    with pytest.raises(OutputError, match="cannot read"):
        _render(artifact, files)


def test_copy_passes_a_png_of_the_right_size_through(files: Inputs, tmp_path: Path) -> None:
    keyframe = _render(_artifact("k.png", "landscape", [(BG, "background")]), files)
    _add(files, tmp_path, "scene-02/keyframe-start.png", keyframe)
    copy = _artifact(
        "scene-02/layers/background.png", "copy", [("scene-02/keyframe-start.png", "source")]
    )
    assert _render(copy, files) == keyframe
    other = _artifact("y.png", "copy", [(BG, "source")])
    assert _open(_render(other, files)).size == (W, H)


def _video_inputs(files: Inputs, tmp_path: Path) -> None:
    for key, colour in (("scene-01/keyframe-start.png", RED), ("scene-01/keyframe-end.png", BLUE)):
        buffer = io.BytesIO()
        Image.new("RGB", (W, H), colour).save(buffer, format="PNG")
        _add(files, tmp_path, key, buffer.getvalue())


def _video(**params: float | str) -> Artifact:
    return _artifact(
        "scene-01/video.mp4",
        "video",
        [
            ("scene-01/keyframe-start.png", "start"),
            ("scene-01/keyframe-end.png", "end"),
        ],
        prompt="slow walk. Camera: dolly in.",
        params=dict(params),
    )


def _frames(data: bytes) -> tuple[Image.Image, list[int]]:
    im = _open(data)
    durations = []
    for index in range(im.n_frames):  # type: ignore[attr-defined]
        im.seek(index)
        im.load()
        durations.append(int(im.info["duration"]))
    return im, durations


def test_video_is_an_animated_webp_crossfade(files: Inputs, tmp_path: Path) -> None:
    _video_inputs(files, tmp_path)
    data = preview.render(_video(), files, width=96, height=64, palette=PALETTE, fps=4, seconds=2.0)
    im = _open(data)
    assert (im.format, im.size) == ("WEBP", (96, 64))
    assert im.n_frames > 1  # type: ignore[attr-defined]
    im.seek(0)
    first = ImageStat.Stat(im.convert("RGB")).mean
    im.seek(im.n_frames - 1)  # type: ignore[attr-defined]
    last = ImageStat.Stat(im.convert("RGB")).mean
    assert first[0] > first[2] and last[2] > last[0], "fades from the start to the end frame"
    assert data == preview.render(
        _video(), files, width=96, height=64, palette=PALETTE, fps=4, seconds=2.0
    )


def test_video_length_follows_the_duration_param_capped(files: Inputs, tmp_path: Path) -> None:
    _video_inputs(files, tmp_path)

    def total(artifact: Artifact) -> int:
        data = preview.render(artifact, files, width=64, height=64, palette=PALETTE, fps=2)
        return sum(_frames(data)[1])

    assert abs(total(_video()) - 2000) <= 50
    assert abs(total(_video(duration=3)) - 3000) <= 50
    assert abs(total(_video(duration="nonsense")) - 2000) <= 50
    assert total(_video(duration=1000)) <= preview.MAX_VIDEO_SECONDS * 1000 + 50
    capped = preview.render(
        _video(duration=30), files, width=64, height=64, palette=PALETTE, fps=2, max_seconds=4
    )
    assert abs(sum(_frames(capped)[1]) - 4000) <= 50


def test_too_small_a_size_is_an_error(files: Inputs) -> None:
    with pytest.raises(OutputError):
        preview.render(_artifact("x.png", "asset", []), files, width=4, height=4, palette=PALETTE)
