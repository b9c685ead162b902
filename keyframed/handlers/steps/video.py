"""Phase 4: the scene's video from its two keyframes (Wan 2.2 first-last-frame).

On the preview backend the "video" is an animated WebP crossfade at ``video-preview.webp``.
"""

from __future__ import annotations

import math

from keyframed.handlers.context import PlanContext
from keyframed.handlers.project import Project, Scene
from keyframed.handlers.recipe import Artifact, InputRef, LoraSpec, Recipe
from keyframed.handlers.steps.common import fill, negative
from keyframed.handlers.steps.composite import keyframe_path


def video_path(scene: Scene, backend_kind: str) -> str:
    """``scene-XX/video.mp4``, or ``video-preview.webp`` on the preview backend."""
    name = "video-preview.webp" if backend_kind == "preview" else "video.mp4"
    return f"{scene.folder}/{name}"


def frame_count(seconds: float, fps: int) -> int:
    """Wan wants 4n+1 frames; round the duration up to the next such length."""
    frames = max(1, math.ceil(seconds * fps))
    return 4 * math.ceil((frames - 1) / 4) + 1


def video_artifact(scene: Scene, project: Project, ctx: PlanContext) -> Artifact:
    """The video recipe; it waits for ``scene-XX/keyframes.approved``."""
    s = ctx.settings
    v = s.video
    path = video_path(scene, s.backend_kind)
    seconds = min(scene.duration, v.max_seconds)
    recipe = Recipe(
        step="video",
        template="wan_flf2v.json",
        mode="video",
        prompt=ctx.with_note(path, fill(s.prompts.video, motion=scene.motion, camera=scene.camera)),
        negative=negative(project, s),
        inputs=(
            InputRef(path=keyframe_path(scene, "start"), role="start", artifact=True),
            InputRef(path=keyframe_path(scene, "end"), role="end", artifact=True),
        ),
        loras=(
            LoraSpec(role="wan_high", file=s.loras.wan_high.file,
                     strength=s.loras.wan_high.strength),
            LoraSpec(role="wan_low", file=s.loras.wan_low.file,
                     strength=s.loras.wan_low.strength),
        ),
        models={
            "unet_high": s.models.wan_high,
            "unet_low": s.models.wan_low,
            "clip": s.models.wan_clip,
            "vae": s.models.wan_vae,
        },
        params={
            "width": v.width,
            "height": v.height,
            "fps": v.fps,
            "length": frame_count(seconds, v.fps),
            "duration": seconds,
            "steps": v.steps,
            "split_step": v.split_step,
            "cfg": v.cfg,
            "shift": v.shift,
            "sampler": s.image.sampler,
            "scheduler": s.image.scheduler,
        },
        seed=ctx.seed(path, scene.seed),
        take=ctx.take(path),
        backend_kind=s.backend_kind,
    )
    return Artifact(path=path, kind="video", scene=scene.number, recipe=recipe, gate="keyframes")
