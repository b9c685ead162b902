"""Which node inputs list model files, and the files the fake server pretends to have installed.

The recorded ``object_info.json`` comes from a ComfyUI with no models, so every model list in it
is empty. The fake fills those lists from a per-server set of "installed" file names, the way
ComfyUI fills them from ``models/<folder>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# The folder keys of GET /models, in ComfyUI 0.8.0's order (see transcripts/get_models.json).
# The legacy aliases ``unet`` and ``clip`` are not keys; ComfyUI serves them under
# ``diffusion_models`` and ``text_encoders``.
MODEL_FOLDERS: tuple[str, ...] = (
    "checkpoints",
    "configs",
    "loras",
    "vae",
    "text_encoders",
    "diffusion_models",
    "clip_vision",
    "style_models",
    "embeddings",
    "diffusers",
    "vae_approx",
    "controlnet",
    "gligen",
    "upscale_models",
    "latent_upscale_models",
    "custom_nodes",
    "hypernetworks",
    "photomaker",
    "classifiers",
    "model_patches",
    "audio_encoders",
)


def _inputs(folder: str, *pairs: tuple[str, str]) -> dict[tuple[str, str], str]:
    return {pair: folder for pair in pairs}


# (class_type, input name) -> model folder whose file names are that COMBO's options.
MODEL_INPUTS: dict[tuple[str, str], str] = {
    **_inputs(
        "checkpoints",
        ("CheckpointLoaderSimple", "ckpt_name"),
        ("CheckpointLoader", "ckpt_name"),
        ("unCLIPCheckpointLoader", "ckpt_name"),
        ("ImageOnlyCheckpointLoader", "ckpt_name"),
        ("CreateHookModelAsLora", "ckpt_name"),
        ("CreateHookModelAsLoraModelOnly", "ckpt_name"),
    ),
    **_inputs(
        "loras",
        ("LoraLoader", "lora_name"),
        ("LoraLoaderModelOnly", "lora_name"),
        ("CreateHookLora", "lora_name"),
        ("CreateHookLoraModelOnly", "lora_name"),
    ),
    **_inputs("vae", ("VAELoader", "vae_name")),
    **_inputs(
        "text_encoders",
        ("CLIPLoader", "clip_name"),
        ("DualCLIPLoader", "clip_name1"),
        ("DualCLIPLoader", "clip_name2"),
        ("TripleCLIPLoader", "clip_name1"),
        ("TripleCLIPLoader", "clip_name2"),
        ("TripleCLIPLoader", "clip_name3"),
        ("QuadrupleCLIPLoader", "clip_name1"),
        ("QuadrupleCLIPLoader", "clip_name2"),
        ("QuadrupleCLIPLoader", "clip_name3"),
        ("QuadrupleCLIPLoader", "clip_name4"),
    ),
    **_inputs("diffusion_models", ("UNETLoader", "unet_name")),
    **_inputs(
        "controlnet",
        ("ControlNetLoader", "control_net_name"),
        ("DiffControlNetLoader", "control_net_name"),
    ),
    **_inputs("style_models", ("StyleModelLoader", "style_model_name")),
    **_inputs("clip_vision", ("CLIPVisionLoader", "clip_name")),
    **_inputs("gligen", ("GLIGENLoader", "gligen_name")),
    **_inputs("diffusers", ("DiffusersLoader", "model_path")),
    **_inputs("hypernetworks", ("HypernetworkLoader", "hypernetwork_name")),
    **_inputs("upscale_models", ("UpscaleModelLoader", "model_name")),
    **_inputs("photomaker", ("PhotoMakerLoader", "photomaker_model_name")),
    **_inputs("latent_upscale_models", ("LatentUpscaleModelLoader", "model_name")),
    **_inputs("model_patches", ("ModelPatchLoader", "name")),
}

# Options ComfyUI appends after the files of a folder (VAELoader's weightless identity VAE).
EXTRA_OPTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("VAELoader", "vae_name"): ("pixel_space",)
}

# Empty COMBO lists in object_info.json that are NOT model folders (input-dir pickers and the
# like); the conformance test checks that every empty list is either here or in MODEL_INPUTS.
NON_MODEL_EMPTY_LISTS: frozenset[tuple[str, str]] = frozenset(
    {
        ("LoadLatent", "latent"),
        ("LoadImageOutput", "image"),
        ("Load3D", "model_file"),
        ("LoadVideo", "file"),
        ("CustomCombo", "choice"),
        ("OpenAIInputFiles", "file"),
        ("GeminiInputFiles", "file"),
    }
)

# The models of reference/models.md that keyframed's default config uses (Qwen-Image-Edit 2511,
# Qwen-Image t2i, Wan 2.2 i2v first/last frame, and their LoRAs).
DEFAULT_MODELS: Mapping[str, tuple[str, ...]] = {
    "diffusion_models": (
        "qwen_image_edit_2511_fp8mixed.safetensors",
        "qwen_image_fp8_e4m3fn.safetensors",
        "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
        "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors",
    ),
    "text_encoders": (
        "qwen_2.5_vl_7b_fp8_scaled.safetensors",
        "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
    ),
    "vae": ("qwen_image_vae.safetensors", "wan_2.1_vae.safetensors"),
    "loras": (
        "Qwen-Image-Edit-2511-Lightning-4steps-V1.0-bf16.safetensors",
        "2511-AnyPose-base-000006250.safetensors",
        "2511-AnyPose-helper-00006000.safetensors",
        "InStyle-0.5.safetensors",
        "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
        "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors",
    ),
}


def normalise_models(models: Mapping[str, Iterable[str]] | None) -> dict[str, list[str]]:
    """Return a folder -> sorted file names map, rejecting folders ComfyUI does not have.

    Args:
        models: The installed files per folder; ``None`` means :data:`DEFAULT_MODELS`.

    Raises:
        ValueError: A folder is not one of :data:`MODEL_FOLDERS`.
    """
    chosen = DEFAULT_MODELS if models is None else models
    unknown = set(chosen) - set(MODEL_FOLDERS)
    if unknown:
        raise ValueError(f"unknown model folders {sorted(unknown)}; use one of {MODEL_FOLDERS}")
    # ComfyUI's folder_paths.get_filename_list returns sorted names.
    return {folder: sorted(set(names)) for folder, names in chosen.items()}
