"""The checks of ``keyframed doctor``: can each configured backend run every step of the plan?

For a ComfyUI backend: it answers (and which version), it has every node class the six
templates use once bound with the configured LoRA loader, the bound prompts fit its node
schemas, every model and LoRA file named in the settings is in its model lists (with the
closest installed name when one is missing, and the exact fix), and how much GPU memory is
free. A preview backend has nothing to check. Each check gives report lines; each failure
also gives a :class:`Problem` with the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from keyframed.backends.comfy.client import ComfyClient
from keyframed.backends.comfy.info import ServerInfo
from keyframed.backends.comfy.retry import RetryPolicy
from keyframed.backends.native import token_for
from keyframed.backends.requirements import bound_prompt, model_pairs
from keyframed.errors import ComfyError, TemplateError
from keyframed.handlers.probe import template_recipes
from keyframed.models.manifest import MANIFEST
from keyframed.settings import BackendSettings, LoraSettings, ModelSettings, Settings
from keyframed.workflows.schema_check import check_prompt, required_classes

# The ``[models]`` keys that name files, and the folder ComfyUI lists each in.
MODEL_KEYS: dict[str, str] = {
    "edit_unet": "diffusion_models",
    "t2i_unet": "diffusion_models",
    "clip": "text_encoders",
    "vae": "vae",
    "wan_high": "diffusion_models",
    "wan_low": "diffusion_models",
    "wan_clip": "text_encoders",
    "wan_vae": "vae",
}
DEFAULT_LOADER = "LoraLoaderModelOnly"
# One quick retry: a doctor should answer in seconds, not wait out a long backoff.
QUICK = RetryPolicy(attempts=2, initial=0.2, max_delay=0.5, jitter=0.1)


@dataclass(frozen=True)
class Problem:
    """Something wrong, and how to fix it."""

    where: str
    what: str
    fix: str


@dataclass
class Report:
    """What the checks of one backend (or of the local files) found."""

    title: str
    lines: list[tuple[str, str]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def ok(self, text: str) -> None:
        """A check that passed."""
        self.lines.append(("ok", text))

    def info(self, text: str) -> None:
        """A fact worth showing."""
        self.lines.append(("info", text))

    def fail(self, label: str, text: str, problem: Problem) -> None:
        """A check that failed, with its fix."""
        self.lines.append((label, text))
        self.problems.append(problem)


@dataclass(frozen=True)
class Setting:
    """One configured model file: its config key (TOML table and key), folder and name."""

    table: str
    key: str
    folder: str
    name: str

    @property
    def dotted(self) -> str:
        """``models.edit_unet`` or ``loras.instyle.file``."""
        return f"{self.table}.{self.key}"


def configured_files(settings: Settings) -> list[Setting]:
    """Every model and LoRA file the settings name, with the key that names it."""
    models = settings.models
    out = [Setting("models", k, folder, getattr(models, k)) for k, folder in MODEL_KEYS.items()]
    for role in LoraSettings.model_fields:
        if role != "loader":
            lora = getattr(settings.loras, role)
            out.append(Setting(f"loras.{role}", "file", "loras", lora.file))
    return out


def model_setting_keys() -> set[str]:
    """The file-name fields of :class:`ModelSettings` (every one must be in MODEL_KEYS)."""
    return {k for k in ModelSettings.model_fields if k != "set"}


# -- one backend -------------------------------------------------------------------------------


def check_backend(
    config: BackendSettings, settings: Settings, root: Path | None, env: Mapping[str, str],
    config_file: str, comfyui_dir: Path | None = None,
) -> Report:
    """Run every check against one configured backend."""
    report = Report(f"backend {config.name}: {config.kind}"
                    + (f" at {config.shown_url}" if config.kind != "preview" else ""))
    if config.kind == "comfy-api":
        _check_v2(config, env, report, config_file)
        return report
    if config.kind == "preview":
        report.info("the built-in Pillow preview renderer: no server, nothing to check")
        return report
    info = _preflight(config, settings, env, report, config_file)
    if info is None:
        return report
    report.ok(f"reachable: ComfyUI {info.version or '(version not reported)'}")
    report.info("jobs are followed through ComfyUI's core jobs API (/api/jobs)" if info.jobs_api
                else "no core jobs API (/api/jobs): jobs are followed through /history and /queue")
    prompts = _prompts(settings, root, config.name, report)
    _check_nodes(info, prompts, settings, config.name, report, config_file)
    _check_schemas(info, prompts, config.name, report, root)
    _check_files(info, settings, config.name, report, config_file, comfyui_dir)
    _devices(info, report)
    return report


def _check_v2(config: BackendSettings, env: Mapping[str, str], report: Report,
              config_file: str) -> None:
    """What can be verified on a Comfy API v2 surface (reachability, a key present), and say
    what cannot: it publishes no node, model or LoRA list, so a missing one shows at submit."""
    try:
        answer = httpx.get(config.url.rstrip("/") + "/api/v2/health", timeout=5.0)
        answer.raise_for_status()
        report.ok(f"reachable: Comfy API v2 health at {config.shown_url}")
    except httpx.HTTPError as exc:
        report.fail("FAIL", f"cannot reach the Comfy API v2 at {config.shown_url}: {exc}",
                    Problem(config.name, f"{config.shown_url}/api/v2/health did not answer: {exc}",
                            f"start the surface (e.g. `comfy-api-proxy run --comfyui URL`) or "
                            f"correct `url` of backend '{config.name}' in {config_file}"))
    if (env.get(config.api_key_env) or "").strip():
        report.ok(f"an API key is set in ${config.api_key_env} (not shown)")
    else:
        report.info(f"no API key in ${config.api_key_env}: fine for a proxy, Comfy Cloud and "
                    "deployments refuse requests without one")
    report.info("not verifiable on a v2 surface: node classes, models and LoRAs (no "
                "object_info); a missing one fails the job at submit with its name")


def _preflight(config: BackendSettings, settings: Settings, env: Mapping[str, str],
               report: Report,
               config_file: str) -> ServerInfo | None:
    token = token_for(settings, config, env)
    client = ComfyClient(config.url, name=config.name, token=token, websocket=False,
                         retry=QUICK)
    try:
        return client.preflight()
    except ComfyError as exc:
        fix = (f"start ComfyUI there (for example `python main.py --listen 127.0.0.1 --port "
               f"8188`), or correct `url` of backend '{config.name}' under [[backends]] in "
               f"{config_file}")
        report.fail("FAIL", f"cannot reach ComfyUI at {config.shown_url}: {exc}",
                    Problem(config.name, f"ComfyUI at {config.shown_url} cannot be reached: {exc}",
                            fix))
        return None
    finally:
        client.close()


def _prompts(settings: Settings, root: Path | None, name: str,
             report: Report) -> dict[str, dict[str, Any]]:
    """Each template bound with its real recipe (a project's override wins)."""
    prompts = {}
    for template, recipe in template_recipes(settings).items():
        try:
            prompts[template] = bound_prompt(recipe, root, settings)
        except TemplateError as exc:
            report.fail("FAIL", f"{template} does not bind: {exc}", Problem(
                name, f"template {template} does not bind: {exc}",
                "fix the project's workflows/ override (see docs/workflows.md) or remove it"))
    return prompts


def _check_nodes(info: ServerInfo, prompts: dict[str, dict[str, Any]], settings: Settings,
                 name: str, report: Report, config_file: str) -> None:
    users: dict[str, list[str]] = {}
    for template, prompt in prompts.items():
        for cls in required_classes(prompt):
            users.setdefault(cls, []).append(template)
    missing = sorted(c for c in users if c not in info.node_classes)
    if not missing:
        report.ok(f"node classes: all {len(users)} that the {len(prompts)} templates use")
    for cls in missing:
        what = f"node class {cls} is not installed (used by {', '.join(sorted(users[cls]))})"
        report.fail("MISSING", what, Problem(name, what, _node_fix(cls, settings, config_file)))


def _node_fix(cls: str, settings: Settings, config_file: str) -> str:
    if cls == settings.loras.loader and cls != DEFAULT_LOADER:
        return (f"install the custom node pack that provides {cls}, or set "
                f'[loras] loader = "{DEFAULT_LOADER}" in {config_file}')
    return ("update ComfyUI (it is a core node of current ComfyUI), or install the custom "
            "node pack that provides it, then restart ComfyUI")


def _check_schemas(info: ServerInfo, prompts: dict[str, dict[str, Any]], name: str,
                   report: Report, root: Path | None) -> None:
    """Inputs and values the server's schemas would reject (missing files are checked apart)."""
    bad = 0
    for template, prompt in prompts.items():
        if required_classes(prompt) - info.node_classes:
            continue  # reported as missing classes
        # Missing files are reported per setting; here they count as present.
        models = {f: list(names) for f, names in info.models.items()}
        for folder, file in model_pairs(prompt):
            models.setdefault(folder, []).append(file)
        problems = check_prompt(prompt, info.object_info, models)
        if problems:
            bad += 1
            override = root is not None and (root / "workflows" / template).is_file()
            where = "the project's workflows/" if override else "the packaged template"
            what = f"{template} does not fit this server's nodes: {'; '.join(problems)}"
            report.fail("FAIL", what, Problem(
                name, what, f"update ComfyUI, or adapt {where} {template} to this version"))
    if not bad and prompts:
        report.ok(f"templates: all {len(prompts)} fit this server's node schemas")


def _check_files(info: ServerInfo, settings: Settings, name: str, report: Report,
                 config_file: str, comfyui_dir: Path | None) -> None:
    files = configured_files(settings)
    missing = [f for f in files if not info.has_model(f.folder, f.name)]
    for kind, table in (("models", "models"), ("LoRAs", "loras")):
        group = [f for f in files if f.table.split(".")[0] == table]
        gone = [f for f in missing if f in group]
        line = f"{kind}: {len(group) - len(gone)} of {len(group)} configured files installed"
        if gone:
            report.info(line)
        else:
            report.ok(line)
    for f in missing:
        closest = closest_name(f.name, info.models.get(f.folder, frozenset()))
        what = f"{f.folder}/{f.name} ({f.dotted}) is not installed"
        if closest:
            what += f"; closest installed: {closest}"
        fix = file_fix(f, closest, settings, config_file, comfyui_dir)
        report.fail("MISSING", what, Problem(name, what, fix))


def closest_name(name: str, installed: frozenset[str] | set[str]) -> str | None:
    """The installed file name most like ``name`` (difflib), or None when none is close."""
    close = difflib.get_close_matches(name, sorted(installed), n=1, cutoff=0.5)
    return close[0] if close else None


def file_fix(f: Setting, closest: str | None, settings: Settings, config_file: str,
             comfyui_dir: Path | None) -> str:
    """How to fix one missing file: download its set, or point the setting elsewhere."""
    sets = [s for s, files in MANIFEST.items() if any(m.name == f.name for m in files)]
    where = f" --comfyui-dir {comfyui_dir}" if comfyui_dir else ""
    fixes = []
    if sets:
        chosen = settings.models.set if settings.models.set in sets else sets[0]
        fixes.append(f"keyframed models download --set {chosen}{where} (on the ComfyUI "
                     "machine; then restart ComfyUI or refresh its model lists)")
    else:
        fixes.append(f"put {f.name} into ComfyUI/models/{f.folder}/")
    table = f.table
    if closest:
        fixes.append(f'or, if {closest} is that file, set [{table}] {f.key} = "{closest}" '
                     f"in {config_file}")
    else:
        fixes.append(f"or name an installed file with [{table}] {f.key} = \"...\" in {config_file}")
    return "; ".join(fixes)


def _devices(info: ServerInfo, report: Report) -> None:
    if not info.devices:
        report.info("devices: none reported by /system_stats")
    for d in info.devices:
        report.info(f"device {d.name or d.type}: {_gb(d.vram_free)} free of {_gb(d.vram_total)}")


def _gb(size: int) -> str:
    return f"{size / 1024**3:.1f} GiB"
