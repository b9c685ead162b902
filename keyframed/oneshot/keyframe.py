"""``keyframed generate-keyframe``: the plan's ``generate_keyframe.py`` for one keyframe.

It is the daemon's own reconcile loop limited to one target (the keyframe) and what it is made
from, with approval forced to ``auto`` because the person asked for this keyframe by name. So
it makes exactly what the daemon would make, records it in the same state store (a later
``keyframed run`` or ``watch`` reuses it), reuses whatever is already fresh, and resubmits
nothing that ComfyUI already did (prompt ids come from the fingerprints).

Decisions:

- The project root is the folder of ``--assets-file``; the files must be that folder's
  ``assets.json`` and ``scene-breakdown.md`` (keyframed reads a project by those names).
- The outputs always live in the project (``scene-XX/keyframe-*.png``, ``scene-XX/layers/``):
  that is where the state store tracks them. ``--output-dir`` may be that scene folder; a
  folder outside the project gets copies of the keyframe and this scene's layers (same
  names, ``layers/`` inside); any other folder inside the project is refused.
- An explicit ``--mode`` must be the one the scene's type calls for (character → composite,
  landscape → landscape, object → edit); another is an error naming both.
- A job that failed earlier with the same recipe is tried again: the person asked again.
- A job no configured backend can run (server down, model missing) ends the command at
  once with the reason, instead of waiting for the server to appear.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from keyframed.daemon.drive import drive, retry_failed
from keyframed.daemon.loop import Reconciler
from keyframed.daemon.snapshot import Snapshot, take_snapshot
from keyframed.daemon.store import Job
from keyframed.errors import ConfigError, ProjectError
from keyframed.fsio import atomic_write
from keyframed.handlers.graph import closure
from keyframed.handlers.modes import Mode, detect_mode
from keyframed.handlers.project import KeyframeName, Project, Scene
from keyframed.handlers.recipe import Artifact
from keyframed.handlers.steps.composite import keyframe_path
from keyframed.inputs.loader import ASSETS_FILE, SCENES_FILE, load_project
from keyframed.settings import Settings

FLOW = {
    "composite": "background → character → composite",
    "landscape": "background + style + description",
    "edit": "object + style (InStyle)",
}


@dataclass(frozen=True)
class Request:
    """A checked ``generate-keyframe`` request."""

    root: Path
    scene: Scene
    which: KeyframeName
    mode: Mode
    copy_to: Path | None

    @property
    def target(self) -> str:
        """The keyframe's project-relative path."""
        return keyframe_path(self.scene, self.which)


@dataclass
class Line:
    """One artifact of the report: what happened to it."""

    path: str
    verdict: str
    detail: str = ""


@dataclass
class Outcome:
    """What a run did, for the report and the exit code."""

    lines: list[Line] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    ok: bool = False
    layers: list[str] = field(default_factory=list)


# -- checking the request ----------------------------------------------------------------------


def check_files(root: Path, assets_file: Path, scene_breakdown: Path) -> None:
    """Both files must be the project's ``assets.json`` and ``scene-breakdown.md``.

    Raises:
        ConfigError: Either is named otherwise or lives in another folder.
    """
    if assets_file.name != ASSETS_FILE:
        raise ConfigError(f"--assets-file {assets_file}: keyframed reads a project's "
                          f"{ASSETS_FILE}; rename it or point at the project's {ASSETS_FILE}")
    wanted = root / SCENES_FILE
    if not scene_breakdown.is_file():
        raise ConfigError(f"--scene-breakdown {scene_breakdown}: no such file")
    if scene_breakdown.resolve() != wanted:
        raise ConfigError(f"--scene-breakdown {scene_breakdown}: it must be {wanted} (the "
                          f"{SCENES_FILE} in the same folder as --assets-file)")


def load(root: Path, settings: Settings) -> Project:
    """The project, or a ProjectError with every diagnostic."""
    loaded = load_project(root, settings.run.max_image_pixels)
    if loaded.project is None:
        raise ProjectError(loaded.diagnostics)
    return loaded.project


def find_scene(project: Project, number: int) -> Scene:
    """The scene, or a ConfigError listing the scene numbers there are."""
    scene = project.scene(number)
    if scene is None:
        known = ", ".join(str(s.number) for s in project.scenes) or "none"
        raise ConfigError(f"--scene {number}: {SCENES_FILE} has no scene {number} "
                          f"(scenes: {known})")
    return scene


def keyframe_mode(requested: str, scene: Scene) -> Mode:
    """The flow for the scene's type; an explicit mode must agree with it.

    Raises:
        ConfigError: ``requested`` contradicts the scene's type (the message names both).
    """
    has_pose = scene.start.pose != scene.end.pose
    expected = detect_mode(scene.type, bool(scene.characters), has_pose)
    if requested in ("auto", expected):
        return expected
    hint = (f"; for a single {requested} step use `keyframed generate --mode {requested}`"
            if requested in ("t2i", "edit", "anypose") else "")
    raise ConfigError(f"--mode {requested} contradicts scene {scene.number}'s type "
                      f"'{scene.type}': a {scene.type} scene is made with --mode {expected} "
                      f"(or auto){hint}")


def copy_folder(root: Path, scene: Scene, output_dir: Path) -> Path | None:
    """None when ``output_dir`` is the scene's folder; the folder to copy into otherwise.

    Raises:
        ConfigError: ``output_dir`` is some other folder inside the project.
    """
    out = output_dir.resolve()
    scene_dir = root / scene.folder
    if out == scene_dir:
        return None
    if out.is_relative_to(root):
        raise ConfigError(f"--output-dir {output_dir}: inside the project it must be scene "
                          f"{scene.number}'s folder {scene_dir} (where keyframed keeps its "
                          "outputs), or give a folder outside the project to get copies")
    return out


# -- running -----------------------------------------------------------------------------------


def build(req: Request, settings: Settings, timeout: float | None) -> Outcome:
    """Run the reconcile loop for the keyframe until it is built, fails or cannot be."""
    rec = Reconciler(req.root, settings, targets=frozenset({req.target}))
    try:
        rec.start()
        first = take_snapshot(req.root, settings, rec.store, record=False)
        if not first.ok:
            raise ProjectError(first.diagnostics)
        wanted = closure(first.artifacts, {req.target})
        before = retry_failed(rec, {a.path for a in wanted})
        problems = drive(rec, req.root, settings, timeout)
        final = rec.snapshot or first
        rec.status.state = "idle"
        rec.status.write(final, rec.last_good)
        return _outcome(req, wanted, first, final, before, rec.jobs.latest(), problems)
    finally:
        rec.close()


def _outcome(
    req: Request, wanted: list[Artifact], first: Snapshot, final: Snapshot,
    before: dict[str, int], latest: dict[str, Job], problems: list[str],
) -> Outcome:
    out = Outcome(problems=list(problems))
    for art in wanted:
        out.lines.append(_line(art, first, final, latest.get(art.path), before.get(art.path)))
    out.problems += [f"{ln.path}: {ln.detail}" for ln in out.lines if ln.verdict == "failed"]
    target = final.item(req.target)
    out.ok = not out.problems and target is not None and target.state == "fresh"
    if not out.ok and not out.problems and target is not None:
        out.problems.append(_not_built(target.path, target.state,
                                       [str(r) for r in target.reasons]))
    prefix = f"{req.scene.folder}/"
    out.layers = [a.path for a in wanted if a.kind == "layer" and a.path.startswith(prefix)]
    return out


def _line(art: Artifact, first: Snapshot, final: Snapshot, job: Job | None,
          old_id: int | None) -> Line:
    new_job = job is not None and job.id != old_id
    item, was = final.item(art.path), first.item(art.path)
    if new_job and job is not None and job.state == "failed":
        return Line(art.path, "failed", job.error or "failed")
    if item is not None and item.state == "fresh":
        if was is not None and was.state == "fresh":
            return Line(art.path, "reused", "already up to date")
        if art.recipe.step == "copy":
            return Line(art.path, "copied", f"from {art.recipe.inputs[0].path}")
        where = job.backend if new_job and job is not None and job.backend else ""
        return Line(art.path, "generated", f"on {where}" if where else "")
    if item is not None and item.state == "user_override":
        return Line(art.path, "kept", "your own file (keyframed never overwrites it)")
    reasons = "; ".join(str(r) for r in item.reasons) if item is not None else ""
    return Line(art.path, item.state if item is not None else "unknown", reasons)


def _not_built(path: str, state: str, reasons: list[str]) -> str:
    if state == "user_override":
        return (f"{path} was replaced by hand and keyframed never overwrites such a file; "
                "delete it (or drop a .retry marker) to generate it")
    return f"{path} was not built ({state}: {'; '.join(reasons) or 'no reason given'})"


def copy_out(req: Request, out: Outcome) -> list[Path]:
    """Copy the keyframe and this scene's layers into ``req.copy_to``; return the copies."""
    if req.copy_to is None:
        return []
    copies = []
    for rel in [req.target, *out.layers]:
        source = req.root / rel
        if not source.is_file():
            continue
        dest = req.copy_to / Path(rel).relative_to(req.scene.folder)
        atomic_write(dest, source.read_bytes())
        copies.append(dest)
    return copies
