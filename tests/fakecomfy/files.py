"""The server's input/output/temp folders and ComfyUI's path rules for them.

All checks mirror ComfyUI 0.8.0 (comfyui-api.md §4, §5, §9): uploads must stay inside the type
folder (400), /view refuses a leading ``/`` or ``..`` (400), strips the name to its basename,
refuses a subfolder that escapes (403) and answers 404 for a missing file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

ANNOTATIONS = {" [output]": "output", " [input]": "input", " [temp]": "temp"}


@dataclass(frozen=True)
class Dirs:
    """The three folders ComfyUI serves files from (absolute paths)."""

    input: Path
    output: Path
    temp: Path

    @classmethod
    def under(cls, base: Path, output: Path | None = None) -> Dirs:
        """``base/input``, ``base/output`` (or ``output``) and ``base/temp``, created."""
        dirs = cls(
            (base / "input").resolve(),
            (output or base / "output").resolve(),
            (base / "temp").resolve(),
        )
        for path in (dirs.input, dirs.output, dirs.temp):
            path.mkdir(parents=True, exist_ok=True)
        return dirs

    def by_type(self, kind: str) -> Path | None:
        """The folder of ``input``/``output``/``temp``; ``None`` for anything else."""
        return {"input": self.input, "output": self.output, "temp": self.temp}.get(kind)

    def wipe_input(self) -> None:
        """Delete every uploaded file (a restart onto a fresh machine)."""
        shutil.rmtree(self.input, ignore_errors=True)
        self.input.mkdir(parents=True, exist_ok=True)


def inside(root: Path, path: str | os.PathLike[str]) -> bool:
    """Whether the absolute form of ``path`` is ``root`` or below it (ComfyUI's commonpath test)."""
    return os.path.commonpath((str(root), os.path.abspath(path))) == str(root)


def split_annotation(name: str) -> tuple[str, str | None]:
    """``"x.png [output]"`` -> ``("x.png", "output")``; other names are returned unchanged."""
    for suffix, kind in ANNOTATIONS.items():
        if name.endswith(suffix):
            return name[: -len(suffix)], kind
    return name, None


def annotated_path(dirs: Dirs, name: str, default: str = "input") -> Path | None:
    """Where LoadImage finds ``name`` (``sub/x.png``, ``x.png [output]``); None if it escapes."""
    bare, kind = split_annotation(name)
    root = dirs.by_type(kind or default)
    if root is None:
        return None
    path = root / bare
    return path if inside(root, path) else None


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def upload_name(folder: Path, filename: str, data: bytes, overwrite: bool) -> tuple[str, bool]:
    """Pick the stored name of an upload; return it and whether the bytes must be written.

    Without overwrite, ``name.ext``, ``name (1).ext``... are tried; an existing file with the
    same bytes is reused and nothing is written (ComfyUI's dedupe).
    """
    if overwrite:
        return filename, True
    stem, ext = os.path.splitext(filename)
    candidate, index = filename, 1
    digest = hashlib.sha256(data).hexdigest()
    while (folder / candidate).exists():
        if sha256_file(folder / candidate) == digest:
            return candidate, False
        candidate = f"{stem} ({index}){ext}"
        index += 1
    return candidate, True


def view_path(dirs: Dirs, query: dict[str, str]) -> Path | int:
    """Resolve a ``GET /view`` query to a file, or the HTTP status ComfyUI answers instead."""
    if "filename" not in query:
        return 404
    filename, kind = split_annotation(query["filename"])
    if not filename:
        return 400
    if filename[0] == "/" or ".." in filename:
        return 400
    root = dirs.by_type(kind or query.get("type", "output"))
    if root is None:
        return 400
    folder = root
    if "subfolder" in query:
        folder = root / query["subfolder"]
        if not inside(root, folder):
            return 403
    path = folder / os.path.basename(filename)
    return path if path.is_file() else 404


def save_target(root: Path, prefix: str) -> tuple[Path, str, int, str]:
    """Where a save node writes: (folder, base name, next counter, reported subfolder).

    The counter is one more than the highest ``<base>_<NNNNN>_...`` already in the folder.

    Raises:
        ValueError: The prefix leads outside ``root`` (ComfyUI raises at execution).
    """
    normal = os.path.normpath(prefix)
    subfolder, base = os.path.dirname(normal), os.path.basename(normal)
    folder = root / subfolder
    if not inside(root, folder):
        raise ValueError(
            "**** ERROR: Saving image outside the output folder is not allowed."
            f"\n full_output_folder: {os.path.abspath(folder)}\n         output_dir: {root}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    highest = 0
    for entry in os.listdir(folder):
        head, sep, rest = entry.partition(base + "_")
        number = rest.split("_")[0]
        if not head and sep and number.isdigit() and rest[len(number) :].startswith("_"):
            highest = max(highest, int(number))
    return folder, base, highest + 1, subfolder
