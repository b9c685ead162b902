"""Checks of the things around the inputs that a hostile or broken folder can get wrong.

Each pass, after the inputs parsed, before anything is read or written on their account:

- Markers (``assets.approved``, ``scene-XX/keyframes.approved``, ``scene-XX/<name>.retry``) are
  small files a person drops. One that is a folder, not a regular file, larger than
  :data:`MAX_MARKER_BYTES` (a note, not a payload; it is hashed on every pass), or a symlink
  leading outside the project (its note would be read into a prompt and sent to a server) is
  an error, located at the marker.
- Output folders (``scene-XX``, ``scene-XX/layers``): one that is a symlink leading outside the
  project is an error; keyframed writes only inside the project.

Like any input error, these stop the plan (the last good one stays) until fixed.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from keyframed.errors import Diagnostic
from keyframed.handlers.approvals import ASSETS_MARKER, keyframes_marker
from keyframed.handlers.project import Project
from keyframed.handlers.recipe import Artifact
from keyframed.inputs.contain import Containment

RETRY_SUFFIX = ".retry"
MAX_MARKER_BYTES = 64 * 1024


@dataclass
class MarkerScan:
    """Retry markers present (artifact path → marker) and every marker problem."""

    retries: dict[str, Path] = field(default_factory=dict)
    problems: list[Diagnostic] = field(default_factory=list)
    gates: set[str] = field(default_factory=set)  # approval markers present
    # Retry markers found in a scene folder that no artifact of the scene takes.
    unused: list[str] = field(default_factory=list)


def retry_candidates(artifacts: list[Artifact]) -> Iterator[tuple[str, str]]:
    """(artifact path a retry retakes, marker path) for every marker name that may be dropped."""
    for art in artifacts:
        if art.scene is None:
            continue
        names = {art.name}
        if art.kind == "video":
            names.add("video")
        # A copied layer is remade by a new take of what it copies.
        target = art.recipe.inputs[0].path if art.recipe.step == "copy" else art.path
        for name in sorted(names):
            yield target, f"scene-{art.scene:02d}/{name}{RETRY_SUFFIX}"


def marker_problem(root: Path, rel: str, contain: Containment) -> tuple[bool, str | None]:
    """(present, problem) of one marker; a problem makes it an error."""
    try:
        st = os.lstat(root / rel)
    except OSError:
        return False, None
    if stat.S_ISLNK(st.st_mode):
        if contain.escapes(rel):
            return True, f"{rel} is a symlink that leads outside the project; keyframed does not " \
                         "read it"
        try:
            st = os.stat(root / rel)
        except OSError:
            return False, None  # a dangling link inside the project: no marker
    if contain.folder_escapes(posixpath.dirname(rel)):
        return True, f"{rel} is inside a symlinked folder that leads outside the project"
    if stat.S_ISDIR(st.st_mode):
        return True, f"{rel} is a folder, not a marker file"
    if not stat.S_ISREG(st.st_mode):
        return True, f"{rel} is not a regular file"
    if st.st_size > MAX_MARKER_BYTES:
        return True, (f"{rel} is {st.st_size:,} bytes; a marker is empty or holds a short note "
                      f"(at most {MAX_MARKER_BYTES:,} bytes)")
    return True, None


class _Listings:
    """Which names each folder holds, read once per pass (one ``listdir`` per scene folder
    instead of one ``stat`` per possible marker)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._names: dict[str, frozenset[str]] = {}

    def names(self, folder: str) -> frozenset[str]:
        names = self._names.get(folder)
        if names is None:
            try:
                names = frozenset(os.listdir(self.root / folder))
            except OSError:
                names = frozenset()
            self._names[folder] = names
        return names

    def has(self, rel: str) -> bool:
        folder, name = posixpath.split(rel)
        return name in self.names(folder)


def scan_markers(root: Path, project: Project | None, artifacts: list[Artifact],
                 contain: Containment) -> MarkerScan:
    """Find the retry markers present and check every marker that is there.

    Args:
        root: The project folder.
        project: Its project, whose approval markers are checked too (None: retries only).
        artifacts: The desired artifacts (their retry markers).
        contain: The pass's containment checker.
    """
    scan = MarkerScan()
    listed = _Listings(root)
    gates = [ASSETS_MARKER, *(keyframes_marker(s.number) for s in project.scenes)] \
        if project is not None else []
    for rel in gates:
        if listed.has(rel):
            scan.gates.add(rel)
            _note(scan, rel, marker_problem(root, rel, contain)[1])
    folders = {f"scene-{a.scene:02d}" for a in artifacts if a.scene is not None}
    dropped = {f"{folder}/{name}" for folder in folders for name in listed.names(folder)
               if name.endswith(RETRY_SUFFIX)}
    taken: set[str] = set()
    for target, rel in retry_candidates(artifacts) if dropped else ():
        if rel not in dropped:
            continue
        taken.add(rel)
        present, problem = marker_problem(root, rel, contain)
        _note(scan, rel, problem)
        if present and problem is None:
            scan.retries[target] = root / rel
    scan.unused = sorted(dropped - taken)
    return scan


def _note(scan: MarkerScan, rel: str, problem: str | None) -> None:
    if problem is not None and all(d.file != rel for d in scan.problems):
        scan.problems.append(Diagnostic(rel, 1, 1, problem,
                                        "replace it with an empty file or a short note"))


def output_folder_problems(artifacts: list[Artifact], contain: Containment) -> list[Diagnostic]:
    """One error for each output folder that is a symlink leading outside the project."""
    found: dict[str, Diagnostic] = {}
    for folder in sorted({posixpath.dirname(art.path) for art in artifacts}):
        if not contain.folder_escapes(folder):
            continue
        parts = folder.split("/")
        top = next(p for n in range(1, len(parts) + 1)
                   if contain.folder_escapes(p := "/".join(parts[:n])))
        found.setdefault(top, Diagnostic(
            top, 1, 1, f"{top} is a symlink that leads outside the project; keyframed writes "
            "its outputs only inside the project folder", "replace it with a real folder"))
    return sorted(found.values(), key=lambda d: d.file)
