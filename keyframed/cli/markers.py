"""``keyframed approve``, ``retry`` and ``pick``: write the same markers a person would drop."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from keyframed.daemon.snapshot import PICK_SUFFIX, pick_markers, take_snapshot
from keyframed.daemon.store import STATE_DIR, JobStore, Store
from keyframed.errors import ConfigError, StoreError
from keyframed.fsio import UnsafePathError, write_inside
from keyframed.handlers.approvals import ASSETS_MARKER, keyframes_marker
from keyframed.inputs.config import load_settings
from keyframed.inputs.guards import RETRY_SUFFIX, retry_candidates

RETRY_TARGETS = ("start", "end", "background", "video", "character-start", "character-end")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``approve`` and ``retry``."""
    a = sub.add_parser("approve", help="approve the assets, or one scene's keyframes")
    a.add_argument("dir", type=Path, help="project folder")
    a.add_argument("what", choices=("assets", "scene"), help="assets | scene N")
    a.add_argument("scene", type=int, nargs="?", help="scene number (with 'scene')")
    a.add_argument("--note", default="", help="text kept in the marker")
    a.set_defaults(func=approve)
    r = sub.add_parser("retry", help="make a new take of one artifact of a scene, or generate "
                       "a failed Phase 2.5 asset again")
    r.add_argument("dir", type=Path, help="project folder")
    r.add_argument("what", choices=("scene", "asset"), help="scene N TARGET | asset NAME")
    r.add_argument("scene", help="scene number (scene), or the asset's name (asset)")
    r.add_argument("target", nargs="?", help="which artifact of the scene: start, end, "
                   "background, video, character-start, character-end, or "
                   "character-<name>-start / -end in a two-character scene")
    r.add_argument("--note", default="", help="added to the prompt of the new take")
    r.add_argument("--takes", type=int, default=None, metavar="N",
                   help="make N takes at once (consecutive seeds), all kept; default: [takes]")
    r.set_defaults(func=retry)
    p = sub.add_parser("pick", help="choose which take of an artifact is the live file")
    p.add_argument("dir", type=Path, help="project folder")
    p.add_argument("what", choices=("scene",), help="scene")
    p.add_argument("scene", type=int, help="scene number")
    p.add_argument("target", help="which artifact (as for retry)")
    p.add_argument("take", type=int, help="the take number (scene-XX/takes/<name>.take-N.*)")
    p.set_defaults(func=pick)


def marker_for_retry(scene: int, target: str, suffix: str = ".retry") -> str:
    """``scene-XX/keyframe-start.retry`` and friends (``.pick`` with that suffix)."""
    name = f"keyframe-{target}" if target in ("start", "end") else target
    return f"scene-{scene:02d}/{name}{suffix}"


def _write(root: Path, rel: str, text: str) -> int:
    if not root.is_dir():
        print(f"keyframed: {root}: no such project folder", file=sys.stderr)
        return 1
    path = root / rel
    if not path.parent.is_dir():
        print(f"keyframed: {path.parent}: no such scene folder", file=sys.stderr)
        return 1
    try:
        # Never through a symlink: a scene folder linked elsewhere must not make this write
        # outside the project (the daemon would not read the marker there either).
        write_inside(root, rel, text.encode())
    except UnsafePathError as exc:
        print(f"keyframed: {rel}: {exc}; replace the link with a real folder or file",
              file=sys.stderr)
        return 1
    print(f"wrote {rel}")
    return 0


def approve(args: argparse.Namespace) -> int:
    """Write ``assets.approved`` or ``scene-XX/keyframes.approved``."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    text = f"approved {stamp} by keyframed approve\n{args.note}".strip() + "\n"
    if args.what == "assets":
        return _write(args.dir, ASSETS_MARKER, text)
    if args.scene is None:
        print("keyframed: approve DIR scene N needs the scene number", file=sys.stderr)
        return 2
    return _write(args.dir, keyframes_marker(args.scene), text)


def retry(args: argparse.Namespace) -> int:
    """Write a retry marker (its note goes into the new take's prompt), or retry an asset."""
    if args.what == "asset":
        return retry_asset(args.dir, args.scene)
    if not args.scene.isdigit() or args.target is None:
        print("keyframed: retry DIR scene N TARGET needs a scene number and a target "
              f"({', '.join(RETRY_TARGETS)}, or character-<name>-start/-end)", file=sys.stderr)
        return 2
    if args.takes is not None and not 1 <= args.takes <= 16:
        print("keyframed: --takes is 1 to 16", file=sys.stderr)
        return 2
    refused = refuse_target(args.dir, int(args.scene), args.target, PICK_OR_RETRY["retry"])
    if refused is not None:
        print(refused, file=sys.stderr)
        return 1
    # --takes N: a first line ``takes: N`` (a person may write that line too).
    head = f"takes: {args.takes}\n" if args.takes is not None else ""
    return _write(args.dir, marker_for_retry(int(args.scene), args.target), head + args.note)


# Which markers of a scene each command may write (a copied layer is retaken through what it
# copies, so it has a retry name but no pick name).
PICK_OR_RETRY = {"retry": RETRY_SUFFIX, "pick": PICK_SUFFIX}


def target_name(marker: str) -> str:
    """``scene-03/keyframe-start.retry`` -> ``start`` (what the command line takes)."""
    stem = marker.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return stem.removeprefix("keyframe-") if stem in ("keyframe-start", "keyframe-end") else stem


def scene_targets(root: Path, scene: int, suffix: str) -> tuple[list[str] | None, str]:
    """The targets that ``scene`` has, as this command spells them; or None and why not.

    Drawn from the plan (``keyframed plan``'s own snapshot, which changes nothing): a scene
    that input errors hold back has the targets of the outputs it had.
    """
    try:
        settings = load_settings(root)
        store = Store.for_project(root)
    except (ConfigError, StoreError) as exc:
        return None, str(exc)
    try:
        snap = take_snapshot(root, settings, store)
    finally:
        store.close()
    if snap.scene_numbers is not None and scene not in snap.scene_numbers:
        known = ", ".join(str(n) for n in sorted(snap.scene_numbers)) or "none"
        return None, f"scene {scene} (scene-{scene:02d}/) is not in scene-breakdown.md " \
                     f"(scenes: {known})"
    markers = {m for a, m in retry_candidates(snap.artifacts)} if suffix == RETRY_SUFFIX \
        else set(pick_markers(snap.artifacts))
    names = {target_name(m) for m in markers if m.startswith(f"scene-{scene:02d}/")}
    names |= {target_name(h.path) if h.kind != "video" else "video"
              for h in snap.held if h.scene == scene}
    if not names:
        errors = "; ".join(str(d) for d in snap.diagnostics[:3]) or "nothing planned"
        return None, f"the targets of scene {scene} are not known: {errors}; fix that " \
                     f"first (`keyframed validate {root}`)"
    return sorted(names), ""


def refuse_target(root: Path, scene: int, target: str, suffix: str) -> str | None:
    """Why ``target`` cannot be written for ``scene`` (with the valid names), or None.

    A marker nothing would consume is worse than a refusal: it sits there and the take the
    person asked for never comes (``character-start`` in a two-character scene).
    """
    if not root.is_dir():
        return None  # the write says so
    names, why = scene_targets(root, scene, suffix)
    if names is None:
        return f"keyframed: {why}; nothing was written"
    if target_name(f"x/{target}.x") in names or target in names:
        return None
    return (f"keyframed: scene {scene} has no {target!r}; its targets: {', '.join(names)}; "
            "nothing was written")


def retry_asset(root: Path, name: str) -> int:
    """Let a failed Phase 2.5 asset (``assets/<type>/<name>.png``) be generated again.

    An asset has no scene folder for a marker and no takes, so this clears the failure in the
    state store instead: the next pass (``keyframed run``, or the daemon's next pass) makes a
    new job for it. Only a failed asset can be retried; others are refused with the list.
    """
    if not (root / STATE_DIR).is_dir():
        print(f"keyframed: {root}: nothing was run here yet", file=sys.stderr)
        return 1
    store = Store.for_project(root)
    try:
        jobs = JobStore(store)
        failed = {path: job for path, job in jobs.latest().items()
                  if path.startswith("assets/") and job.state == "failed"}
        wanted = name.removeprefix("assets/").rsplit(".", 1)[0]
        match = [p for p in failed if p.removeprefix("assets/").rsplit(".", 1)[0] == wanted
                 or p.rsplit("/", 1)[-1].rsplit(".", 1)[0] == wanted]
        if len(match) != 1:
            names = ", ".join(sorted(p.rsplit("/", 1)[-1].rsplit(".", 1)[0] for p in failed))
            print(f"keyframed: no failed asset named {name!r}; failed assets: "
                  f"{names or 'none'}", file=sys.stderr)
            return 1
        jobs.set_state(failed[match[0]].id, "superseded")
    finally:
        store.close()
    print(f"{match[0]} will be generated again on the next pass")
    return 0


def pick(args: argparse.Namespace) -> int:
    """Write ``scene-XX/<name>.pick`` holding the take number; the daemon makes that take the
    live file (from the output cache, with no job) and checks the take was made."""
    if args.take < 0:
        print("keyframed: a take number is 0 or more", file=sys.stderr)
        return 2
    refused = refuse_target(args.dir, args.scene, args.target, PICK_OR_RETRY["pick"])
    if refused is not None:
        print(refused, file=sys.stderr)
        return 1
    return _write(args.dir, marker_for_retry(args.scene, args.target, ".pick"), f"{args.take}\n")
