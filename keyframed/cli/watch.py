"""``keyframed watch DIR``: the daemon (systemd and launchd run this in the foreground).

The loop itself is :class:`keyframed.daemon.serve.Daemon`; this module parses the arguments,
loads the configuration and reports what stops it from starting.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from keyframed.cli.logs import setup_logging
from keyframed.daemon.serve import Daemon, exit_soon
from keyframed.daemon.signals import Signals
from keyframed.errors import ConfigError, StoreError
from keyframed.inputs.config import load_settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``watch`` subcommand."""
    p = sub.add_parser("watch", help="run the daemon in the foreground")
    p.add_argument("dir", type=Path, help="project folder")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Watch a project until stopped."""
    setup_logging(args.verbose)
    root: Path = args.dir.resolve()
    if not root.is_dir():
        print(f"keyframed: {root}: no such project folder", file=sys.stderr)
        return 1
    try:
        settings = load_settings(root)
    except ConfigError as exc:
        print(f"keyframed: {exc}", file=sys.stderr)
        return 1
    wake = threading.Event()
    with Signals(wake=wake.set) as signals:
        try:
            daemon = Daemon(root, settings, signals, wake)
            daemon.rec.start()
        except StoreError as exc:
            print(f"keyframed: {exc}", file=sys.stderr)
            return 1
        daemon.serve()
    exit_soon()
    return 0
