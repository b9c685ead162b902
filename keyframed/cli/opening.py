"""Opening a project's settings and store for a command, with the one way of saying why not."""

from __future__ import annotations

import sys
from pathlib import Path

from keyframed.daemon.store import Store
from keyframed.errors import ConfigError, StoreError
from keyframed.inputs.config import load_settings
from keyframed.settings import Settings


def open_project(root: Path) -> tuple[Settings, Store] | None:
    """The project's settings and open store, or None after printing why they cannot be had."""
    try:
        settings = load_settings(root)
        store = Store.for_project(root)
    except (ConfigError, StoreError) as exc:
        print(f"keyframed: {exc}", file=sys.stderr)
        return None
    return settings, store
