"""Run the fake ComfyUI standalone (benchmarks, manual trials).

``python -m tests.fakecomfy --port 8188 --object-info PATH --output-dir DIR [--job-seconds 0.2]``
"""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
import threading
from pathlib import Path

from .server import FakeComfy


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.fakecomfy", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--object-info", type=Path, required=True, help="object_info.json")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--base-dir", type=Path, help="input/ and temp/ (default: temp dir)")
    parser.add_argument("--job-seconds", type=float, default=0.0, help="simulated job duration")
    parser.add_argument(
        "--models", type=Path, help='JSON {"loras": ["x.safetensors"], ...} (default: models.md)'
    )
    parser.add_argument("--cache", choices=("classic", "lru", "none"), default="classic")
    parser.add_argument("--preview-method", choices=("none", "latent2rgb"), default="none",
                        help="latent2rgb: a JPEG preview frame per sampler step")
    parser.add_argument("--cache-size", type=int, default=0, help="entries kept with --cache lru")
    parser.add_argument(
        "--jobs-api", action="store_true", help="also serve newer ComfyUI's /api/jobs"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT or SIGTERM."""
    args = _parser().parse_args(argv)
    base = args.base_dir or Path(tempfile.mkdtemp(prefix="fakecomfy-"))
    models = json.loads(args.models.read_text()) if args.models else None
    server = FakeComfy(
        args.object_info,
        base,
        output_dir=args.output_dir,
        host=args.host,
        port=args.port,
        models=models,
        job_seconds=args.job_seconds,
        cache_mode=args.cache,
        cache_size=args.cache_size,
        previews=args.preview_method != "none",
        jobs_api=args.jobs_api,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    with server:
        print(f"fake ComfyUI listening on {server.url} (input: {server.dirs.input})", flush=True)
        done.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
