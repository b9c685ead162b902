"""Nothing generated is thrown away (issue 13, part A): the output cache, kept takes, pick.

Through the real CLI (``keyframed.cli.main.main``), on the preview backend and on the
ComfyUI-compatible test server restarted between steps, so its in-memory history cannot help.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyframed.cli.main import main
from keyframed.daemon.outputs import blob_path
from tests.cli.test_example_preview import tiles_after_one_pass
from tests.comfy_project import comfy_project, submitted_artifacts
from tests.fakecomfy.server import FakeComfy
from tests.planning import copy_sample

END = "- expression: peaceful, eyes closed"
KEYFRAME = "scene-01/keyframe-end.png"


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KEYFRAMED_CONFIG", str(tmp_path / "no-user-config.toml"))


def run(root: Path) -> None:
    """``keyframed run DIR``; it must succeed."""
    assert main(["run", str(root)]) == 0


def built_jobs(root: Path) -> int:
    """Jobs that ran on a backend (restores from the cache are recorded under 'cache')."""
    with sqlite3.connect(root / ".keyframed" / "state.db") as db:
        row = db.execute("SELECT COUNT(*) FROM jobs WHERE state='done' AND backend != 'cache'"
                         ).fetchone()
    return int(row[0])


def outputs(root: Path) -> dict[str, bytes]:
    """Every generated file of the scenes (takes included), by path."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.glob("scene-*/**/*")) if p.is_file()
            and p.suffix in (".png", ".webp", ".mp4") and p.name != "contact-sheet.png"}


def edit(root: Path, old: str, new: str) -> None:
    path = root / "scene-breakdown.md"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def scene_status(root: Path, scene: int) -> dict[str, dict[str, object]]:
    doc = json.loads((root / f"scene-{scene:02d}" / "status.json").read_text(encoding="utf-8"))
    return {a["path"]: a for a in doc["artifacts"]}


@pytest.fixture
def preview(tmp_path: Path) -> Path:
    root = copy_sample(tmp_path / "samurai")
    run(root)
    return root


def test_edit_and_revert_cost_no_job_and_give_the_original_bytes(
        preview: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before, jobs = outputs(preview), built_jobs(preview)
    edit(preview, END, "- expression: furious, shouting")
    run(preview)
    assert built_jobs(preview) > jobs and outputs(preview)[KEYFRAME] != before[KEYFRAME]
    jobs = built_jobs(preview)
    edit(preview, "- expression: furious, shouting", END)
    capsys.readouterr()
    assert main(["plan", str(preview)]) == 0
    planned = capsys.readouterr().out
    assert f"{KEYFRAME}" in planned and "restored: cache" in planned
    run(preview)
    assert built_jobs(preview) == jobs
    after = outputs(preview)
    assert {k: after[k] for k in before} == before
    entry = scene_status(preview, 1)[KEYFRAME]
    assert entry["state"] == "done" and entry["restored"] is True


def test_retry_keeps_take_0_and_pick_brings_it_back_with_no_job(preview: Path) -> None:
    take0 = (preview / KEYFRAME).read_bytes()
    video0 = (preview / "scene-01" / "video-preview.webp").read_bytes()
    assert (preview / "scene-01/takes/keyframe-end.take-0.png").read_bytes() == take0
    assert main(["retry", str(preview), "scene", "1", "end"]) == 0
    run(preview)
    take1 = (preview / KEYFRAME).read_bytes()
    assert take1 != take0
    assert (preview / "scene-01/takes/keyframe-end.take-0.png").read_bytes() == take0
    assert (preview / "scene-01/takes/keyframe-end.take-1.png").read_bytes() == take1
    jobs = built_jobs(preview)
    assert main(["pick", str(preview), "scene", "1", "end", "0"]) == 0
    assert (preview / "scene-01/keyframe-end.pick").read_text(encoding="utf-8").strip() == "0"
    run(preview)
    assert built_jobs(preview) == jobs
    assert (preview / KEYFRAME).read_bytes() == take0
    # What is built from it follows, from the cache too.
    assert (preview / "scene-01" / "video-preview.webp").read_bytes() == video0
    (preview / "scene-01/keyframe-end.pick").unlink()
    run(preview)
    assert built_jobs(preview) == jobs and (preview / KEYFRAME).read_bytes() == take1


def test_takes_3_gives_three_kept_takes_the_newest_live(preview: Path) -> None:
    take0 = (preview / KEYFRAME).read_bytes()
    jobs = built_jobs(preview)
    assert main(["retry", str(preview), "scene", "1", "end", "--takes", "3"]) == 0
    run(preview)
    takes = {n: (preview / f"scene-01/takes/keyframe-end.take-{n}.png").read_bytes()
             for n in range(4)}
    assert takes[0] == take0 and len(set(takes.values())) == 4  # four seeds, four images
    assert (preview / KEYFRAME).read_bytes() == takes[3]
    assert not (preview / "scene-01/keyframe-end.retry").exists()
    made = built_jobs(preview) - jobs
    # The contact sheet shows the candidates side by side with their numbers.
    captions = [t.caption for t in tiles_after_one_pass(preview, 1)]
    assert {"keyframe-end take 1", "keyframe-end take 2", "keyframe-end take 3"} <= set(captions)
    assert main(["pick", str(preview), "scene", "1", "end", "2"]) == 0
    run(preview)
    assert (preview / KEYFRAME).read_bytes() == takes[2]
    # Picking a candidate cost no image job (only the video built from it is new).
    with sqlite3.connect(preview / ".keyframed" / "state.db") as db:
        keyframe_jobs = db.execute(
            "SELECT COUNT(*) FROM jobs WHERE path=? AND backend != 'cache'", (KEYFRAME,)
        ).fetchone()[0]
    assert keyframe_jobs == 2 and made >= 3
    # Once one is picked, the sheet shows it marked (the candidates stay under takes/).
    captions = [t.caption for t in tiles_after_one_pass(preview, 1)]
    assert "keyframe-end take 2 picked" in captions
    assert not any(c.startswith("keyframe-end take 1") for c in captions)


def test_a_pick_of_a_take_never_made_is_an_error_naming_the_file(
        preview: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (preview / "scene-01/keyframe-end.pick").write_text("7\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["plan", str(preview)]) == 1
    err = capsys.readouterr().err
    assert "scene-01/keyframe-end.pick" in err and "0 to 0" in err


def test_a_damaged_cache_entry_is_dropped_and_rebuilt(preview: Path) -> None:
    original = (preview / KEYFRAME).read_bytes()
    import hashlib
    blob = preview / blob_path(hashlib.sha256(original).hexdigest())
    edit(preview, END, "- expression: furious, shouting")
    run(preview)
    blob.write_bytes(b"not what was kept")
    jobs = built_jobs(preview)
    edit(preview, "- expression: furious, shouting", END)
    run(preview)
    assert built_jobs(preview) > jobs  # rebuilt, not restored from the damaged entry
    assert (preview / KEYFRAME).read_bytes() == original  # the preview is deterministic
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == hashlib.sha256(original).hexdigest()


def test_the_cache_bound_evicts_least_recently_used_never_live(
        preview: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(preview, END, "- expression: furious, shouting")
    run(preview)
    capsys.readouterr()
    assert main(["cache", "status", str(preview)]) == 0
    full = capsys.readouterr().out
    assert main(["cache", "prune", str(preview), "--max-mb", "0"]) == 0
    pruned = capsys.readouterr().out
    assert "evicted" in pruned and "evicted 0 " not in pruned, (full, pruned)
    live = outputs(preview)
    import hashlib
    for rel in (KEYFRAME, "scene-01/video-preview.webp"):
        assert (preview / blob_path(hashlib.sha256(live[rel]).hexdigest())).is_file()
    # The earlier keyframe was evicted: going back builds it again.
    jobs = built_jobs(preview)
    edit(preview, "- expression: furious, shouting", END)
    run(preview)
    assert built_jobs(preview) > jobs


# -- the ComfyUI-compatible test server, restarted between steps -----------------------------


@pytest.fixture
def comfy(tmp_path: Path, fake_comfy: FakeComfy) -> Iterator[tuple[Path, FakeComfy]]:
    root = comfy_project(tmp_path / "samurai", [fake_comfy])
    run(root)
    yield root, fake_comfy


def test_comfy_edit_and_revert_after_restarts_submit_nothing(
        comfy: tuple[Path, FakeComfy]) -> None:
    root, server = comfy
    before = outputs(root)
    edit(root, END, "- expression: furious, shouting")
    server.restart(clear_uploads=True)
    run(root)
    sent = len(submitted_artifacts(server))
    assert sent > 0
    edit(root, "- expression: furious, shouting", END)
    server.restart(clear_uploads=True)
    uploads = len(server.records.uploads)
    run(root)
    assert len(submitted_artifacts(server)) == sent  # no prompt, after a restart
    assert len(server.records.uploads) == uploads  # and no upload
    after = outputs(root)
    assert {k: after[k] for k in before} == before


def test_comfy_retry_then_pick_take_0_submits_nothing(comfy: tuple[Path, FakeComfy]) -> None:
    root, server = comfy
    take0 = (root / KEYFRAME).read_bytes()
    assert main(["retry", str(root), "scene", "1", "end"]) == 0
    server.restart()
    run(root)
    assert (root / "scene-01/takes/keyframe-end.take-0.png").read_bytes() == take0
    sent = len(submitted_artifacts(server))
    assert main(["pick", str(root), "scene", "1", "end", "0"]) == 0
    server.restart()
    run(root)
    assert len(submitted_artifacts(server)) == sent
    assert (root / KEYFRAME).read_bytes() == take0


def test_a_schema_1_database_is_migrated_keeping_its_takes(tmp_path: Path) -> None:
    from keyframed.daemon.store import MIGRATIONS, Store
    path = tmp_path / ".keyframed" / "state.db"
    path.parent.mkdir()
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0])
        db.execute("INSERT INTO takes VALUES ('scene-01/keyframe-end.png', 2, 'note')")
        db.execute("PRAGMA user_version=1")
    store = Store.for_project(tmp_path)
    try:
        assert store.takes() == ({"scene-01/keyframe-end.png": 2},
                                 {"scene-01/keyframe-end.png": "note"})
        assert store.batches() == {} and store.cache_entries() == {}
        assert store._query("PRAGMA user_version")[0][0] == len(MIGRATIONS)
    finally:
        store.close()


def test_a_crash_after_the_rename_is_healed_into_the_cache(preview: Path) -> None:
    """The blob is kept before the intent; a crash before the confirmation loses nothing."""
    from keyframed.daemon.outputs import heal_pending
    from keyframed.daemon.store import Store
    store = Store.for_project(preview)
    try:
        record = store.record(KEYFRAME)
        assert record is not None
        store.cache_drop([record.fingerprint])  # as if the confirming transaction never ran
        store.intend_write(record, "preview")
        assert heal_pending(preview, store) == 1
        assert record.fingerprint in store.cache_entries()
    finally:
        store.close()


def test_the_configured_bound_evicts_on_its_own(preview: Path) -> None:
    import hashlib
    toml = preview / "keyframed.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        "[[backends]]", "[cache]\nmax_mb = 0\n\n[[backends]]"), encoding="utf-8")
    old = hashlib.sha256((preview / KEYFRAME).read_bytes()).hexdigest()
    edit(preview, END, "- expression: furious, shouting")
    run(preview)
    new = hashlib.sha256((preview / KEYFRAME).read_bytes()).hexdigest()
    assert not (preview / blob_path(old)).exists()  # no longer live: evicted
    assert (preview / blob_path(new)).is_file()  # live: kept
