"""``keyframed cache status|prune DIR``: the output cache under ``.keyframed/cache/``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keyframed.daemon.lock import ProjectLock
from keyframed.daemon.outputs import CACHE_DIR, cache_size, prune_cache
from keyframed.daemon.store import Store
from keyframed.errors import ConfigError, KeyframedError, StoreError
from keyframed.inputs.config import load_settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``cache``."""
    c = sub.add_parser("cache", help="the output cache: every build kept, restored with no job")
    c.add_argument("action", choices=("status", "prune"),
                   help="status: entries and size; prune: evict down to [cache] max_mb now")
    c.add_argument("dir", type=Path, help="project folder")
    c.add_argument("--max-mb", type=int, default=None,
                   help="prune down to this many MiB instead of [cache] max_mb")
    c.set_defaults(func=run)


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def run(args: argparse.Namespace) -> int:
    """Show or prune the cache; exit 1 when the project or its state cannot be opened."""
    root: Path = args.dir
    if not (root / ".keyframed").is_dir():
        print(f"keyframed: {root}: no keyframed state here (run `keyframed run {root}` first)",
              file=sys.stderr)
        return 1
    try:
        settings = load_settings(root)
        store = Store.for_project(root)
    except (ConfigError, StoreError) as exc:
        print(f"keyframed: {exc}", file=sys.stderr)
        return 1
    try:
        bound = (settings.cache.max_mb if args.max_mb is None else args.max_mb) * 1024 * 1024
        if args.action == "prune":
            # Evicting while a daemon restores could remove a blob it is about to read; the
            # project lock makes prune wait for no one and refuse instead.
            lock = ProjectLock(root / ".keyframed")
            try:
                lock.acquire()
            except KeyframedError as exc:
                print(f"keyframed: {exc}; the running daemon prunes on its own", file=sys.stderr)
                return 1
            try:
                gone = prune_cache(root, store, bound)
            finally:
                lock.release()
            print(f"evicted {len(gone)} entries")
        entries, size = cache_size(store)
        print(f"{CACHE_DIR}: {entries} entries, {_mib(size)} of {_mib(bound)}")
    finally:
        store.close()
    return 0
