"""Table-driven edit scenarios: after one edit of a fully built sample project, exactly the
right artifacts are stale, each with exactly the right reasons."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from keyframed.daemon.store import Store
from tests.planning import build_all, copy_sample, snapshot, stale_map, stand_in_png

BG_T = "assets/backgrounds/temple_courtyard.png"
BG_M = "assets/backgrounds/mountain_sunset.png"
STYLE = "assets/styles/ghibli.png"
S1, S2, S3 = "scene-01", "scene-02", "scene-03"
V1, V2, V3 = (f"scene-0{n}/video-preview.webp" for n in (1, 2, 3))


def up(path: str) -> str:
    return f"upstream_stale: {path}"


def scene13_downstream_of_chars(scene: str, video: str) -> dict[str, list[str]]:
    """Keyframes and video of a character scene after both character layers changed."""
    return {
        f"{scene}/keyframe-start.png": [up(f"{scene}/layers/character-start.png")],
        f"{scene}/keyframe-end.png": [up(f"{scene}/layers/character-end.png")],
        video: sorted([up(f"{scene}/keyframe-end.png"), up(f"{scene}/keyframe-start.png")]),
    }


def edit_text(rel: str, old: str, new: str, count: int = 1) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / rel
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {rel}"
        path.write_text(text.replace(old, new, count), encoding="utf-8")
    return apply


def edit_json(rel: str, change: Callable[[dict], None]) -> Callable[[Path], None]:  # type: ignore[type-arg]
    def apply(root: Path) -> None:
        data = json.loads((root / rel).read_text(encoding="utf-8"))
        change(data)
        (root / rel).write_text(json.dumps(data, indent=2), encoding="utf-8")
    return apply


def append_config(text: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        with (root / "keyframed.toml").open("a", encoding="utf-8") as handle:
            handle.write("\n" + text + "\n")
    return apply


def prepend_config(text: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / "keyframed.toml"
        path.write_text(text + "\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    return apply


def replace_bytes(rel: str, seed: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / rel).write_bytes(stand_in_png(seed))
    return apply


def touch(rel: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        st = os.stat(root / rel)
        os.utime(root / rel, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    return apply


def set_desc(kind: str, name: str, text: str) -> Callable[[Path], None]:
    def change(data: dict) -> None:  # type: ignore[type-arg]
        data[kind][name]["description"] = text
    return edit_json("assets.json", change)


def everything_but(done: dict[str, list[str]], exclude: set[str]) -> set[str]:
    return {p for p in done if p not in exclude}


@dataclass
class Scenario:
    name: str
    edit: Callable[[Path], None]
    expected: dict[str, list[str]]


def _chars(scene: str, reason: str) -> dict[str, list[str]]:
    return {
        f"{scene}/layers/character-start.png": [reason],
        f"{scene}/layers/character-end.png": [reason],
    }


SAMURAI_PROMPT = {
    **_chars(S1, "recipe_changed: prompt"),
    **_chars(S3, "recipe_changed: prompt"),
    **scene13_downstream_of_chars(S1, V1),
    **scene13_downstream_of_chars(S3, V3),
}
SAMURAI_BYTES = {
    **_chars(S1, "input_changed: assets/characters/samurai.png"),
    **_chars(S3, "input_changed: assets/characters/samurai.png"),
    **scene13_downstream_of_chars(S1, V1),
    **scene13_downstream_of_chars(S3, V3),
}
TEMPLATE_ANYPOSE = {
    **_chars(S1, "template_changed: qwen_anypose.json"),
    **_chars(S3, "template_changed: qwen_anypose.json"),
    **scene13_downstream_of_chars(S1, V1),
    **scene13_downstream_of_chars(S3, V3),
}

BG1_DOWNSTREAM = {
    f"{S1}/keyframe-start.png": [up(f"{S1}/layers/background.png")],
    f"{S1}/keyframe-end.png": [up(f"{S1}/layers/background.png")],
    V1: sorted([up(f"{S1}/keyframe-end.png"), up(f"{S1}/keyframe-start.png")]),
    f"{S3}/layers/background.png": [up(f"{S1}/layers/background.png")],
    f"{S3}/keyframe-start.png": [up(f"{S3}/layers/background.png")],
    f"{S3}/keyframe-end.png": [up(f"{S3}/layers/background.png")],
    V3: sorted([up(f"{S3}/keyframe-end.png"), up(f"{S3}/keyframe-start.png")]),
}
S2_START_DOWNSTREAM = {
    f"{S2}/layers/background.png": [up(f"{S2}/keyframe-start.png")],
    f"{S2}/keyframe-end.png": [up(f"{S2}/keyframe-start.png")],
    V2: sorted([up(f"{S2}/keyframe-end.png"), up(f"{S2}/keyframe-start.png")]),
}

SCENE3_SECTION = """## Scene 3: Eyes Open"""

SCENARIOS = [
    Scenario("character description", set_desc("characters", "samurai", "Old warrior, grey armor"),
             SAMURAI_PROMPT),
    Scenario("reference image replaced", replace_bytes("assets/characters/samurai.png", "other"),
             SAMURAI_BYTES),
    Scenario("swap a pose", edit_text("scene-breakdown.md", "- pose: standing", "- pose: fighting"),
             {f"{S1}/layers/character-start.png": ["recipe_changed: inputs"],
              f"{S1}/keyframe-start.png": [up(f"{S1}/layers/character-start.png")],
              V1: [up(f"{S1}/keyframe-start.png")]}),
    Scenario("one scene's expression",
             edit_text("scene-breakdown.md", "- expression: eyes open, alert",
                       "- expression: eyes wide open, startled"),
             {f"{S3}/keyframe-end.png": ["recipe_changed: prompt"],
              V3: [up(f"{S3}/keyframe-end.png")]}),
    Scenario("motion", edit_text("scene-breakdown.md", "Samurai slowly sits down",
                                 "Samurai quickly sits down"),
             {V1: ["recipe_changed: prompt"]}),
    Scenario("camera", edit_text("scene-breakdown.md", "static, wide shot", "static, medium shot"),
             {f"{S1}/keyframe-start.png": ["recipe_changed: prompt"],
              f"{S1}/keyframe-end.png": ["recipe_changed: prompt"],
              V1: sorted(["recipe_changed: prompt", up(f"{S1}/keyframe-end.png"),
                          up(f"{S1}/keyframe-start.png")])}),
    Scenario("duration", edit_text("scene-breakdown.md", "**Duration**: 5 seconds",
                                   "**Duration**: 4 seconds", 3),
             {V1: ["recipe_changed: params.duration", "recipe_changed: params.length"],
              V2: ["recipe_changed: params.duration", "recipe_changed: params.length"],
              V3: ["recipe_changed: params.duration", "recipe_changed: params.length"]}),
    Scenario("landscape start text",
             edit_text("scene-breakdown.md", "Sun above mountains, warm light",
                       "Sun high above mountains, warm light"),
             {f"{S2}/keyframe-start.png": ["recipe_changed: prompt"], **S2_START_DOWNSTREAM}),
    Scenario("landscape end text",
             edit_text("scene-breakdown.md", "Sun touching horizon, golden hour",
                       "Sun below horizon, dusk"),
             {f"{S2}/keyframe-end.png": ["recipe_changed: prompt"],
              V2: [up(f"{S2}/keyframe-end.png")]}),
    Scenario("touch without change", touch("assets/characters/samurai.png"), {}),
    Scenario("touch the breakdown", touch("scene-breakdown.md"), {}),
    Scenario("save assets.json with no change", edit_json("assets.json", lambda d: None), {}),
    Scenario("unused asset description", set_desc("characters", "ninja", "Changed"), {}),
    Scenario("philosophy edited", lambda r: (r / "philosophy.md").write_text("new"), {}),
    Scenario("rename a background",
             lambda r: (edit_json("assets.json", lambda d: d["backgrounds"].__setitem__(
                 "temple", d["backgrounds"].pop("temple_courtyard")))(r),
                        edit_text("scene-breakdown.md", "temple_courtyard", "temple", 2)(r)),
             {}),
    Scenario("move scene text without renumbering",
             lambda r: (r / "scene-breakdown.md").write_text(
                 _move_scene3_first((r / "scene-breakdown.md").read_text())), {}),
    Scenario("background description",
             set_desc("backgrounds", "mountain_sunset", "Mountains at dawn, mist"),
             {BG_M: ["recipe_changed: prompt"],
              f"{S2}/keyframe-start.png": [up(BG_M)], **S2_START_DOWNSTREAM}),
    Scenario("template edited in the project", lambda r: _override_template(r, "qwen_anypose.json"),
             TEMPLATE_ANYPOSE),
    Scenario("output deleted", lambda r: (r / S1 / "keyframe-start.png").unlink(),
             {f"{S1}/keyframe-start.png": [f"missing_output: {S1}/keyframe-start.png"],
              V1: [up(f"{S1}/keyframe-start.png")]}),
    Scenario("output replaced by the user", replace_bytes(f"{S1}/layers/background.png", "mine"),
             {f"{S1}/layers/background.png": [f"user_override: {S1}/layers/background.png"],
              f"{S1}/keyframe-start.png": [f"input_changed: {S1}/layers/background.png"],
              f"{S1}/keyframe-end.png": [f"input_changed: {S1}/layers/background.png"],
              V1: sorted([up(f"{S1}/keyframe-end.png"), up(f"{S1}/keyframe-start.png")]),
              f"{S3}/layers/background.png": [f"input_changed: {S1}/layers/background.png"],
              f"{S3}/keyframe-start.png": [up(f"{S3}/layers/background.png")],
              f"{S3}/keyframe-end.png": [up(f"{S3}/layers/background.png")],
              V3: sorted([up(f"{S3}/keyframe-end.png"), up(f"{S3}/keyframe-start.png")])}),
    Scenario("retry marker", lambda r: (r / S1 / "keyframe-start.retry").write_text(""),
             {f"{S1}/keyframe-start.png": ["recipe_changed: seed", "retry_requested: take"],
              V1: [up(f"{S1}/keyframe-start.png")]}),
    Scenario("retry marker with a note",
             lambda r: (r / S3 / "keyframe-end.retry").write_text("more light"),
             {f"{S3}/keyframe-end.png": ["recipe_changed: prompt", "recipe_changed: seed",
                                         "retry_requested: take"],
              V3: [up(f"{S3}/keyframe-end.png")]}),
    Scenario("seed added to a scene", edit_text("scene-breakdown.md", "**Camera**: tracking right",
                                                "**Camera**: tracking right\n**Seed**: 42"),
             {f"{S2}/keyframe-start.png": ["recipe_changed: seed"],
              f"{S2}/layers/background.png": [up(f"{S2}/keyframe-start.png")],
              f"{S2}/keyframe-end.png": ["recipe_changed: seed", up(f"{S2}/keyframe-start.png")],
              V2: sorted(["recipe_changed: seed", up(f"{S2}/keyframe-end.png"),
                          up(f"{S2}/keyframe-start.png")])}),
    Scenario("pose image replaced", replace_bytes("assets/poses/meditation.png", "sit"),
             {f"{S1}/layers/character-end.png": ["input_changed: assets/poses/meditation.png"],
              f"{S1}/keyframe-end.png": [up(f"{S1}/layers/character-end.png")],
              V1: [up(f"{S1}/keyframe-end.png")],
              **_chars(S3, "input_changed: assets/poses/meditation.png"),
              **scene13_downstream_of_chars(S3, V3)}),
    Scenario("config value set to its default", prepend_config('seed_salt = "keyframed"'), {}),
    Scenario("scene removed", lambda r: (r / "scene-breakdown.md").write_text(
        _drop_scene2((r / "scene-breakdown.md").read_text())), {}),
]


def _move_scene3_first(text: str) -> str:
    head, rest = text.split("## Scene 1:", 1)
    body, scene3 = ("## Scene 1:" + rest).split(SCENE3_SECTION, 1)
    return head + SCENE3_SECTION + scene3.rstrip() + "\n\n---\n\n" + body


def _drop_scene2(text: str) -> str:
    start = text.index("## Scene 2:")
    end = text.index("## Scene 3:")
    return text[:start] + text[end:]


def _override_template(root: Path, name: str) -> None:
    from keyframed.workflows.templates import template_path

    source = template_path(name, None)
    data = json.loads(source.read_text(encoding="utf-8"))
    (root / "workflows").mkdir(exist_ok=True)
    (root / "workflows" / name).write_text(json.dumps(data, indent=1), encoding="utf-8")


@pytest.fixture(scope="module")
def built_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample project built once; each scenario copies it."""
    root = copy_sample(tmp_path_factory.mktemp("built") / "samurai")
    store = Store.for_project(root)
    try:
        snap = build_all(root, store)
        assert all(i.state == "fresh" for i in snap.items), stale_map(snap)
    finally:
        store.close()
    return root


@pytest.mark.parametrize("case", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_edit_scenario(case: Scenario, built_template: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "p"
    shutil.copytree(built_template, root, copy_function=shutil.copy2)
    store = Store.for_project(root)
    try:
        assert stale_map(snapshot(root, store)) == {}
        case.edit(root)
        assert stale_map(snapshot(root, store)) == case.expected
    finally:
        store.close()


def test_larger_scenarios(built_template: Path, tmp_path: Path) -> None:
    """Edits whose stale set is 'everything using X', checked by rule rather than by list."""
    import shutil

    cases: list[tuple[str, Callable[[Path], None], Callable[[str], bool]]] = [
        ("lora strength", append_config("[loras.instyle]\nfile = \"InStyle-0.5.safetensors\"\n"
                                        "strength = 0.4\nstacked_strength = 0.45"),
         lambda p: p.startswith(("scene-01/", "scene-02/", "scene-03/"))
         and "character" not in p),
        ("style description", set_desc("styles", "ghibli", "Watercolour, soft"),
         lambda p: p != BG_T and p != BG_M),
        ("steps in config", append_config("[image]\nsteps = 8"),
         lambda p: p.startswith("scene-")),
    ]
    for name, edit, rule in cases:
        root = tmp_path / name.replace(" ", "_")
        shutil.copytree(built_template, root, copy_function=shutil.copy2)
        store = Store.for_project(root)
        try:
            edit(root)
            snap = snapshot(root, store)
            expected = {i.path for i in snap.items if rule(i.path)}
            assert set(stale_map(snap)) == expected, name
        finally:
            store.close()
