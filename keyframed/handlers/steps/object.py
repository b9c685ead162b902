"""Object scenes: InStyle only, object asset + style (see :mod:`keyframed.handlers.steps.landscape`,
which shares the edit-chain shape: keyframe-end is an edit of keyframe-start)."""

from keyframed.handlers.steps.landscape import object_artifacts

__all__ = ["object_artifacts"]
