"""Loading workflow templates: the packaged ones, or a project's own override.

A project's ``workflows/<name>`` replaces the packaged ``keyframed/workflows/<name>`` of the
same name. The template's fingerprint is the sha256 of its file's bytes, so editing a template
(or dropping an override in) makes every artifact that uses it stale. Files are re-read only
when their (size, mtime_ns, inode) changed, as for every other hashed file.

A bad override (not JSON, nested too deeply, too large, a folder, a symlink leading out of the
project) raises :class:`TemplateFileError`, which names the file as ``workflows/<name>`` and the
line and column, so it can be shown like any other input error.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

from keyframed.errors import TemplateError

PACKAGED_DIR = Path(str(resources.files("keyframed"))) / "workflows"
PROJECT_SUBDIR = "workflows"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.json$")
MAX_TEMPLATE_BYTES = 5 * 1024 * 1024

_StatKey = tuple[int, int, int]
_cache: dict[Path, tuple[_StatKey, dict[str, Any], str]] = {}


class TemplateFileError(TemplateError):
    """A template file is unusable; ``file`` (``workflows/<name>`` for an override), ``line``
    and ``column`` locate the problem."""

    def __init__(self, file: str, message: str, line: int = 1, column: int = 1) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.problem = message
        super().__init__(f"{file}: {message}")


def template_path(name: str, project_dir: Path | None) -> Path:
    """The file a template name resolves to: the project's override, else the packaged one.

    Raises:
        TemplateError: The name is not a plain ``*.json`` file name, the override leaves the
            project (a symlink out), or neither file exists.
    """
    if not _NAME_RE.match(name):
        raise TemplateError(f"template name {name!r} must be a plain file name ending in .json")
    if project_dir is not None:
        override = project_dir / PROJECT_SUBDIR / name
        if os.path.lexists(override):
            shown = f"{PROJECT_SUBDIR}/{name}"
            if not override.resolve().is_relative_to(project_dir.resolve()):
                raise TemplateFileError(shown, "resolves outside the project; a template "
                                        "override must be a file inside the project")
            if not override.is_file():
                raise TemplateFileError(shown, "is not a file (a folder, or a broken symlink)")
            return override
    packaged = PACKAGED_DIR / name
    if not packaged.is_file():
        raise TemplateError(f"no workflow template {name!r} (looked in the project's "
                            f"{PROJECT_SUBDIR}/ and in the packaged templates)")
    return packaged


def load_template(name: str, project_dir: Path | None) -> tuple[dict[str, Any], str]:
    """Load a template and the sha256 of its file, the project's override winning.

    Args:
        name: The file name, e.g. ``"qwen_anypose.json"`` (``recipe.template``).
        project_dir: The project folder, or None for the packaged template only.

    Returns:
        The template (a fresh copy the caller may keep) and the hex sha256 of its bytes.

    Raises:
        TemplateError: Missing, unreadable, not JSON, or not a JSON object.
    """
    template, digest = _load(template_path(name, project_dir))
    return copy.deepcopy(template), digest


def template_hash(name: str, project_dir: Path | None) -> str:
    """The sha256 of the template file ``name`` resolves to (cheap when unchanged)."""
    return _load(template_path(name, project_dir))[1]


def _shown(path: Path) -> str:
    """How a template file is named in messages: ``workflows/<name>`` or the packaged path."""
    if path.parent.name == PROJECT_SUBDIR and path.parent != PACKAGED_DIR:
        return f"{PROJECT_SUBDIR}/{path.name}"
    return str(path)


def _load(path: Path) -> tuple[dict[str, Any], str]:
    try:
        st = path.stat()
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        cached = _cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        if st.st_size > MAX_TEMPLATE_BYTES:
            raise TemplateFileError(_shown(path), f"is {st.st_size:,} bytes, more than the "
                                    f"limit of {MAX_TEMPLATE_BYTES:,} for a template")
        data = path.read_bytes()
    except OSError as exc:
        raise TemplateFileError(_shown(path), f"cannot read the template: {exc.strerror}") \
            from exc
    template = _parse(path, data)
    digest = hashlib.sha256(data).hexdigest()
    _cache[path] = (key, template, digest)
    return template, digest


def _parse(path: Path, data: bytes) -> dict[str, Any]:
    shown = _shown(path)
    try:
        template = json.loads(data)
    except json.JSONDecodeError as exc:
        raise TemplateFileError(shown, f"not valid JSON: {exc.msg}", exc.lineno,
                                exc.colno) from exc
    except UnicodeDecodeError as exc:
        raise TemplateFileError(shown, f"not valid JSON: not UTF-8 ({exc.reason})") from exc
    except RecursionError as exc:
        raise TemplateFileError(shown, "not valid JSON: nested too deeply") from exc
    if not isinstance(template, dict):
        raise TemplateFileError(shown, "a template must be a JSON object of nodes "
                                "(ComfyUI 'Export (API)' format)")
    return template
