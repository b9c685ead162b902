"""``keyframed doctor`` against the fake ComfyUI: all present, something missing, unreachable."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keyframed.backends.doctor import MODEL_KEYS, configured_files, model_setting_keys
from keyframed.cli.main import main
from keyframed.settings import Settings
from tests.fakecomfy import DEFAULT_MODELS, FakeComfy
from tests.fakecomfy.catalog import load_object_info
from tests.fakecomfy.fixtures import FakeComfyFactory
from tests.planning import copy_sample

INSTYLE = "InStyle-0.5.safetensors"


@pytest.fixture(autouse=True)
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the user config is read from in these tests (absent unless a test writes it)."""
    path = tmp_path / "user" / "config.toml"
    monkeypatch.setenv("KEYFRAMED_CONFIG", str(path))
    return path


def project_on(tmp_path: Path, url: str, extra: str = "") -> Path:
    root = copy_sample(tmp_path / "samurai")
    (root / "keyframed.toml").write_text(
        f'{extra}\n[[backends]]\nname = "gpu"\nkind = "comfyui"\nurl = "{url}"\n',
        encoding="utf-8")
    return root


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["doctor", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def trimmed_comfy(shared_dir: Path, tmp_path: Path) -> Iterator[Any]:
    """Start a fake ComfyUI whose object_info was edited by the test."""
    started: list[FakeComfy] = []

    def start(edit: Any) -> FakeComfy:
        # The parsed file is shared by every fake server: edit a copy.
        info = copy.deepcopy(load_object_info(shared_dir / "comfyui" / "object_info.json"))
        edit(info)
        server = FakeComfy(info, tmp_path / f"fc{len(started)}").start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_everything_present_is_a_clean_summary(
    tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = doctor(capsys, str(project_on(tmp_path, fake_comfy.url)))
    assert code == 0, out
    assert "reachable: ComfyUI 0.8.0" in out
    assert "no core jobs API (/api/jobs): jobs are followed through /history" in out
    assert "node classes: all" in out and "templates: all 6 fit" in out
    assert "models: 8 of 8" in out and "LoRAs: 6 of 6" in out
    assert "GiB free of" in out
    assert "All good" in out and "fix:" not in out


def test_a_newer_comfyui_is_followed_through_its_jobs_api(
    tmp_path: Path, fake_comfy_factory: FakeComfyFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    newer = fake_comfy_factory(jobs_api=True)
    code, out = doctor(capsys, str(project_on(tmp_path, newer.url)))
    assert code == 0, out
    assert "reachable: ComfyUI 0.38.1" in out
    assert "followed through ComfyUI's core jobs API (/api/jobs)" in out


def test_a_missing_lora_is_named_with_the_closest_name_and_the_fix(
    tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str]
) -> None:
    loras = [n for n in DEFAULT_MODELS["loras"] if n != INSTYLE]
    fake_comfy.set_models("loras", [*loras, "InStyle-0.4.safetensors"])
    root = project_on(tmp_path, fake_comfy.url)
    code, out = doctor(capsys, str(root))
    assert code == 1
    assert f"loras/{INSTYLE} (loras.instyle.file) is not installed" in out
    assert "closest installed: InStyle-0.4.safetensors" in out
    assert "keyframed models download --set qwen-2511" in out
    assert f'[loras.instyle] file = "InStyle-0.4.safetensors" in {root / "keyframed.toml"}' in out
    assert "1 problem(s)" in out


def test_a_file_no_download_set_has_says_where_to_put_it(
    tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project_on(tmp_path, fake_comfy.url, '[models]\nedit_unet = "my_unet.safetensors"')
    code, out = doctor(capsys, str(root))
    assert code == 1
    assert "diffusion_models/my_unet.safetensors (models.edit_unet) is not installed" in out
    assert "put my_unet.safetensors into ComfyUI/models/diffusion_models/" in out


def test_an_unreachable_server_is_a_clear_failure(
    tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project_on(tmp_path, fake_comfy.url)
    fake_comfy.go_down()
    code, out = doctor(capsys, str(root))
    assert code == 1
    assert f"cannot reach ComfyUI at {fake_comfy.url}" in out
    assert "Connection refused" in out or "ConnectError" in out
    assert f"correct `url` of backend 'gpu' under [[backends]] in {root / 'keyframed.toml'}" in out


def test_a_missing_node_class_and_a_changed_schema_are_reported(
    tmp_path: Path, trimmed_comfy: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    def edit(info: dict[str, Any]) -> None:
        del info["FluxKontextImageScale"]
        del info["KSampler"]["input"]["required"]["scheduler"]

    comfy = trimmed_comfy(edit)
    code, out = doctor(capsys, str(project_on(tmp_path, comfy.url)))
    assert code == 1
    assert ("node class FluxKontextImageScale is not installed (used by qwen_anypose.json, "
            "qwen_background.json, qwen_composite.json, qwen_instyle.json)") in out
    assert "update ComfyUI" in out
    # qwen_t2i uses KSampler but not the missing class, so its schema is checked.
    assert "qwen_t2i.json does not fit this server's nodes" in out
    assert "input 'scheduler' is not an input of KSampler" in out


def test_a_custom_lora_loader_that_is_not_installed(
    tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project_on(tmp_path, fake_comfy.url, '[loras]\nloader = "NunchakuQwenImageLoraLoader"')
    code, out = doctor(capsys, str(root))
    assert code == 1
    assert "node class NunchakuQwenImageLoraLoader is not installed" in out
    assert '[loras] loader = "LoraLoaderModelOnly"' in out


def test_preview_backends_have_nothing_to_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = doctor(capsys, str(copy_sample(tmp_path / "samurai")))
    assert code == 0
    assert "backend preview: preview" in out and "nothing to check" in out


def test_without_a_folder_the_user_config_is_used(
    fake_comfy: FakeComfy, user_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user_config.parent.mkdir(parents=True)
    user_config.write_text(f'[[backends]]\nname = "home"\nurl = "{fake_comfy.url}"\n',
                           encoding="utf-8")
    code, out = doctor(capsys)
    assert code == 0, out
    assert f"backend home: comfyui at {fake_comfy.url}" in out


def test_local_model_files_are_checked_with_comfyui_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_sample(tmp_path / "samurai")
    comfyui = tmp_path / "ComfyUI"
    comfyui.mkdir()
    code, out = doctor(capsys, str(root), "--comfyui-dir", str(comfyui))
    assert code == 1
    assert f"keyframed models download --set qwen-2511 --comfyui-dir {comfyui}" in out
    assert f"keyframed models download --set wan-2.2 --comfyui-dir {comfyui}" in out

    code, out = doctor(capsys, str(root), "--comfyui-dir", str(tmp_path / "nowhere"))
    assert code == 1
    assert "ComfyUI folder not found" in out


def test_every_model_setting_is_checked() -> None:
    assert model_setting_keys() == set(MODEL_KEYS)
    files = configured_files(Settings())
    assert {f.dotted for f in files} >= {"models.edit_unet", "loras.instyle.file",
                                         "loras.wan_low.file"}
    assert len(files) == len(MODEL_KEYS) + 6
