"""Pytest fixtures for the fake hub: ``fake_hub`` and small stand-ins for the real model files.

Register with ``pytest_plugins = ["tests.fakehub.fixtures"]`` in tests/conftest.py.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import replace

import pytest
from huggingface_hub import constants

from keyframed.models.manifest import MANIFEST, SET_NAMES, ModelFile
from tests.fakehub.server import FakeHub

FAKE_TOKEN = "hf_fakehub_test_token"


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A running fake hub with ``HF_ENDPOINT`` pointing at it for this test.

    Also sets ``HF_HUB_DISABLE_XET=1``, unsets ``HF_HUB_OFFLINE``, sets a fake ``HF_TOKEN`` (so no
    real token is ever sent, and tests can see where the Authorization header goes), and keeps
    proxies away from 127.0.0.1.
    """
    hub = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    try:
        yield hub
    finally:
        hub.stop()


def small_bytes(repo: str, path: str) -> bytes:
    """Deterministic content of a few hundred KB standing in for ``repo``/``path``."""
    rng = random.Random(f"{repo}/{path}")
    return rng.randbytes(150_000 + rng.randrange(150_000))


def small_copies(hub: FakeHub, files: Iterable[ModelFile]) -> tuple[ModelFile, ...]:
    """Serve a small stand-in for each file under its real repo and path.

    Returns:
        The manifest entries with the exact size and sha256 of the stand-ins.
    """
    out = []
    for file in files:
        served = hub.add_file(file.repo, file.path, small_bytes(file.repo, file.path))
        out.append(replace(file, size=len(served.data), sha256=served.sha256, approx_size=None))
    return tuple(out)


def small_manifest(hub: FakeHub) -> dict[str, tuple[ModelFile, ...]]:
    """The real manifest's sets, each file replaced by a served small stand-in."""
    return {name: small_copies(hub, MANIFEST[name]) for name in SET_NAMES}


@pytest.fixture
def fake_models(fake_hub: FakeHub) -> tuple[FakeHub, dict[str, tuple[ModelFile, ...]]]:
    """The fake hub serving small stand-ins of every set, and the manifest describing them."""
    return fake_hub, small_manifest(fake_hub)
