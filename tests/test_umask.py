"""Files keyframed writes honour the umask (they used to be 0600 whatever it was: mkstemp)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyframed.cli.main import main
from keyframed.fsio import atomic_write, write_inside
from tests.planning import copy_sample


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    atomic_write(tmp_path / "a.png", b"x")
    write_inside(tmp_path, "scene-01/b.png", b"y")
    assert mode(tmp_path / "a.png") == 0o644
    assert mode(tmp_path / "scene-01" / "b.png") == 0o644
    os.umask(0o002)
    write_inside(tmp_path, "scene-01/b.png", b"z")
    assert mode(tmp_path / "scene-01" / "b.png") == 0o664


def test_outputs_status_files_and_markers_are_readable_by_the_group(
        tmp_path: Path, umask_022: None) -> None:
    """Through the real CLI: a preview run's outputs, its status files and a retry marker."""
    root = copy_sample(tmp_path / "p")
    (root / "keyframed.toml").write_text('approval = "auto"\n[[backends]]\nname = "p"\n'
                                         'kind = "preview"\n', encoding="utf-8")
    assert main(["run", str(root), "--timeout", "120"]) == 0
    assert main(["retry", str(root), "scene", "1", "start"]) == 0
    written = [root / "status.json", root / "scene-01" / "status.json",
               root / "scene-01" / "keyframe-start.png", root / "scene-01" / "keyframe-start.retry"]
    assert {str(p.relative_to(root)): oct(mode(p)) for p in written} == {
        str(p.relative_to(root)): oct(0o644) for p in written}
