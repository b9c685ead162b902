"""keyframed: keeps an AI video project up to date on ComfyUI."""

__version__ = "0.1.0"
