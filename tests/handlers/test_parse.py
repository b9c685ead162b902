"""The parsers of assets.json, scene-breakdown.md and style.json, and the cross-checks."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from keyframed.handlers.facts import FileFact
from keyframed.handlers.parse.assets import parse_assets
from keyframed.handlers.parse.jsonpos import parse_json
from keyframed.handlers.parse.scenes import parse_scenes
from keyframed.handlers.parse.style import parse_style
from keyframed.handlers.parse.validate import validate
from keyframed.handlers.project import Project, Scene

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "samurai"


def sample(name: str) -> str:
    return (SAMPLE / name).read_text(encoding="utf-8")


def meaning(scene: Scene) -> dict[str, Any]:
    """A scene without its line numbers: what two spellings of one scene must share."""
    data = scene.model_dump(exclude={"line", "field_lines"})
    for which in ("start", "end"):
        data[which].pop("line")
    return data


def sample_project() -> Project:
    library, problems = parse_assets(sample("assets.json"))
    title, scenes, more = parse_scenes(sample("scene-breakdown.md"))
    style, rest = parse_style(sample("style.json"))
    assert problems == more == rest == []
    return Project(title=title, assets=library, scenes=tuple(scenes), style=style)


# --- the sample project ------------------------------------------------------------------


def test_sample_scenes_are_the_plans_three() -> None:
    title, scenes, problems = parse_scenes(sample("scene-breakdown.md"))
    assert problems == []
    assert title == "[Project Name]"
    assert [(s.number, s.title, s.type) for s in scenes] == [
        (1, "Temple Meditation", "character"),
        (2, "Sunset Transition", "landscape"),
        (3, "Eyes Open", "character"),
    ]
    one, two, three = scenes
    assert one.characters == ("samurai",) and one.background == "temple_courtyard"
    assert one.style == two.style == three.style == "ghibli"
    assert (one.start.pose, one.start.expression) == ("standing", "calm, contemplative")
    assert (one.end.pose, one.end.expression) == ("meditation", "peaceful, eyes closed")
    assert one.motion == "Samurai slowly sits down into meditation pose"
    assert one.camera == "static, wide shot"
    assert two.characters == () and two.background == "mountain_sunset"
    assert two.start.text == "Sun above mountains, warm light" and two.start.pose is None
    assert two.end.text == "Sun touching horizon, golden hour"
    assert (two.motion, two.camera) == ("Slow pan right, sun descending", "tracking right")
    assert (three.start.pose, three.start.expression) == ("meditation", "eyes closed")
    assert (three.end.pose, three.end.expression) == ("meditation", "eyes open, alert")
    assert three.camera == "close-up on face"
    assert all(s.duration == 5.0 and s.seed is None and s.objects == () for s in scenes)


def test_sample_scene_lines_point_at_the_file() -> None:
    lines = sample("scene-breakdown.md").splitlines()
    _, scenes, _ = parse_scenes(sample("scene-breakdown.md"))
    for scene in scenes:
        assert lines[scene.line - 1].startswith(f"## Scene {scene.number}:")
        for key, number in scene.field_lines.items():
            word = key.split(".")[-1].replace("start", "start frame").replace("end", "end frame")
            assert word in lines[number - 1].lower(), (key, lines[number - 1])
    assert scenes[0].field_lines["start.pose"] == 19
    assert scenes[2].field_lines["end.expression"] == 62


def test_sample_assets() -> None:
    library, problems = parse_assets(sample("assets.json"))
    assert problems == []
    assert sorted(library.assets) == sorted(
        f"{t}/{n}"
        for t, names in {
            "characters": ["samurai", "ninja"],
            "backgrounds": ["temple_courtyard", "mountain_sunset"],
            "poses": ["standing", "meditation", "fighting"],
            "styles": ["ghibli", "realistic"],
            "objects": ["katana"],
        }.items()
        for n in names
    )
    samurai = library.get("characters", "samurai")
    assert samurai is not None
    assert samurai.image == "assets/characters/samurai.png" and samurai.line == 3
    assert samurai.description == "Feudal Japanese warrior, red armor, stern expression"
    katana = library.get("objects", "katana")
    assert katana is not None and katana.line == 47 and katana.image == "assets/objects/katana.png"


def test_sample_style_and_validation() -> None:
    project = sample_project()
    assert project.style.default_style == "ghibli"
    assert project.style.palette[0] == "#2e4a3f"
    facts = {a.output_path: FileFact(path=a.output_path) for a in project.assets.assets.values()}
    assert validate(project, facts) == []


# --- lenient Markdown --------------------------------------------------------------------


def _variant(transform: str) -> str:
    text = sample("scene-breakdown.md")
    field = re.compile(r"^\*\*([A-Za-z ]+)\*\*:", re.MULTILINE)
    if transform == "bullets":
        return field.sub(r"- **\1**:", text)
    if transform == "colon_inside":
        return field.sub(r"**\1:**", text)
    if transform == "case":
        return field.sub(lambda m: f"**{m.group(1).upper()}**:", text).replace("- pose:", "- Pose:")
    if transform == "blank_lines":
        return text.replace("\n", "\n\n\n").replace("---", "")
    if transform == "plain_keys":
        return field.sub(r"\1:", text)
    if transform == "underscores":
        return text.replace("**Start Frame**", "**start_frame**").replace(
            "**End Frame**", "**End-Frame**"
        )
    if transform == "inline_frames":
        pattern = r"\*\*(Start|End) Frame\*\*:\n- pose: (\w+)\n- expression: (.*)"
        return re.sub(pattern, r"**\1 Frame**: pose: \2, expression: \3", text)
    if transform == "crlf":
        return text.replace("\n", "\r\n")
    raise AssertionError(transform)


@pytest.mark.parametrize(
    "transform",
    [
        "bullets",
        "colon_inside",
        "case",
        "blank_lines",
        "plain_keys",
        "underscores",
        "inline_frames",
        "crlf",
    ],
)
def test_lenient_spellings_parse_the_same(transform: str) -> None:
    _, expected, _ = parse_scenes(sample("scene-breakdown.md"))
    text = _variant(transform)
    assert text != sample("scene-breakdown.md")
    _, scenes, problems = parse_scenes(text)
    assert problems == []
    assert [meaning(s) for s in scenes] == [meaning(s) for s in expected]


def test_free_text_frames_on_one_line_or_as_bullets() -> None:
    one_line = """## Scene 2: Sunset
**Type**: landscape
**Background**: mountain_sunset
**Start Frame**: Sun above mountains, warm light
**End Frame**: Sun touching horizon
"""
    bullets = """## Scene 2: Sunset
**Type**: landscape
**Background**: mountain_sunset
**Start Frame**:
- Sun above mountains
- warm light

**End Frame**:
Sun touching
horizon
"""
    described = one_line.replace(
        "**Start Frame**: Sun above mountains, warm light",
        "**Start Frame**:\n- description: Sun above mountains, warm light",
    )
    results = [parse_scenes(text) for text in (one_line, bullets, described)]
    assert all(problems == [] for _, _, problems in results)
    frames = [(s[0].start.text, s[0].end.text) for _, s, _ in results]
    assert frames == [("Sun above mountains, warm light", "Sun touching horizon")] * 3


def test_frame_with_pose_and_free_text_and_continued_motion() -> None:
    text = """# Scene Breakdown: Duel
## Scene 7: Clash
**Type**: character
**Duration**: 2.5s
**Characters**: samurai & ninja
**Background**: `temple_courtyard`
**Objects**: katana
**Seed**: 1234
**Start Frame**: facing each other
- pose: fighting
- expression: tense
**Motion**: they lunge
at each other

**Camera**: low angle
"""
    title, scenes, problems = parse_scenes(text)
    assert problems == [] and title == "Duel"
    (scene,) = scenes
    assert scene.number == 7 and scene.folder == "scene-07"
    assert scene.duration == 2.5 and scene.seed == 1234
    assert scene.characters == ("samurai", "ninja") and scene.objects == ("katana",)
    assert scene.background == "temple_courtyard"
    assert (scene.start.pose, scene.start.text, scene.start.expression) == (
        "fighting",
        "facing each other",
        "tense",
    )
    assert scene.start.description == "facing each other, tense"
    assert scene.motion == "they lunge at each other" and scene.camera == "low angle"
    assert scene.field_lines["start.pose"] == 10 and scene.field_lines["seed"] == 8


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [("5 seconds", 5.0), ("5s", 5.0), ("5", 5.0), ("2.5 sec", 2.5), ("10 Seconds", 10.0)],
)
def test_duration_spellings(duration: str, seconds: float) -> None:
    text = f"## Scene 1: A\n**Type**: object\n**Objects**: katana\n**Duration**: {duration}\n"
    _, scenes, problems = parse_scenes(text)
    assert problems == [] and scenes[0].duration == seconds


def test_sections_other_than_scenes_are_ignored() -> None:
    text = """# Scene Breakdown: X
## Overview
- **Type**: nonsense
- **Total Duration**: forever
## Scene 1: A
**Type**: object
**Objects**: katana
## Notes
**Mood**: whatever
"""
    _, scenes, problems = parse_scenes(text)
    assert problems == [] and [s.number for s in scenes] == [1]


# --- errors of one file ------------------------------------------------------------------


def test_scene_errors_are_all_reported_with_positions() -> None:
    text = """## Scene 1: A
**Type**: charakter
**Duration**: five seconds
**Stile**: ghibli
## Scene 1: B
## Scene x: C
## Scene 2: D
**Type**: landscape
**Characters**: samurai
- pose: standing
**Start Frame**:
- poze: standing
"""
    _, scenes, problems = parse_scenes(text)
    assert scenes == []
    located = [(d.line, d.column, d.message.split(":")[0]) for d in problems]
    assert (2, 11, "scene 1") in located  # unknown type, at the value
    assert [d.line for d in problems] == [2, 3, 4, 5, 6, 7, 9, 12]
    assert "did you mean 'character'?" in problems[0].suggestion
    assert "did you mean 'Style'?" in problems[2].suggestion
    assert "also at line 1" in problems[3].message
    assert "needs a Background" in problems[5].message
    assert "has no characters" in problems[6].message
    assert "did you mean 'pose'?" in problems[7].suggestion


def test_too_many_characters_names_the_limit() -> None:
    text = "## Scene 4: Crowd\n**Type**: character\n**Background**: b\n**Characters**: a, b, c\n"
    _, _, problems = parse_scenes(text)
    (problem,) = problems
    assert (problem.line, problem.column) == (4, 17)
    assert "3 characters" in problem.message and "at most 2" in problem.message


def test_empty_and_sceneless_files() -> None:
    assert parse_scenes("  \n")[2][0].message == "scene-breakdown.md is empty"
    (problem,) = parse_scenes("# Scene Breakdown: X\n\nSome text.\n")[2]
    assert problem.message == "no scenes found"


def test_json_positions_and_duplicates() -> None:
    root, problems = parse_json(
        '{\n  "a": {"b": 1,\n         "b": 2},\n  "c": [true, null]\n}', "x"
    )
    assert root is not None and root.members[1].line == 4 and root.members[1].column == 3
    (problem,) = problems
    assert (problem.line, problem.column) == (
        3,
        10,
    ) and "first defined at line 2" in problem.message
    _, problems = parse_json('{"a": 1,}', "x")
    assert problems[0].suggestion == "remove the trailing comma"


def test_asset_errors_are_all_reported() -> None:
    text = """{
  "charakters": {},
  "characters": {
    "bad name": {"description": "x"},
    "samurai": {"descripton": "x", "identity_ref": "/abs.png"},
    "ninja": {"description": 3, "ref_image": "a\\\\b.png"},
    "ronin": {"identity_ref": "x.png", "ref_image": "y.png"}
  },
  "poses": []
}"""
    library, problems = parse_assets(text)
    assert library.assets == {}
    assert [(d.line, d.column) for d in problems] == [
        (2, 3),
        (4, 5),
        (5, 17),
        (5, 52),
        (6, 30),
        (6, 46),
        (7, 40),
        (9, 12),
    ]
    assert problems[0].suggestion == "did you mean 'characters'?"
    assert problems[2].suggestion == "did you mean 'description'?"
    assert "absolute" in problems[3].message and "backslashes" in problems[5].message


def test_paths_are_normalised_and_null_means_generate() -> None:
    library, problems = parse_assets(
        '{"styles": {"s": {"ref_image": "./assets//styles/s.png"}, "t": {"ref_image": null,'
        ' "description": "x"}}}'
    )
    assert problems == []
    s, t = library.get("styles", "s"), library.get("styles", "t")
    assert s is not None and s.image == "assets/styles/s.png"
    assert t is not None and t.image is None and t.output_path == "assets/styles/t.png"


def test_style_file_errors() -> None:
    text = (
        '{\n  "name": 3,\n  "palette": ["#ffffff", "red"],\n  "defualt_style": "x",\n  "mood": 1\n}'
    )
    style, problems = parse_style(text)
    assert [(d.line, d.column) for d in problems] == [(2, 11), (3, 26), (4, 3)]
    assert problems[2].suggestion == "did you mean 'default_style'?"
    assert style.name == ""


# --- cross-checks ------------------------------------------------------------------------


def _with_scene(project: Project, **changes: Any) -> Project:
    scene = project.scenes[0].model_copy(update=changes)
    return project.model_copy(update={"scenes": (scene, *project.scenes[1:])})


def _facts(project: Project, **overrides: FileFact) -> dict[str, FileFact]:
    facts = {a.output_path: FileFact(path=a.output_path) for a in project.assets.assets.values()}
    return {**facts, **overrides}


def test_unknown_names_get_did_you_mean_and_wrong_types_are_named() -> None:
    project = _with_scene(sample_project(), characters=("samuraj", "meditation"))
    problems = validate(project, _facts(project))
    assert [str(d) for d in problems] == [
        "scene-breakdown.md:14:1: scene 1: unknown character 'samuraj' (did you mean 'samurai'?)",
        "scene-breakdown.md:14:1: scene 1: 'meditation' is a pose, not a character "
        '(add it under "characters" in assets.json)',
    ]


def test_style_falls_back_to_default_then_the_only_style() -> None:
    project = _with_scene(sample_project(), style=None)
    assert validate(project, _facts(project)) == []  # style.json default_style
    no_default = project.model_copy(
        update={"style": project.style.model_copy(update={"default_style": None})}
    )
    (problem,) = validate(no_default, _facts(project))
    assert problem.line == 10 and "no Style" in problem.message
    assets = {k: v for k, v in project.assets.assets.items() if k != "styles/realistic"}
    only = no_default.model_copy(
        update={"assets": project.assets.model_copy(update={"assets": assets})}
    )
    assert validate(only, _facts(only)) == []  # the only style asset
    wrong = project.model_copy(
        update={"style": project.style.model_copy(update={"default_style": "ghibly"})}
    )
    (problem,) = validate(wrong, _facts(wrong))
    assert problem.file == "style.json" and problem.suggestion == "did you mean 'ghibli'?"


def test_images_must_be_usable_or_describable() -> None:
    project = sample_project()
    samurai = project.assets.get("characters", "samurai")
    assert samurai is not None
    bare = samurai.model_copy(update={"description": ""})
    assets = {**project.assets.assets, "characters/samurai": bare}
    bare_project = project.model_copy(
        update={"assets": project.assets.model_copy(update={"assets": assets})}
    )
    (missing,) = validate(bare_project, _facts(bare_project))
    assert (missing.file, missing.line) == ("assets.json", 3)
    assert "does not exist" in missing.message
    ok = FileFact(path=samurai.output_path, exists=True, is_image=True, width=2, height=2)
    assert validate(bare_project, _facts(bare_project, **{samurai.output_path: ok})) == []
    bad = FileFact(path=samurai.output_path, exists=True, error="is not an image")
    (problem,) = validate(project, _facts(project, **{samurai.output_path: bad}))
    assert "is not an image" in problem.message and problem.line == 3


@pytest.mark.parametrize(
    ("kind", "fields", "message"),
    [
        ("character", "**Background**: b\n", "a character scene needs at least one character"),
        ("character", "**Characters**: a\n", "a character scene needs a Background"),
        ("landscape", "", "a landscape scene needs a Background"),
        ("object", "", "an object scene needs at least one object"),
        ("object", "**Objects**: a, b, c\n", "3 objects in one scene; at most 2 fit"),
        ("object", "**Objects**: a\n**Characters**: c\n", "an object scene has no characters"),
    ],
)
def test_what_each_scene_type_needs(kind: str, fields: str, message: str) -> None:
    _, scenes, problems = parse_scenes(f"## Scene 5: X\n**Type**: {kind}\n{fields}")
    assert scenes == []
    assert len(problems) == 1 and problems[0].message.startswith(f"scene 5: {message}")


def test_sample_images_are_what_make_images_draws() -> None:
    spec = importlib.util.spec_from_file_location("make_images", SAMPLE.parent / "make_images.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    drawn = module.images()
    user_images = [
        *(SAMPLE / "assets/characters").glob("*.png"),
        *(SAMPLE / "assets/poses").glob("*.png"),
    ]
    assert sorted(drawn) == sorted(str(p.relative_to(SAMPLE)) for p in user_images)
    for rel, image in drawn.items():
        with Image.open(SAMPLE / rel) as committed:
            assert committed.size == (256, 384)
            expected = image.quantize(colors=16, dither=Image.Dither.NONE).convert("RGB")
            assert committed.convert("RGB").tobytes() == expected.tobytes(), rel
