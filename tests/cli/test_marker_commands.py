"""``keyframed approve`` and ``keyframed retry`` write markers only inside the project, and
``retry`` only for a target the scene has (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyframed.cli.main import main
from tests.planning import copy_sample


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sample's inputs (retry checks its target against the plan), scene 1's folder made."""
    monkeypatch.setenv("KEYFRAMED_CONFIG", str(tmp_path / "no-user-config.toml"))
    root = copy_sample(tmp_path / "p")
    (root / "scene-01").mkdir(parents=True)
    return root


def test_markers_are_written(project: Path) -> None:
    assert main(["approve", str(project), "scene", "1", "--note", "ok"]) == 0
    assert main(["retry", str(project), "scene", "1", "end", "--note", "more rain"]) == 0
    assert main(["approve", str(project), "assets"]) == 0
    assert "ok" in (project / "scene-01" / "keyframes.approved").read_text(encoding="utf-8")
    assert (project / "scene-01" / "keyframe-end.retry").read_text(encoding="utf-8") == "more rain"
    assert (project / "assets.approved").is_file()


def test_a_symlinked_scene_folder_is_not_written_through(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (project / "scene-02").symlink_to(outside, target_is_directory=True)
    assert main(["retry", str(project), "scene", "2", "start"]) == 1
    assert main(["approve", str(project), "scene", "2"]) == 1
    assert list(outside.iterdir()) == []
    err = capsys.readouterr().err
    assert "scene-02" in err and "symlink" in err and "real folder" in err


def test_a_missing_scene_folder_is_named(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["retry", str(project), "scene", "7", "video"]) == 1
    assert "scene-07" in capsys.readouterr().err
