"""Every model file the workflows need, grouped in download sets.

This module is data plus pure helpers (no I/O); :mod:`keyframed.models.download` does the
checking and downloading. Repos, paths, sizes and hashes come from ``reference/models.md``:

- ``size`` and ``sha256`` are filled in only where a pinned source recorded them exactly; where
  models.md gives only a rounded size or a shortened hash they are ``None``, and the download is
  verified against what the hub reports instead (the size of the file, and for LFS files the ETag,
  which is the file's sha256).
- ``approx_size`` is the rounded size the hub shows, used only to tell a person roughly how much
  is left to fetch when the hub cannot be asked.
- ``name`` is the file name ComfyUI lists under ``models/<folder>/``; it must equal the names in
  :class:`keyframed.settings.ModelSettings` / :class:`keyframed.settings.LoraSettings` (a test
  keeps them equal).

Sets: ``qwen-2511`` (default: Qwen-Image-Edit-2511 fp8, its Lightning 4-step LoRA, AnyPose,
InStyle, the Qwen-Image text-to-image model for asset generation, the shared text encoder and
VAE), ``qwen-2509`` (the same around Qwen-Image-Edit-2509; AnyPose targets 2511 and is untested on
2509 but the workflows stack it, so it is included), ``wan-2.2`` (Wan 2.2 14B I2V high/low experts
used for first-last-frame video, umt5 encoder, Wan 2.1 VAE, lightx2v 4-step LoRAs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

SetName = Literal["qwen-2511", "qwen-2509", "wan-2.2"]
SET_NAMES: tuple[SetName, ...] = ("qwen-2511", "qwen-2509", "wan-2.2")
DEFAULT_SET: SetName = "qwen-2511"

Folder = Literal["diffusion_models", "text_encoders", "vae", "loras"]

_GB = 1_000_000_000
_MB = 1_000_000


@dataclass(frozen=True)
class ModelFile:
    """One file on the Hugging Face Hub and where ComfyUI expects it.

    Attributes:
        repo: Hub model repository id, ``owner/name``.
        path: Path of the file inside the repository.
        folder: Sub-folder of ``ComfyUI/models`` the file belongs in.
        size: Exact size in bytes when known, else ``None``.
        sha256: Exact lowercase sha256 hex digest when known, else ``None``.
        approx_size: Rounded size for messages when ``size`` is unknown.
        revision: Branch, tag or commit to download from.
    """

    repo: str
    path: str
    folder: Folder
    size: int | None = None
    sha256: str | None = None
    approx_size: int | None = None
    revision: str = "main"

    @property
    def name(self) -> str:
        """The file name under ``models/<folder>/`` (the path's last segment)."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def rel_path(self) -> str:
        """``<folder>/<name>``, relative to ``ComfyUI/models``."""
        return f"{self.folder}/{self.name}"

    @property
    def display_size(self) -> int | None:
        """The exact size if known, else the approximate one."""
        return self.size if self.size is not None else self.approx_size


Manifest = Mapping[str, tuple[ModelFile, ...]]
"""Set name → files; :data:`MANIFEST` is the real one, tests pass small stand-ins."""

_QWEN_EDIT = "Comfy-Org/Qwen-Image-Edit_ComfyUI"
_QWEN = "Comfy-Org/Qwen-Image_ComfyUI"
_WAN22 = "Comfy-Org/Wan_2.2_ComfyUI_Repackaged"
_WAN21 = "Comfy-Org/Wan_2.1_ComfyUI_repackaged"

_EDIT_2511 = ModelFile(
    _QWEN_EDIT,
    "split_files/diffusion_models/qwen_image_edit_2511_fp8mixed.safetensors",
    "diffusion_models",
    size=20_533_762_817,
)
_EDIT_2509 = ModelFile(
    _QWEN_EDIT,
    "split_files/diffusion_models/qwen_image_edit_2509_fp8_e4m3fn.safetensors",
    "diffusion_models",
    approx_size=20_400 * _MB,
)
_T2I = ModelFile(
    _QWEN,
    "split_files/diffusion_models/qwen_image_fp8_e4m3fn.safetensors",
    "diffusion_models",
    approx_size=20_400 * _MB,
)
_QWEN_CLIP = ModelFile(
    _QWEN,
    "split_files/text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors",
    "text_encoders",
    size=9_384_670_680,
    sha256="cb5636d852a0ea6a9075ab1bef496c0db7aef13c02350571e388aea959c5c0b4",
)
_QWEN_VAE = ModelFile(
    _QWEN,
    "split_files/vae/qwen_image_vae.safetensors",
    "vae",
    size=253_806_246,
    sha256="a70580f0213e67967ee9c95f05bb400e8fb08307e017a924bf3441223e023d1f",
)
_LIGHTNING_2511 = ModelFile(
    "lightx2v/Qwen-Image-Edit-2511-Lightning",
    "Qwen-Image-Edit-2511-Lightning-4steps-V1.0-bf16.safetensors",
    "loras",
    size=849_608_296,
    sha256="22226e8d05d354bb356627d428809f5afd7819399b077238a2b70a82883a904f",
)
_LIGHTNING_2509 = ModelFile(
    "lightx2v/Qwen-Image-Lightning",
    "Qwen-Image-Edit-2509/Qwen-Image-Edit-2509-Lightning-4steps-V1.0-bf16.safetensors",
    "loras",
    approx_size=850 * _MB,
)
_ANYPOSE = ModelFile(
    "lilylilith/AnyPose",
    "2511-AnyPose-base-000006250.safetensors",
    "loras",
    size=295_146_208,
    sha256="0396314e43b94f7520cf5242e6aa6e8e9095d784f7e87ee45980c2e541ee8c4d",
)
_ANYPOSE_HELPER = ModelFile(
    "lilylilith/AnyPose",
    "2511-AnyPose-helper-00006000.safetensors",
    "loras",
    size=295_146_216,
    sha256="674340c62fff3cf981d0cfc55daf2f0e6f51c56b50159e241d931748200cf1eb",
)
_INSTYLE = ModelFile(
    "peteromallet/Qwen-Image-Edit-InStyle",
    "InStyle-0.5.safetensors",
    "loras",
    approx_size=148 * _MB,
)

_WAN_FILES: tuple[ModelFile, ...] = (
    ModelFile(
        _WAN22,
        "split_files/diffusion_models/wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
        "diffusion_models",
        approx_size=14_300 * _MB,
    ),
    ModelFile(
        _WAN22,
        "split_files/diffusion_models/wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors",
        "diffusion_models",
        approx_size=14_300 * _MB,
    ),
    ModelFile(
        _WAN21,
        "split_files/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors",
        "text_encoders",
        size=6_735_906_897,
    ),
    ModelFile(_WAN22, "split_files/vae/wan_2.1_vae.safetensors", "vae", approx_size=254 * _MB),
    ModelFile(
        _WAN22,
        "split_files/loras/wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
        "loras",
        approx_size=1_230 * _MB,
    ),
    ModelFile(
        _WAN22,
        "split_files/loras/wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors",
        "loras",
        approx_size=1_230 * _MB,
    ),
)

MANIFEST: Manifest = {
    "qwen-2511": (
        _EDIT_2511, _T2I, _QWEN_CLIP, _QWEN_VAE, _LIGHTNING_2511, _ANYPOSE, _ANYPOSE_HELPER,
        _INSTYLE,
    ),
    "qwen-2509": (
        _EDIT_2509, _T2I, _QWEN_CLIP, _QWEN_VAE, _LIGHTNING_2509, _ANYPOSE, _ANYPOSE_HELPER,
        _INSTYLE,
    ),
    "wan-2.2": _WAN_FILES,
}


def files_for(set_name: str, manifest: Manifest | None = None) -> tuple[ModelFile, ...]:
    """Return the files of one set.

    Args:
        set_name: One of :data:`SET_NAMES` (or a key of ``manifest``).
        manifest: Another manifest to look in (tests use small files); default :data:`MANIFEST`.

    Raises:
        KeyError: With the known set names, when ``set_name`` is not one of them.
    """
    table = MANIFEST if manifest is None else manifest
    try:
        return table[set_name]
    except KeyError:
        raise KeyError(f"unknown model set {set_name!r}; known: {', '.join(table)}") from None


def all_file_names(manifest: Manifest | None = None) -> set[str]:
    """Every ComfyUI file name in every set."""
    table = MANIFEST if manifest is None else manifest
    return {f.name for files in table.values() for f in files}


def human_size(size: int | None, *, approx: bool = False) -> str:
    """Format a byte count the way the hub shows it (powers of 1000): ``"20.5 GB"``.

    Args:
        size: Bytes, or ``None`` for an unknown size.
        approx: Prefix ``~`` because the number is a rounded one.
    """
    if size is None:
        return "size unknown"
    prefix = "~" if approx else ""
    for unit, factor in (("TB", 1000 * _GB), ("GB", _GB), ("MB", _MB), ("kB", 1000)):
        if size >= factor:
            return f"{prefix}{size / factor:.1f} {unit}"
    return f"{prefix}{size} B"
