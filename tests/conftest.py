"""Shared fixtures. Each boundary's fake lives in its own module, registered here."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.fakecomfy.fixtures", "tests.fakehub.fixtures"]

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder beside the repository; tests that need it skip without it."""
    if not (SHARED / "comfyui" / "object_info.json").is_file():
        pytest.skip("../shared (ComfyUI object_info and transcripts) is not beside the repo")
    return SHARED
