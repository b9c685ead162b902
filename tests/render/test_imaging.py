"""Pillow helpers shared by the preview renderer and the contact sheets."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from keyframed.errors import OutputError
from keyframed.render import imaging

TEXT = "a weathered ronin in a faded indigo kimono with a straw hat and a katana at the hip"


def test_wrap_keeps_every_word_within_the_width() -> None:
    face = imaging.font(14)
    lines = imaging.wrap(TEXT, face, 120, max_lines=20)
    assert len(lines) > 1
    assert all(face.getlength(line) <= 120 for line in lines)
    assert " ".join(lines).split() == TEXT.split()


def test_wrap_truncates_with_an_ellipsis() -> None:
    face = imaging.font(14)
    lines = imaging.wrap(TEXT, face, 120, max_lines=2)
    assert len(lines) == 2
    assert lines[-1].endswith(imaging.ELLIPSIS)
    assert face.getlength(lines[-1]) <= 120
    assert imaging.wrap(TEXT, face, 120, max_lines=0) == []


def test_wrap_breaks_a_word_longer_than_a_line() -> None:
    face = imaging.font(14)
    word = "supercalifragilisticexpialidocious" * 2
    lines = imaging.wrap(word, face, 60, max_lines=50)
    assert len(lines) > 2 and "".join(lines) == word
    assert all(face.getlength(line) <= 60 for line in lines)


def test_fit_line() -> None:
    face = imaging.font(12)
    assert imaging.fit_line("short", face, 500) == "short"
    cut = imaging.fit_line(TEXT, face, 80)
    assert cut.endswith(imaging.ELLIPSIS) and face.getlength(cut) <= 80


def test_colours() -> None:
    assert imaging.parse_colour("#ff0000") == (255, 0, 0)
    assert imaging.parse_colour(" red ") == (255, 0, 0)
    assert imaging.parse_colour("#12345") is None
    assert imaging.hex_colour((1, 2, 255)) == "#0102ff"
    assert imaging.mix((0, 0, 0), (200, 100, 50), 0.5) == (100, 50, 25)
    assert imaging.ink_for((255, 255, 255)) != imaging.ink_for((0, 0, 0))


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "F", "I;16"])
def test_to_rgba_handles_every_mode(mode: str) -> None:
    im = Image.new("RGB", (4, 4), (10, 20, 30)).convert(mode)
    out = imaging.to_rgba(im)
    assert (out.mode, out.size) == ("RGBA", (4, 4))


def test_load_image_keeps_png_text_and_refuses_junk(tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("k", "v")
    Image.new("P", (5, 5), 3).save(tmp_path / "a.png", pnginfo=info)
    loaded = imaging.load_image(tmp_path / "a.png")
    assert loaded.mode == "RGBA" and loaded.info["k"] == "v"
    (tmp_path / "b.png").write_text("hello")
    with pytest.raises(OutputError):
        imaging.load_image(tmp_path / "b.png")
    with pytest.raises(OutputError):
        imaging.load_image(tmp_path / "absent.png")
    with pytest.raises(OutputError, match="limit"):
        imaging.load_image(tmp_path / "a.png", max_pixels=24)


def test_png_bytes_is_deterministic() -> None:
    im = Image.new("RGB", (16, 16), (1, 2, 3))
    assert imaging.png_bytes(im, {"b": "2", "a": "1"}) == imaging.png_bytes(
        im, {"a": "1", "b": "2"}
    )
