"""One look at a project: load the inputs, derive the artifacts, hash, and plan.

This is the "re-derive the desired state from the files" half of each reconcile pass; the loop
acts on the difference. ``take_snapshot(..., record=False)`` (used by ``keyframed plan``)
changes nothing but the hash cache; with ``record=True`` (the daemon) newly seen approval and
retry markers are recorded in the store first.

An input error inside one scene blocks that scene only: the snapshot then plans the other
scenes (``project`` is the part that can be planned, ``blocked`` says why each other scene
waits) and ``ok`` is False. ``project`` is None only when nothing can be planned.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from keyframed.daemon.hashing import HashCache
from keyframed.daemon.held import Held, held_outputs, scene_folders
from keyframed.daemon.store import Store
from keyframed.errors import Diagnostic, TemplateError
from keyframed.fsio import sha256_file
from keyframed.handlers.approvals import ASSETS_MARKER, Approvals, keyframes_marker
from keyframed.handlers.context import PlanContext
from keyframed.handlers.graph import desired_artifacts
from keyframed.handlers.memo import PlanMemo
from keyframed.handlers.plan import make_plan
from keyframed.handlers.project import Project
from keyframed.handlers.recipe import Artifact, candidates
from keyframed.handlers.steps.composite import keyframe_path
from keyframed.handlers.verdict import PlanItem
from keyframed.inputs.contain import Containment
from keyframed.inputs.guards import (
    RETRY_SUFFIX,
    output_folder_problems,
    scan_markers,
)
from keyframed.inputs.loader import load_project
from keyframed.settings import Settings
from keyframed.workflows import templates
from keyframed.workflows.templates import TemplateFileError

__all__ = ["RETRY_SUFFIX", "Snapshot", "approvals_for", "consume_retries", "marker_identity",
           "retry_markers", "take_snapshot"]


@dataclass
class Snapshot:
    """The desired state of a project and how it compares with what was built."""

    root: Path
    settings: Settings
    project: Project | None
    diagnostics: list[Diagnostic]
    artifacts: list[Artifact] = field(default_factory=list)
    items: list[PlanItem] = field(default_factory=list)
    hashes: dict[str, str | None] = field(default_factory=dict)
    approvals: Approvals = field(default_factory=Approvals)
    taken_at: float = 0.0
    # Scene number -> the input errors that block it (its artifacts show ``input_error``).
    blocked: dict[int, list[Diagnostic]] = field(default_factory=dict)
    # Every scene number of scene-breakdown.md, blocked ones included (None: unreadable).
    scene_numbers: frozenset[int] | None = None
    # Retry markers in a scene folder that no artifact of that scene takes (a misspelt or
    # stale name): project-relative paths, for the root status's list of what needs a look.
    unused_markers: list[str] = field(default_factory=list)
    # Files keyframed built for scenes no longer in the breakdown, still on disk (kept).
    orphaned: list[str] = field(default_factory=list)
    # The outputs input errors hold back (blocked scenes; everything when nothing can be
    # planned): shown as ``input_error``, their files untouched (keyframed.daemon.held).
    held: list[Held] = field(default_factory=list)
    # Stale artifacts whose exact recipe is in the output cache: restored, not built.
    restorable: frozenset[str] = frozenset()
    # The .pick files read (rewritten in place they change no folder; the quiet check
    # watches them).
    picks: frozenset[str] = frozenset()
    picked: dict[str, int] = field(default_factory=dict)  # artifact path -> its picked take

    @property
    def ok(self) -> bool:
        """True when the inputs parsed and validated."""
        return self.project is not None and not self.diagnostics

    @property
    def planned(self) -> bool:
        """True when at least part of the project could be planned (see ``blocked``)."""
        return self.project is not None

    def held_by(self, held: Held) -> list[Diagnostic]:
        """The input errors that hold one output back."""
        if self.planned and held.scene is not None and held.scene in self.blocked:
            return self.blocked[held.scene]
        return self.diagnostics

    def item(self, path: str) -> PlanItem | None:
        """The plan item of one artifact."""
        return next((i for i in self.items if i.path == path), None)


def marker_identity(path: Path) -> str | None:
    """Identify one dropping of a marker file: its content hash and mtime."""
    try:
        st = os.stat(path)
        return f"{sha256_file(path)}:{st.st_mtime_ns}"
    except OSError:
        return None


PICK_SUFFIX = ".pick"


def pick_markers(artifacts: list[Artifact]) -> dict[str, str]:
    """Map ``scene-XX/<name>.pick`` → the artifact path it picks a take of."""
    found: dict[str, str] = {}
    for art in artifacts:
        if art.scene is None or art.recipe.step == "copy":
            continue
        for name in {art.name, "video"} if art.kind == "video" else {art.name}:
            found[f"scene-{art.scene:02d}/{name}{PICK_SUFFIX}"] = art.path
    return found


def read_picks(root: Path, artifacts: list[Artifact], newest: dict[str, int],
               contain: Containment) -> tuple[dict[str, int], list[Diagnostic]]:
    """The takes chosen by ``.pick`` files (artifact path → take), and the files that are wrong.

    A pick names a take that was made: a whole number from 0 to the newest take. Removing the
    file goes back to the newest take.
    """
    picks: dict[str, int] = {}
    problems: list[Diagnostic] = []
    folders = {f"scene-{a.scene:02d}" for a in artifacts if a.scene is not None}
    dropped = set()
    for folder in folders:
        try:
            dropped |= {f"{folder}/{n}" for n in os.listdir(root / folder)
                        if n.endswith(PICK_SUFFIX)}
        except OSError:
            continue
    if not dropped:
        return picks, problems
    for rel, path in pick_markers(artifacts).items():
        if rel not in dropped or contain.escapes(rel):
            continue
        try:
            text = (root / rel).read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            continue
        top = newest.get(path, 0)
        if not text.isdigit() or int(text) > top:
            problems.append(Diagnostic(
                rel, 1, 1, f"{rel} holds {text[:40]!r}; a pick holds the number of a take that "
                f"was made (0 to {top})", f"keyframed pick DIR scene N TARGET TAKE, or remove "
                f"{rel} for the newest take"))
            continue
        picks[path] = int(text)
    return picks, problems


def _pick_files(picks: dict[str, int], artifacts: list[Artifact]) -> frozenset[str]:
    """The ``.pick`` files behind ``picks`` (for the quiet check)."""
    return frozenset(rel for rel, path in pick_markers(artifacts).items() if path in picks)


def _context(project: Project, settings: Settings, root: Path, store: Store,
             picks: dict[str, int] | None = None) -> PlanContext:
    takes, notes = store.takes()
    takes = {**takes, **(picks or {})}
    paths = frozenset(a.output_path for a in project.assets.assets.values())
    existing = frozenset(p for p in paths if (root / p).is_file())
    # Only asset images: the context is the same after a layer or keyframe is built, so the
    # next pass can keep every scene's artifacts (see handlers/memo.py).
    owned = store.owned_paths() & paths
    return PlanContext(settings=settings, existing=existing, owned=owned, takes=takes,
                       notes=notes)


def _template_hashes(artifacts: list[Artifact], root: Path) -> dict[str, str]:
    names = {a.recipe.template for a in artifacts if a.recipe.template}
    return {name: templates.template_hash(name, root) for name in names}


def _approval(
    key: str, marker: Path, paths: list[str], hashes: dict[str, str | None],
    store: Store, record: bool, listed: bool = True,
) -> dict[str, str] | None:
    identity = marker_identity(marker) if listed else None
    if identity is None:
        if record and store.approval(key) is not None:
            store.drop_approval(key)
        return None
    known = store.approval(key)
    if known is not None and known[0] == identity:
        return known[1]
    snapshot = {p: h for p in paths if (h := hashes.get(p)) is not None}
    if record:
        store.set_approval(key, identity, snapshot)
    return snapshot


def approvals_for(
    root: Path, project: Project, settings: Settings, hashes: dict[str, str | None],
    store: Store, record: bool, present: Collection[str] | None = None,
) -> Approvals:
    """Read the approval markers and bind each to the hashes it approved.

    ``present``: the markers a folder listing of this pass found (the others are not
    looked for one by one).
    """
    assets = sorted({a.output_path for a in project.assets.assets.values()})
    scenes: dict[int, dict[str, str]] = {}
    for scene in project.scenes:
        frames = [keyframe_path(scene, "start"), keyframe_path(scene, "end")]
        rel = keyframes_marker(scene.number)
        listed = present is None or rel in present
        snap = _approval(f"scene:{scene.number}", root / rel, frames, hashes, store, record,
                         listed)
        if snap is not None:
            scenes[scene.number] = snap
    return Approvals(
        mode=settings.approval,
        assets=_approval("assets", root / ASSETS_MARKER, assets, hashes, store, record),
        scenes=scenes,
    )


def retry_markers(root: Path, artifacts: list[Artifact]) -> dict[str, Path]:
    """Map artifact path → its ``scene-XX/<name>.retry`` marker, for markers present."""
    return scan_markers(root, None, artifacts, Containment(root)).retries


TAKES_LINE = "takes:"


def split_note(text: str, default: int) -> tuple[int, str]:
    """(how many takes, the note) of a retry marker: a first line ``takes: N`` (what
    ``keyframed retry --takes N`` writes) asks for N candidates; else the [takes] setting."""
    first, _, rest = text.partition("\n")
    if first.strip().lower().startswith(TAKES_LINE):
        number = first.strip()[len(TAKES_LINE):].strip()
        if number.isdigit() and 1 <= int(number) <= 16:
            return int(number), rest.strip()
    return default, text.strip()


def consume_retries(root: Path, artifacts: list[Artifact], store: Store,
                    found: dict[str, Path] | None = None,
                    settings: Settings | None = None) -> int:
    """Turn each new retry marker into exactly one more take.

    A marker is identified by its content and mtime, so a restart that sees it again does not
    add a second take. It is removed once the new take has been built and recorded, so until
    then a person can see that the retry is pending.
    """
    consumed = 0
    records = store.records()
    markers = retry_markers(root, artifacts) if found is None else found
    for path, marker in markers.items():
        identity = marker_identity(marker)
        if identity is None:
            continue
        try:
            note = marker.read_text(encoding="utf-8", errors="replace").strip()[:2000]
        except OSError:
            continue
        rel = marker.relative_to(root).as_posix()
        kinds = {a.path: a.kind for a in artifacts}
        per_kind = (settings or Settings()).takes
        count, note = split_note(note, getattr(per_kind, kinds.get(path, "keyframe"), 1))
        if store.consume_retry(rel, identity, path, note, count):
            consumed += 1
        take = store.takes()[0].get(path, 0)
        built = records.get(path)
        if built is not None and built.take >= take:
            marker.unlink(missing_ok=True)
    return consumed


_SCENE_PATH = re.compile(r"^scene-(\d+)/")


def orphans(root: Path, store: Store, scenes: Collection[int]) -> list[str]:
    """Files keyframed built in the folders of scenes no longer in the breakdown, still there.

    They are kept (a scene removed by mistake comes back from the cache, and the director may
    still want them); the root status lists them once so that they can be cleaned up by hand.
    """
    out = []
    for path in store.records():
        match = _SCENE_PATH.match(path)
        if match and int(match.group(1)) not in scenes and (root / path).is_file():
            out.append(path)
    return sorted(out)


def _unplannable(snap: Snapshot, store: Store) -> Snapshot:
    """A snapshot of a project that cannot be planned at all: every output keyframed knows
    of (assets included) is held as ``input_error``, none is shown as done."""
    snap.project = None
    snap.held = held_outputs(snap.root, store, scene_folders(snap.root, store), assets=True)
    return snap


def _go_on() -> None:
    """The default ``step`` of :func:`take_snapshot`: never interrupts."""


def take_snapshot(
    root: Path, settings: Settings, store: Store, *, record: bool = False,
    hasher: HashCache | None = None, memo: PlanMemo | None = None,
    step: Callable[[], None] | None = None,
) -> Snapshot:
    """Load, derive, hash and plan. Bad inputs give a snapshot with diagnostics and no plan.

    The daemon passes the ``hasher`` and ``memo`` of its last pass, so work whose inputs are
    unchanged is not done again; the snapshot is the same without them. ``step`` is called
    between stages that record nothing (each takes about a second at 5,000 scenes); it may
    raise to abandon the snapshot (a stop request).
    """
    step = step or _go_on
    loaded = load_project(root, settings.run.max_image_pixels, store.owned_paths())
    step()
    snap = Snapshot(root=root, settings=settings, project=loaded.partial,
                    diagnostics=list(loaded.diagnostics), taken_at=time.time(),
                    blocked=loaded.blocked)
    if loaded.partial is None:
        return _unplannable(snap, store)
    project = loaded.partial
    snap.scene_numbers = frozenset({s.number for s in project.scenes} | set(loaded.blocked))
    snap.orphaned = orphans(root, store, snap.scene_numbers)
    snap.held = held_outputs(root, store, loaded.blocked)
    artifacts = desired_artifacts(project, _context(project, settings, root, store), memo)
    step()
    contain = Containment(root)
    scan = scan_markers(root, project, artifacts, contain)
    blocked_folders = {f"scene-{n:02d}/" for n in loaded.blocked}
    snap.unused_markers = [m for m in scan.unused
                           if not any(m.startswith(f) for f in blocked_folders)]
    problems = scan.problems + output_folder_problems(artifacts, contain)
    if problems:
        snap.diagnostics.extend(problems)
        return _unplannable(snap, store)
    if record and consume_retries(root, artifacts, store, scan.retries, settings):
        artifacts = desired_artifacts(project, _context(project, settings, root, store), memo)
    picks, pick_problems = read_picks(root, artifacts, store.takes()[0], contain)
    if pick_problems:
        snap.diagnostics.extend(pick_problems)
        return _unplannable(snap, store)
    if picks:
        # A picked take is the live one: its recipe (seed) is that take's, so the build it
        # made before is restored from the output cache, and what uses it follows.
        artifacts = desired_artifacts(
            project, _context(project, settings, root, store, picks), memo)
    batches = store.batches()
    if batches:
        artifacts = artifacts + candidates(artifacts, batches, picks)
    try:
        template_hashes = _template_hashes(artifacts, root)
    except TemplateFileError as exc:
        snap.diagnostics.append(Diagnostic(exc.file, exc.line, exc.column, exc.problem))
        return _unplannable(snap, store)
    except TemplateError as exc:
        snap.diagnostics.append(Diagnostic(file="workflows", line=1, column=1, message=str(exc)))
        return _unplannable(snap, store)
    hasher = hasher or HashCache(root, store)
    paths = [p for a in artifacts for p in (a.path, *(i.path for i in a.recipe.inputs))]
    paths += [a.output_path for a in project.assets.assets.values()]
    hashes = hasher.hash_many(paths, step)
    step()
    approvals = approvals_for(root, project, settings, hashes, store, record, scan.gates)
    asset_paths = frozenset(a.output_path for a in project.assets.assets.values())
    snap.artifacts = artifacts
    snap.hashes = hashes
    snap.approvals = approvals
    snap.picks = _pick_files(picks, artifacts)
    snap.picked = picks
    snap.items = make_plan(artifacts, store.records(), hashes, template_hashes, approvals,
                           asset_paths, memo)
    cached = store.cache_entries()
    snap.restorable = frozenset(
        i.path for i in snap.items
        if i.state == "stale" and i.artifact.recipe.step != "copy"
        and (i.status.fingerprint or "") in cached)
    return snap
