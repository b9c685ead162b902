"""``keyframed models check|download`` against the local fake hub (no internet)."""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from keyframed.cli import main as cli
from keyframed.cli import models as cmd_models
from keyframed.errors import ConfigError, DownloadError
from keyframed.models import download as models_download
from keyframed.models import hub as models_hub
from keyframed.models import manifest as models_manifest
from keyframed.models.download import STAGING_DIR, FileState, check, download
from keyframed.models.hub import RemoteFile
from keyframed.models.manifest import MANIFEST, SET_NAMES, ModelFile, human_size
from keyframed.settings import Settings
from tests.fakehub.fixtures import FAKE_TOKEN, small_bytes
from tests.fakehub.server import FakeHub

Models = tuple[FakeHub, dict[str, tuple[ModelFile, ...]]]


@pytest.fixture
def comfy(tmp_path: Path) -> Path:
    folder = tmp_path / "ComfyUI"
    folder.mkdir()
    return folder


def _placed(comfy: Path, file: ModelFile) -> Path:
    return comfy / "models" / file.folder / file.name


def _part(comfy: Path, file: ModelFile) -> Path:
    return comfy / "models" / file.folder / STAGING_DIR / f"{file.name}.part"


def _corrupt_in_place(path: Path) -> None:
    # A new inode with the same size: what a bad copy or a half-finished rsync leaves.
    data = bytearray(path.read_bytes())
    data[1000:1010] = bytes(b ^ 0x55 for b in data[1000:1010])
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)


# --- the manifest -------------------------------------------------------------------------


def test_every_model_and_lora_named_in_settings_is_in_the_manifest() -> None:
    settings = Settings()
    loras = settings.loras
    lora_names = {s.file for s in (loras.lightning, loras.anypose, loras.anypose_helper,
                                   loras.instyle, loras.wan_high, loras.wan_low)}
    model_names = {value for key, value in settings.models.model_dump().items() if key != "set"}
    by_name = {f.name: f for files in MANIFEST.values() for f in files}
    assert lora_names | model_names <= set(by_name)
    assert {by_name[n].folder for n in lora_names} == {"loras"}
    qwen = {f.name for f in MANIFEST[settings.models.set]}
    assert {settings.models.edit_unet, settings.models.clip, settings.models.vae} <= qwen
    wan = {f.name for f in MANIFEST["wan-2.2"]}
    assert {settings.models.wan_high, settings.models.wan_clip, loras.wan_low.file} <= wan


def test_manifest_entries_are_consistent() -> None:
    assert set(MANIFEST) == set(SET_NAMES)
    seen: dict[str, ModelFile] = {}
    for files in MANIFEST.values():
        assert len({f.rel_path for f in files}) == len(files)
        for f in files:
            assert f.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", f.sha256)
            assert f.size is not None or f.approx_size is not None
            # One ComfyUI name is one file everywhere.
            assert seen.setdefault(f.rel_path, f) == f
    edit = next(f for f in MANIFEST["qwen-2511"] if f.name.startswith("qwen_image_edit_2511"))
    assert human_size(edit.size) == "20.5 GB"
    assert human_size(148_000_000, approx=True) == "~148.0 MB"


# --- download -------------------------------------------------------------------------------


def test_download_places_each_file_in_its_models_folder(fake_models: Models, comfy: Path) -> None:
    hub, manifest = fake_models
    lines: list[str] = []
    summary = download(comfy, "qwen-2511", manifest=manifest, progress=False, log=lines.append)
    files = manifest["qwen-2511"]
    assert set(summary.fetched) == set(files)
    for f in files:
        assert _placed(comfy, f).read_bytes() == small_bytes(f.repo, f.path)
    folders = {p.name for p in (comfy / "models").iterdir() if p.is_dir()}
    assert folders == {"diffusion_models", "text_encoders", "vae", "loras"}
    assert not list((comfy / "models").rglob(STAGING_DIR))
    assert all(r.state is FileState.OK for r in check(comfy, "qwen-2511", manifest=manifest).files)
    # A second run finds everything and asks the hub nothing.
    before = len(hub.requests)
    again = download(comfy, "qwen-2511", manifest=manifest, progress=False)
    assert again.fetched == () and len(hub.requests) == before


def test_resume_within_a_run_after_a_dropped_connection(fake_models: Models, comfy: Path) -> None:
    hub, manifest = fake_models
    vae = next(f for f in manifest["qwen-2511"] if f.folder == "vae")
    hub.cut_after(70_000)
    download(comfy, "one", manifest={"one": (vae,)}, progress=False)
    gets = hub.gets(vae.path)
    assert [g.range for g in gets] == [None, "bytes=70000-"]
    assert hashlib.sha256(_placed(comfy, vae).read_bytes()).hexdigest() == vae.sha256


def test_resume_across_runs_from_the_part_file(fake_models: Models, comfy: Path) -> None:
    hub, manifest = fake_models
    lora = next(f for f in manifest["qwen-2511"] if f.name.startswith("2511-AnyPose-base"))
    one = {"one": (lora,)}
    hub.cut_after(90_000)
    with pytest.raises(DownloadError, match="Run the command again to resume"):
        download(comfy, "one", manifest=one, progress=False, attempts=1)
    part = _part(comfy, lora)
    kept = part.stat().st_size
    assert kept == 90_000 and not _placed(comfy, lora).exists()

    summary = download(comfy, "one", manifest=one, progress=False)

    assert summary.fetched == (lora,)
    assert hub.gets(lora.path)[-1].range == f"bytes={kept}-"
    assert hub.gets(lora.path)[-1].status == 206
    assert hashlib.sha256(_placed(comfy, lora).read_bytes()).hexdigest() == lora.sha256
    assert not part.exists()


def test_part_of_an_older_version_on_the_hub_is_not_resumed(
    fake_hub: FakeHub, comfy: Path
) -> None:
    repo, path = "lilylilith/AnyPose", "2511-AnyPose-helper-00006000.safetensors"
    old = fake_hub.add_file(repo, path, b"o" * 200_000)
    fake_hub.cut_after(50_000)
    entry = ModelFile(repo, path, "loras")  # no pinned hash: the hub's ETag is the reference
    with pytest.raises(DownloadError):
        download(comfy, "x", manifest={"x": (entry,)}, progress=False, attempts=1)
    assert _part(comfy, entry).stat().st_size == 50_000
    new = fake_hub.add_file(repo, path, b"n" * 200_000)
    assert new.sha256 != old.sha256

    download(comfy, "x", manifest={"x": (entry,)}, progress=False)

    assert fake_hub.gets(path)[-1].range is None
    assert _placed(comfy, entry).read_bytes() == b"n" * 200_000


def test_plain_git_file_is_checked_by_size_and_not_fetched_twice(
    fake_hub: FakeHub, comfy: Path
) -> None:
    entry = ModelFile("someone/small-repo", "configs/tiny.safetensors", "loras")
    fake_hub.add_file(entry.repo, entry.path, b"t" * 5000, lfs=False)  # ETag is a git sha1
    download(comfy, "x", manifest={"x": (entry,)}, progress=False)
    report = check(comfy, "x", manifest={"x": (entry,)})
    assert report.files[0].state is FileState.UNVERIFIED and report.all_present
    download(comfy, "x", manifest={"x": (entry,)}, progress=False)
    assert len(fake_hub.gets(entry.path)) == 1


def test_transient_server_errors_are_retried(fake_models: Models, comfy: Path) -> None:
    hub, manifest = fake_models
    vae = next(f for f in manifest["qwen-2511"] if f.folder == "vae")
    hub.fail_next(503, times=2)
    download(comfy, "one", manifest={"one": (vae,)}, progress=False, backoff_s=0)
    assert [g.status for g in hub.gets(vae.path)] == [503, 503, 200]
    assert _placed(comfy, vae).stat().st_size == vae.size


def test_corrupted_local_file_is_detected_and_fetched_again(
    fake_models: Models, comfy: Path
) -> None:
    hub, manifest = fake_models
    files = manifest["qwen-2511"]
    download(comfy, "qwen-2511", manifest=manifest, progress=False)
    clip = next(f for f in files if f.folder == "text_encoders")
    _corrupt_in_place(_placed(comfy, clip))

    report = check(comfy, "qwen-2511", manifest=manifest)

    states = {r.file.name: r.state for r in report.files}
    assert states.pop(clip.name) is FileState.WRONG_HASH
    assert set(states.values()) == {FileState.OK}
    assert [r.file for r in report.to_fetch] == [clip]
    assert report.bytes_to_fetch == clip.size

    gets_before = len(hub.gets(clip.path))
    summary = download(comfy, "qwen-2511", manifest=manifest, progress=False)
    assert summary.fetched == (clip,)
    assert len(hub.gets(clip.path)) == gets_before + 1
    assert check(comfy, "qwen-2511", manifest=manifest).all_present


def test_wrong_size_local_file_is_replaced(fake_models: Models, comfy: Path) -> None:
    _hub, manifest = fake_models
    vae = next(f for f in manifest["qwen-2511"] if f.folder == "vae")
    one = {"one": (vae,)}
    _placed(comfy, vae).parent.mkdir(parents=True)
    _placed(comfy, vae).write_bytes(b"truncated")
    assert check(comfy, "one", manifest=one).files[0].state is FileState.WRONG_SIZE
    download(comfy, "one", manifest=one, progress=False)
    assert check(comfy, "one", manifest=one).files[0].state is FileState.OK


def test_corrupted_bytes_from_the_server_are_rejected(fake_models: Models, comfy: Path) -> None:
    hub, manifest = fake_models
    vae = next(f for f in manifest["qwen-2511"] if f.folder == "vae")
    hub.corrupt = True
    with pytest.raises(DownloadError, match=r"sha256 [0-9a-f]{64} instead of " + str(vae.sha256)):
        download(comfy, "one", manifest={"one": (vae,)}, progress=False)
    assert not _placed(comfy, vae).exists()
    assert not _part(comfy, vae).exists()  # wrong bytes are not resumed next time


def test_missing_file_on_the_hub_is_explained(fake_hub: FakeHub, comfy: Path) -> None:
    fake_hub.add_repo("lightx2v/Qwen-Image-Edit-2511-Lightning")
    gone = ModelFile("lightx2v/Qwen-Image-Edit-2511-Lightning", "renamed/lora.safetensors", "loras")
    with pytest.raises(DownloadError) as caught:
        download(comfy, "x", manifest={"x": (gone,)}, progress=False)
    message = str(caught.value)
    assert "lightx2v/Qwen-Image-Edit-2511-Lightning" in message
    assert "renamed/lora.safetensors" in message
    assert "EntryNotFound" in message and "models/loras/lora.safetensors" in message


def test_missing_repo_is_explained_and_other_files_still_download(
    fake_models: Models, comfy: Path
) -> None:
    _hub, manifest = fake_models
    vae = next(f for f in manifest["qwen-2511"] if f.folder == "vae")
    gone = ModelFile("nobody/no-such-repo", "x/model.safetensors", "diffusion_models")
    with pytest.raises(DownloadError) as caught:
        download(comfy, "x", manifest={"x": (gone, vae)}, progress=False)
    message = str(caught.value)
    assert "1 of 2 model files failed" in message
    assert "nobody/no-such-repo" in message and "x/model.safetensors" in message
    assert "RepoNotFound" in message
    assert _placed(comfy, vae).is_file()


def test_hub_serving_other_bytes_than_the_pinned_hash_is_refused(
    fake_models: Models, comfy: Path
) -> None:
    _hub, manifest = fake_models
    vae = next(f for f in manifest["qwen-2511"] if f.folder == "vae")
    pinned = replace(vae, sha256="0" * 64)
    with pytest.raises(DownloadError, match="the hub now serves other bytes"):
        download(comfy, "x", manifest={"x": (pinned,)}, progress=False)
    assert not _placed(comfy, vae).exists()


def test_a_second_concurrent_download_of_one_file_is_refused(
    fake_models: Models, comfy: Path
) -> None:
    hub, manifest = fake_models
    vae = next(f for f in manifest["qwen-2511"] if f.folder == "vae")
    lock = _part(comfy, vae).with_name(f"{vae.name}.part.lock")
    lock.parent.mkdir(parents=True)
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(DownloadError, match="another keyframed is downloading"):
            download(comfy, "one", manifest={"one": (vae,)}, progress=False)
    assert hub.gets(vae.path) == []
    download(comfy, "one", manifest={"one": (vae,)}, progress=False)
    assert _placed(comfy, vae).stat().st_size == vae.size


def test_not_enough_disk_space_is_reported_before_downloading(
    fake_models: Models, comfy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, manifest = fake_models
    vae = next(f for f in manifest["qwen-2511"] if f.folder == "vae")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: SimpleNamespace(free=1000))
    with pytest.raises(DownloadError, match=r"needs .* more but only 1.0 kB is free"):
        download(comfy, "one", manifest={"one": (vae,)}, progress=False)
    assert hub.gets(vae.path) == []


def test_token_goes_to_the_hub_but_not_to_a_redirected_cdn(
    fake_models: Models, comfy: Path
) -> None:
    hub, manifest = fake_models
    hub.redirect = True
    vae = next(f for f in manifest["qwen-2511"] if f.folder == "vae")
    download(comfy, "one", manifest={"one": (vae,)}, progress=False)
    resolve = [r for r in hub.requests if "/resolve/" in r.path]
    cdn = [r for r in hub.requests if r.path.startswith("/cdn/")]
    assert resolve and all(r.authorization == f"Bearer {FAKE_TOKEN}" for r in resolve)
    assert [r.authorization for r in cdn] == [None]
    assert _placed(comfy, vae).stat().st_size == vae.size


# --- check ----------------------------------------------------------------------------------


def test_check_reports_missing_files_with_sizes(fake_models: Models, comfy: Path) -> None:
    _hub, manifest = fake_models
    report = check(comfy, "wan-2.2", manifest=manifest)
    files = manifest["wan-2.2"]
    assert [r.state for r in report.files] == [FileState.MISSING] * len(files)
    assert report.bytes_to_fetch == sum(f.size or 0 for f in files)
    assert [r.size_text for r in report.files] == [human_size(f.size) for f in files]


def test_check_asks_the_hub_for_what_the_manifest_lacks(fake_hub: FakeHub, comfy: Path) -> None:
    vae = next(f for f in MANIFEST["wan-2.2"] if f.folder == "vae")
    data = small_bytes(vae.repo, vae.path)
    fake_hub.add_file(vae.repo, vae.path, data)
    assert vae.size is None and vae.sha256 is None
    one = {"one": (vae,)}

    missing = check(comfy, "one", manifest=one).files[0]
    assert missing.state is FileState.MISSING and missing.size == len(data)
    assert missing.sha256 == hashlib.sha256(data).hexdigest()
    assert [r.method for r in fake_hub.requests] == ["HEAD"]

    _placed(comfy, vae).parent.mkdir(parents=True)
    _placed(comfy, vae).write_bytes(data)
    assert check(comfy, "one", manifest=one).files[0].state is FileState.OK
    _corrupt_in_place(_placed(comfy, vae))
    assert check(comfy, "one", manifest=one).files[0].state is FileState.WRONG_HASH
    offline = check(comfy, "one", manifest=one, remote=False).files[0]
    assert offline.state is FileState.UNVERIFIED and "no sha256" in offline.note


def test_check_needs_an_existing_comfyui_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ComfyUI folder not found"):
        check(tmp_path / "nope", "qwen-2511")


def test_check_with_pinned_hashes_works_without_the_hub(
    comfy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens here: any request would fail, and check must not need one.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    data = b"vae bytes"
    sha = hashlib.sha256(data).hexdigest()
    vae = ModelFile("r/r", "vae.safetensors", "vae", size=len(data), sha256=sha)
    (comfy / "models" / "vae").mkdir(parents=True)
    (comfy / "models" / "vae" / "vae.safetensors").write_bytes(data)
    report = check(comfy, "one", manifest={"one": (vae,)})
    assert report.all_present and report.files[0].note == ""


def test_check_stops_asking_an_unreachable_hub(
    comfy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    asked: list[str] = []
    real = models_hub.remote_file

    def counting(file: ModelFile) -> RemoteFile:
        asked.append(file.name)
        return real(file)

    monkeypatch.setattr(models_download, "remote_file", counting)
    report = check(comfy, "wan-2.2")
    assert len(asked) == 1 and "cannot reach the hub" in report.hub_note
    assert all(r.state is FileState.MISSING and r.note == "" for r in report.files)
    assert report.files[0].size_text == "~14.3 GB"


def test_offline_mode_is_honoured(fake_models: Models, comfy: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    hub, manifest = fake_models
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    unpinned = {"x": tuple(replace(f, sha256=None) for f in manifest["wan-2.2"])}
    assert "HF_HUB_OFFLINE" in check(comfy, "x", manifest=unpinned).hub_note
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE is set"):
        download(comfy, "x", manifest=unpinned, progress=False)
    assert hub.requests == []


# --- the CLI ----------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """``keyframed`` with only the models subcommand (others may be mid-edit in a checkout)."""
    parser = argparse.ArgumentParser(prog="keyframed")
    cmd_models.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_models_subcommand_is_registered() -> None:
    assert "keyframed.cli.models" in cli.COMMANDS


def test_cli_exit_codes(
    fake_models: Models, comfy: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _hub, manifest = fake_models
    monkeypatch.setattr(models_manifest, "MANIFEST", manifest)
    monkeypatch.setenv("COMFYUI_DIR", str(comfy))

    assert main(["models", "check", "--set", "wan-2.2"]) == 1
    out = capsys.readouterr().out
    wan = manifest["wan-2.2"]
    assert "MISSING" in out and "wan_2.1_vae.safetensors" in out
    assert f"{len(wan)} of {len(wan)} files missing or wrong" in out
    assert human_size(sum(f.size or 0 for f in wan)) in out

    assert main(["models", "download", "--set", "wan-2.2", "--comfyui-dir", str(comfy)]) == 0
    assert f"{len(wan)} downloaded" in capsys.readouterr().out
    assert main(["models", "check", "--set", "wan-2.2"]) == 0
    assert "All 6 files present." in capsys.readouterr().out


def test_cli_download_failure_names_repo_and_path(
    fake_hub: FakeHub, comfy: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gone = ModelFile("Comfy-Org/Qwen-Image_ComfyUI", "split_files/vae/moved.safetensors", "vae")
    fake_hub.add_repo(gone.repo)
    monkeypatch.setattr(models_manifest, "MANIFEST", {"qwen-2511": (gone,)})
    assert main(["models", "download", "--comfyui-dir", str(comfy)]) == 1
    out = capsys.readouterr().out
    assert "Comfy-Org/Qwen-Image_ComfyUI" in out and "split_files/vae/moved.safetensors" in out
    assert "MISSING" in out


def test_cli_reports_a_missing_comfyui_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "check", "--comfyui-dir", str(tmp_path / "absent")]) == 1
    assert "ComfyUI folder not found" in capsys.readouterr().out
