"""A pass is skipped only when nothing it reads changed (keyframed/daemon/quiet.py).

Each change below is made with file and folder times set into the past (as a copy that keeps
times, or a clock-skewed network share, would), so only the stat comparison can notice it,
not the "too new to trust" rule.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from keyframed.daemon import loop
from keyframed.daemon.loop import Reconciler
from keyframed.daemon.snapshot import Snapshot
from tests.planning import copy_sample, settings_for

Counter = list[int]


def _age(root: Path, seconds: int) -> None:
    """Date every file and folder ``seconds`` back (relative to now)."""
    when = os.stat(root).st_mtime_ns - seconds * 1_000_000_000
    for path in [root, *root.rglob("*")]:
        if ".keyframed" not in path.parts:
            os.utime(path, ns=(when, when), follow_symlinks=False)


@pytest.fixture()
def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Reconciler,
                                                                            Counter]]:
    root = copy_sample(tmp_path / "p")
    rec = Reconciler(root, settings_for(root))
    rec.start()
    snapshots: Counter = [0]
    real = loop.take_snapshot

    def counted(*args: object, **kwargs: object) -> Snapshot:
        snapshots[0] += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "take_snapshot", counted)
    try:
        rec.run_until_idle(timeout=120)
        _age(root, 120)
        rec.reconcile_once()  # sees the new times: a whole pass, then a trusted signature
        yield rec, snapshots
    finally:
        rec.close()


def test_nothing_changed_skips_the_pass(daemon: tuple[Reconciler, Counter]) -> None:
    rec, snapshots = daemon
    before = snapshots[0]
    for _ in range(3):
        assert not rec.reconcile_once().changed
    assert snapshots[0] == before


def _retry(root: Path) -> list[Path]:
    marker = root / "scene-01" / "keyframe-end.retry"
    marker.write_text("", encoding="utf-8")
    return [marker, marker.parent]


def _delete_output(root: Path) -> list[Path]:
    (root / "scene-01" / "keyframe-end.png").unlink()
    return [root / "scene-01"]


def _same_size_edit(root: Path) -> list[Path]:
    path = root / "scene-breakdown.md"
    text = path.read_text(encoding="utf-8")
    old = "Camera"
    assert old in text
    path.write_text(text.replace(old, "CAMERA", 1), encoding="utf-8")
    return [path]


def _template_override(root: Path) -> list[Path]:
    from keyframed.workflows.templates import PACKAGED_DIR

    (root / "workflows").mkdir(exist_ok=True)
    shutil.copy(PACKAGED_DIR / "qwen_t2i.json", root / "workflows" / "qwen_t2i.json")
    return [root / "workflows" / "qwen_t2i.json", root / "workflows", root]


CHANGES: dict[str, Callable[[Path], list[Path]]] = {
    "retry marker dropped": _retry,
    "output deleted": _delete_output,
    "same-size edit": _same_size_edit,
    "template override added": _template_override,
}


@pytest.mark.parametrize("name", list(CHANGES))
def test_a_change_with_old_times_is_still_seen(
    daemon: tuple[Reconciler, Counter], name: str
) -> None:
    rec, snapshots = daemon
    rec.reconcile_once()
    before = snapshots[0]
    when = os.stat(rec.root).st_mtime_ns - 30_000_000_000  # another time, long past
    for path in CHANGES[name](rec.root):
        os.utime(path, ns=(when, when))  # nothing else is touched
    rec.reconcile_once()
    assert snapshots[0] == before + 1


def test_a_store_write_is_seen(daemon: tuple[Reconciler, Counter]) -> None:
    rec, snapshots = daemon
    before = snapshots[0]
    rec.store.remember_hashes([])
    rec.store.set_approval("probe", "x", {})
    rec.reconcile_once()
    assert snapshots[0] == before + 1
