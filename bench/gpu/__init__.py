"""Execute every template with ComfyUI's own model code on generated few-layer weights (issue 16).

``python -m bench.gpu --comfyui PATH`` makes the weight files from ComfyUI's own model classes,
starts that ComfyUI on them and runs ``keyframed run`` on a copy of ``examples/samurai``; see
bench/README.md ("Real engine").
"""
