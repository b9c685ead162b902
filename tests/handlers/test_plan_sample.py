"""`keyframed plan examples/samurai --json`: exactly DESIGN §4's artifacts, chain rules, LoRA
stacks and strengths, and deterministic seeds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from keyframed.cli.main import main
from tests.planning import copy_sample

LIGHTNING = ("lightning", 1.0)
INSTYLE = ("instyle", 0.5)
ANYPOSE_STACK = [("lightning", 1.0), ("anypose", 0.55), ("anypose_helper", 0.55),
                 ("instyle", 0.45)]


def plan(root: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["plan", str(root), "--json"]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


@pytest.fixture
def doc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    root = copy_sample(tmp_path / "samurai")
    (root / "keyframed.toml").write_text('approval = "manual"\n')  # ComfyUI backend, default
    return plan(root, capsys)


def by_path(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["path"]: a for a in doc["artifacts"]}


def loras(art: dict[str, Any]) -> list[tuple[str, float]]:
    return [(lo["role"], lo["strength"]) for lo in art["recipe"]["loras"]]


def inputs(art: dict[str, Any]) -> list[tuple[str, str]]:
    return [(i["path"], i["role"]) for i in art["recipe"]["inputs"]]


def test_exactly_the_artifacts_of_the_design(doc: dict[str, Any]) -> None:
    char_scene = ["layers/background.png", "layers/character-start.png", "keyframe-start.png",
                  "layers/character-end.png", "keyframe-end.png", "video.mp4"]
    expected = [
        "assets/backgrounds/mountain_sunset.png", "assets/backgrounds/temple_courtyard.png",
        "assets/styles/ghibli.png",
        *[f"scene-01/{p}" for p in char_scene],
        "scene-02/keyframe-start.png", "scene-02/layers/background.png",
        "scene-02/keyframe-end.png", "scene-02/video.mp4",
        *[f"scene-03/{p}" for p in char_scene],
    ]
    assert [a["path"] for a in doc["artifacts"]] == expected
    assert [a["order"] for a in doc["artifacts"]] == list(range(1, len(expected) + 1))
    assert all("never_built" in a["reasons"] for a in doc["artifacts"])
    assert doc["format"] == 1 and doc["ok"] is True and doc["errors"] == []


def test_chain_rules(doc: dict[str, Any]) -> None:
    arts = by_path(doc)
    assert inputs(arts["scene-01/layers/background.png"]) == [
        ("assets/backgrounds/temple_courtyard.png", "background"),
        ("assets/styles/ghibli.png", "style")]
    # Scene 3 chains from scene 1's background (same asset), not scene 2's.
    assert inputs(arts["scene-03/layers/background.png"])[0] == (
        "scene-01/layers/background.png", "background")
    # The identity is always the original asset, never chained.
    for scene in ("scene-01", "scene-03"):
        for which in ("start", "end"):
            first = inputs(arts[f"{scene}/layers/character-{which}.png"])[0]
            assert first == ("assets/characters/samurai.png", "identity")
    assert inputs(arts["scene-01/layers/character-start.png"])[1] == (
        "assets/poses/standing.png", "pose")
    assert inputs(arts["scene-01/keyframe-start.png"]) == [
        ("scene-01/layers/background.png", "background"),
        ("scene-01/layers/character-start.png", "character")]
    assert inputs(arts["scene-02/keyframe-end.png"])[0] == ("scene-02/keyframe-start.png", "source")
    assert inputs(arts["scene-02/layers/background.png"]) == [
        ("scene-02/keyframe-start.png", "source")]
    assert inputs(arts["scene-03/video.mp4"]) == [
        ("scene-03/keyframe-start.png", "start"), ("scene-03/keyframe-end.png", "end")]


def test_templates_lora_stacks_and_strengths(doc: dict[str, Any]) -> None:
    arts = by_path(doc)
    bg = arts["scene-01/layers/background.png"]
    assert bg["recipe"]["template"] == "qwen_background.json"
    assert loras(bg) == [LIGHTNING, INSTYLE]
    char = arts["scene-01/layers/character-start.png"]
    assert char["recipe"]["template"] == "qwen_anypose.json"
    assert char["recipe"]["mode"] == "anypose"
    assert loras(char) == ANYPOSE_STACK
    key = arts["scene-01/keyframe-start.png"]
    assert key["recipe"]["template"] == "qwen_composite.json"
    assert key["recipe"]["prompt"].startswith("Place character naturally in background scene")
    assert "calm, contemplative" in key["recipe"]["prompt"]
    assert "static, wide shot" in key["recipe"]["prompt"]
    assert loras(key) == [LIGHTNING]
    assert arts["assets/styles/ghibli.png"]["recipe"]["template"] == "qwen_t2i.json"
    assert loras(arts["scene-02/keyframe-start.png"]) == [LIGHTNING, INSTYLE]
    video = arts["scene-01/video.mp4"]
    assert video["recipe"]["template"] == "wan_flf2v.json"
    assert video["gate"] == "keyframes" and bg["gate"] == "assets"
    assert video["recipe"]["params"]["length"] == 81  # 5 s at 16 fps, as 4n+1
    assert bg["recipe"]["params"]["steps"] == 6


def test_seeds_are_deterministic_and_distinct(
    doc: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeds = [a["recipe"]["seed"] for a in doc["artifacts"] if a["step"] != "copy"]
    assert len(set(seeds)) == len(seeds)
    other = copy_sample(tmp_path / "elsewhere")
    (other / "keyframed.toml").write_text('approval = "manual"\n')
    again = plan(other, capsys)
    assert [a["recipe"]["seed"] for a in again["artifacts"] if a["step"] != "copy"] == seeds
    assert [a["fingerprint"] for a in again["artifacts"]] == [
        a["fingerprint"] for a in doc["artifacts"]]


def test_plan_changes_nothing_and_runs_as_a_command(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "samurai")
    before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                    if ".keyframed" not in p.parts)
    done = subprocess.run([sys.executable, "-m", "keyframed", "plan", str(root)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"KEYFRAMED_CONFIG": str(root / "none"), "PATH": ""})
    assert done.returncode == 0, done.stderr
    assert "never_built" in done.stdout
    after = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if ".keyframed" not in p.parts)
    assert after == before
