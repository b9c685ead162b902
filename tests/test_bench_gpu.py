"""The real-engine runner's pure parts: the weight files it makes and the checks it applies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from bench.gpu import check
from bench.gpu.__main__ import weight_spec
from keyframed.models.manifest import MANIFEST
from keyframed.settings import Settings


def test_weights_cover_every_file_the_default_set_and_wan_name() -> None:
    spec = weight_spec(Settings())
    made = {rel.split("/", 1)[1] for rel in spec}
    wanted = {f.name for name in ("qwen-2511", "wan-2.2") for f in MANIFEST[name]}
    assert wanted <= made, sorted(wanted - made)


def _entry(width: int, height: int, filename: str, *, error: bool = False) -> dict[str, Any]:
    graph = {
        "1": {"class_type": "CLIPTextEncode", "inputs": {"text": "x"}},
        "2": {"class_type": "EmptySD3LatentImage", "inputs": {"width": width, "height": height}},
    }
    kinds = ["execution_start", "execution_error" if error else "execution_success"]
    messages = [[k, {"timestamp": 1000 + 500 * i}] for i, k in enumerate(kinds)]
    return {"prompt": [0, "p", graph, {}, ["9"]],
            "status": {"status_str": "error" if error else "success", "messages": messages},
            "outputs": {"9": {"images": [{"filename": filename, "subfolder": ""}]}}}


def _png(folder: Path, name: str, size: tuple[int, int]) -> None:
    Image.new("RGB", size).save(folder / name)


LOG_OK = "INFO:root:lora applied: 12 of 12 keys from a.safetensors\n"


def test_report_passes_an_image_at_the_asked_size(tmp_path: Path) -> None:
    _png(tmp_path, "a.png", (256, 144))
    rep = check.report({"p1": _entry(256, 144, "a.png")}, LOG_OK, tmp_path, run_s=2.0, run_rc=0)
    assert rep["ok"], rep["problems"]
    assert rep["jobs"][0]["template"] == "qwen_t2i"
    assert rep["engine_s"] == 0.5
    assert rep["overhead_per_job_s"] == 1.5


def test_report_names_each_failure(tmp_path: Path) -> None:
    _png(tmp_path, "a.png", (128, 144))
    log = ("lora key not loaded: diffusion_model.x.lora_up.weight\n"
           "lora applied: 3 of 12 keys from b.safetensors\n")
    rep = check.report({"p1": _entry(256, 144, "a.png", error=True)}, log, tmp_path,
                       run_s=1.0, run_rc=1)
    text = "\n".join(rep["problems"])
    assert not rep["ok"]
    assert "execution_error" in text
    assert "asked [256, 144], got [128, 144]" in text
    assert "lora key not loaded" in text
    assert "b.safetensors: only 3 of 12" in text
    assert "keyframed run exited 1" in text


def test_report_fails_without_any_lora_line(tmp_path: Path) -> None:
    _png(tmp_path, "a.png", (256, 144))
    rep = check.report({"p1": _entry(256, 144, "a.png")}, "", tmp_path, run_s=1.0, run_rc=0)
    assert rep["problems"] == ["no 'lora applied' line in ComfyUI's log"]
