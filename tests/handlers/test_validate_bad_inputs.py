"""``keyframed validate`` on a copy of the sample project broken in one way per case.

Every case asserts exit code 1, the file and the exact line in the output, the gist of the
message, and that no traceback is printed.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from keyframed.cli.main import main
from tests import planning

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "samurai"
REPO = SAMPLE.parents[1]
A, S, Y = "assets.json", "scene-breakdown.md", "style.json"
SAMURAI_PNG = "assets/characters/samurai.png"


def bomb_png(width: int = 10_000, height: int = 10_000) -> bytes:
    """A valid 1-bit greyscale PNG of width x height pixels, about 12 KB (zeros compress)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = zlib.compress(bytes((1 + (width + 7) // 8) * height), 9)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def copy_sample(tmp_path: Path) -> Path:
    return planning.copy_sample(tmp_path / "project")


def edit(name: str, old: str, new: str) -> Callable[[Path, Path], None]:
    """A mutation replacing the first ``old`` in one file (which must contain it)."""

    def apply(root: Path, outside: Path) -> None:
        path = root / name
        text = path.read_text(encoding="utf-8")
        assert old in text, old
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    return apply


def write_bytes(name: str, data: bytes) -> Callable[[Path, Path], None]:
    def apply(root: Path, outside: Path) -> None:
        (root / name).write_bytes(data)

    return apply


def symlink_file_outside(root: Path, outside: Path) -> None:
    target = outside / "samurai.png"
    shutil.copy(root / SAMURAI_PNG, target)
    (root / SAMURAI_PNG).unlink()
    (root / SAMURAI_PNG).symlink_to(target)


def symlink_folder_outside(root: Path, outside: Path) -> None:
    shutil.move(root / "assets" / "poses", outside / "poses")
    (root / "assets" / "poses").symlink_to(outside / "poses", target_is_directory=True)


def truncated_png(root: Path, outside: Path) -> None:
    data = (root / SAMURAI_PNG).read_bytes()
    (root / SAMURAI_PNG).write_bytes(data[: len(data) // 2])


def folder_not_image(root: Path, outside: Path) -> None:
    (root / SAMURAI_PNG).unlink()
    (root / SAMURAI_PNG).mkdir()


def missing_image_no_description(root: Path, outside: Path) -> None:
    edit(A, '"description": "Feudal Japanese warrior, red armor, stern expression",\n', "")(
        root, outside
    )
    (root / SAMURAI_PNG).unlink()


def oversize(root: Path, outside: Path) -> None:
    with (root / A).open("r+b") as handle:
        handle.truncate(6 * 1024 * 1024)  # sparse: refused from its size, never read


def non_utf8(root: Path, outside: Path) -> None:
    path = root / S
    path.write_bytes(path.read_bytes().replace(b"static, wide shot", b"caf\xe9 shot", 1))


def binary_garbage(root: Path, outside: Path) -> None:
    with (root / S).open("ab") as handle:
        handle.write(b"\x00\x01\x02garbage\xff\xfe")


def remove(name: str) -> Callable[[Path, Path], None]:
    def apply(root: Path, outside: Path) -> None:
        (root / name).unlink()

    return apply


@dataclass(frozen=True)
class Case:
    """One way to break the sample and what validate must say about it."""

    id: str
    where: str  # "file:line" that must start an output line
    says: str  # what that line must contain
    mutate: Callable[[Path, Path], None]


# fmt: off
CASES = [
    Case("json-trailing-comma", f"{A}:10", "remove the trailing comma",
         edit(A, '"assets/characters/ninja.png"', '"assets/characters/ninja.png",')),
    Case("json-missing-comma", f"{A}:5", "invalid JSON",
         edit(A, 'stern expression",', 'stern expression"')),
    Case("json-duplicate-key", f"{A}:7", "duplicate key 'samurai' (first defined at line 3)",
         edit(A, '"ninja": {', '"samurai": {')),
    Case("unknown-asset-type", f"{A}:2", "did you mean 'characters'?",
         edit(A, '"characters": {', '"charakters": {')),
    Case("unknown-asset-field", f"{A}:4", "did you mean 'description'?",
         edit(A, '"description": "Feudal', '"descripton": "Feudal')),
    Case("asset-wrong-type", f"{A}:4", "must be a string, got number",
         edit(A, '"Feudal Japanese warrior, red armor, stern expression"', "42")),
    Case("asset-bad-name", f"{A}:7", "invalid asset name 'nin ja'",
         edit(A, '"ninja": {', '"nin ja": {')),
    Case("absolute-path", f"{A}:5", "is absolute",
         edit(A, '"assets/characters/samurai.png"', '"/etc/passwd"')),
    Case("dotdot-escape", f"{A}:5", "uses '..'",
         edit(A, '"assets/characters/samurai.png"', '"assets/../../x.png"')),
    Case("symlink-file-escape", f"{A}:3", "leads outside the project",
         symlink_file_outside),
    Case("symlink-folder-escape", f"{A}:23", "leads outside the project",
         symlink_folder_outside),
    Case("png-not-png", f"{A}:3", "character 'samurai'",
         write_bytes(SAMURAI_PNG, b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 40)),
    Case("text-renamed-png", f"{A}:3", "is not an image",
         write_bytes(SAMURAI_PNG, b"this is a text file\n")),
    Case("truncated-png", f"{A}:3", "truncated or corrupt",
         truncated_png),
    Case("decompression-bomb", f"{A}:3", "decompression bomb: 10000x10000",
         write_bytes(SAMURAI_PNG, bomb_png())),
    Case("folder-as-image", f"{A}:3", "is a folder",
         folder_not_image),
    Case("missing-image-no-description", f"{A}:3", "no description",
         missing_image_no_description),
    Case("missing-assets-json", f"{A}:1", "assets.json is missing",
         remove(A)),
    Case("empty-assets-json", f"{A}:1", "assets.json is empty",
         write_bytes(A, b"")),
    Case("binary-assets-json", f"{A}:2", "binary file, not text (byte 0x1a)",
         write_bytes(A, bomb_png(8, 8))),
    Case("oversize-assets-json", f"{A}:1", "more than the limit",
         oversize),
    Case("duplicate-scene", f"{S}:48", "duplicate scene number 1 (scene 1 is also at line 10)",
         edit(S, "## Scene 3: Eyes Open", "## Scene 1: Eyes Open")),
    Case("missing-type", f"{S}:32", "missing field 'Type'",
         edit(S, "**Type**: landscape\n", "")),
    Case("missing-background", f"{S}:10", "needs a Background",
         edit(S, "**Background**: temple_courtyard\n", "")),
    Case("unknown-scene-type", f"{S}:12", "did you mean 'character'?",
         edit(S, "**Type**: character", "**Type**: charakter")),
    Case("bad-duration", f"{S}:13", "bad duration",
         edit(S, "**Duration**: 5 seconds", "**Duration**: five seconds")),
    Case("bad-seed", f"{S}:14", "bad seed '-3'",
         edit(S, "**Duration**: 5 seconds\n", "**Duration**: 5 seconds\n**Seed**: -3\n")),
    Case("unknown-field", f"{S}:16", "did you mean 'Style'?",
         edit(S, "**Style**: ghibli", "**Stile**: ghibli")),
    Case("three-characters", f"{S}:14", "at most 2",
         edit(S, "**Characters**: samurai", "**Characters**: samurai, ninja, ronin")),
    Case("unknown-character", f"{S}:14", "unknown character 'samuraj' (did you mean 'samurai'?)",
         edit(S, "**Characters**: samurai", "**Characters**: samuraj")),
    Case("pose-as-character", f"{S}:14", "'meditation' is a pose, not a character",
         edit(S, "**Characters**: samurai", "**Characters**: meditation")),
    Case("unknown-pose", f"{S}:19", "did you mean 'standing'?",
         edit(S, "- pose: standing", "- pose: standin")),
    Case("landscape-with-character", f"{S}:35", "has no characters",
         edit(S, "**Type**: landscape\n", "**Type**: landscape\n**Characters**: samurai\n")),
    Case("bad-scene-heading", f"{S}:32", "cannot read the scene number",
         edit(S, "## Scene 2: Sunset", "## Scene two: Sunset")),
    Case("empty-scenes", f"{S}:1", "is empty",
         write_bytes(S, b"\n\n")),
    Case("binary-scenes", f"{S}:67", "binary file",
         binary_garbage),
    Case("non-utf8-scenes", f"{S}:28", "not UTF-8",
         non_utf8),
    Case("missing-scenes", f"{S}:1", "scene-breakdown.md is missing",
         remove(S)),
    Case("style-wrong-type", f"{Y}:4", "must be a string or null",
         edit(Y, '"default_style": "ghibli"', '"default_style": 7')),
    Case("style-unknown-default", f"{Y}:1", "did you mean 'ghibli'?",
         edit(Y, '"default_style": "ghibli"', '"default_style": "ghibly"')),
]
# fmt: on


def run_validate(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["validate", str(root)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_the_sample_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_validate(copy_sample(tmp_path), capsys)
    assert (code, out) == (0, "OK: 3 scenes, 10 assets\n")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = copy_sample(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    case.mutate(root, outside)
    code, out = run_validate(root, capsys)
    assert code == 1, out
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if line.startswith(f"{case.where}:")]
    assert any(case.says in line for line in lines), out


def test_non_utf8_names_the_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = copy_sample(tmp_path)
    non_utf8(root, tmp_path)
    _, out = run_validate(root, capsys)
    assert out.startswith(
        "scene-breakdown.md:28:16: scene-breakdown.md is not UTF-8 text (byte 0xe9)"
    )


def test_folder_symlink_escape_names_every_asset_in_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_sample(tmp_path)
    (tmp_path / "outside").mkdir()
    symlink_folder_outside(root, tmp_path / "outside")
    _, out = run_validate(root, capsys)
    escaped = [line.split(":")[1] for line in out.splitlines() if "outside the project" in line]
    assert escaped == ["23", "27", "31"]  # standing, meditation, fighting


def test_symlinks_inside_the_project_are_fine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_sample(tmp_path)
    shutil.move(root / SAMURAI_PNG, root / "samurai-real.png")
    os.symlink("../../samurai-real.png", root / SAMURAI_PNG)
    code, out = run_validate(root, capsys)
    assert (code, out) == (0, "OK: 3 scenes, 10 assets\n")


def test_all_errors_of_a_file_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_sample(tmp_path)
    outside = tmp_path / "outside"
    edit(A, '"description": "Feudal', '"descripton": "Feudal')(root, outside)
    edit(A, '"assets/characters/ninja.png"', '"/abs/ninja.png"')(root, outside)
    edit(S, "**Duration**: 5 seconds", "**Duration**: 5 minutes")(root, outside)
    edit(S, "**Style**: ghibli", "**Stile**: ghibli")(root, outside)
    code, out = run_validate(root, capsys)
    assert code == 1
    located = [":".join(line.split(":")[:2]) for line in out.splitlines()]
    assert located[:4] == [f"{A}:4", f"{A}:9", f"{S}:13", f"{S}:16"]
    assert "did you mean 'description'?" in out and "is absolute" in out


def test_a_valid_file_beside_a_broken_one_still_gets_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_sample(tmp_path)
    (root / SAMURAI_PNG).write_bytes(b"not a png")
    edit(S, "**Type**: landscape", "**Type**: lanscape")(root, tmp_path)
    _, out = run_validate(root, capsys)
    assert f"{A}:3:" in out and f"{S}:34:" in out


def test_missing_folder_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_validate(tmp_path / "nowhere", capsys)
    assert code == 1 and "does not exist" in out and "Traceback" not in out


def test_bad_config_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = copy_sample(tmp_path)
    (root / "keyframed.toml").write_text('approval = "sometimes"\n', encoding="utf-8")
    code, out = run_validate(root, capsys)
    assert code == 1 and "approval" in out and "Traceback" not in out


def test_pillow_warnings_never_escape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 95 megapixels: above Pillow's own warning threshold (89.5 M), below its error (179 M);
    # pytest turns warnings into errors, so a leaked DecompressionBombWarning would fail here.
    root = copy_sample(tmp_path)
    (root / SAMURAI_PNG).write_bytes(bomb_png(9_500, 10_000))
    code, out = run_validate(root, capsys)
    assert code == 1 and "decompression bomb: 9500x10000" in out
    (root / SAMURAI_PNG).write_bytes(bomb_png(20_000, 10_000))  # past Pillow's hard limit
    code, out = run_validate(root, capsys)
    assert code == 1 and f"{A}:3:" in out and "decompression bomb" in out


def test_through_a_real_process(tmp_path: Path) -> None:
    root = copy_sample(tmp_path)
    (root / SAMURAI_PNG).write_bytes(bomb_png())
    Image.open(root / "assets/poses/standing.png").close()  # the rest is untouched
    result = subprocess.run(
        [sys.executable, "-m", "keyframed", "validate", str(root)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout.startswith(
        f"{A}:3:1: character 'samurai': '{SAMURAI_PNG}' is a decompression bomb"
    )
    assert "1 error in" in result.stderr
