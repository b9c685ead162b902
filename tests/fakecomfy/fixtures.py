"""Pytest fixtures for the fake ComfyUI.

Register with ``pytest_plugins = ["tests.fakecomfy.fixtures"]`` in tests/conftest.py (or
``-p tests.fakecomfy.fixtures``). They need the ``shared_dir`` fixture (object_info.json), so
tests using them skip when ../shared is absent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .server import FakeComfy

FakeComfyFactory = Callable[..., FakeComfy]


def object_info_path(shared_dir: Path) -> Path:
    """The recorded ComfyUI 0.8.0 node schemas inside ../shared."""
    return shared_dir / "comfyui" / "object_info.json"


@pytest.fixture
def fake_comfy_factory(
    shared_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FakeComfyFactory]:
    """Start fake ComfyUI servers on free ports; all are stopped after the test.

    Call it with any :class:`FakeComfy` keyword (``models=``, ``job_seconds=``, ...). Each
    server gets its own folder with ``input/``, ``output/`` and ``temp/``.
    """
    started: list[FakeComfy] = []

    def start(**options: Any) -> FakeComfy:
        base = tmp_path_factory.mktemp("fakecomfy")
        server = FakeComfy(object_info_path(shared_dir), base, **options).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def fake_comfy(fake_comfy_factory: FakeComfyFactory) -> FakeComfy:
    """One fake ComfyUI with the default models and instant jobs (``.url``, ``.faults``...)."""
    return fake_comfy_factory()
