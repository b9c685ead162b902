"""``keyframed doctor [DIR] [--comfyui-dir D]``: is everything in place to run the plan?

Checks every configured backend (the settings of project DIR when given, else the user's
config): reachable, ComfyUI version, the node classes the six templates use, template inputs
against the server's schemas, every model and LoRA file named in the settings (with the closest
installed name and the fix when one is missing), and free GPU memory. With ``--comfyui-dir``
it also checks the model files on this machine (``keyframed models check``, without asking the
hub). Exit 0 when all is well, 1 with a numbered list of fixes otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import structlog

from keyframed.backends.doctor import Problem, Report, check_backend
from keyframed.cli.logs import setup_logging
from keyframed.cli.models import comfyui_dir as default_comfyui_dir
from keyframed.cli.models import print_report
from keyframed.errors import ConfigError
from keyframed.inputs.config import PROJECT_CONFIG, load_settings, user_config_path
from keyframed.models.download import check
from keyframed.settings import Settings

VIDEO_SET = "wan-2.2"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``doctor`` subcommand."""
    p = sub.add_parser(
        "doctor", help="check backends: reachable, nodes, models and LoRAs present; fixes",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    p.add_argument("dir", type=Path, nargs="?", default=None,
                   help="project folder whose settings to use (default: the user config)")
    p.add_argument("--comfyui-dir", type=Path, default=None, metavar="D",
                   help="also check the model files in this local ComfyUI folder")
    p.add_argument("-v", "--verbose", action="store_true", help="show the client's log lines")
    p.set_defaults(func=run)


def config_file(root: Path | None, env: Mapping[str, str]) -> str:
    """The file a fix should edit: the project's keyframed.toml, else the user config."""
    return str(root / PROJECT_CONFIG) if root is not None else str(user_config_path(env))


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """Check everything; print the results and the fixes; return the exit code."""
    env = os.environ if env is None else env
    setup_logging(args.verbose, env)
    if not args.verbose:
        # The report says what failed; the client's retry warnings would only repeat it.
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    root: Path | None = args.dir
    if root is not None and not root.is_dir():
        print(f"keyframed doctor: {root}: no such project folder", file=sys.stderr)
        return 1
    try:
        settings = load_settings(root, env=env)
    except ConfigError as exc:
        print(f"keyframed doctor: {exc}", file=sys.stderr)
        return 1
    target = config_file(root, env)
    local = default_comfyui_dir(args.comfyui_dir) if args.comfyui_dir else None
    reports = [check_backend(b, settings, root, env, target, local) for b in settings.backends]
    if local is not None:
        reports.append(local_files(local, settings))
    for report in reports:
        _print(report)
    return _summary([p for r in reports for p in r.problems], len(settings.backends))


def local_files(folder: Path, settings: Settings) -> Report:
    """The model files in a local ComfyUI folder: the configured image set and the video set."""
    report = Report(f"local model files in {folder}")
    try:
        checks = [check(folder, name, remote=False) for name in (settings.models.set, VIDEO_SET)]
    except ConfigError as exc:
        report.fail("FAIL", str(exc), Problem("local", str(exc),
                                             "pass the folder ComfyUI is installed in"))
        return report
    for result in checks:
        print_report(result)
        todo = result.to_fetch
        if not todo:
            report.ok(f"set {result.set_name}: all {len(result.files)} files present")
            continue
        what = (f"set {result.set_name}: {len(todo)} of {len(result.files)} files missing or "
                f"wrong in {result.models_dir}")
        fix = f"keyframed models download --set {result.set_name} --comfyui-dir {folder}"
        report.fail("MISSING", what, Problem("local", what, fix))
    return report


def _print(report: Report) -> None:
    print(report.title)
    for label, text in report.lines:
        print(f"  {label:<8} {text}")


def _summary(problems: list[Problem], backends: int) -> int:
    if not problems:
        print(f"\nAll good: {backends} backend(s) ready for every step of the plan.")
        return 0
    print(f"\n{len(problems)} problem(s); fixes:")
    for n, p in enumerate(problems, 1):
        print(f"  {n}. [{p.where}] {p.what}")
        print(f"     fix: {p.fix}")
    return 1
