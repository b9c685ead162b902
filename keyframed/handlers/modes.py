"""Mode auto-detection, as in the plan's qwen_image.py."""

from __future__ import annotations

from typing import Literal

Mode = Literal["t2i", "edit", "anypose", "composite", "landscape"]
MODES: tuple[str, ...] = ("auto", "t2i", "edit", "anypose", "composite", "landscape")


def detect_mode(scene_type: str | None, has_character: bool, has_pose_change: bool) -> Mode:
    """Pick the generation mode from the scene type (the plan's ``detect_mode``).

    ``has_character`` and ``has_pose_change`` are kept for the plan's signature: a character
    scene always composites, whatever its poses.
    """
    del has_character, has_pose_change
    if scene_type == "landscape":
        return "landscape"
    if scene_type == "character":
        return "composite"
    return "edit"
