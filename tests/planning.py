"""Helpers for planning tests: copy the sample project, build it with stand-in bytes."""

from __future__ import annotations

import fnmatch
import hashlib
import io
import shutil
from pathlib import Path

from PIL import Image

from keyframed.daemon.loop import Reconciler
from keyframed.daemon.outputs import commit_output
from keyframed.daemon.snapshot import Snapshot, take_snapshot
from keyframed.daemon.status import artifact_state
from keyframed.daemon.store import Store
from keyframed.inputs.config import load_settings
from keyframed.render.sheets import StateOf
from keyframed.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "samurai"


# What `keyframed run examples/samurai` (README command 1) writes into the example (the same
# list is in .gitignore). A copy of the sample is its inputs only, whether or not the example
# was run in this clone: generated asset images copied along would be taken for the user's.
GENERATED = frozenset({".keyframed", "status.json", "storyboard.png", "asset-sheet.png",
                       "assets.approved",
                       "film-preview.mp4", "film.mp4",
                       "assets/backgrounds", "assets/styles", "assets/objects"})


def copy_sample(dest: Path, source: Path = SAMPLE) -> Path:
    """A private copy of the sample's inputs (examples/samurai, or a project made from it),
    without any state or generated output."""

    def generated(folder: str, names: list[str]) -> set[str]:
        rel = Path(folder).relative_to(source).as_posix()
        top = rel == "."
        return {n for n in names if (n if top else f"{rel}/{n}") in GENERATED
                or (top and fnmatch.fnmatch(n, "scene-[0-9]*"))}

    shutil.copytree(source, dest, ignore=generated)
    return dest


def settings_for(root: Path) -> Settings:
    """The project's settings, ignoring the user's own config and environment."""
    return load_settings(root, env={})


def stand_in_png(seed: str) -> bytes:
    """A tiny real PNG whose colour depends on ``seed`` (a fingerprint)."""
    digest = hashlib.sha256(seed.encode()).digest()
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), tuple(digest[:3])).save(buf, format="PNG")
    return buf.getvalue()


def snapshot(root: Path, store: Store, *, record: bool = True) -> Snapshot:
    """Take a snapshot with test settings."""
    return take_snapshot(root, settings_for(root), store, record=record)


def build_all(root: Path, store: Store, max_rounds: int = 20) -> Snapshot:
    """Build every ready artifact, round after round, until nothing is ready."""
    for _ in range(max_rounds):
        snap = snapshot(root, store)
        assert snap.ok, snap.diagnostics
        ready = [i for i in snap.items if i.state == "stale"]
        if not ready:
            return snap
        for item in ready:
            data = stand_in_png(item.status.fingerprint or item.path)
            commit_output(root, store, item, data, backend="test")
    raise AssertionError("the build did not settle")


def stale_map(snap: Snapshot) -> dict[str, list[str]]:
    """path → sorted reasons of every artifact that is not fresh."""
    return {
        i.path: sorted(str(r) for r in i.reasons)
        for i in snap.items
        if i.state not in ("fresh",)
    }


def after_one_pass(root: Path) -> tuple[Snapshot, StateOf]:
    """The snapshot and the artifact states the daemon sees after one more pass (config from
    the project only, no environment)."""
    rec = Reconciler(root, load_settings(root, env={}))
    rec.start()
    try:
        rec.reconcile_once()
        snap = rec.snapshot
        assert snap is not None
        latest = rec.jobs.latest()
        return snap, lambda i: artifact_state(i, latest.get(i.path))
    finally:
        rec.close()
