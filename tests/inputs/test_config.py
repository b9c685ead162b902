"""config.toml documents the defaults; loading layers files, environment and overrides."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from keyframed.errors import ConfigError
from keyframed.inputs.config import load_settings
from keyframed.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_config_toml_equals_the_built_in_defaults() -> None:
    data = tomllib.loads((REPO / "config.toml").read_text(encoding="utf-8"))
    data["backends"] = tuple(data.get("backends", ()))
    assert Settings.model_validate(data) == Settings()


@pytest.mark.parametrize("kinds, recipe_kind", [
    (["comfyui"], "comfyui"), (["comfy-api"], "comfyui"), (["comfyui", "comfy-api"], "comfyui"),
    (["preview"], "preview"),
])
def test_native_and_v2_backends_mix_under_one_recipe_kind(
        tmp_path: Path, kinds: list[str], recipe_kind: str) -> None:
    text = "".join(f"[[backends]]\nname = 'b{n}'\nkind = '{k}'\n" for n, k in enumerate(kinds))
    (tmp_path / "keyframed.toml").write_text(text)
    s = load_settings(tmp_path, env={"KEYFRAMED_CONFIG": str(tmp_path / "none")})
    assert [b.kind for b in s.backends] == kinds and s.backend_kind == recipe_kind


def test_project_file_then_environment_then_overrides(tmp_path: Path) -> None:
    (tmp_path / "keyframed.toml").write_text('approval = "auto"\n[image]\nsteps = 8\n')
    env = {"KEYFRAMED_CONFIG": str(tmp_path / "none"), "KEYFRAMED_QUIET_MS": "250"}
    s = load_settings(tmp_path, env=env, overrides={"image": {"steps": 10}})
    assert (s.approval, s.image.steps, s.watch.quiet_ms) == ("auto", 10, 250)


@pytest.mark.parametrize("text, where", [
    ("approval = 'sometimes'", "approval"),
    ("[image]\nwidth = 1001", "image.width"),
    ("[prompts]\nvideo = '{motion} {oops}'", "prompts.video"),
    ("[[backends]]\nname = 'a'\n[[backends]]\nname = 'a'", "unique"),
    ("[[backends]]\nname = 'a'\n[[backends]]\nname = 'b'\nkind = 'preview'", "cannot be mixed"),
    ("approval = ", "keyframed.toml"),
    ("[storyboard]\nlayer = true", "storyboard.layer"),
    ("[storyboard]\nlayers = 'yes'", "storyboard.layers"),
    ("[storyboard]\nlayers = 1", "storyboard.layers"),
])
def test_bad_config_names_the_key(tmp_path: Path, text: str, where: str) -> None:
    (tmp_path / "keyframed.toml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path, env={"KEYFRAMED_CONFIG": str(tmp_path / "none")})
    assert where in str(err.value)
