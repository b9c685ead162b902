"""Loading workflow templates: the packaged ones, or a project's own override.

A project's ``workflows/<name>`` replaces the packaged ``keyframed/workflows/<name>`` of the
same name. The template's fingerprint is the sha256 of its file's bytes, so editing a template
(or dropping an override in) makes every artifact that uses it stale. Files are re-read only
when their (size, mtime_ns, inode) changed, as for every other hashed file.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from keyframed.errors import TemplateError

PACKAGED_DIR = Path(str(resources.files("keyframed"))) / "workflows"
PROJECT_SUBDIR = "workflows"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.json$")

_StatKey = tuple[int, int, int]
_cache: dict[Path, tuple[_StatKey, dict[str, Any], str]] = {}


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
        if override.is_file():
            root = project_dir.resolve()
            if not override.resolve().is_relative_to(root):
                raise TemplateError(f"{override}: resolves outside the project; a template "
                                    "override must be a file inside the project")
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


def _load(path: Path) -> tuple[dict[str, Any], str]:
    try:
        st = path.stat()
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        cached = _cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        data = path.read_bytes()
    except OSError as exc:
        raise TemplateError(f"{path}: cannot read the template: {exc.strerror}") from exc
    template = _parse(path, data)
    digest = hashlib.sha256(data).hexdigest()
    _cache[path] = (key, template, digest)
    return template, digest


def _parse(path: Path, data: bytes) -> dict[str, Any]:
    try:
        template = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TemplateError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(template, dict):
        raise TemplateError(f"{path}: a template must be a JSON object of nodes "
                            "(ComfyUI 'Export (API)' format)")
    return template
