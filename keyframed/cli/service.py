"""``keyframed service install DIR [--dry-run]``: run the daemon under systemd or launchd."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keyframed.errors import KeyframedError
from keyframed.service import install as service


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``service`` command and its ``install`` subcommand."""
    parser = sub.add_parser(
        "service",
        help="install keyframed as a systemd user service or launchd agent",
        description="Run `keyframed watch DIR` in the background, started at login.",
    )
    actions = parser.add_subparsers(dest="service_command", required=True, metavar="ACTION")
    install = actions.add_parser(
        "install",
        help="write and enable the systemd user unit (Linux) or launchd agent (macOS)",
        description=(
            "Linux: writes ~/.config/systemd/user/keyframed@.service and enables "
            "keyframed@<escaped DIR>.service. macOS: writes "
            "~/Library/LaunchAgents/com.keyframed.<name>.plist and bootstraps it."
        ),
    )
    install.add_argument("dir", type=Path, metavar="DIR", help="the project folder")
    install.add_argument(
        "--dry-run", action="store_true", help="print what would be written and run; change nothing"
    )
    install.set_defaults(func=run_install)


def run_install(
    args: argparse.Namespace,
    host: service.Host | None = None,
    runner: service.Runner = service.subprocess_runner,
) -> int:
    """Plan and carry out (or, with ``--dry-run``, print) the install; return the exit code."""
    try:
        plan = service.plan_install(args.dir, host or service.Host.current())
        if args.dry_run:
            print(service.describe(plan))
        else:
            service.apply(plan, runner, print)
    except (KeyframedError, OSError) as exc:
        print(f"keyframed service install: error: {exc}", file=sys.stderr)
        return 1
    return 0
