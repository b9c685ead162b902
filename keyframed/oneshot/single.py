"""``keyframed generate``: one step, one image, written to ``--output`` (the plan's
``qwen_image.py``).

The recipe comes from :mod:`keyframed.handlers.single`; it runs on the first configured backend
that can make it (or the one named with ``--backend``), through the same ``execute()`` the
daemon uses: reference images are uploaded once per server (recorded in the project's state
store), the prompt id comes from the recipe's fingerprint (so running the same command twice
fetches the finished image instead of generating it again, while ComfyUI still remembers it),
and the image is checked before it is written atomically.

Asset images must already exist: this command never makes them (``--mode t2i`` with the asset's
name does, or ``keyframed run``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keyframed.backends.base import Backend, NoProgress
from keyframed.backends.registry import make_backends
from keyframed.backends.requirements import why_not
from keyframed.daemon.store import Store
from keyframed.errors import ComfyError, Diagnostic, ProjectError
from keyframed.fsio import atomic_write, sha256_file
from keyframed.handlers.fingerprint import components, fingerprint
from keyframed.handlers.parse.assets import parse_assets
from keyframed.handlers.parse.style import parse_style
from keyframed.handlers.project import AssetLibrary, Project, StyleFile
from keyframed.handlers.recipe import Artifact, InputRef
from keyframed.handlers.single import StepError
from keyframed.inputs.loader import MAX_JSON_BYTES, STYLE_FILE, image_fact, read_text
from keyframed.settings import Settings
from keyframed.workflows import templates

_OPTION = {"identity": "--character", "character": "--character", "background": "--background",
           "pose": "--pose", "style": "--style"}


@dataclass(frozen=True)
class Result:
    """What was made, and where."""

    output: Path
    backend: str
    artifact: Artifact


def load_assets(root: Path, name: str) -> Project:
    """A project of the assets file (and style.json when there is one); no scenes needed.

    Raises:
        ProjectError: Either file cannot be read or has errors.
    """
    found: list[Diagnostic] = []
    text = read_text(root, name, MAX_JSON_BYTES, found, required=True)
    library, style = AssetLibrary(), StyleFile()
    if text is not None:
        library, problems = parse_assets(text, name)
        found += problems
    style_text = read_text(root, STYLE_FILE, MAX_JSON_BYTES, found, required=False)
    if style_text is not None:
        style, problems = parse_style(style_text, STYLE_FILE)
        found += problems
    if found:
        raise ProjectError(found)
    return Project(assets=library, style=style)


def input_files(root: Path, art: Artifact, project: Project, settings: Settings,
                assets_file: Path) -> dict[str, Path]:
    """Each input path mapped to its file, checked to be a usable image inside the project.

    Raises:
        StepError: An input is missing (with the command that makes it) or unusable.
    """
    files = {}
    for ref in art.recipe.inputs:
        fact = image_fact(root, ref.path, settings.run.max_image_pixels)
        if not fact.usable:
            raise StepError(_unusable(ref, fact.exists, fact.error, project, assets_file))
        files[ref.path] = root / ref.path
    return files


def _unusable(ref: InputRef, exists: bool, error: str, project: Project, assets_file: Path) -> str:
    if exists:
        return f"{ref.path} ({ref.role}) {error or 'is not an image'}"
    owner = next((a for a in project.assets.assets.values() if a.output_path == ref.path), None)
    text = (f"{ref.path} ({ref.role}) does not exist; keyframed generate uses asset images as "
            "they are")
    if owner is None or not owner.description:
        return text
    option = _OPTION.get(ref.role, f"--{owner.type[:-1]}")
    return (f"{text}: make it first with `keyframed generate --mode t2i {option} {owner.name} "
            f"--assets-file {assets_file} --output {ref.path}` (or `keyframed run`)")


def job_key(root: Path, art: Artifact, files: dict[str, Path]) -> str:
    """The recipe's fingerprint (inputs by content, template by file hash): the job's key."""
    hashes = {path: sha256_file(local) for path, local in files.items()}
    template_hash = templates.template_hash(art.recipe.template, root)
    return fingerprint(components(art.recipe, hashes, template_hash))


def generate(root: Path, settings: Settings, project: Project, art: Artifact,
             files: dict[str, Path], output: Path) -> Result:
    """Make the image on the first backend that can, and write it to ``output`` atomically.

    Raises:
        ComfyError: No backend can make it (why, per backend), or the server failed.
        TemplateError, OutputError: The template does not bind, or the image is wrong.
    """
    store = Store.for_project(root)
    backends = make_backends(settings, root, store, project.style)
    try:
        backend = _choose(backends, art, root, settings)
        data = backend.execute(job_key(root, art, files), art, files, NoProgress())
        atomic_write(output, data)
        return Result(output=output, backend=backend.name, artifact=art)
    finally:
        for b in backends:
            b.close()
        store.close()


def _choose(backends: list[Backend], art: Artifact, root: Path, settings: Settings) -> Backend:
    for backend in backends:
        if backend.supports(art):
            return backend
    reasons = "\n  ".join(why_not(b, art, root, settings) for b in backends)
    raise ComfyError(f"no configured backend can make this image:\n  {reasons}")
