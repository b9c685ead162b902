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
    "keyframed.cli.models",
    "keyframed.cli.plan",
    "keyframed.cli.run",
    "keyframed.cli.watch",
    "keyframed.cli.status",
    "keyframed.cli.markers",
    "keyframed.cli.service",
    "keyframed.cli.validate",
    "keyframed.cli.generate",
    "keyframed.cli.doctor",
    "keyframed.cli.cache",
)


# Which module registers which subcommand, so a run imports only what it needs (a daemon
# start should not pay for huggingface_hub).
MODULE_OF: dict[str, str] = {
    "plan": "keyframed.cli.plan",
    "run": "keyframed.cli.run",
    "watch": "keyframed.cli.watch",
    "status": "keyframed.cli.status",
    "approve": "keyframed.cli.markers",
    "retry": "keyframed.cli.markers",
    "pick": "keyframed.cli.markers",
    "cache": "keyframed.cli.cache",
    "validate": "keyframed.cli.validate",
    "models": "keyframed.cli.models",
    "service": "keyframed.cli.service",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand (or only the module of one)."""
    parser = argparse.ArgumentParser(
        prog="keyframed",
        description="Keep an AI video project's layers, keyframes and videos up to date.",
    )
    parser.add_argument("--version", action="version", version=f"keyframed {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in (only,) if only else COMMANDS:
        module: _Command = importlib.import_module(name)
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    only = MODULE_OF.get(argv[0]) if argv else None
    parser = build_parser(only)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `keyframed plan DIR | head`: the reader left; that is not an error.
        sys.stderr.close()
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
