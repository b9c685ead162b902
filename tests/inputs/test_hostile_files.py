"""Hostile and broken project folders against a running reconcile loop (and a few real daemon
processes).

Every case starts from a copy of the sample project already built by the preview backend, with
a folder ``outside/`` beside it full of sentinel files. The case then breaks the project while
the reconciler is running, and the test checks:

- status.json says what is wrong (file and line where it applies), or the job that cannot be
  done failed with a clear error while everything else stays built;
- nothing beside the project changed, appeared or disappeared (``outside/`` is hashed);
- nothing of the user's was overwritten or removed (every user file, folder and symlink in the
  project is hashed before and after);
- for input errors the outputs stay as they were (the last good plan stays);
- once the case is undone, the same reconciler serves the project again (all fresh, or the
  affected artifacts rebuilt).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import jsonschema
import pytest
from PIL import Image

from keyframed.backends.preview import PreviewBackend
from keyframed.daemon.loop import Reconciler
from keyframed.daemon.status import artifact_state
from keyframed.handlers.project import StyleFile
from keyframed.inputs import loader
from keyframed.inputs.config import load_settings
from keyframed.render.film_file import is_ours as film_is_ours
from keyframed.render.film_plan import FILM, PREVIEW_FILM
from keyframed.render.sheets import is_ours as sheet_is_ours
from keyframed.settings import BackendSettings, Settings
from tests.daemon.test_daemon_approvals import SCHEMA
from tests.daemon.test_daemon_live_edits import idle
from tests.daemon.test_daemon_process import wait_for
from tests.planning import copy_sample

A, S, Y = "assets.json", "scene-breakdown.md", "style.json"
SAMURAI = "assets/characters/samurai.png"
NINJA = "assets/characters/ninja.png"
CLI = [sys.executable, "-m", "keyframed"]
SMALL: dict[str, Any] = {
    "approval": "auto",
    "image": {"width": 64, "height": 64},
    "video": {"width": 64, "height": 64, "max_seconds": 0.5},
}
BIG_FILE = 1 << 20  # larger files are compared by size and mtime, not read
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)  # checked once, not at every validation


def check_status_files(root: Path) -> dict[str, Any]:
    """Validate every status file against the shipped schema; return the root document."""
    doc: dict[str, Any] = json.loads((root / "status.json").read_text(encoding="utf-8"))
    VALIDATOR.validate(doc)
    for path in root.glob("scene-*/status.json"):
        VALIDATOR.validate(json.loads(path.read_text(encoding="utf-8")))
    return doc

# -- the world: a built project and a folder of sentinels beside it ---------------------------


def settings_for(root: Path, **overrides: Any) -> Settings:
    return load_settings(root, env={}, overrides={**SMALL, **overrides})


def reconciler(root: Path, **overrides: Any) -> Reconciler:
    rec = Reconciler(root, settings_for(root, **overrides))
    rec.start()
    return rec


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample, built once by the preview backend (every case starts from a copy)."""
    root = copy_sample(tmp_path_factory.mktemp("built") / "project")
    rec = reconciler(root)
    try:
        snap = rec.run_until_idle(timeout=120)
        assert snap is not None and snap.ok
        assert {i.state for i in snap.items} == {"fresh"}
    finally:
        rec.close(wait=True)
    return root


def entry_state(path: Path) -> str:
    """What is at ``path`` without following symlinks: dir, link:<target>, or file content."""
    st = os.lstat(path)
    if os.path.islink(path):
        return f"link:{os.readlink(path)}"
    if path.is_dir():
        return "dir"
    if st.st_size > BIG_FILE:
        return f"big:{st.st_size}:{st.st_mtime_ns}"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(base: Path, skip: Callable[[Path], bool] = lambda p: False) -> dict[str, str]:
    """Every entry below ``base`` (symlinks not followed), as relative path → entry_state."""
    out: dict[str, str] = {}
    for folder, dirs, files in os.walk(base):
        for name in dirs + files:
            path = Path(folder) / name
            if not skip(path):
                out[path.relative_to(base).as_posix()] = entry_state(path)
    return out


@dataclass
class World:
    """A built project at ``root`` and the sentinels in ``outside`` beside it."""

    base: Path
    root: Path
    outside: Path
    saved: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def make(cls, base: Path, built: Path) -> World:
        root = base / "project"
        shutil.copytree(built, root, symlinks=True)
        outside = base / "outside"
        (outside / "chars").mkdir(parents=True)
        (outside / "sentinel.txt").write_text("do not touch\n")
        (outside / "secret.txt").write_text("TOP-SECRET-0451\n")
        for name in ("samurai.png", "ninja.png"):
            shutil.copy(root / "assets" / "characters" / name, outside / "chars" / name)
        shutil.copy(root / SAMURAI, outside / "samurai.png")
        Image.new("RGB", (64, 64), (9, 9, 9)).save(outside / "victim.png")
        return cls(base, root, outside)

    def text(self, name: str) -> str:
        return (self.root / name).read_text(encoding="utf-8")

    def save(self, *names: str) -> None:
        """Remember files' original bytes, to put them back when the case is undone."""
        for name in names:
            self.saved.setdefault(name, (self.root / name).read_bytes())

    def restore(self) -> None:
        for name, data in self.saved.items():
            path = self.root / name
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path)
            path.write_bytes(data)

    def edit(self, name: str, old: str, new: str) -> None:
        text = self.text(name)
        assert old in text, old
        self.save(name)
        (self.root / name).write_text(text.replace(old, new, 1), encoding="utf-8")

    def outside_state(self) -> dict[str, str]:
        """Everything beside the project (under the test's folder)."""
        return tree(self.base, skip=lambda p: p == self.root or self.root in p.parents)

    def user_files(self, rec: Reconciler) -> dict[str, str]:
        """Everything in the project that is not keyframed's own: inputs, the user's files,
        folders and symlinks (a daemon output is a regular file holding its recorded bytes)."""
        records = rec.store.records()
        out = {}
        # takes/ holds keyframed's kept takes (issue 13): its own, like the outputs.
        for rel, state in tree(self.root, skip=lambda p: ".keyframed" in p.parts
                               or "takes" in p.parts).items():
            record = records.get(rel)
            if record is not None and state == record.output_hash:
                continue
            if rel.endswith("status.json") and not os.path.islink(self.root / rel):
                continue
            if rel.endswith(".png") and state != "dir" and not state.startswith("link:") \
                    and sheet_is_ours(self.root / rel) and rel.rsplit("/", 1)[-1] in (
                        "contact-sheet.png", "storyboard.png", "asset-sheet.png"):
                continue
            if rel in (FILM, PREVIEW_FILM) and state != "dir" and not state.startswith("link:") \
                    and film_is_ours(self.root / rel):
                continue  # the film keyframed drew (issue 13)
            out[rel] = state
        return out

    def outputs(self, rec: Reconciler) -> dict[str, str]:
        """The recorded outputs as they are on disk."""
        return {p: entry_state(self.root / p) for p in rec.store.records()
                if os.path.lexists(self.root / p)}


# -- expectations -------------------------------------------------------------------------------


def states_of(rec: Reconciler) -> dict[str, str]:
    assert rec.snapshot is not None
    latest = rec.jobs.latest()
    return {i.path: artifact_state(i, latest.get(i.path)) for i in rec.snapshot.items}


def assert_error(doc: dict[str, Any], where: str, says: str) -> None:
    """status.json is not ok and names ``where`` (``file`` or ``file:line``) saying ``says``."""
    assert doc["ok"] is False, doc
    located = [(f"{e['file']}:{e['line']}", e["message"]) for e in doc["errors"]]
    file, _, line = where.partition(":")
    hits = [m for loc, m in located
            if (loc == where if line else loc.split(":")[0] == file) and says in m]
    assert hits, located


def expect_error(where: str, says: str) -> Callable[[World, Reconciler, dict[str, Any]], None]:
    """The case is an input error at ``where`` saying ``says``."""

    def check(w: World, rec: Reconciler, doc: dict[str, Any]) -> None:
        assert_error(doc, where, says)

    return check


def expect_failed(path: str, says: str, affected: tuple[str, ...] = ()
                  ) -> Callable[[World, Reconciler, dict[str, Any]], None]:
    """The job of ``path`` failed with ``says``; every scene but its own (and ``affected``,
    which chain from it) is built."""

    def check(w: World, rec: Reconciler, doc: dict[str, Any]) -> None:
        # No input error; ok is false because a failure needs a person (issue 12).
        assert not doc["errors"] and doc["ok"] is False, doc["errors"]
        assert any(a.get("subject") == path for a in doc["attention"]), doc["attention"]
        scene = path.split("/")[0]
        status = json.loads((w.root / scene / "status.json").read_text(encoding="utf-8"))
        entry = next(a for a in status["artifacts"] if a["path"] == path)
        assert entry["state"] == "failed" and says in (entry["error"] or ""), entry
        mine = (scene, *affected)
        others = {p: s for p, s in states_of(rec).items() if p.split("/")[0] not in mine}
        assert others and set(others.values()) <= {"fresh", "done"}, others

    return check


def expect_working(w: World, rec: Reconciler, doc: dict[str, Any]) -> None:
    """Nothing wrong: every artifact is built."""
    assert doc["ok"] is True and doc["errors"] == [], doc["errors"]
    assert set(states_of(rec).values()) <= {"fresh", "done"}, states_of(rec)


# -- cases -----------------------------------------------------------------------------------


Mutate = Callable[[World], None]
Expect = Callable[[World, Reconciler, dict[str, Any]], None]


@dataclass(frozen=True)
class Case:
    """Break the project one way; what the daemon must say; how to undo it (None: nothing)."""

    id: str
    mutate: Mutate
    expect: Expect
    undo: Mutate | None = None
    input_error: bool = True  # the plan stops: outputs must not change meanwhile


def restore(w: World) -> None:
    w.restore()


def set_path(asset_path: str, new: str) -> Mutate:
    return lambda w: w.edit(A, f'"{asset_path}"', json.dumps(new))


def image_as(fmt: str, target: str = SAMURAI, **options: Any) -> Mutate:
    """Re-encode an asset image in another format, keeping its name."""

    def apply(w: World) -> None:
        w.save(target)
        with Image.open(w.root / target) as im:
            still = im.convert("RGB")
        still.save(w.root / target, format=fmt, **options)

    return apply


def animated(fmt: str) -> Mutate:
    def apply(w: World) -> None:
        w.save(SAMURAI)
        with Image.open(w.root / SAMURAI) as im:
            first = im.convert("RGB")
        frames = [first.rotate(90), first.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
        first.save(w.root / SAMURAI, format=fmt, save_all=True, append_images=frames,
                   duration=100, loop=0)

    return apply


def write(rel: str, data: bytes) -> Mutate:
    def apply(w: World) -> None:
        w.save(rel)
        (w.root / rel).write_bytes(data)

    return apply


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height pixels that compresses to almost nothing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    rows = zlib.compress(bytes((1 + (width + 7) // 8) * height), 9)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows)
            + chunk(b"IEND", b""))


def truncated_jpeg(w: World) -> None:
    image_as("JPEG")(w)
    (w.root / SAMURAI).write_bytes((w.root / SAMURAI).read_bytes()[:300])


def link_file_out(w: World) -> None:
    w.save(SAMURAI)
    (w.root / SAMURAI).unlink()
    (w.root / SAMURAI).symlink_to(w.outside / "samurai.png")


def link_chain_out(w: World) -> None:
    w.save(SAMURAI)
    (w.root / "assets" / "hop.png").symlink_to(w.outside / "samurai.png")
    (w.root / SAMURAI).unlink()
    (w.root / SAMURAI).symlink_to("../hop.png")


def undo_chain(w: World) -> None:
    (w.root / "assets" / "hop.png").unlink()
    w.restore()


def link_loop(w: World) -> None:
    w.save(SAMURAI)
    (w.root / SAMURAI).unlink()
    (w.root / SAMURAI).symlink_to("samurai.png")


def link_folder_out(folder: str) -> Mutate:
    """Swap a folder of the running project for a symlink to a copy outside."""

    def apply(w: World) -> None:
        real = w.root / folder
        shutil.move(real, w.base / "moved-away")
        shutil.copytree(w.base / "moved-away", w.outside / "swapped")
        real.symlink_to(w.outside / "swapped", target_is_directory=True)

    return apply


def unlink_folder(folder: str) -> Mutate:
    def apply(w: World) -> None:
        (w.root / folder).unlink()
        shutil.copytree(w.base / "moved-away", w.root / folder, symlinks=True)

    return apply


def deep(name: str, prefix: str, opener: str, closer: str, suffix: str) -> Mutate:
    return write(name, (prefix + opener * 100_000 + "1" + closer * 100_000 + suffix).encode())


def duplicate_group(w: World) -> None:
    w.edit(A, "{\n", '{\n  "characters": {},\n')


def template(name: str, make: Callable[[World, Path], object]) -> Mutate:
    def apply(w: World) -> None:
        (w.root / "workflows").mkdir(exist_ok=True)
        make(w, w.root / "workflows" / name)

    return apply


def drop_workflows(w: World) -> None:
    path = w.root / "workflows"
    if path.is_symlink():
        path.unlink()
    else:
        shutil.rmtree(path)


def workflows_folder_out(w: World) -> None:
    (w.outside / "wf").mkdir()
    (w.outside / "wf" / "qwen_t2i.json").write_text("{}")
    (w.root / "workflows").symlink_to(w.outside / "wf", target_is_directory=True)


def rename_asset_files(w: World) -> None:
    """File names with spaces, unicode and leading dashes, and an asset named '-ninja'."""
    w.save(A, S)
    assets = w.root / "assets"
    shutil.move(assets / "characters" / "samurai.png", assets / "characters" / "my samurai ☃ é.png")
    shutil.move(assets / "characters" / "ninja.png", assets / "characters" / "-ninja.png")
    shutil.move(assets / "poses" / "standing.png", assets / "poses" / "--standing pose.png")
    w.edit(A, SAMURAI, "assets/characters/my samurai ☃ é.png")
    w.edit(A, '"ninja": {', '"-ninja": {')
    w.edit(A, NINJA, "assets/characters/-ninja.png")
    w.edit(A, "assets/poses/standing.png", "assets/poses/--standing pose.png")
    w.edit(S, "**Characters**: samurai\n**Background**: temple_courtyard\n**Style**: ghibli\n\n"
           "**Start Frame**:\n- pose: meditation",
           "**Characters**: samurai, -ninja\n**Background**: temple_courtyard\n"
           "**Style**: ghibli\n\n**Start Frame**:\n- pose: meditation")


def expect_renamed_built(w: World, rec: Reconciler, doc: dict[str, Any]) -> None:
    expect_working(w, rec, doc)
    layers = sorted(p.name for p in (w.root / "scene-03" / "layers").iterdir())
    assert "character--ninja-start.png" in layers, layers


def at_output(rel: str, make: Callable[[World, Path], None]) -> Mutate:
    """Delete a built output and put something else in its place."""

    def apply(w: World) -> None:
        (w.root / rel).unlink()
        make(w, w.root / rel)

    return apply


def clear(rel: str) -> Mutate:
    def apply(w: World) -> None:
        path = w.root / rel
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path)

    return apply


def layers_is_a_file(w: World) -> None:
    shutil.rmtree(w.root / "scene-01" / "layers")
    (w.root / "scene-01" / "layers").write_text("my notes, not a folder\n")


def user_sheet(rel: str) -> Mutate:
    """The user keeps a drawing of their own at a sheet's path; then scene 2 is edited."""

    def apply(w: World) -> None:
        (w.root / rel).unlink()
        Image.new("RGB", (40, 30), (200, 10, 10)).save(w.root / rel)
        w.edit(S, "**Camera**: tracking right", "**Camera**: tracking left")

    return apply


def expect_sheet_kept(rel: str) -> Expect:
    def check(w: World, rec: Reconciler, doc: dict[str, Any]) -> None:
        expect_working(w, rec, doc)
        with Image.open(w.root / rel) as im:
            assert im.size == (40, 30)  # still the user's drawing

    return check


def scene_status_link(w: World) -> None:
    (w.root / "scene-02" / "status.json").unlink()
    (w.outside / "s.json").write_text("{}")
    (w.root / "scene-02" / "status.json").symlink_to(w.outside / "s.json")
    w.edit(S, "**Camera**: tracking right", "**Camera**: tracking left")


def expect_status_link_kept(w: World, rec: Reconciler, doc: dict[str, Any]) -> None:
    expect_working(w, rec, doc)
    assert os.path.islink(w.root / "scene-02" / "status.json")
    assert (w.outside / "s.json").read_text() == "{}"


def marker(rel: str, make: Callable[[World, Path], None]) -> Mutate:
    return lambda w: make(w, w.root / rel)


def sparse(size: int) -> Callable[[World, Path], None]:
    def make(w: World, path: Path) -> None:
        with path.open("wb") as handle:
            handle.truncate(size)

    return make


def mkdir(w: World, path: Path) -> None:
    path.mkdir()


def link_to(name: str) -> Callable[[World, Path], None]:
    return lambda w, path: path.symlink_to(w.outside / name)


def dangling_out(w: World, path: Path) -> None:
    path.symlink_to(w.outside / "made-by-keyframed.png")


def expect_secret_unread(w: World, rec: Reconciler, doc: dict[str, Any]) -> None:
    expect_error("scene-01/keyframe-start.retry:1", "leads outside the project")(w, rec, doc)
    for path in [*w.root.rglob("*.json"), *(w.root / ".keyframed").iterdir()]:
        if path.is_file():
            assert b"TOP-SECRET" not in path.read_bytes(), path
    assert rec.store.takes() == ({}, {})


# fmt: off
CASES = [
    # -- asset paths that leave the project
    Case("dotdot-between-folders",
         set_path(SAMURAI, "assets/characters/../../../outside/samurai.png"),
         expect_error(f"{A}:5", "uses '..'"), restore),
    Case("absolute-path-to-an-outside-image", lambda w: w.edit(
        A, f'"{SAMURAI}"', json.dumps(str(w.outside / "samurai.png"))),
         expect_error(f"{A}:5", "is absolute"), restore),
    Case("symlink-file-out", link_file_out,
         expect_error(f"{A}:3", "leads outside the project"), restore),
    Case("symlink-chain-out-through-an-inside-link", link_chain_out,
         expect_error(f"{A}:3", "leads outside the project"), undo_chain),
    Case("symlink-loop", link_loop,
         expect_error(f"{A}:3", "cannot be read"), restore),
    Case("symlinked-folder-swapped-in-while-running", link_folder_out("assets/characters"),
         expect_error(f"{A}:3", "leads outside the project"), unlink_folder("assets/characters")),
    Case("symlinked-pose-folder-swapped-in", link_folder_out("assets/poses"),
         expect_error(f"{A}:23", "leads outside the project"), unlink_folder("assets/poses")),
    Case("private-folder-as-asset-path", set_path(SAMURAI, ".keyframed/state.db"),
         expect_error(f"{A}:5", "belongs to the daemon"), restore),
    # -- JSON that is valid but hostile
    Case("assets-nested-100k-arrays", deep(A, "", "[", "]", ""),
         expect_error(f"{A}:1", "nested too deeply"), restore),
    Case("assets-nested-100k-objects-in-a-value",
         deep(A, '{"characters": {"samurai": {"description": ', '{"a": ', "}", "}}}"),
         expect_error(f"{A}:1", "nested too deeply"), restore),
    Case("style-nested-100k-in-palette", deep(Y, '{"palette": ', "[", "]", "}"),
         expect_error(f"{Y}:1", "nested too deeply"), restore),
    Case("duplicate-asset-group", duplicate_group,
         expect_error(f"{A}:3", "duplicate key 'characters' (first defined at line 2)"), restore),
    Case("duplicate-field-in-an-asset", lambda w: w.edit(
        A, '"identity_ref": "assets/characters/samurai.png"',
        '"description": "other",\n"identity_ref": "assets/characters/samurai.png"'),
         expect_error(f"{A}:5", "duplicate key 'description' (first defined at line 4)"), restore),
    Case("duplicate-key-in-style",
         lambda w: w.edit(Y, '"name":', '"negative_prompt": "x",\n"name":'),
         expect_error(f"{Y}:", "duplicate key 'negative_prompt'"), restore),
    Case("nul-escape-in-asset-name", lambda w: w.edit(A, '"ninja": {', '"nin\\u0000ja": {'),
         expect_error(f"{A}:7", "NUL character"), restore),
    Case("nul-escape-in-description",
         lambda w: w.edit(A, "Feudal Japanese", "Feudal\\u0000Japanese"),
         expect_error(f"{A}:4", "NUL character"), restore),
    Case("nul-escape-in-image-path", set_path(NINJA, "assets/characters/nin\x00ja.png"),
         expect_error(f"{A}:9", "NUL character"), restore),
    Case("lone-surrogate-in-description", lambda w: w.edit(A, "Feudal Japanese", "Feudal \\ud800"),
         expect_error(f"{A}:4", "unpaired surrogate"), restore),
    Case("lone-surrogate-in-style", lambda w: w.edit(Y, "Hand-painted", "\\udc00Hand-painted"),
         expect_error(f"{Y}:3", "unpaired surrogate"), restore),
    # -- workflow overrides
    Case("workflow-override-not-json", template(
        "qwen_composite.json", lambda w, p: p.write_text('{"1": {"class_type": }')),
         expect_error("workflows/qwen_composite.json:1", "not valid JSON"), drop_workflows),
    Case("workflow-override-symlink-out", template(
        "qwen_t2i.json", lambda w, p: p.symlink_to(w.outside / "sentinel.txt")),
         expect_error("workflows/qwen_t2i.json:1", "outside the project"), drop_workflows),
    Case("workflow-override-nested-100k", template(
        "qwen_anypose.json", lambda w, p: p.write_text("[" * 100_000 + "]" * 100_000)),
         expect_error("workflows/qwen_anypose.json:1", "nested too deeply"), drop_workflows),
    Case("workflow-override-is-a-folder", template("qwen_background.json", mkdir),
         expect_error("workflows/qwen_background.json:1", "is not a file"), drop_workflows),
    Case("workflows-folder-symlinked-out", workflows_folder_out,
         expect_error("workflows/qwen_t2i.json:1", "outside the project"), drop_workflows),
    # -- images
    Case("truncated-jpeg", truncated_jpeg,
         expect_error(f"{A}:3", "truncated or corrupt"), restore),
    Case("empty-png", write(SAMURAI, b""), expect_error(f"{A}:3", "is not an image"), restore),
    Case("html-error-page-saved-as-png", write(SAMURAI, b"<html><body>404</body></html>\n"),
         expect_error(f"{A}:3", "is not an image"), restore),
    Case("animated-gif", animated("GIF"), expect_error(f"{A}:3", "animated"), restore),
    Case("apng", animated("PNG"), expect_error(f"{A}:3", "animated"), restore),
    Case("animated-webp-named-png", animated("WEBP"), expect_error(f"{A}:3", "animated"), restore),
    Case("multi-page-tiff-named-png", animated("TIFF"), expect_error(f"{A}:3", "multi-page"),
         restore),
    Case("huge-dimensions", write(SAMURAI, bomb_png(100_000, 1_000)),
         expect_error(f"{A}:3", "decompression bomb: 100000x1000"), restore),
    Case("gif-named-png-works", image_as("GIF"), expect_working, input_error=False),
    Case("bmp-named-png-works", image_as("BMP", NINJA), expect_working, input_error=False),
    Case("tiff-named-png-works", image_as("TIFF", NINJA), expect_working, input_error=False),
    # -- names that must simply work
    Case("spaces-unicode-leading-dashes-work", rename_asset_files, expect_renamed_built,
         input_error=False),
    # -- outputs that are blocked or redirected
    Case("folder-where-a-keyframe-goes", at_output("scene-01/keyframe-start.png", mkdir),
         expect_failed("scene-01/keyframe-start.png", "is a folder"),
         clear("scene-01/keyframe-start.png"), input_error=False),
    Case("dangling-symlink-out-at-an-output", at_output("scene-02/keyframe-end.png", dangling_out),
         expect_failed("scene-02/keyframe-end.png", "is a symlink"),
         clear("scene-02/keyframe-end.png"), input_error=False),
    Case("symlink-to-an-outside-file-at-an-output", at_output(
        "scene-01/layers/character-start.png", link_to("victim.png")),
         expect_failed("scene-01/layers/character-start.png", "is a symlink"),
         clear("scene-01/layers/character-start.png"), input_error=False),
    Case("layers-is-a-file", layers_is_a_file,
         expect_failed("scene-01/layers/background.png", "is not a folder", ("scene-03",)),
         clear("scene-01/layers"), input_error=False),
    Case("scene-folder-swapped-for-a-symlink-out", link_folder_out("scene-03"),
         expect_error("scene-03:1", "leads outside the project"), unlink_folder("scene-03")),
    Case("layers-folder-swapped-for-a-symlink-out", link_folder_out("scene-01/layers"),
         expect_error("scene-01/layers:1", "leads outside the project"),
         unlink_folder("scene-01/layers")),
    Case("users-own-storyboard-png", user_sheet("storyboard.png"),
         expect_sheet_kept("storyboard.png"), input_error=False),
    Case("users-own-asset-sheet-png", user_sheet("asset-sheet.png"),
         expect_sheet_kept("asset-sheet.png"), input_error=False),
    Case("users-own-contact-sheet", user_sheet("scene-02/contact-sheet.png"),
         expect_sheet_kept("scene-02/contact-sheet.png"), input_error=False),
    Case("scene-status-symlinked-out", scene_status_link, expect_status_link_kept,
         input_error=False),
    # -- markers
    Case("retry-marker-is-a-folder", marker("scene-01/keyframe-start.retry", mkdir),
         expect_error("scene-01/keyframe-start.retry:1", "is a folder"),
         clear("scene-01/keyframe-start.retry")),
    Case("retry-marker-symlink-out", marker("scene-01/keyframe-start.retry", link_to("secret.txt")),
         expect_secret_unread, clear("scene-01/keyframe-start.retry")),
    Case("approval-marker-of-2-gb", marker("assets.approved", sparse(2 << 30)),
         expect_error("assets.approved:1", "2,147,483,648 bytes"), clear("assets.approved")),
    Case("approval-marker-is-a-folder", marker("scene-02/keyframes.approved", mkdir),
         expect_error("scene-02/keyframes.approved:1", "is a folder"),
         clear("scene-02/keyframes.approved")),
    Case("approval-marker-symlink-out",
         marker("scene-03/keyframes.approved", link_to("secret.txt")),
         expect_error("scene-03/keyframes.approved:1", "leads outside the project"),
         clear("scene-03/keyframes.approved")),
]
# fmt: on


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_project_files(case: Case, built: Path, tmp_path: Path) -> None:
    w = World.make(tmp_path, built)
    rec = reconciler(w.root)
    try:
        assert rec.reconcile_once().ok  # the daemon is running on a built project
        case.mutate(w)
        user, outside, outputs = w.user_files(rec), w.outside_state(), w.outputs(rec)
        rec.run_until_idle(timeout=60)
        doc = check_status_files(w.root) if case.id != "scene-status-symlinked-out" else \
            json.loads((w.root / "status.json").read_text(encoding="utf-8"))
        case.expect(w, rec, doc)
        assert w.outside_state() == outside
        assert user.items() <= w.user_files(rec).items()
        if case.input_error:
            assert w.outputs(rec) == outputs  # the last good plan stays, nothing is rebuilt
        if case.undo is not None:
            case.undo(w)
            user = w.user_files(rec)
            rec.run_until_idle(timeout=60)
            expect_working(w, rec, check_status_files(w.root))
            assert w.outside_state() == outside
            assert user.items() <= w.user_files(rec).items()
    finally:
        rec.close(wait=True)


# -- inputs too large are refused from their size, never parsed -------------------------------


def long_line(w: World) -> None:
    w.edit(S, "**Camera**: static, wide shot", "**Camera**: " + "wide " * 2_000_000)


def sparse_file(name: str, size: int) -> Mutate:
    def apply(w: World) -> None:
        w.save(name)
        with (w.root / name).open("r+b") as handle:
            handle.truncate(size)

    return apply


@pytest.mark.parametrize(("mutate", "where", "says"), [
    (sparse_file(S, 50 << 20), f"{S}:1", "52,428,800 bytes, more than the limit"),
    (long_line, f"{S}:28", "line 28 of scene-breakdown.md is 10,000,012 bytes long"),
    (sparse_file(Y, 50 << 20), f"{Y}:1", "more than the limit"),
], ids=["scenes-50-mb", "scenes-line-of-10-mb", "style-50-mb"])
def test_oversized_inputs_are_refused_unparsed(
    mutate: Mutate, where: str, says: str, built: Path, tmp_path: Path
) -> None:
    w = World.make(tmp_path, built)
    rec = reconciler(w.root)
    parsers = {name: mock.Mock(wraps=getattr(loader, name))
               for name in ("parse_scene_file", "parse_style")}
    try:
        assert rec.reconcile_once().ok
        mutate(w)
        outputs = w.outputs(rec)
        with mock.patch.multiple(loader, **parsers):
            assert not rec.reconcile_once().ok
        assert not any(p.called for p in parsers.values())
        expect_error(where, says)(w, rec, check_status_files(w.root))
        assert w.outputs(rec) == outputs
        w.restore()
        assert rec.reconcile_once().ok
        expect_working(w, rec, check_status_files(w.root))
    finally:
        rec.close(wait=True)


# -- a folder swapped for a symlink while a job runs ----------------------------------------------


class GatedPreview(PreviewBackend):
    """The preview renderer, held at the start of each job until the test opens the gate."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(BackendSettings(name="gated", kind="preview", max_in_flight=4),
                         settings, StyleFile())
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)

    def execute(self, job_key: str, art: Any, inputs: Any, on_progress: Any) -> bytes:
        self.started.release()
        self.gate.wait(30)
        return super().execute(job_key, art, inputs, on_progress)


def test_folder_swapped_for_a_symlink_while_its_outputs_are_being_made(tmp_path: Path) -> None:
    """The check at the start of the pass saw a real folder; by the time the job's bytes are
    written it is a symlink to a folder outside. The write must not follow it."""
    root = copy_sample(tmp_path / "project")
    outside = tmp_path / "outside"
    (outside / "backgrounds").mkdir(parents=True)
    settings = settings_for(root)
    backend = GatedPreview(settings)
    rec = Reconciler(root, settings, backends=[backend])
    rec.start()
    try:
        first = rec.reconcile_once()
        assert "assets/backgrounds/temple_courtyard.png" in first.dispatched
        for _ in first.dispatched:
            assert backend.started.acquire(timeout=30)
        (root / "assets" / "backgrounds").mkdir(exist_ok=True)
        (root / "assets" / "backgrounds").rename(tmp_path / "real-backgrounds")
        (root / "assets" / "backgrounds").symlink_to(outside / "backgrounds")
        backend.gate.set()
        for run in list(rec.inflight.values()):
            run.future.result(timeout=30)
        assert not rec.reconcile_once().ok
        assert list(outside.rglob("*")) == [outside / "backgrounds"]  # nothing written there
        jobs = rec.jobs.latest()
        for rel in ("assets/backgrounds/temple_courtyard.png",
                    "assets/backgrounds/mountain_sunset.png"):
            assert jobs[rel].state == "failed" and "is a symlink" in (jobs[rel].error or "")
        assert_error(check_status_files(root), f"{A}:13", "leads outside the project")
        # Undone: the blocked jobs are made again and the whole project builds.
        (root / "assets" / "backgrounds").unlink()
        (tmp_path / "real-backgrounds").rename(root / "assets" / "backgrounds")
        snap = rec.run_until_idle(timeout=120)
        assert snap is not None and snap.ok
        assert {i.state for i in snap.items} == {"fresh"}
        assert list(outside.rglob("*")) == [outside / "backgrounds"]
    finally:
        backend.gate.set()
        rec.close(wait=True)


# -- real processes -------------------------------------------------------------------------------


def cli_env(root: Path) -> dict[str, str]:
    return {**os.environ, "KEYFRAMED_CONFIG": str(root / "no-user-config.toml"),
            "KEYFRAMED_LOG_FORMAT": "json"}


def run_cli(*args: str, root: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=cli_env(root),
                          cwd=cwd, timeout=120, check=False)


def small_toml(extra: str = "") -> str:
    return ('approval = "auto"\n[image]\nwidth = 64\nheight = 64\n[video]\nwidth = 64\n'
            'height = 64\nmax_seconds = 0.5\n[[backends]]\nname = "preview"\nkind = "preview"\n'
            f"max_in_flight = 2\n{extra}")


def test_a_project_folder_named_with_spaces_unicode_and_a_leading_dash(
    built: Path, tmp_path: Path
) -> None:
    root = tmp_path / "-my film ☃ été"
    shutil.copytree(built, root, symlinks=True)
    shutil.rmtree(root / ".keyframed")  # a fresh start in that folder
    for out in root.glob("scene-[0-9]*"):
        shutil.rmtree(out)
    (root / "keyframed.toml").write_text(small_toml(), encoding="utf-8")
    done = run_cli("run", f"./{root.name}", root=root, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # The generated assets were kept as the user's files: 16 artifacts are left, all built.
    # Progress lines come first (stdout is no terminal), the summary last.
    assert done.stdout.endswith("keyframed: 16 artifacts: 15 done, 1 fresh\n"
                                "  film: film-preview.mp4, 15.0 s\n"), done.stdout
    assert check_status_files(root)["ok"] is True
    assert len(list(root.glob("scene-*/keyframe-*.png"))) == 6


@pytest.mark.parametrize(("toml", "says"), [
    ('approval = "sometimes"\n', "approval: Input should be 'manual' or 'auto'"),
    ("a = " + "[" * 100_000 + "\n", "nested too deeply"),
    ('[[backends]]\nname = "x"\nkind = "comfyui"\nurl = "http://127.0.0.1:9"\n'
     'token_env = "HOME"\n', "may only name KEYFRAMED_* variables"),
    ("[run]\nmax_attempts = -1\n", "run.max_attempts"),
], ids=["bad-value", "nested-100k", "token-from-any-variable", "negative-attempts"])
def test_a_bad_keyframed_toml_is_a_clean_error(
    toml: str, says: str, built: Path, tmp_path: Path
) -> None:
    w = World.make(tmp_path, built)
    (w.root / "keyframed.toml").write_text(toml, encoding="utf-8")
    before, outside = tree(w.root), w.outside_state()
    # ``watch`` loads the configuration the same way; one of the cases goes through it too.
    for command in ("run", "watch") if "nested" in says else ("run",):
        done = run_cli(command, str(w.root), root=w.root)
        assert done.returncode == 1, done.stdout + done.stderr
        assert says in done.stderr and "Traceback" not in done.stdout + done.stderr
    assert tree(w.root) == before and w.outside_state() == outside


def test_sighup_with_a_bad_keyframed_toml_keeps_the_last_good_config(
    built: Path, tmp_path: Path
) -> None:
    w = World.make(tmp_path, built)
    good = small_toml()
    (w.root / "keyframed.toml").write_text(good, encoding="utf-8")
    log = tmp_path / "watch.log"
    with log.open("wb") as handle:
        proc = subprocess.Popen([*CLI, "watch", str(w.root)], stdout=handle, stderr=handle,
                                env=cli_env(w.root))
    try:
        assert wait_for(lambda: f'"pid": {proc.pid}' in _read(w.root / "status.json"), 60)
        (w.root / "keyframed.toml").write_text(good + "[watch]\nquiet_ms = -5\n[oops\n",
                                               encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "keyframed.toml" in _read(w.root / "status.json"), 30)
        doc = check_status_files(w.root)
        error = next(e for e in doc["errors"] if e["file"] == "keyframed.toml")
        assert "configuration not reloaded" in error["message"]
        assert error["line"] == good.count("\n") + 3  # the '[oops' line
        # The daemon goes on with the last good configuration: an edit is still built.
        w.edit(S, "**Camera**: tracking right", "**Camera**: tracking left")
        assert wait_for(lambda: "tracking left" in _prompts(w.root, "scene-02"), 60)
        (w.root / "keyframed.toml").write_text(good, encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "keyframed.toml" not in _read(w.root / "status.json"), 30)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    text = log.read_text(encoding="utf-8")
    assert "reload_failed" in text and "Traceback" not in text


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _prompts(root: Path, scene: str) -> str:
    """The recipes keyframed recorded for a scene's artifacts (what it built from)."""
    import sqlite3

    db = sqlite3.connect(f"file:{root / '.keyframed' / 'state.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT recipe FROM jobs WHERE path LIKE ? AND state = 'done'",
                          (f"{scene}/%",)).fetchall()
    except sqlite3.Error:
        return ""
    finally:
        db.close()
    return " ".join(r[0] for r in rows)


def remove_tree(path: Path) -> None:
    """rmtree a folder a daemon may still be writing a file into."""
    for _ in range(50):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
    raise AssertionError(f"{path} could not be removed")


def test_project_folder_renamed_and_deleted_while_watched(built: Path, tmp_path: Path) -> None:
    w = World.make(tmp_path, built)
    (w.root / "keyframed.toml").write_text(small_toml(), encoding="utf-8")
    log = tmp_path / "watch.log"
    with log.open("wb") as handle:
        proc = subprocess.Popen([*CLI, "watch", str(w.root)], stdout=handle, stderr=handle,
                                env=cli_env(w.root))
    away = tmp_path / "renamed"
    try:
        assert wait_for(lambda: f'"pid": {proc.pid}' in _read(w.root / "status.json"), 60)
        # Renamed away, edited there, renamed back: the daemon picks up the edit.
        w.root.rename(away)
        assert wait_for(lambda: "project_folder_missing" in _read(log), 30)
        assert not w.root.exists()  # the daemon did not re-create the folder
        text = (away / S).read_text(encoding="utf-8")
        (away / S).write_text(text.replace("tracking right", "tracking left"), encoding="utf-8")
        away.rename(w.root)
        assert wait_for(lambda: "tracking left" in _prompts(w.root, "scene-02"), 60)
        # Deleted, then restored from a copy (another folder at the same path). The daemon may
        # be writing a status file meanwhile: copy what is settled, delete by renaming first.
        assert wait_for(lambda: idle(w.root), 60)
        shutil.copytree(w.root, away, symlinks=True,
                        ignore=shutil.ignore_patterns(".kf-tmp-*", "daemon.lock"))
        w.root.rename(tmp_path / "trash")
        remove_tree(tmp_path / "trash")
        assert wait_for(lambda: _read(log).count("project_folder_missing") >= 2, 30)
        assert not w.root.exists()
        text = (away / S).read_text(encoding="utf-8")
        (away / S).write_text(text.replace("tracking left", "tracking up"), encoding="utf-8")
        away.rename(w.root)
        assert wait_for(lambda: "tracking up" in _prompts(w.root, "scene-02"), 60)
        assert wait_for(lambda: '"ok": true' in _read(w.root / "status.json"), 30)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    text = log.read_text(encoding="utf-8")
    assert "project_folder_replaced" in text and "Traceback" not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside", "project", "watch.log"]


@pytest.mark.parametrize("what", ["state-folder", "lock-file", "database"])
def test_planted_links_in_the_state_folder_are_refused(
    what: str, built: Path, tmp_path: Path
) -> None:
    """A project copied from elsewhere with links in .keyframed/ must not make keyframed write
    (or truncate) files outside the project."""
    w = World.make(tmp_path, built)
    state = w.root / ".keyframed"
    if what == "state-folder":
        shutil.move(state, w.outside / "state")
        state.symlink_to(w.outside / "state", target_is_directory=True)
        says = "leads outside the project"
    elif what == "lock-file":
        (state / "daemon.lock").unlink(missing_ok=True)
        (state / "daemon.lock").symlink_to(w.outside / "secret.txt")
        says = "lock file"
    else:
        shutil.move(state / "state.db", w.outside / "state.db")
        (state / "state.db").symlink_to(w.outside / "state.db")
        says = "is a symlink"
    outside = w.outside_state()
    done = run_cli("run", str(w.root), root=w.root)
    assert done.returncode == 1, done.stdout + done.stderr
    assert says in done.stderr and "Traceback" not in done.stdout + done.stderr
    assert w.outside_state() == outside
