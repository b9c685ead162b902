"""The ComfyUI workflow templates (API format) and what binds them to a recipe."""
