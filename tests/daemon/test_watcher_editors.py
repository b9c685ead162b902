"""The watcher on a real folder: every editor's save pattern gives exactly one wake.

Each test builds a small project in tmp_path, starts a real watchdog observer on it, replays
the exact file operations an editor (or sed, cp, git) performs, and counts wakes: it waits
for the first wake with a deadline, then waits one quiet window plus a margin to confirm that
no second wake follows. Nothing here measures time.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from keyframed import fsio
from keyframed.daemon import watch_filter
from keyframed.daemon.watcher import Watcher

QUIET_MS = 50
NO_MORE_S = QUIET_MS / 1000 + 0.3  # after the first wake, how long a second one is awaited
FIRST_S = 5.0  # deadline for the first wake (generous for a loaded 2-core CI box)

ASSETS = '{"characters": {"samurai": {"image": "assets/characters/samurai.png"}}}\n'
BREAKDOWN = "# Breakdown\n\n## Scene 1: Dawn\n- **Type**: character\n- **Characters**: samurai\n"


class Wakes:
    """A wake callback that counts calls and lets a test wait for a count."""

    def __init__(self) -> None:
        self.count = 0
        self._cond = threading.Condition()

    def __call__(self) -> None:
        with self._cond:
            self.count += 1
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float) -> bool:
        """True once at least ``n`` wakes happened, False if ``timeout`` passes first."""
        with self._cond:
            return self._cond.wait_for(lambda: self.count >= n, timeout)


class Lost:
    """An on_lost_sync callback that records the reasons."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.event = threading.Event()

    def __call__(self, reason: str) -> None:
        self.reasons.append(reason)
        self.event.set()


def wait_until(predicate: Callable[[], bool], timeout: float = FIRST_S) -> bool:
    """Poll ``predicate`` until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.01)
    return True


def expect_one_wake(wakes: Wakes, before: int = 0) -> None:
    """Exactly one wake more than ``before``: the first within a deadline, then no second."""
    assert wakes.wait_for(before + 1, FIRST_S), "the save never woke the loop"
    assert not wakes.wait_for(before + 2, NO_MORE_S), f"one save gave {wakes.count - before} wakes"


def expect_no_wake(watcher: Watcher, wakes: Wakes, seen_before: int = 0) -> None:
    """The events arrived (so the test can fail) and none of them woke the loop."""
    assert wait_until(lambda: watcher.events_seen > seen_before), "no event reached the watcher"
    assert not wakes.wait_for(1, NO_MORE_S), "an ignorable change woke the loop"
    assert watcher.events_ignored == watcher.events_seen


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A small project: inputs, one reference image, one scene with an output."""
    root = tmp_path / "proj"
    (root / "assets" / "characters").mkdir(parents=True)
    (root / "scene-01").mkdir()
    (root / ".keyframed").mkdir()
    (root / "assets.json").write_text(ASSETS)
    (root / "scene-breakdown.md").write_text(BREAKDOWN)
    (root / "style.json").write_text('{"name": "ink"}\n')
    (root / "assets" / "characters" / "samurai.png").write_bytes(b"\x89PNG samurai")
    (root / "scene-01" / "keyframe-start.png").write_bytes(b"\x89PNG keyframe")
    return root


class Rig:
    """A started watcher on the project, its counters and its callbacks."""

    def __init__(self, root: Path, *, poll: bool = False) -> None:
        self.root = root
        self.wakes = Wakes()
        self.lost = Lost()
        self.own: dict[str, tuple[int, int]] = {}
        self.watcher = Watcher(
            root, self.wakes, is_own_write=self._is_own, quiet_ms=QUIET_MS, cap_ms=2000,
            poll=poll, on_lost_sync=self.lost,
        )

    def _is_own(self, rel: str, st: os.stat_result | None) -> bool:
        return st is not None and self.own.get(rel) == (st.st_size, st.st_mtime_ns)

    def daemon_write(self, rel: str, data: bytes) -> None:
        """Write as the daemon does: atomically, recording size and mtime afterwards."""
        path = self.root / rel
        fsio.atomic_write(path, data)
        st = path.stat()
        self.own[rel] = (st.st_size, st.st_mtime_ns)


@pytest.fixture()
def rig(project: Path) -> Iterator[Rig]:
    rig = Rig(project)
    rig.watcher.start()
    yield rig
    rig.watcher.stop()


# -- the save patterns ----------------------------------------------------------------------


def save_in_place(path: Path, data: bytes) -> None:
    """VS Code, nano, vim with backupcopy=yes: truncate and rewrite the same inode."""
    with path.open("wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
        handle.write(data[len(data) // 2 :])
        os.fsync(handle.fileno())


def save_temp_replace(path: Path, data: bytes) -> None:
    """Most libraries' atomic save: write a temp file beside it, then os.replace."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_vim(path: Path, data: bytes) -> None:
    """vim, backupcopy=auto: swap file, 4913 probe, rename to name~, write anew, drop backup."""
    swap = path.with_name(f".{path.name}.swp")
    swap.write_bytes(b"b0VIM 9.0" + b"\0" * 64)
    probe = path.with_name("4913")
    probe.write_bytes(b"")
    probe.unlink()
    backup = path.with_name(path.name + "~")
    os.rename(path, backup)
    with path.open("wb") as handle:
        handle.write(data)
        os.fsync(handle.fileno())
    backup.unlink()
    with swap.open("ab") as handle:
        handle.write(b"\0" * 64)
    swap.unlink()


def save_emacs(path: Path, data: bytes) -> None:
    """emacs: dangling .#name lock link, #name# autosave, rename to name~, write, unlock."""
    lock = path.with_name(f".#{path.name}")
    os.symlink(f"user@host.{os.getpid()}:1700000000", lock)
    autosave = path.with_name(f"#{path.name}#")
    autosave.write_bytes(data)
    os.rename(path, path.with_name(path.name + "~"))
    path.write_bytes(data)
    autosave.unlink()
    lock.unlink()


def save_jetbrains(path: Path, data: bytes) -> None:
    """JetBrains safe write: ___jb_tmp___, original to ___jb_old___, tmp into place, drop old."""
    tmp = path.with_name(path.name + "___jb_tmp___")
    old = path.with_name(path.name + "___jb_old___")
    tmp.write_bytes(data)
    os.rename(path, old)
    os.rename(tmp, path)
    old.unlink()


def save_gedit(path: Path, data: bytes) -> None:
    """gedit/GIO: write .goutputstream-XXXXXX (an ignored name), rename it over the target.

    Only the moved event's destination names a file that matters, so a filter that looks
    at the source path alone would miss this save.
    """
    tmp = path.with_name(".goutputstream-Q7ZB2K")
    tmp.write_bytes(data)
    os.rename(tmp, path)


def save_sed(path: Path, data: bytes) -> None:
    """The real `sed -i` (a temp file in the same folder, renamed over the target)."""
    sed = shutil.which("sed")
    if sed is None:
        pytest.skip("sed is not installed")
    subprocess.run([sed, "-i", "s/Dawn/Dusk/", str(path)], check=True)


def save_cp(path: Path, data: bytes) -> None:
    """`cp other file`: truncate the target and copy into it."""
    other = path.parent.parent / f"other-{path.name}"  # outside the project
    other.write_bytes(data)
    cp = shutil.which("cp")
    if cp is None:
        shutil.copyfile(other, path)
    else:
        subprocess.run([cp, str(other), str(path)], check=True)


SAVES: dict[str, Callable[[Path, bytes], None]] = {
    "in_place": save_in_place,
    "temp_replace": save_temp_replace,
    "vim": save_vim,
    "emacs": save_emacs,
    "jetbrains": save_jetbrains,
    "gedit": save_gedit,
    "sed": save_sed,
    "cp": save_cp,
}


@pytest.mark.parametrize("editor", list(SAVES))
def test_one_save_of_the_breakdown_gives_one_wake(rig: Rig, editor: str) -> None:
    path = rig.root / "scene-breakdown.md"
    SAVES[editor](path, BREAKDOWN.replace("Dawn", "Dusk").encode())
    expect_one_wake(rig.wakes)
    assert "Dusk" in path.read_text()
    # The replay left nothing behind but the file (and the backup emacs keeps on purpose).
    left = {p.name for p in rig.root.iterdir() if "scene-breakdown" in p.name}
    assert left - {"scene-breakdown.md~"} == {"scene-breakdown.md"}


@pytest.mark.parametrize("editor", ["in_place", "vim", "jetbrains"])
def test_one_save_of_a_reference_image_gives_one_wake(rig: Rig, editor: str) -> None:
    SAVES[editor](rig.root / "assets" / "characters" / "samurai.png", b"\x89PNG samurai v2")
    expect_one_wake(rig.wakes)


def test_git_checkout_of_a_file_gives_one_wake(project: Path) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}

    def run_git(*args: str) -> None:
        subprocess.run([git, "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                        *args], cwd=project, env=env, check=True, capture_output=True)

    run_git("init", "-q")
    run_git("add", "assets.json", "scene-breakdown.md", "style.json")
    run_git("commit", "-q", "-m", "start")
    (project / "scene-breakdown.md").write_text(BREAKDOWN.replace("Dawn", "Noon"))
    rig = Rig(project)
    rig.watcher.start()
    try:
        run_git("checkout", "--", "scene-breakdown.md")
        expect_one_wake(rig.wakes)
        assert "Dawn" in (project / "scene-breakdown.md").read_text()
    finally:
        rig.watcher.stop()


def test_two_saves_apart_give_two_wakes(rig: Rig) -> None:
    save_in_place(rig.root / "assets.json", ASSETS.replace("samurai", "ronin").encode())
    expect_one_wake(rig.wakes)
    save_vim(rig.root / "assets.json", ASSETS.encode())
    expect_one_wake(rig.wakes, before=1)


# -- what wakes, what does not ----------------------------------------------------------------


@pytest.mark.parametrize(
    "rel", ["scene-01/keyframes.approved", "assets.approved", "scene-01/keyframe-start.retry"]
)
def test_a_marker_drop_gives_one_wake(rig: Rig, rel: str) -> None:
    (rig.root / rel).touch()
    expect_one_wake(rig.wakes)


@pytest.mark.parametrize("rel", ["keyframed.toml", "workflows/qwen_anypose.json",
                                 "assets/backgrounds/forest.png"])
def test_a_new_input_in_a_new_folder_gives_one_wake(rig: Rig, rel: str) -> None:
    path = rig.root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    expect_one_wake(rig.wakes)


def test_swap_file_only_activity_gives_no_wake(rig: Rig) -> None:
    swap = rig.root / ".scene-breakdown.md.swp"
    swap.write_bytes(b"b0VIM 9.0")
    with swap.open("ab") as handle:
        handle.write(b"\0" * 4096)
    (rig.root / "4913").write_bytes(b"")
    (rig.root / "4913").unlink()
    swap.unlink()
    expect_no_wake(rig.watcher, rig.wakes)


def test_touch_in_the_private_folder_gives_no_wake(rig: Rig) -> None:
    (rig.root / ".keyframed" / "x").touch()
    expect_no_wake(rig.watcher, rig.wakes)


def test_status_files_and_sheets_give_no_wake(rig: Rig) -> None:
    fsio.atomic_write(rig.root / "status.json", b"{}")
    fsio.atomic_write(rig.root / "scene-01" / "status.json", b"{}")
    fsio.atomic_write(rig.root / "scene-01" / "contact-sheet.png", b"\x89PNG sheet")
    expect_no_wake(rig.watcher, rig.wakes)


def test_reading_the_inputs_gives_no_wake(rig: Rig) -> None:
    # opened / closed_no_write: counting them would make the daemon's own reads wake it. They
    # are not even asked of the kernel (watcher.EVENT_FILTER): a pass reads every input and
    # image of every scene, and on 5,000 scenes those events filled the kernel's queue.
    for name in ("assets.json", "scene-breakdown.md", "style.json"):
        (rig.root / name).read_bytes()
    # An ignored write after the reads: its events come after theirs (inotify keeps order),
    # so once they are seen the reads' would have been too.
    (rig.root / ".DS_Store").write_bytes(b"finder")
    expect_no_wake(rig.watcher, rig.wakes)
    assert rig.watcher.events_seen <= 3  # created, modified, closed: the write's alone


def test_the_daemons_own_writes_give_no_wake(rig: Rig) -> None:
    rig.daemon_write("scene-01/keyframe-start.png", b"\x89PNG new keyframe")
    rig.daemon_write("scene-01/layers/background.png", b"\x89PNG background")  # new folder
    rig.daemon_write("assets/characters/ronin.png", b"\x89PNG generated asset")
    expect_no_wake(rig.watcher, rig.wakes)


def test_a_user_replacing_an_output_the_daemon_wrote_gives_one_wake(rig: Rig) -> None:
    rig.daemon_write("scene-01/keyframe-start.png", b"\x89PNG daemon keyframe")
    expect_no_wake(rig.watcher, rig.wakes)
    save_cp(rig.root / "scene-01" / "keyframe-start.png", b"\x89PNG the user's own keyframe")
    expect_one_wake(rig.wakes)


def test_an_own_write_and_a_user_edit_in_one_burst_give_one_wake(rig: Rig) -> None:
    rig.daemon_write("scene-01/keyframe-start.png", b"\x89PNG daemon keyframe")
    save_in_place(rig.root / "style.json", b'{"name": "watercolour"}\n')
    expect_one_wake(rig.wakes)


def test_moving_a_folder_of_references_out_gives_one_wake(rig: Rig, tmp_path: Path) -> None:
    # Only a directory event reports this (no per-file events), so directory deletes count.
    os.rename(rig.root / "assets" / "characters", tmp_path / "characters-elsewhere")
    expect_one_wake(rig.wakes)


def test_polling_mode_sees_a_save_once(project: Path) -> None:
    rig = Rig(project, poll=True)
    rig.watcher.start()
    try:
        save_vim(project / "assets.json", ASSETS.replace("samurai", "ronin").encode())
        expect_one_wake(rig.wakes)
    finally:
        rig.watcher.stop()


# -- lost sync ----------------------------------------------------------------------------------


def test_deleting_and_recreating_the_root_is_lost_sync_and_recovers(rig: Rig) -> None:
    assert rig.watcher.alive()
    shutil.rmtree(rig.root)
    rig.root.mkdir()
    assert rig.lost.event.wait(FIRST_S), "the watcher did not notice its root went away"
    assert rig.wakes.wait_for(1, FIRST_S)
    # It restarts on the new folder and sees edits there again.
    assert wait_until(rig.watcher.alive), "the watcher did not restart on the new root"
    assert wait_until(lambda: rig.watcher.restarts >= 1)
    before = rig.wakes.count
    (rig.root / "assets.json").write_text(ASSETS)
    assert rig.wakes.wait_for(before + 1, FIRST_S)


def test_replacing_the_root_by_a_rename_is_lost_sync(rig: Rig, tmp_path: Path) -> None:
    # inotify keeps following the moved folder and says nothing; the identity check notices.
    os.rename(rig.root, tmp_path / "proj-old")
    rig.root.mkdir()
    assert rig.lost.event.wait(FIRST_S)
    assert "replaced" in rig.lost.reasons[0] or "stopped" in rig.lost.reasons[0]
    assert wait_until(lambda: rig.watcher.restarts >= 1 and rig.watcher.alive())
    # Nothing was edited, yet the loop is woken twice: at the loss, and after the restart,
    # because whatever happened while nobody watched was unseen.
    assert rig.wakes.wait_for(2, FIRST_S)
    before = rig.wakes.count
    (rig.root / "scene-breakdown.md").write_text(BREAKDOWN)
    assert rig.wakes.wait_for(before + 1, FIRST_S)


def test_a_kernel_queue_overflow_is_lost_sync(rig: Rig) -> None:
    # watchdog handles IN_Q_OVERFLOW only by logging this warning and rebuilding its watches.
    logging.getLogger(watch_filter_logger()).warning(
        "Inotify queue overflowed; filesystem events were lost"
    )
    assert rig.lost.event.wait(FIRST_S)
    assert "overflow" in rig.lost.reasons[0]
    assert rig.wakes.wait_for(1, FIRST_S)
    assert rig.watcher.alive()  # the observer itself kept running


def test_overflows_in_a_row_are_logged_once_and_each_wakes(rig: Rig) -> None:
    from structlog.testing import capture_logs

    overflow = logging.getLogger(watch_filter_logger())
    with capture_logs() as logs:
        for n in range(5):
            overflow.warning("Inotify queue overflowed; filesystem events were lost")
            # watchdog 7 adds this one for the same overflow; it is not counted again.
            logging.getLogger("watchdog.observers.inotify").warning(
                "Inotify queue overflowed; reconciling recursive watches below %r", "x")
            assert wait_until(lambda n=n: len(rig.lost.reasons) == n + 1)
    assert rig.watcher.overflows == 5
    assert rig.wakes.wait_for(1, FIRST_S)
    warnings = [e for e in logs if e["event"] == "watcher_lost_sync"]
    assert len(warnings) == 1 and "overflow" in warnings[0]["reason"]
    assert all("same burst" in r for r in rig.lost.reasons[1:])


def test_stop_ends_the_threads(project: Path) -> None:
    rig = Rig(project)
    rig.watcher.start()
    assert rig.watcher.alive()
    rig.watcher.stop()
    assert not rig.watcher.alive()
    rig.watcher.stop()  # idempotent


def test_start_on_a_missing_root_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Watcher(tmp_path / "nope", Wakes()).start()


def test_the_filter_knows_fsio_temp_prefix() -> None:
    assert watch_filter.KF_TEMP_PREFIX == fsio.TEMP_PREFIX


def watch_filter_logger() -> str:
    """The logger watchdog's inotify reader warns on (the watcher listens to it)."""
    from keyframed.daemon import watcher

    return watcher._OVERFLOW_LOGGER
