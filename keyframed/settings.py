"""The validated, frozen configuration model.

Defaults here are the documented defaults of ``config.toml`` (a test keeps the two equal).
Loading (files, environment, flags) is in :mod:`keyframed.inputs.config`; this module is pure so
that handlers can take a ``Settings`` without doing I/O.
"""

from __future__ import annotations

import string
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)


class _Frozen(BaseModel):
    # TOML has inf and nan; no setting means either (an infinite resync_s hangs the loop).
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class LoraSetting(_Frozen):
    """One LoRA file with its strength alone and when stacked with AnyPose + InStyle."""

    file: str
    strength: float = Field(ge=-100, le=100)
    stacked_strength: float | None = Field(default=None, ge=-100, le=100)


class LoraSettings(_Frozen):
    """The plan's LoRAs, in stacking order, and which loader node loads them."""

    loader: str = "LoraLoaderModelOnly"
    lightning: LoraSetting = LoraSetting(
        file="Qwen-Image-Edit-2511-Lightning-4steps-V1.0-bf16.safetensors", strength=1.0
    )
    anypose: LoraSetting = LoraSetting(
        file="2511-AnyPose-base-000006250.safetensors", strength=0.7, stacked_strength=0.55
    )
    anypose_helper: LoraSetting = LoraSetting(
        file="2511-AnyPose-helper-00006000.safetensors", strength=0.7, stacked_strength=0.55
    )
    instyle: LoraSetting = LoraSetting(
        file="InStyle-0.5.safetensors", strength=0.5, stacked_strength=0.45
    )
    wan_high: LoraSetting = LoraSetting(
        file="wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors", strength=1.0
    )
    wan_low: LoraSetting = LoraSetting(
        file="wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors", strength=1.0
    )


class ModelSettings(_Frozen):
    """Model file names as ComfyUI lists them (models/<folder>/<name>)."""

    set: Literal["qwen-2511", "qwen-2509"] = "qwen-2511"
    edit_unet: str = "qwen_image_edit_2511_fp8mixed.safetensors"
    t2i_unet: str = "qwen_image_fp8_e4m3fn.safetensors"
    clip: str = "qwen_2.5_vl_7b_fp8_scaled.safetensors"
    vae: str = "qwen_image_vae.safetensors"
    wan_high: str = "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors"
    wan_low: str = "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"
    wan_clip: str = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
    wan_vae: str = "wan_2.1_vae.safetensors"


class ImageSettings(_Frozen):
    """Sampling for Qwen image steps (the plan: Lightning, 6 steps)."""

    width: int = Field(default=1024, ge=64, le=4096, multiple_of=8)
    height: int = Field(default=576, ge=64, le=4096, multiple_of=8)
    steps: int = Field(default=6, ge=1, le=200)
    cfg: float = Field(default=1.0, ge=0, le=100)
    sampler: str = "euler"
    scheduler: str = "simple"
    shift: float = Field(default=3.1, ge=0, le=100)
    t2i_steps: int = Field(default=20, ge=1, le=200)
    t2i_cfg: float = Field(default=4.0, ge=0, le=100)
    t2i_shift: float = Field(default=3.1, ge=0, le=100)


class VideoSettings(_Frozen):
    """Wan 2.2 first-last-frame settings (lightx2v 4-step defaults)."""

    width: int = Field(default=832, ge=64, le=4096, multiple_of=16)
    height: int = Field(default=480, ge=64, le=4096, multiple_of=16)
    fps: int = Field(default=16, ge=1, le=60)
    steps: int = Field(default=4, ge=1, le=200)
    split_step: int = Field(default=2, ge=1, le=200)
    cfg: float = Field(default=1.0, ge=0, le=100)
    shift: float = Field(default=5.0, ge=0, le=100)
    max_seconds: float = Field(default=10.0, gt=0, le=60)


PROMPT_FIELDS: dict[str, frozenset[str]] = {
    "asset": frozenset({"description", "style"}),
    "style_asset": frozenset({"description"}),
    "background": frozenset({"description"}),
    "character": frozenset({"description"}),
    "anypose": frozenset({"description"}),
    "composite": frozenset({"expression", "camera"}),
    "landscape": frozenset({"frame"}),
    "landscape_end": frozenset({"frame"}),
    "object": frozenset({"frame"}),
    "video": frozenset({"motion", "camera"}),
    "negative": frozenset(),
}


class PromptSettings(_Frozen):
    """Prompt templates; ``{name}`` fields are filled from the scene and assets."""

    asset: str = "{description}. {style}"
    style_asset: str = "Style reference sheet: {description}"
    background: str = (
        "Make an image in the style of image 2 of this scene from image 1: {description}. "
        "No people."
    )
    character: str = (
        "Make an image in the style of image 2 of the person in image 1: {description}. "
        "Plain neutral background."
    )
    anypose: str = (
        "Make the person in image 1 do the exact same pose of the person in image 2. "
        "Changing the style and background of the image of the person in image 1 is "
        "undesirable, so don't do it. The new pose should be pixel accurate to the pose we are "
        "trying to copy. Render it in the style of image 3. {description}."
    )
    composite: str = "Place character naturally in background scene. {expression}. {camera}."
    landscape: str = "Make an image in the style of image 2 of this scene from image 1: {frame}."
    landscape_end: str = "Change the scene in image 1: {frame}. Keep the style of image 2."
    object: str = "Make an image in the style of image 2 of the object in image 1: {frame}."
    video: str = "{motion}. Camera: {camera}."
    negative: str = ""

    @model_validator(mode="after")
    def _check_fields(self) -> PromptSettings:
        for name, allowed in PROMPT_FIELDS.items():
            text = getattr(self, name)
            try:
                used = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
            except ValueError as exc:
                raise ValueError(f"prompts.{name}: {exc} (write {{{{ and }}}} for braces)") from exc
            unknown = sorted(used - allowed)
            if unknown:
                raise ValueError(
                    f"prompts.{name}: unknown field {{{unknown[0]}}}; "
                    f"it may use {', '.join('{' + f + '}' for f in sorted(allowed))}"
                )
        return self


class BackendSettings(_Frozen):
    """One place jobs can run: a ComfyUI server, a Comfy API v2 surface (Comfy Cloud, a
    serverless deployment, ``comfy-api-proxy``) or the built-in preview renderer."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["comfyui", "comfy-api", "preview"] = "comfyui"
    url: str = "http://127.0.0.1:8188"
    max_in_flight: int = Field(default=1, ge=1, le=64)
    token_env: str = "KEYFRAMED_COMFYUI_TOKEN"
    # kind "comfy-api": the environment variable holding the API key (never in a file).
    api_key_env: str = "COMFY_API_KEY"
    timeout_s: float = Field(default=1800.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url_is_a_server(cls, url: str) -> str:
        """A URL ``run`` can use: http(s), a host, a port in range (checked here, at load,
        so ``validate`` refuses what would otherwise be retried forever)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"{url!r} is not a URL keyframed can use ({exc}); "
                             "write it like http://127.0.0.1:8188") from exc
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"{mask_url(url)!r}: the scheme must be http or https, "
                             f"not {parts.scheme or 'none'!r}")
        if not parts.hostname:
            raise ValueError(f"{mask_url(url)!r} names no host; write it like "
                             "http://127.0.0.1:8188")
        if port == 0:
            raise ValueError(f"{mask_url(url)!r}: port 0 is not a port a server listens on")
        return url

    @property
    def shown_url(self) -> str:
        """The URL as it may be shown (status, doctor, logs): a password in it is masked."""
        return mask_url(self.url)


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL (the default port filled in), without userinfo."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def mask_url(url: str) -> str:
    """``url`` with the password of its userinfo (``http://user:pw@host``) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("@", 1)[-1] if "@" in url else url
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class WatchSettings(_Frozen):
    """How edits become reconcile passes."""

    quiet_ms: int = Field(default=100, ge=0, le=10_000)
    cap_ms: int = Field(default=2000, ge=0, le=60_000)
    resync_s: float = Field(default=300.0, gt=0)
    poll: bool = False


class RunSettings(_Frozen):
    """Retries and limits of job execution."""

    max_attempts: int = Field(default=3, ge=1, le=100)
    lost_resubmits: int = Field(default=3, ge=0, le=100)
    retry_initial_s: float = Field(default=0.5, ge=0)
    retry_max_s: float = Field(default=30.0, ge=0)
    max_image_pixels: int = Field(default=64_000_000, ge=1)
    # ``keyframed run`` waits this long for a backend that does not answer (one still
    # starting) before it exits with "no backend"; one that answers but lacks a file, at once.
    backend_start_wait_s: float = Field(default=10.0, ge=0, le=3600)


class CacheSettings(_Frozen):
    """[cache]: the output cache under .keyframed/cache/ (every build kept, LRU-bounded)."""

    max_mb: int = Field(default=2048, ge=0)


class TakesSettings(_Frozen):
    """[takes]: how many takes (candidates, consecutive seeds) one retry makes, per kind."""

    asset: int = Field(default=1, ge=1, le=16)
    layer: int = Field(default=1, ge=1, le=16)
    keyframe: int = Field(default=1, ge=1, le=16)
    video: int = Field(default=1, ge=1, le=16)


class StoryboardSettings(_Frozen):
    """[storyboard]: what storyboard.png shows besides each scene's keyframes and video."""

    # Strict: TOML has booleans, and ``layers = "no"`` read as true would surprise.
    layers: StrictBool = False


class Settings(_Frozen):
    """Everything configurable, validated once at load."""

    approval: Literal["manual", "auto"] = "manual"
    seed_salt: str = "keyframed"
    models: ModelSettings = ModelSettings()
    loras: LoraSettings = LoraSettings()
    image: ImageSettings = ImageSettings()
    video: VideoSettings = VideoSettings()
    prompts: PromptSettings = PromptSettings()
    watch: WatchSettings = WatchSettings()
    run: RunSettings = RunSettings()
    cache: CacheSettings = CacheSettings()
    takes: TakesSettings = TakesSettings()
    storyboard: StoryboardSettings = StoryboardSettings()
    backends: tuple[BackendSettings, ...] = (BackendSettings(name="local"),)
    # Servers (scheme://host:port) that the user's own configuration names: only these are
    # sent a token from the environment. Filled by the loader, never read from a file.
    token_origins: tuple[str, ...] = Field(default=(), exclude=True)

    @model_validator(mode="after")
    def _check_backends(self) -> Settings:
        if not self.backends:
            raise ValueError("at least one backend is needed under [[backends]]")
        names = [b.name for b in self.backends]
        if len(set(names)) != len(names):
            raise ValueError(f"backend names must be unique, got {names}")
        kinds = {b.kind for b in self.backends}
        if "preview" in kinds and len(kinds) > 1:
            # Previews are not the real thing: a project is either an animatic or real.
            raise ValueError("preview backends cannot be mixed with comfyui or comfy-api ones")
        if self.video.split_step >= self.video.steps and self.video.steps > 1:
            raise ValueError("video.split_step must be below video.steps")
        return self

    def may_send_token(self, backend: BackendSettings) -> bool:
        """True when the user's own configuration names this backend's server: a project's
        keyframed.toml may add servers, but never decides which of them get a secret."""
        return origin(backend.url) in self.token_origins

    @property
    def backend_kind(self) -> str:
        """The engine every backend shares; it is part of every recipe.

        Native servers and v2 surfaces both run ComfyUI with the same templates, so either,
        or both, or moving from one to the other, is the recipe kind ``comfyui``: an artifact
        made on one is not out of date on the other. Only the preview renderer makes other
        outputs (``preview``).
        """
        return "preview" if self.backends[0].kind == "preview" else "comfyui"
