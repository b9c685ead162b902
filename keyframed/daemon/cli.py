"""The ``keyframed`` command line: one module per subcommand, registered here."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol

from keyframed import __version__


class _Command(Protocol):
    def register(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


# Each module has ``register(subparsers)`` which adds its parser and sets ``func``.
COMMANDS: tuple[str, ...] = (
    "keyframed.daemon.cmd_models",
    "keyframed.daemon.cmd_plan",
    "keyframed.daemon.cmd_run",
    "keyframed.daemon.cmd_watch",
    "keyframed.daemon.cmd_status",
    "keyframed.daemon.cmd_markers",
    "keyframed.daemon.cmd_service",
    "keyframed.daemon.cmd_validate",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="keyframed",
        description="Keep an AI video project's layers, keyframes and videos up to date.",
    )
    parser.add_argument("--version", action="version", version=f"keyframed {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module: _Command = importlib.import_module(name)
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
