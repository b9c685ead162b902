"""The plan memo changes how much a pass recomputes, never what it decides.

A daemon keeps one :class:`~keyframed.handlers.memo.PlanMemo` and one hash cache across
passes. After each kind of edit, a snapshot taken with them must equal one taken from scratch,
and the memo must actually be used: a one-scene edit re-derives that scene only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bench import gen
from keyframed.daemon.hashing import HashCache
from keyframed.daemon.outputs import commit_output
from keyframed.daemon.snapshot import Snapshot, take_snapshot
from keyframed.daemon.store import Store
from keyframed.handlers.memo import PlanMemo
from tests.planning import settings_for, stand_in_png

SCENES = 12


def _view(snap: Snapshot) -> list[tuple[object, ...]]:
    assert snap.ok, snap.diagnostics
    return [(i.path, i.artifact, i.state, i.reasons, i.status.fingerprint) for i in snap.items]


class Daemonish:
    """Takes snapshots the way the reconcile loop does, and checks each against a fresh one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = Store.for_project(root)
        self.memo = PlanMemo()
        self.hasher = HashCache(root, self.store)

    def check(self) -> Snapshot:
        settings = settings_for(self.root)
        kept = take_snapshot(self.root, settings, self.store, record=True, hasher=self.hasher,
                             memo=self.memo)
        fresh = take_snapshot(self.root, settings, self.store, record=True)
        assert _view(kept) == _view(fresh)
        return kept

    def build(self, limit: int | None = None) -> None:
        """Build ready artifacts, round by round (all of them, or the first ``limit``)."""
        for _ in range(30):
            ready = [i for i in self.check().items if i.state == "stale"][:limit]
            if not ready:
                return
            for item in ready:
                data = stand_in_png(item.status.fingerprint or item.path)
                commit_output(self.root, self.store, item, data, backend="test")
            if limit is not None:
                return
        raise AssertionError("the build did not settle")


@pytest.fixture()
def project(tmp_path: Path) -> tuple[Daemonish, gen.ProjectSpec]:
    root = tmp_path / "p"
    spec = gen.generate_project(root, SCENES, seed=5)
    daemon = Daemonish(root)
    daemon.build()
    return daemon, spec


def _edit_camera(spec: gen.ProjectSpec, root: Path) -> None:
    spec.scenes[4].camera = "slow dolly in"
    gen.write_breakdown(root, spec)


def _edit_description(spec: gen.ProjectSpec, root: Path) -> None:
    name = next(iter(spec.assets["characters"]))
    spec.assets["characters"][name].description += ", with a red scarf"
    gen.write_assets(root, spec)


def _insert_line(spec: gen.ProjectSpec, root: Path) -> None:
    path = root / "scene-breakdown.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("\n## Scene 3:", "\n\n## Scene 3:", 1), encoding="utf-8")


def _replace_image(spec: gen.ProjectSpec, root: Path) -> None:
    asset = next(a for a in spec.assets["characters"].values() if a.image)
    asset.variant += 1
    gen.write_image(root, asset)


def _delete_output(spec: gen.ProjectSpec, root: Path) -> None:
    (root / "scene-02" / "keyframe-end.png").unlink(missing_ok=True)
    (root / "scene-01" / "video.mp4").unlink(missing_ok=True)


def _user_override(spec: gen.ProjectSpec, root: Path) -> None:
    (root / "scene-03" / "keyframe-start.png").write_bytes(stand_in_png("the user's own"))


def _retry_marker(spec: gen.ProjectSpec, root: Path) -> None:
    (root / "scene-01" / "keyframe-start.retry").write_text("more rain\n", encoding="utf-8")


def _config(spec: gen.ProjectSpec, root: Path) -> None:
    spec.config_extra = "\n[image]\nsteps = 6\n"
    gen.write_config(root, spec)


def _drop_scene(spec: gen.ProjectSpec, root: Path) -> None:
    spec.scenes = spec.scenes[:-1]
    gen.write_breakdown(root, spec)


def _rechain(spec: gen.ProjectSpec, root: Path) -> None:
    """Give a chain link another background: a later scene, its text and lines unchanged,
    now chains from another layer (or from the asset image)."""
    chained = [s for s in spec.scenes if s.background and s.type != "object"]
    link = next(s for n, s in enumerate(chained)
                if any(t.background == s.background for t in chained[n + 1:]))
    link.background = next(b for b in spec.assets["backgrounds"] if b != link.background)
    gen.write_breakdown(root, spec)


EDITS: dict[str, Callable[[gen.ProjectSpec, Path], None]] = {
    "camera": _edit_camera,
    "asset description": _edit_description,
    "lines shifted": _insert_line,
    "reference image": _replace_image,
    "outputs deleted": _delete_output,
    "user override": _user_override,
    "retry marker": _retry_marker,
    "config": _config,
    "scene removed": _drop_scene,
    "chain link moved": _rechain,
}


@pytest.mark.parametrize("name", list(EDITS))
def test_memo_gives_the_same_plan_after_each_edit(
    project: tuple[Daemonish, gen.ProjectSpec], name: str
) -> None:
    daemon, spec = project
    EDITS[name](spec, daemon.root)
    _age(daemon.root)
    daemon.check()
    daemon.build(limit=2)  # part of the new work done: verdicts change between passes
    daemon.check()
    daemon.build()
    assert all(i.state in ("fresh", "user_override") for i in daemon.check().items)


def test_a_one_scene_edit_rederives_only_that_scene(
    project: tuple[Daemonish, gen.ProjectSpec],
) -> None:
    daemon, spec = project
    daemon.check()
    before = daemon.memo.hits
    daemon.check()
    unchanged_hits = daemon.memo.hits - before
    artifacts = len(daemon.check().items)
    assert unchanged_hits >= SCENES + artifacts  # every scene, verdict (and more) reused

    _edit_camera(spec, daemon.root)
    before = daemon.memo.hits
    snap = daemon.check()
    # the other scenes' artifacts and the verdicts on everything outside scene 5
    assert daemon.memo.hits - before >= (SCENES - 1) + (artifacts - 8)
    stale = {i.path for i in snap.items if i.state != "fresh"}
    assert stale and all(p.startswith("scene-05/") for p in stale), stale


def _age(root: Path) -> None:
    """Date every file a minute back, as if saved earlier (the hash cache keeps only those)."""
    for path in root.rglob("*"):
        if path.is_file() and ".keyframed" not in path.parts:
            st = path.stat()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 60_000_000_000))
