"""Load a project folder: read the input files safely, parse them, look at the images, check.

:func:`load_project` never raises for bad input: every problem becomes a
:class:`~keyframed.errors.Diagnostic` and ``project`` is None. What it guards against:

- files too large to be hand-written inputs (refused from their size, without reading them),
  and Markdown with a line longer than :data:`MAX_LINE_BYTES` (refused before parsing: no
  hand-written line is that long, and every field ends up in a prompt);
- binary files (NUL or other control bytes) and text that is not UTF-8 (reported at the line
  and column of the first bad byte); a UTF-8 byte-order mark is accepted;
- asset image paths that leave the project through a symlink (of the file or of any folder
  on the way); the parsers already refuse absolute paths and ``..``;
- images that are not images, are truncated, or would decode to more than ``max_pixels``
  pixels (checked from the header; pixels are never decoded here), and animated images or
  multi-page files (ComfyUI's LoadImage would turn every frame into a batch entry; a
  multi-picture JPEG is fine, ComfyUI takes its first picture). Pillow's warnings are
  turned into diagnostics, never let out.

An error inside one scene blocks that scene only: ``partial`` is the project of the scenes
that can still be planned, ``blocked`` says why each other scene cannot
(:mod:`keyframed.handlers.parse.isolate`). A missing asset image that nearly matches a file
that is there (another case, another image extension, one letter off or two swapped) gets a
"did you mean".

Reconcile passes call this often, so the facts about an image are cached by its
(real path, size, mtime_ns, inode), and each file's parse by its exact bytes.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image, UnidentifiedImageError

from keyframed.errors import Diagnostic
from keyframed.handlers.facts import FileFact
from keyframed.handlers.parse.assets import parse_assets, path_problem
from keyframed.handlers.parse.isolate import isolate
from keyframed.handlers.parse.scenes import SceneFile, parse_scene_file
from keyframed.handlers.parse.style import parse_style
from keyframed.handlers.parse.validate import validate
from keyframed.handlers.project import AssetLibrary, Project, Scene, StyleFile

ASSETS_FILE = "assets.json"
SCENES_FILE = "scene-breakdown.md"
STYLE_FILE = "style.json"
MAX_JSON_BYTES = 5 * 1024 * 1024
MAX_MARKDOWN_BYTES = 20 * 1024 * 1024
MAX_LINE_BYTES = 64 * 1024
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
# A one-letter slip is only taken for a near miss in names at least this long ("bg1"/"bg2"
# are two assets, "samurai"/"samuria" is a typo).
NEAR_MIN_STEM = 5
# C0 control bytes that never occur in hand-written text (tab, LF, VT, FF, CR and ESC may).
_BINARY = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")
_FILE_ORDER = {ASSETS_FILE: 0, SCENES_FILE: 1, STYLE_FILE: 2}
_CACHE_LIMIT = 4096
_ESCAPES = "is a symlink (or inside a symlinked folder) that leads outside the project"
T = TypeVar("T")


@dataclass
class LoadResult:
    """The project (None when anything is wrong), every diagnostic, and the image facts.

    ``partial`` is the project of the scenes that can be planned despite the diagnostics
    (None when the project is unreadable as a whole), ``blocked`` the diagnostics that stop
    each other scene; without diagnostics ``partial`` is ``project``.
    """

    project: Project | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    facts: dict[str, FileFact] = field(default_factory=dict)
    partial: Project | None = None
    blocked: dict[int, list[Diagnostic]] = field(default_factory=dict)


class _Caches:
    """Small memo tables shared by every load in the process (dict operations are atomic)."""

    def __init__(self) -> None:
        self.facts: dict[tuple[str, int, int, int, int], FileFact] = {}
        self.parses: dict[str, tuple[str, Any]] = {}
        self.lock = threading.Lock()
        # The last load's inputs and result: an unchanged project is not re-checked.
        self.last: tuple[tuple[object, ...], dict[str, FileFact], LoadResult] | None = None

    def parsed(self, name: str, text: str, parse: Callable[[str, str], T]) -> T:
        last = self.parses.get(name)
        if last is not None and last[0] == text:
            cached: T = last[1]
            return cached
        result = parse(text, name)
        self.parses[name] = (text, result)
        return result

    def remember(self, key: tuple[str, int, int, int, int], fact: FileFact) -> FileFact:
        with self.lock:
            if len(self.facts) >= _CACHE_LIMIT:
                self.facts.clear()
            self.facts[key] = fact
        return fact


_CACHES = _Caches()


def load_project(root: Path, max_pixels: int = 64_000_000,
                 generated: frozenset[str] = frozenset()) -> LoadResult:
    """Read, parse and check the project in ``root``.

    Args:
        root: The project folder.
        max_pixels: Images with more pixels than this are refused as decompression bombs.
        generated: Files keyframed wrote (its store's records): never taken for the file a
            near-miss path meant (an asset renamed in assets.json leaves its old image behind).

    Returns:
        A :class:`LoadResult`; ``project`` is None when there is any diagnostic.
    """
    if not root.is_dir():
        return LoadResult(None, [Diagnostic(str(root), 1, 1, "is not a folder")])
    found: list[Diagnostic] = []
    texts = (
        read_text(root, ASSETS_FILE, MAX_JSON_BYTES, found, required=True),
        read_text(root, SCENES_FILE, MAX_MARKDOWN_BYTES, found, required=True,
                  max_line=MAX_LINE_BYTES),
        read_text(root, STYLE_FILE, MAX_JSON_BYTES, found, required=False),
    )
    assets = _CACHES.parsed(ASSETS_FILE, texts[0], parse_assets) if texts[0] is not None else None
    scenes = _CACHES.parsed(SCENES_FILE, texts[1], parse_scene_file) \
        if texts[1] is not None else None
    style = _CACHES.parsed(STYLE_FILE, texts[2], parse_style) if texts[2] is not None else None
    library = assets[0] if assets else AssetLibrary()
    taken = frozenset(a.output_path for a in library.assets.values()) | generated
    inspector = _Inspector(root, max_pixels, taken)
    facts = {a.output_path: inspector.fact(a.output_path) for a in library.assets.values()}
    key = (root, assets, scenes, style, tuple(found))
    last = _CACHES.last
    if last is None or not _same(last[0], key) or last[1] != facts:
        _CACHES.last = last = (key, facts, _check(found, assets, scenes, style, facts))
    result = last[2]
    return LoadResult(result.project, list(result.diagnostics), facts, result.partial,
                      {n: list(d) for n, d in result.blocked.items()})


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """Same root, the very same parse results (cached by text), and equal read problems."""
    same_parses = all(x is y for x, y in zip(a[1:4], b[1:4], strict=True))
    return same_parses and a[0] == b[0] and a[4] == b[4]


def _check(
    found: list[Diagnostic],
    assets: tuple[AssetLibrary, list[Diagnostic]] | None,
    scenes: SceneFile | None,
    style_parsed: tuple[StyleFile, list[Diagnostic]] | None,
    facts: dict[str, FileFact],
) -> LoadResult:
    """Combine the parse results into a project, cross-check it, and isolate the errors."""
    library = assets[0] if assets else AssetLibrary()
    scene_list: list[Scene] = scenes.scenes if scenes else []
    outlines = scenes.outlines if scenes else []
    style = style_parsed[0] if style_parsed else StyleFile()
    found = found + [d for r in (assets, style_parsed) if r for d in r[-1]]
    found += scenes.diagnostics if scenes else []
    project = Project(title=scenes.title if scenes else "", assets=library,
                      scenes=tuple(scene_list), style=style)
    checked = not any(d.file in (ASSETS_FILE, STYLE_FILE) for d in found)
    if checked:
        # With a broken assets.json every name would look unknown: check names only when the
        # library is whole (the names of scenes that did not parse come from their outline).
        found += validate(project, facts, style.default_style, outlines)
    found.sort(key=lambda d: (_FILE_ORDER.get(d.file, 9), d.file, d.line, d.column))
    isolated = isolate(project, found, outlines, style.default_style, checked=checked)
    return LoadResult(None if found else project, found, facts, isolated.project,
                      isolated.blocked)


def read_text(
    root: Path, name: str, limit: int, found: list[Diagnostic], *, required: bool,
    max_line: int | None = None,
) -> str | None:
    """Read one input file as UTF-8 text, or add a diagnostic and return None.

    Args:
        root: The project folder.
        name: The file name inside it.
        limit: The largest size accepted, in bytes.
        found: Where diagnostics are added.
        required: Whether a missing file is an error.
        max_line: The longest line accepted, in bytes (None: any).
    """
    path = root / name
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            found.append(Diagnostic(name, 1, 1, f"{name} is not a regular file"))
            return None
        if info.st_size > limit:
            found.append(_too_large(name, info.st_size, limit))
            return None
        with path.open("rb") as handle:
            data = handle.read(limit + 1)  # the file may have grown since stat()
    except FileNotFoundError:
        if required:
            found.append(Diagnostic(name, 1, 1, f"{name} is missing", f"create {name}"))
        return None
    except OSError as exc:
        found.append(Diagnostic(name, 1, 1, f"cannot read {name}: {exc.strerror or exc}"))
        return None
    if len(data) > limit:
        found.append(_too_large(name, len(data), limit))
        return None
    if max_line is not None and (long := _long_line(data, max_line)) is not None:
        found.append(Diagnostic(name, long[0], 1, f"line {long[0]} of {name} is {long[1]:,} "
                                f"bytes long, more than the limit of {max_line:,}",
                                "is this the right file?"))
        return None
    return decode_text(name, data, found)


def _long_line(data: bytes, limit: int) -> tuple[int, int] | None:
    """(line number, length) of the first line longer than ``limit`` bytes, or None."""
    for number, line in enumerate(data.split(b"\n"), 1):
        if len(line) > limit:
            return number, len(line)
    return None


def _too_large(name: str, size: int, limit: int) -> Diagnostic:
    return Diagnostic(
        name,
        1,
        1,
        f"{name} is {size:,} bytes, more than the limit of {limit:,}",
        "is this the right file?",
    )


def decode_text(name: str, data: bytes, found: list[Diagnostic]) -> str | None:
    """Decode UTF-8 (a BOM is allowed); report binary bytes or bad UTF-8 at their position."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    match = _BINARY.search(data)
    binary = match.start() if match else None
    if binary is not None:
        line, column = _position(data, binary)
        found.append(
            Diagnostic(
                name,
                line,
                column,
                f"{name} looks like a binary file, not text (byte 0x{data[binary]:02x})",
                "save it as plain UTF-8 text",
            )
        )
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(data, exc.start)
        found.append(
            Diagnostic(
                name,
                line,
                column,
                f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02x})",
                "save it as UTF-8",
            )
        )
        return None


def _position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters of the valid text before it) of a byte offset."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column


def image_fact(root: Path, rel: str, max_pixels: int) -> FileFact:
    """What the disk has at one asset path: existence, containment, and image header facts.

    Args:
        root: The project folder.
        rel: The project-relative POSIX path (already checked by the parser).
        max_pixels: The decompression-bomb limit.
    """
    return _Inspector(root, max_pixels).fact(rel)


class _Inspector:
    """Looks at the asset paths of one project, resolving each folder only once."""

    def __init__(self, root: Path, max_pixels: int, taken: frozenset[str] = frozenset()) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.max_pixels = max_pixels
        self.folders: dict[str, str] = {}
        self.taken = taken  # paths that are some asset's own, or keyframed's: no near miss

    def inside(self, real: str) -> bool:
        return real == self.real_root or real.startswith(self.real_root.rstrip(os.sep) + os.sep)

    def fact(self, rel: str) -> FileFact:
        problem = path_problem(rel)
        if problem:
            return FileFact(path=rel, error=f"path {problem}")
        folder, name = posixpath.split(rel)
        if folder not in self.folders:
            self.folders[folder] = os.path.realpath(self.root / folder)
        path = os.path.join(self.folders[folder], name)
        try:
            real = os.path.realpath(path) if os.path.islink(path) else path
            if not self.inside(real):
                return FileFact(path=rel, exists=os.path.lexists(path), error=_ESCAPES)
            info = os.stat(real)
        except FileNotFoundError:
            return FileFact(path=rel, near=self.near_miss(rel))
        except OSError as exc:
            return FileFact(path=rel, exists=True, error=f"cannot be read: {exc.strerror or exc}")
        if stat.S_ISDIR(info.st_mode):
            return FileFact(path=rel, exists=True, error="is a folder, not an image")
        if not stat.S_ISREG(info.st_mode):
            return FileFact(path=rel, exists=True, error="is not a regular file")
        key = (real, info.st_size, info.st_mtime_ns, info.st_ino, self.max_pixels)
        cached = _CACHES.facts.get(key)
        if cached is not None and cached.path == rel:
            return cached
        return _CACHES.remember(key, _inspect(rel, Path(real), self.max_pixels))


    def near_miss(self, rel: str) -> str:
        """An existing image file that ``rel`` nearly names, or ``""``.

        Near: the same path in another case (folders included), the same name with another
        image extension, or (names of :data:`NEAR_MIN_STEM` letters or more) one letter
        added, dropped or changed, or two neighbouring letters swapped, in the file name.
        Files that are another asset's path, or that keyframed wrote, are not candidates.
        """
        parts = rel.split("/")
        folder = self._folder_any_case(parts[:-1])
        if folder is None:
            return ""
        try:
            names = sorted(os.listdir(self.root / folder if folder else self.root))
        except OSError:
            return ""
        stem, suffix = posixpath.splitext(parts[-1].lower())
        for name in names:
            candidate = posixpath.join(folder, name) if folder else name
            other, other_suffix = posixpath.splitext(name.lower())
            if candidate == rel or candidate in self.taken or other_suffix not in IMAGE_SUFFIXES:
                continue
            if other == stem or (suffix == other_suffix and len(stem) >= NEAR_MIN_STEM
                                 and _one_edit(stem, other)):
                return candidate
        return ""

    def _folder_any_case(self, parts: list[str]) -> str | None:
        """The folder that ``parts`` names, matching each part in any case; None if none."""
        here = ""
        for part in parts:
            try:
                names = os.listdir(self.root / here if here else self.root)
            except OSError:
                return None
            match = part if part in names else next(
                (n for n in sorted(names) if n.lower() == part.lower()), None)
            if match is None:
                return None
            here = posixpath.join(here, match) if here else match
        return here


def _one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by exactly one added, dropped or changed letter, or
    two neighbouring letters swapped (``samuria`` for ``samurai``: the commonest slip)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        swapped = len(diff) == 2 and diff[1] == diff[0] + 1 \
            and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
        return len(diff) == 1 or swapped
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def _inspect(rel: str, path: Path, max_pixels: int) -> FileFact:
    """Open the image lazily, check its size and structure without decoding pixels."""
    try:
        with warnings.catch_warnings():
            # Any other Pillow warning (odd metadata, truncation) becomes an error we report;
            # the bomb warning is replaced by our own limit below (past twice Pillow's limit it
            # raises DecompressionBombError, caught below).
            warnings.simplefilter("error")
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=IMAGE_FORMATS) as im:
                width, height = im.size
                fmt = im.format or ""
                if width * height > max_pixels:
                    return _bomb(rel, width, height, max_pixels)
                if fmt != "MPO" and getattr(im, "is_animated", False):
                    return FileFact(path=rel, exists=True, error=f"is an animated or multi-page "
                                    f"{fmt} image; give a still image (one frame)")
                im.verify()
    except Image.DecompressionBombError:
        return FileFact(
            path=rel,
            exists=True,
            error="is a decompression bomb: its header claims more pixels than Pillow will open",
        )
    except UnidentifiedImageError:
        return FileFact(path=rel, exists=True, error="is not an image (PNG, JPEG or WebP)")
    except (OSError, SyntaxError, ValueError, EOFError, Warning) as exc:
        return FileFact(path=rel, exists=True, error=f"is a truncated or corrupt image ({exc})")
    return FileFact(path=rel, exists=True, is_image=True, width=width, height=height, format=fmt)


def _bomb(rel: str, width: int, height: int, max_pixels: int) -> FileFact:
    return FileFact(
        path=rel,
        exists=True,
        width=width,
        height=height,
        error=f"is a decompression bomb: {width}x{height} = {width * height:,} pixels, "
        f"more than the limit of {max_pixels:,}",
    )
