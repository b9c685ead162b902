"""``keyframed validate DIR``: parse and check a project's inputs; exit 1 on any error.

Prints ``OK: N scenes, M assets`` or every problem as ``file:line:col: message (suggestion)``,
one per line, with ``file`` relative to DIR. The configuration (``keyframed.toml``) is checked
too, and gives the image size limit. Bad input never produces a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keyframed.errors import ConfigError
from keyframed.inputs.config import load_settings
from keyframed.inputs.loader import load_project


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``validate`` subcommand."""
    p = sub.add_parser("validate", help="parse and check a project's inputs; exit 1 on errors")
    p.add_argument("dir", type=Path, help="project folder")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        help="largest image accepted, in pixels (default: run.max_image_pixels of the config)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate the project in ``args.dir``; return the exit code."""
    root: Path = args.dir
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        print(f"keyframed validate: {root} {what}", file=sys.stderr)
        return 1
    try:
        settings = load_settings(root)  # keyframed.toml is an input too
    except ConfigError as exc:
        print(f"keyframed validate: {exc}")
        return 1
    result = load_project(root, args.max_pixels or settings.run.max_image_pixels)
    if result.project is not None:
        project = result.project
        print(f"OK: {len(project.scenes)} scenes, {len(project.assets.assets)} assets")
        return 0
    for diagnostic in result.diagnostics:
        print(diagnostic)
    count = len(result.diagnostics)
    print(f"{count} error{'s' if count != 1 else ''} in {root}", file=sys.stderr)
    return 1
