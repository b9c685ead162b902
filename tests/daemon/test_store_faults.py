"""The project folder and its state database when the filesystem is against us (issue 14).

For real where the machine allows: a read-only bind mount of the project (CI runs as root;
elsewhere these skip with the reason), and a database whose header is valid but whose pages
are damaged. ``run``, ``plan`` and ``watch`` must end with a clear message naming the file and
the fix and a non-zero exit code, never a traceback, and never tell a user to move a healthy
database aside.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.planning import copy_sample

CLI = [sys.executable, "-m", "keyframed"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEYFRAMED_CONFIG": os.devnull + ".none"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120,
                          check=False)


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` seen through a read-only bind mount (skips where mounting is not allowed)."""
    view = folder.parent / (folder.name + "-ro")
    view.mkdir()
    bind = subprocess.run(["mount", "--bind", str(folder), str(view)], capture_output=True,
                          check=False)
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount here (needs root): {bind.stderr.decode().strip()}")
    try:
        ro = subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], capture_output=True,
                            check=False)
        if ro.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {ro.stderr.decode().strip()}")
        yield view
    finally:
        subprocess.run(["umount", str(view)], check=False)


def assert_clear(done: subprocess.CompletedProcess[str], *words: str) -> None:
    text = done.stdout + done.stderr
    assert done.returncode != 0, text
    assert "Traceback" not in text, text
    for word in words:
        assert word in text, (word, text)


@pytest.mark.parametrize("command", ["run", "plan", "watch"])
def test_a_read_only_project_folder_is_said_so(tmp_path: Path, command: str) -> None:
    root = copy_sample(tmp_path / "p")
    with read_only(root) as view:
        done = cli(command, str(view))
    assert_clear(done, "must be writable", ".keyframed")


def test_a_read_only_built_project_keeps_its_healthy_database(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "p")
    assert cli("run", str(root)).returncode == 0
    with read_only(root) as view:
        for command in ("run", "watch"):
            done = cli(command, str(view))
            assert_clear(done, "must be writable", "keep it")
            assert "move" not in done.stdout + done.stderr


def damage_pages(db: Path) -> None:
    """Overwrite every page after the first with garbage: the header stays valid."""
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    assert len(data) > 2 * page, "the database should have several pages"
    for offset in range(page, len(data), page):
        data[offset:offset + 64] = b"\xde\xad\xbe\xef" * 16
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("command", ["run", "watch", "plan"])
def test_a_database_damaged_inside_is_a_clear_message(tmp_path: Path, command: str) -> None:
    root = copy_sample(tmp_path / "p")
    assert cli("run", str(root)).returncode == 0
    db = root / ".keyframed" / "state.db"
    for suffix in ("-wal", "-shm"):
        (db.parent / (db.name + suffix)).unlink(missing_ok=True)
    damage_pages(db)
    before = (root / "scene-01" / "keyframe-start.png").read_bytes()
    done = cli(command, str(root))
    assert_clear(done, "state database is damaged", "state.db", "move the file aside")
    assert (root / "scene-01" / "keyframe-start.png").read_bytes() == before
