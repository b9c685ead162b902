"""``python -m bench.gpu --comfyui PATH [--device cuda|cpu] [--port N]``: the real-engine run.

1. Writes the weight files keyframed's templates name (:mod:`bench.gpu.weights`, run with
   ``--comfy-python``, default this interpreter), few-layer and random.
2. Starts that ComfyUI (:mod:`bench.gpu.serve`) with ``--base-directory`` holding them.
3. Copies ``examples/samurai``, gives it a ``keyframed.toml`` (approval auto, a comfyui backend
   at that server, small sizes and few frames) and runs ``keyframed run`` on it.
4. Checks ComfyUI's history and log (:mod:`bench.gpu.check`) and prints per template the
   execution time and keyframed's overhead per job; writes ``report.json`` in ``--work``.

Exit status 0 only when every check passed. ``--tiny`` (default on CPU) shrinks the text
encoders and the Qwen DiT's width (:mod:`bench.gpu.tiny`); on a GPU the real widths are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.gpu import check
from keyframed.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

PROJECT_TOML = """\
# Written by bench.gpu: a real ComfyUI on generated few-layer weights.
approval = "auto"

[image]
width = {iw}
height = {ih}
steps = 2
t2i_steps = 2

[video]
width = {vw}
height = {vh}
fps = {fps}
steps = 2
split_step = 1

[run]
max_attempts = 1

[[backends]]
name = "engine"
kind = "comfyui"
url = "http://127.0.0.1:{port}"
max_in_flight = 1
timeout_s = 1800.0
"""


def weight_spec(settings: Settings) -> dict[str, str]:
    """``<folder>/<file>`` → model kind for every file the templates name (from the settings)."""
    m, lo = settings.models, settings.loras
    spec = {
        f"diffusion_models/{m.edit_unet}": "qwen_dit",
        f"diffusion_models/{m.t2i_unet}": "qwen_dit",
        f"text_encoders/{m.clip}": "qwen_te",
        f"vae/{m.vae}": "vae",
        f"vae/{m.wan_vae}": "vae",
        f"diffusion_models/{m.wan_high}": "wan_dit",
        f"diffusion_models/{m.wan_low}": "wan_dit",
        f"text_encoders/{m.wan_clip}": "umt5",
    }
    for lora in (lo.lightning, lo.anypose, lo.anypose_helper, lo.instyle):
        spec[f"loras/{lora.file}"] = "lora_qwen"
    for lora in (lo.wan_high, lo.wan_low):
        spec[f"loras/{lora.file}"] = "lora_wan"
    return spec


def _wait_up(url: str, proc: subprocess.Popen[bytes], deadline_s: float) -> None:
    """Poll ``/system_stats`` until ComfyUI answers; fail fast if it exited."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ComfyUI exited with {proc.returncode} before answering; see its log")
        try:
            if httpx.get(url + "/system_stats", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)  # polling a starting server with a deadline, not waiting for a result
    raise SystemExit(f"ComfyUI did not answer at {url} within {deadline_s:.0f} s")


def main(argv: list[str] | None = None) -> int:
    """Run everything; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n")[0])
    p.add_argument("--comfyui", required=True, help="a ComfyUI checkout (0.3.64 tested)")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--port", type=int, default=8199)
    p.add_argument("--work", default=str(ROOT / ".gpurun"), help="scratch folder (ignored)")
    p.add_argument("--comfy-python", default=sys.executable,
                   help="the Python with ComfyUI's requirements (default: this one)")
    p.add_argument("--tiny", action=argparse.BooleanOptionalAction, default=None,
                   help="shrink the text encoders (default: on for cpu, off for cuda)")
    p.add_argument("--image", default="256x144", help="image size WxH (multiples of 16)")
    p.add_argument("--video", default="128x80", help="video size WxH (multiples of 16)")
    p.add_argument("--fps", type=int, default=1, help="video fps: 5 s scenes → 4n+1 frames")
    p.add_argument("--timeout", type=float, default=3000.0)
    a = p.parse_args(argv)
    tiny = a.device == "cpu" if a.tiny is None else a.tiny
    work = Path(a.work).resolve()
    shutil.rmtree(work / "base", ignore_errors=True)
    shutil.rmtree(work / "project", ignore_errors=True)
    (work / "fe").mkdir(parents=True, exist_ok=True)
    base = work / "base"
    for sub in ("models", "custom_nodes", "input", "output", "user", "temp"):
        (base / sub).mkdir(parents=True)  # main.py lists custom_nodes without creating it
    settings = Settings()
    spec = weight_spec(settings)
    (work / "spec.json").write_text(json.dumps(spec, indent=1))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    flag = ["--tiny"] if tiny else []

    t0 = time.perf_counter()
    subprocess.run([a.comfy_python, "-m", "bench.gpu.weights", "--comfyui", a.comfyui,
                    "--models", str(base / "models"), "--spec", str(work / "spec.json"),
                    "--device", a.device, *flag], check=True, cwd=ROOT, env=env)
    weights_s = time.perf_counter() - t0

    url = f"http://127.0.0.1:{a.port}"
    log_path = work / "comfyui.log"
    server_args = ["--listen", "127.0.0.1", "--port", str(a.port), "--base-directory", str(base),
                   "--front-end-root", str(work / "fe"), "--disable-auto-launch",
                   *(["--cpu"] if a.device == "cpu" else [])]
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [a.comfy_python, "-m", "bench.gpu.serve", "--comfyui", a.comfyui, *flag, "--",
             *server_args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_up(url, server, 300)
        project = work / "project"
        shutil.copytree(ROOT / "examples" / "samurai", project)
        iw, ih = (int(x) for x in a.image.split("x"))
        vw, vh = (int(x) for x in a.video.split("x"))
        (project / "keyframed.toml").write_text(
            PROJECT_TOML.format(iw=iw, ih=ih, vw=vw, vh=vh, fps=a.fps, port=a.port))
        t1 = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "keyframed", "run", str(project),
                              "--timeout", str(a.timeout)], cwd=ROOT)
        run_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        rerun = subprocess.run([sys.executable, "-m", "keyframed", "run", str(project),
                                "--timeout", str(a.timeout)], cwd=ROOT)
        rerun_s = time.perf_counter() - t2
        history = httpx.get(url + "/history", timeout=30).json()
    finally:
        server.terminate()
        server.wait(timeout=60)
    report = check.report(history, log_path.read_text(errors="replace"), base / "output",
                          run_s=run_s, run_rc=run.returncode, comfy_python=a.comfy_python)
    report.update(device=a.device, tiny=tiny, weights_s=round(weights_s, 1),
                  rerun_s=round(rerun_s, 1), rerun_rc=rerun.returncode,
                  date=time.strftime("%Y-%m-%d", time.gmtime()))
    (work / "report.json").write_text(json.dumps(report, indent=1))
    print(check.table(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
