"""``keyframed generate`` (one step, one image) and ``keyframed generate-keyframe`` (one
keyframe through the plan's full flow): the plan's ``qwen_image.py`` and
``generate_keyframe.py``. See :mod:`keyframed.oneshot.single` and
:mod:`keyframed.oneshot.keyframe` for what each does and the decisions behind it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keyframed.cli.logs import setup_logging
from keyframed.errors import KeyframedError
from keyframed.handlers.context import PlanContext
from keyframed.handlers.modes import MODES
from keyframed.handlers.single import StepError, StepRequest, single_step
from keyframed.oneshot import keyframe as kf
from keyframed.oneshot import single as single_run
from keyframed.oneshot.common import one_shot_settings, project_root
from keyframed.settings import BackendSettings

_KEYFRAME_HELP = """\
Make one keyframe of one scene the way the daemon would: for a character scene the background
layer, the character layer(s) and the composite (landscape scenes: background + style + the
description; object scenes: InStyle). Whatever it needs that is missing or out of date is made
first (asset images included); what is up to date is reused, and nothing ComfyUI already did is
sent again. Approval is not asked for: you asked for this keyframe.

The results stay in the project (scene-XX/keyframe-start.png, scene-XX/layers/...), where the
state store tracks them. --output-dir may be that scene folder; a folder outside the project
gets copies of the keyframe and the scene's layers (layers/ inside it).
"""

_GENERATE_HELP = """\
Make one image with one step, from the assets in assets.json, and write it to --output.
Modes: t2i (text, or an asset from its description), edit (restyle one --background or
--character with InStyle), anypose (--character into --pose), composite (--background + one or
two --character), landscape (--background + style + --prompt). auto picks: background and
character -> composite; character and pose -> anypose; character -> edit; background with
--prompt -> landscape; background -> edit; otherwise t2i. The style is --style, else the
project's default style. Asset images must exist already.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``generate`` and ``generate-keyframe`` subcommands."""
    _register_keyframe(sub)
    _register_generate(sub)


def _register_keyframe(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("generate-keyframe", help="make one keyframe of one scene (all its steps)",
                       description=_KEYFRAME_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scene", type=int, required=True, metavar="N", help="scene number")
    p.add_argument("--keyframe", choices=("start", "end"), required=True)
    p.add_argument("--assets-file", type=Path, required=True, metavar="F",
                   help="the project's assets.json (its folder is the project)")
    p.add_argument("--scene-breakdown", type=Path, required=True, metavar="F",
                   help="the project's scene-breakdown.md (same folder)")
    p.add_argument("--output-dir", type=Path, required=True, metavar="D",
                   help="the scene folder (PROJECT/scene-XX), or a folder outside the project "
                        "to receive copies")
    p.add_argument("--mode", choices=MODES, default="auto",
                   help="auto (default) follows the scene's type; an explicit mode must agree")
    p.add_argument("--backend", metavar="NAME", help="use only this configured backend")
    p.add_argument("--timeout", type=float, metavar="S", default=None,
                   help="give up after S seconds (jobs stay recorded; default: no limit)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=run_keyframe)


def _register_generate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("generate", help="make one image with one step (t2i, edit, anypose, ...)",
                       description=_GENERATE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=MODES, default="auto")
    p.add_argument("--character", action="append", default=[], metavar="NAME",
                   help="a character of assets.json (twice for two in a composite)")
    p.add_argument("--background", metavar="NAME")
    p.add_argument("--pose", metavar="NAME")
    p.add_argument("--style", metavar="NAME")
    p.add_argument("--assets-file", type=Path, required=True, metavar="F",
                   help="assets.json (its folder is the project: images are relative to it)")
    p.add_argument("--prompt", default="", metavar="TEXT",
                   help="t2i: the text; landscape: the description; composite: expression and "
                        "camera; edit/anypose: added to the prompt")
    p.add_argument("--output", type=Path, required=True, metavar="PATH", help="a .png to write")
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="default: derived from the output's name (the same run, the same seed)")
    p.add_argument("--backend", metavar="NAME", help="use only this configured backend")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=run_generate)


# -- generate-keyframe -------------------------------------------------------------------------


def run_keyframe(args: argparse.Namespace) -> int:
    """Build one keyframe; print what was generated or reused and where the files are."""
    setup_logging(args.verbose)
    try:
        root = project_root(args.assets_file)
        kf.check_files(root, args.assets_file, args.scene_breakdown)
        settings = one_shot_settings(root, args.backend, overrides={"approval": "auto"})
        scene = kf.find_scene(kf.load(root, settings), args.scene)
        req = kf.Request(root=root, scene=scene, which=args.keyframe,
                         mode=kf.keyframe_mode(args.mode, scene),
                         copy_to=kf.copy_folder(root, scene, args.output_dir))
        out = kf.build(req, settings, args.timeout)
        copies = kf.copy_out(req, out) if out.ok else []
    except (KeyframedError, OSError) as exc:
        print(f"keyframed generate-keyframe: {exc}", file=sys.stderr)
        return 1
    _report(req, settings.backends, out, copies)
    return 0 if out.ok else 1


def _report(req: kf.Request, backends: tuple[BackendSettings, ...], out: kf.Outcome,
            copies: list[Path]) -> None:
    names = ", ".join(b.name for b in backends)
    print(f"scene {req.scene.number} keyframe-{req.which}: {req.mode} flow "
          f"({kf.FLOW.get(req.mode, req.mode)}) on {names}")
    width = max((len(ln.path) for ln in out.lines), default=0)
    for ln in out.lines:
        print(f"  {ln.verdict:<10} {ln.path:<{width}}  {ln.detail}".rstrip())
    if not out.ok:
        print("FAILED:", file=sys.stderr)
        for problem in out.problems:
            print(f"  {problem}", file=sys.stderr)
        return
    print(f"keyframe: {req.root / req.target}")
    for rel in out.layers:
        print(f"layer:    {req.root / rel}")
    for path in copies:
        print(f"copied:   {path}")


# -- generate ----------------------------------------------------------------------------------


def run_generate(args: argparse.Namespace) -> int:
    """Make one image and write it to ``--output``."""
    setup_logging(args.verbose)
    try:
        result = _generate(args)
    except (KeyframedError, StepError, OSError) as exc:
        print(f"keyframed generate: {exc}", file=sys.stderr)
        return 1
    recipe = result.artifact.recipe
    chain = " -> ".join(f"{lo.role} {lo.strength:g}" for lo in recipe.loras) or "none"
    print(f"wrote {result.output} ({recipe.mode}: {recipe.template}, LoRAs: {chain}, "
          f"seed {recipe.seed}, on {result.backend})")
    return 0


def _generate(args: argparse.Namespace) -> single_run.Result:
    if args.output.suffix.lower() != ".png":
        raise StepError(f"--output {args.output}: must be a .png file (the steps save PNG)")
    root = project_root(args.assets_file)
    settings = one_shot_settings(root, args.backend)
    project = single_run.load_assets(root, args.assets_file.name)
    req = StepRequest(mode=args.mode, characters=tuple(args.character),
                      background=args.background, pose=args.pose, style=args.style,
                      prompt=args.prompt, seed=args.seed, label=f"generate/{args.output.name}")
    art = single_step(req, project, PlanContext(settings=settings))
    files = single_run.input_files(root, art, project, settings, args.assets_file)
    return single_run.generate(root, settings, project, art, files, args.output)
