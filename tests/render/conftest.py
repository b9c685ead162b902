"""The render tests' fixture: a built copy of the sample."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyframed.daemon.snapshot import Snapshot
from keyframed.daemon.store import Store
from tests.planning import build_all, copy_sample


@pytest.fixture()
def built(tmp_path: Path) -> tuple[Path, Snapshot]:
    """A copy of the sample with every artifact built, and its snapshot."""
    root = copy_sample(tmp_path / "p")
    store = Store.for_project(root)
    try:
        return root, build_all(root, store)
    finally:
        store.close()
