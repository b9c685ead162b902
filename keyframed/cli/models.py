"""``keyframed models check|download``: the model files the workflows need, in a ComfyUI folder.

Exit codes: 0 when every file of the set is present (and verified where a hash is known),
1 when something is missing, wrong or failed to download; the summary says what and how much.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from keyframed.errors import ConfigError, DownloadError
from keyframed.models.download import CheckReport, FileState, check, download
from keyframed.models.manifest import DEFAULT_SET, SET_NAMES, human_size

_LABEL = {
    FileState.OK: "ok",
    FileState.MISSING: "MISSING",
    FileState.WRONG_SIZE: "WRONG SIZE",
    FileState.WRONG_HASH: "WRONG SHA256",
    FileState.UNVERIFIED: "unverified",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``models`` subcommand."""
    parser = sub.add_parser(
        "models",
        help="check or download the model files (Hugging Face Hub, resumable, verified)",
        description="Check or download the model and LoRA files of a set into ComfyUI/models. "
        "Downloads resume after an interruption and are verified by size and sha256. "
        "HF_ENDPOINT (a mirror) and HF_TOKEN are honoured.",
    )
    parser.add_argument("action", choices=("check", "download"))
    parser.add_argument(
        "--comfyui-dir", type=Path, default=None, metavar="DIR",
        help="the ComfyUI folder (default: $COMFYUI_DIR, else ~/ComfyUI)",
    )
    parser.add_argument(
        "--set", dest="model_set", choices=SET_NAMES, default=DEFAULT_SET,
        help=f"which models (default: {DEFAULT_SET})",
    )
    parser.add_argument(
        "--rehash", action="store_true",
        help="re-read every file to verify it instead of trusting remembered digests",
    )
    parser.set_defaults(func=run)


def comfyui_dir(flag: Path | None) -> Path:
    """The ComfyUI folder: the flag, else ``$COMFYUI_DIR``, else ``~/ComfyUI``."""
    if flag is not None:
        return flag.expanduser()
    env = os.environ.get("COMFYUI_DIR", "").strip()
    return Path(env).expanduser() if env else Path.home() / "ComfyUI"


def run(args: argparse.Namespace) -> int:
    """Run ``models check`` or ``models download``; return the exit code."""
    root = comfyui_dir(args.comfyui_dir)
    try:
        if args.action == "download":
            return _download(root, args.model_set, args.rehash)
        report = check(root, args.model_set, rehash=args.rehash)
    except (ConfigError, DownloadError) as exc:
        print(f"error: {exc}")
        return 1
    print_report(report)
    return 0 if report.all_present else 1


def _download(root: Path, set_name: str, rehash: bool) -> int:
    try:
        summary = download(
            root, set_name, rehash=rehash, log=lambda line: print(line, flush=True)
        )
    except DownloadError as exc:
        print(f"error: {exc}")
        print_report(check(root, set_name, remote=False))
        return 1
    fetched = f"{len(summary.fetched)} downloaded ({human_size(summary.bytes_fetched)})"
    print(f"{set_name}: {fetched}, {len(summary.present)} already present.")
    return 0


def print_report(report: CheckReport) -> None:
    """Print one line per file and a summary of what is missing."""
    print(f"Model set {report.set_name} in {report.models_dir}:")
    for item in report.files:
        line = f"  {_LABEL[item.state]:<13}{item.size_text:>10}  {item.file.rel_path}"
        detail = _detail(item.state, item.local_size)
        print(line + (f"  ({detail})" if detail else ""))
        if item.note:
            print(f"      note: {item.note}")
    if report.hub_note:
        print(f"Note: {report.hub_note}")
        print("Sizes marked ~ are estimates; files without a known sha256 were checked by size.")
    if report.all_present:
        print(f"All {len(report.files)} files present.")
        return
    todo = report.to_fetch
    approx = any(r.size is None for r in todo)
    total = human_size(report.bytes_to_fetch, approx=approx)
    print(f"{len(todo)} of {len(report.files)} files missing or wrong: {total} to download.")
    print(f"Run: keyframed models download --set {report.set_name} "
          f"--comfyui-dir {report.models_dir.parent}")


def _detail(state: FileState, local_size: int | None) -> str:
    if state is FileState.WRONG_SIZE:
        return f"the file has {local_size} bytes"
    if state is FileState.WRONG_HASH:
        return "the content differs; it will be downloaded again"
    return ""
