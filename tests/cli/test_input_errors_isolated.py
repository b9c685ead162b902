"""Issue 12 B, through the real CLI and real files: input errors are isolated and explained.

Each test reproduces one bullet of the issue's "Why": one typo stopped every scene while
``status`` kept the other scenes' old outputs as ``done``; errors came in waves; a path that
differs from an existing file by case silently made a new character; ``retry ...
character-start`` in a two-character scene wrote a marker nothing used; removed scenes stayed
in ``status`` as ``done``. Every status file read is checked against the schema.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from keyframed.cli.main import main
from keyframed.daemon.drive import EXIT_DONE, EXIT_INPUT
from tests.comfy_project import comfy_project, submitted_artifacts
from tests.fakecomfy import FakeComfy
from tests.planning import copy_sample

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "keyframed" / "schemas" / "status.schema.json")
    .read_text(encoding="utf-8"))
BREAKDOWN = "scene-breakdown.md"


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The person's own ~/.config/keyframed/config.toml must not leak into the tests."""
    monkeypatch.setenv("KEYFRAMED_CONFIG", str(tmp_path / "no-user-config.toml"))


def status_docs(root: Path) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """The root status and each scene's, by number, each checked against the schema."""
    project = json.loads((root / "status.json").read_text(encoding="utf-8"))
    jsonschema.validate(project, SCHEMA)
    scenes = {}
    for path in sorted(root.glob("scene-*/status.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        jsonschema.validate(doc, SCHEMA)
        scenes[doc["scene"]] = doc
    return project, scenes


def edit_scene(root: Path, number: int, old: str, new: str) -> None:
    """Replace the first ``old`` inside scene ``number``'s section of the breakdown."""
    path = root / BREAKDOWN
    text = path.read_text(encoding="utf-8")
    start = text.index(f"## Scene {number}:")
    end = text.find("\n## Scene ", start + 1)
    end = len(text) if end < 0 else end
    section = text[start:end]
    assert old in section, f"{old!r} not in scene {number}"
    path.write_text(text[:start] + section.replace(old, new, 1) + text[end:], encoding="utf-8")


def digests(root: Path, folder: str) -> dict[str, str]:
    """sha256 of every output under ``folder``, byte for byte (not its status file and contact
    sheet: those are keyframed's pictures of the state, redrawn to show the errors)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / folder).rglob("*"))
            if p.is_file() and p.name not in ("status.json", "contact-sheet.png")}


@pytest.fixture()
def built(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """The sample, built on the preview backend (approval auto): every scene done."""
    root = copy_sample(tmp_path / "p")
    assert main(["run", str(root)]) == EXIT_DONE
    capsys.readouterr()
    return root


# -- 1: an error inside one scene blocks that scene only -----------------------------------------


def test_an_error_in_one_scene_blocks_only_that_scene(
        built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Why: one typo in a scene stopped work on every scene, and `status` kept showing the
    other scenes' old outputs as `done` although their inputs changed."""
    root = built
    before = digests(root, "scene-03")
    sheet = (root / "scene-03" / "contact-sheet.png").read_bytes()
    old_end = (root / "scene-01" / "keyframe-end.png").read_bytes()
    edit_scene(root, 3, "- pose: meditation\n- expression: eyes open", "- pose: meditatoin\n"
               "- expression: eyes open")           # the typo, in scene 3
    edit_scene(root, 3, "eyes open, alert", "eyes open, very alert")  # and a change there
    edit_scene(root, 1, "peaceful, eyes closed", "serene, eyes closed")  # a change in scene 1
    assert main(["run", str(root)]) == EXIT_INPUT
    capsys.readouterr()
    # Scene 1 was built again; scene 3's files are byte for byte as they were.
    assert (root / "scene-01" / "keyframe-end.png").read_bytes() != old_end
    assert digests(root, "scene-03") == before
    # Its contact sheet is drawn again, each tile marked INPUT ERROR.
    assert (root / "scene-03" / "contact-sheet.png").read_bytes() != sheet
    project, scenes = status_docs(root)
    held = scenes[3]["artifacts"]
    assert len(held) == 6 and {a["state"] for a in held} == {"input_error"}
    assert all(any("unknown pose 'meditatoin'" in r and "did you mean 'meditation'" in r
                   for r in a["reasons"]) for a in held)
    assert scenes[3]["input_errors"][0]["line"] > 0
    assert {a["state"] for a in scenes[1]["artifacts"]} == {"done"}
    assert project["counts"]["input_error"] == 6 and project["ok"] is False
    assert any(a["kind"] == "input_error" and "meditatoin" in a["message"]
               for a in project["attention"])
    # `status` and `plan` say the same.
    assert main(["status", str(root)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "scene-03/" in line]
    assert len(rows) == 6 and all("input_error" in r and "meditatoin" in r for r in rows)
    assert main(["plan", "--json", str(root)]) == 1
    plan = json.loads(capsys.readouterr().out)
    planned = {a["path"]: a for a in plan["artifacts"] if a["scene"] == 3}
    assert set(planned) == {a["path"] for a in held}
    assert {a["state"] for a in planned.values()} == {"input_error"}
    assert plan["counts"]["input_error"] == 6
    # Fixed, the scene is built again and shown as it is.
    edit_scene(root, 3, "meditatoin", "meditation")
    assert main(["run", str(root)]) == EXIT_DONE
    _, scenes = status_docs(root)
    assert {a["state"] for a in scenes[3]["artifacts"]} == {"done"}
    assert "input_errors" not in scenes[3]


def test_an_unreadable_project_shows_every_artifact_as_input_error(
        built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Why: with the whole project unreadable, `status` kept its last good states (`done`)."""
    root = built
    before = {f: digests(root, f) for f in ("scene-01", "scene-02", "scene-03", "assets")}
    (root / "assets.json").write_text('{"characters": ', encoding="utf-8")
    assert main(["run", str(root)]) == EXIT_INPUT
    capsys.readouterr()
    project, scenes = status_docs(root)
    entries = [*project["assets"], *(a for s in scenes.values() for a in s["artifacts"])]
    assert len(entries) == 19
    assert {a["state"] for a in entries} == {"input_error"}
    assert all(any(r.startswith("input_error: assets.json:") for r in a["reasons"])
               for a in entries)
    assert project["counts"] == {"input_error": 19}
    assert main(["plan", "--json", str(root)]) == 1
    plan = json.loads(capsys.readouterr().out)
    assert {a["state"] for a in plan["artifacts"]} == {"input_error"}
    assert len(plan["artifacts"]) == 19
    assert main(["status", str(root)]) == 0
    out = capsys.readouterr().out
    assert " done " not in out and "19 input_error" in out
    assert {f: digests(root, f) for f in before} == before


# -- 2: every error in one pass ------------------------------------------------------------------


def test_validate_reports_field_and_reference_errors_in_one_pass(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Why: errors came in waves: fix the field errors, then the pose error appeared. A field
    error and an unknown pose in scene 1 and a pose image that is missing in scene 3 (no
    description to generate it from) are all reported by one `validate`."""
    root = copy_sample(tmp_path / "p")
    edit_scene(root, 1, "**Duration**: 5 seconds", "**Duration**: five seconds")
    edit_scene(root, 1, "- pose: meditation", "- pose: meditaton")
    edit_scene(root, 3, "- pose: meditation\n- expression: eyes open",
               "- pose: fighting\n- expression: eyes open")
    assets = json.loads((root / "assets.json").read_text(encoding="utf-8"))
    assets["poses"]["fighting"] = {"ref_image": "assets/poses/combat.png"}
    (root / "assets.json").write_text(json.dumps(assets, indent=2), encoding="utf-8")
    assert main(["validate", str(root)]) == 1
    out = capsys.readouterr().out
    assert "bad duration 'five seconds'" in out
    assert "unknown pose 'meditaton'" in out and "did you mean 'meditation'" in out
    assert "assets/poses/combat.png" in out
    assert len(out.strip().splitlines()) == 3, out


# -- 3: near misses are errors, not generation ---------------------------------------------------


@pytest.mark.parametrize("written", ["assets/characters/Samurai.png",
                                     "assets/characters/samuria.png"])
def test_a_near_miss_path_is_an_error_with_did_you_mean_and_no_job(
        tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str],
        written: str) -> None:
    """Why: `assets/characters/Samurai.png` beside `samurai.png` silently made a new samurai
    from the description: a wasted GPU job and a different-looking character."""
    root = comfy_project(tmp_path / "p", [fake_comfy])
    text = (root / "assets.json").read_text(encoding="utf-8")
    (root / "assets.json").write_text(
        text.replace('"assets/characters/samurai.png"', f'"{written}"'), encoding="utf-8")
    meant = "did you mean 'assets/characters/samurai.png'"
    assert main(["validate", str(root)]) == 1
    assert meant in capsys.readouterr().out
    assert main(["run", str(root)]) == EXIT_INPUT
    capsys.readouterr()
    jobs = submitted_artifacts(fake_comfy)
    assert not [p for p in jobs if p.startswith("assets/characters/")], jobs
    assert not [p for p in jobs if p.startswith(("scene-01/", "scene-03/"))], jobs
    assert "scene-02/video" in jobs  # the scene without the samurai was built
    assert not (root / written).exists()
    project, _ = status_docs(root)
    assert any(meant in e["message"] for e in project["errors"])
    assert any(a["kind"] == "input_error" and meant in a["message"]
               for a in project["attention"])
    assert main(["status", str(root)]) == 0
    assert meant in capsys.readouterr().out
    assert main(["status", "--json", str(root)]) == 0
    assert meant in capsys.readouterr().out


# -- 5: retry refuses a target the scene does not have -------------------------------------------


def test_retry_refuses_a_target_the_scene_does_not_have(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Why: `retry ... character-start` in a two-character scene wrote a marker that nothing
    ever used. Now it is refused with the scene's own names; no marker is written."""
    root = copy_sample(tmp_path / "p")
    edit_scene(root, 3, "**Characters**: samurai", "**Characters**: samurai, ninja")
    (root / "scene-03").mkdir()
    assert main(["retry", str(root), "scene", "3", "character-start"]) != 0
    err = capsys.readouterr().err
    for name in ("character-samurai-start", "character-ninja-start",
                 "character-samurai-end", "character-ninja-end", "start", "end", "video"):
        assert name in err.split("its targets: ")[1]
    assert list((root / "scene-03").iterdir()) == []
    assert main(["retry", str(root), "scene", "3", "charcter-ninja-end"]) != 0
    assert "character-ninja-end" in capsys.readouterr().err
    assert list((root / "scene-03").iterdir()) == []
    # The per-character name is taken, and so is a one-character scene's character-start.
    assert main(["retry", str(root), "scene", "3", "character-ninja-start"]) == 0
    assert (root / "scene-03" / "character-ninja-start.retry").is_file()
    (root / "scene-01").mkdir()
    assert main(["retry", str(root), "scene", "1", "character-start"]) == 0
    # A scene that is not in the breakdown is named as such.
    assert main(["retry", str(root), "scene", "9", "start"]) != 0
    assert "scene 9 (scene-09/) is not in scene-breakdown.md" in capsys.readouterr().err


# -- 6: removed scenes leave the status files ----------------------------------------------------


def test_a_removed_scene_leaves_status_and_its_outputs_are_listed_orphaned(
        built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Why: scenes removed from the breakdown stayed in `keyframed status` as `done`."""
    root = built
    outputs = sorted(digests(root, "scene-03"))
    text = (root / BREAKDOWN).read_text(encoding="utf-8")
    (root / BREAKDOWN).write_text(text[:text.index("## Scene 3:")], encoding="utf-8")
    assert main(["run", str(root)]) == EXIT_DONE
    capsys.readouterr()
    assert not (root / "scene-03" / "status.json").exists()
    assert all((root / p).is_file() for p in outputs)  # kept on disk
    project, scenes = status_docs(root)
    assert set(scenes) == {1, 2}
    built_there = {"scene-03/layers/background.png", "scene-03/layers/character-start.png",
                   "scene-03/layers/character-end.png", "scene-03/keyframe-start.png",
                   "scene-03/keyframe-end.png", "scene-03/video-preview.webp"}
    assert sorted(project["orphaned"]) == sorted(built_there)
    assert len(project["orphaned"]) == len(set(project["orphaned"]))
    assert sum(project["counts"].values()) == 13
    assert main(["status", str(root)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("  scene-03/")]
    assert rows == [], rows
    assert "orphaned" in out and "scene-03/keyframe-end.png" in out


# -- 4: waiting lines say what ends the wait -----------------------------------------------------


def test_waiting_lines_name_the_file_or_command_that_ends_the_wait(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Why: waiting lines did not say which command or file ends the wait."""
    root = copy_sample(tmp_path / "p")
    toml = root / "keyframed.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        'approval = "auto"', 'approval = "manual"'), encoding="utf-8")
    assert main(["run", str(root)]) == EXIT_DONE
    assets_step = f"`touch {root / 'assets.approved'}` or `keyframed approve {root} assets`"
    assert f"waiting for assets.approved (6 artifact(s)); ends with {assets_step}" \
        in capsys.readouterr().out
    project, _ = status_docs(root)
    waits = [a for a in project["attention"] if a["kind"] == "awaiting_approval"]
    assert [(a["subject"], a["next"]) for a in waits] == [("assets.approved", assets_step)]
    assert project["ok"] is True  # waiting for a person is not an error
    assert main(["status", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"waiting for assets.approved: 6 artifact(s); ends with {assets_step}" in out
    assert f"next: {assets_step}" in out
    assert main(["plan", str(root)]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines()
            if "awaiting_approval " in r and r.split()[0].isdigit()]
    assert len(rows) == 6 and all(r.endswith(f"next: {assets_step}") for r in rows)
    # Approved, the keyframes are made and each video waits for its scene's marker.
    assert main(["approve", str(root), "assets"]) == 0
    assert main(["run", str(root)]) == EXIT_DONE
    capsys.readouterr()
    assert main(["plan", "--json", str(root)]) == 0
    plan = json.loads(capsys.readouterr().out)
    video = next(a for a in plan["artifacts"] if a["path"] == "scene-02/video-preview.webp")
    assert video["next"] == (f"`touch {root / 'scene-02/keyframes.approved'}` or "
                             f"`keyframed approve {root} scene 2`")
    project, _ = status_docs(root)
    assert {a["subject"] for a in project["attention"]} == {
        "scene-01/keyframes.approved", "scene-02/keyframes.approved",
        "scene-03/keyframes.approved"}


# -- 7: the schema covers every new field --------------------------------------------------------


def test_the_schema_covers_the_new_fields(
        built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A held scene's `input_errors`, root `orphaned` and the `awaiting_approval` attention
    kind are in the schema (with additionalProperties false, a field it lacks fails), and
    the schema refuses what they must not be."""
    root = built
    edit_scene(root, 3, "- pose: meditation\n- expression: eyes open",
               "- pose: meditatoin\n- expression: eyes open")
    assert main(["run", str(root)]) == EXIT_INPUT
    capsys.readouterr()
    project, scenes = status_docs(root)  # validated: the new fields are allowed
    assert "input_errors" in scenes[3] and "orphaned" in project
    spoiled = [
        {**project, "orphaned": ["assets/characters/samurai.png"]},  # only scene outputs
        {k: v for k, v in project.items() if k != "orphaned"},       # required
        {**project, "attention": [{"kind": "waiting", "subject": "x", "message": "",
                                   "next": ""}]},
    ]
    scene = {**scenes[3], "input_errors": [{"file": "x"}]}           # a whole diagnostic
    for doc in [*spoiled, scene]:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, SCHEMA)
    kinds = set(SCHEMA["$defs"]["attention"]["properties"]["kind"]["enum"])
    source = (Path(__file__).resolve().parents[2] / "keyframed" / "daemon" / "status.py")
    emitted = set(re.findall(r'_note\("([a-z_]+)"', source.read_text(encoding="utf-8")))
    assert emitted | {"awaiting_approval"} <= kinds
