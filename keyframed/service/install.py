"""``keyframed service install``: write and enable a systemd user unit or a launchd agent.

The work is split into a plan (files to write, commands to run, notes for the person) and its
execution, so ``--dry-run`` prints exactly what a real install does. Everything that depends on
the machine (platform, home directory, environment, uid, how keyframed is started, and the
command runner) comes in through :class:`Host` and a :data:`Runner`, so tests cover Linux and
macOS without touching systemctl or launchctl.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from keyframed.errors import KeyframedError
from keyframed.fsio import atomic_write
from keyframed.service import render as service_render

# Where launchd agents look for programs besides the keyframed executable's own folder.
_LAUNCHD_PATH = ("/usr/local/bin", "/opt/homebrew/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin")


@dataclass(frozen=True)
class RunResult:
    """What a command did: its exit status and its combined output."""

    returncode: int
    output: str = ""


Runner = Callable[[Sequence[str]], RunResult]


def subprocess_runner(argv: Sequence[str]) -> RunResult:
    """Run a command and capture its output.

    Raises:
        KeyframedError: the program is not installed.
    """
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError as exc:
        raise KeyframedError(f"{argv[0]} was not found on PATH; is it installed?") from exc
    except OSError as exc:
        raise KeyframedError(f"could not run {argv[0]}: {exc}") from exc
    return RunResult(done.returncode, (done.stdout + done.stderr).strip())


@dataclass(frozen=True)
class Host:
    """The facts about this machine an install depends on."""

    platform: str
    home: Path
    uid: int
    command: tuple[str, ...]
    environ: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def current(cls) -> Host:
        """Describe the machine this process runs on."""
        return cls(
            platform=sys.platform,
            home=Path.home(),
            uid=os.getuid(),
            command=keyframed_command(),
            environ=dict(os.environ),
        )


def keyframed_command() -> tuple[str, ...]:
    """The absolute command that starts this installation of keyframed.

    Prefers the ``keyframed`` script next to the running interpreter (a virtualenv's ``bin``;
    the interpreter path is deliberately not resolved, which would leave the virtualenv), then
    one on PATH, then ``python -m keyframed``.
    """
    beside = Path(sys.executable).parent / "keyframed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return (str(beside.absolute()),)
    found = shutil.which("keyframed")
    if found:
        return (str(Path(found).absolute()),)
    return (str(Path(sys.executable).absolute()), "-m", "keyframed")


@dataclass(frozen=True)
class Step:
    """One command of an install; ``may_fail`` steps only prepare (e.g. unload an old agent)."""

    argv: tuple[str, ...]
    may_fail: bool = False
    hint: str = ""  # added to the error message when the command fails


@dataclass(frozen=True)
class InstallPlan:
    """Everything an install does, in order: folders, files, commands, then notes to print."""

    directories: tuple[Path, ...]
    files: tuple[tuple[Path, str], ...]
    steps: tuple[Step, ...]
    notes: tuple[str, ...]


def plan_install(project: Path, host: Host) -> InstallPlan:
    """Plan the service install for ``project`` on ``host``.

    Raises:
        KeyframedError: the project is not a folder, its path cannot be used, or the platform
            has neither systemd nor launchd.
    """
    project = _project_dir(project)
    if host.platform == "darwin":
        return _plan_launchd(project, host)
    if host.platform.startswith("linux"):
        return _plan_systemd(project, host)
    raise KeyframedError(
        f"service install supports Linux (systemd) and macOS (launchd), not {host.platform}"
    )


def _project_dir(project: Path) -> Path:
    resolved = project.expanduser().resolve()
    if not resolved.is_dir():
        raise KeyframedError(f"{project} is not a folder")
    return resolved


def _systemd_user_dir(host: Host) -> Path:
    # The XDG spec says a relative $XDG_CONFIG_HOME is invalid and must be ignored.
    xdg = host.environ.get("XDG_CONFIG_HOME", "")
    config = Path(xdg) if xdg and Path(xdg).is_absolute() else host.home / ".config"
    return config / "systemd" / "user"


def _plan_systemd(project: Path, host: Host) -> InstallPlan:
    if "$" in str(project):
        # systemd would expand "$NAME" inside the unescaped %f at start-up.
        raise KeyframedError(f"{project}: systemd cannot pass a path containing '$'; rename it")
    try:
        unit = service_render.unit_name(project)
        text = service_render.render_unit(host.command)
    except ValueError as exc:
        raise KeyframedError(str(exc)) from exc
    unit_file = _systemd_user_dir(host) / service_render.UNIT_TEMPLATE
    systemctl = ("systemctl", "--user")
    hint = (
        "systemctl --user talks to your login session's service manager; run this as yourself "
        "in a normal login session (not under sudo or su)"
    )
    return InstallPlan(
        directories=(unit_file.parent,),
        files=((unit_file, text),),
        steps=(
            Step((*systemctl, "daemon-reload"), hint=hint),
            Step((*systemctl, "enable", "--now", unit), hint=hint),
        ),
        notes=_systemd_notes(unit),
    )


def _systemd_notes(unit: str) -> tuple[str, ...]:
    instance = shlex.quote(unit.removesuffix(".service"))
    quoted = shlex.quote(unit)
    return (
        f"Follow the logs:  journalctl --user -u {instance} -f",
        f"Status:           systemctl --user status {quoted}",
        f"Reload config:    systemctl --user reload {quoted}",
        f"Stop and disable: systemctl --user disable --now {quoted}",
        'To keep it running while you are logged out: loginctl enable-linger "$USER"',
        f"If it was already running, restart it to use the new unit: "
        f"systemctl --user restart {quoted}",
    )


def _plan_launchd(project: Path, host: Host) -> InstallPlan:
    slug = service_render.launchd_slug(project)
    label = service_render.LABEL_PREFIX + slug
    plist = host.home / "Library" / "LaunchAgents" / f"{label}.plist"
    logs = host.home / "Library" / "Logs" / "keyframed"
    out, err = logs / f"{slug}.out.log", logs / f"{slug}.err.log"
    path_env = ":".join(dict.fromkeys((str(Path(host.command[0]).parent), *_LAUNCHD_PATH)))
    text = service_render.render_plist(
        host.command,
        {
            "LABEL": label,
            "PROJECT": str(project),
            "STDOUT": str(out),
            "STDERR": str(err),
            "PATH": path_env,
        },
    )
    domain = f"gui/{host.uid}"
    return InstallPlan(
        directories=(plist.parent, logs),
        files=((plist, text),),
        steps=(
            # Unload a previous version first; bootstrap refuses a label that is loaded.
            Step(("launchctl", "bootout", f"{domain}/{label}"), may_fail=True),
            Step(("launchctl", "enable", f"{domain}/{label}")),
            Step(("launchctl", "bootstrap", domain, str(plist))),
        ),
        notes=_launchd_notes(f"{domain}/{label}", out, err),
    )


def _launchd_notes(target: str, out: Path, err: Path) -> tuple[str, ...]:
    return (
        f"Logs:             tail -f {shlex.quote(str(out))} {shlex.quote(str(err))}",
        f"Status:           launchctl print {target}",
        f"Reload config:    launchctl kill SIGHUP {target}",
        f"Stop and unload:  launchctl bootout {target}",
    )


def describe(plan: InstallPlan) -> str:
    """The dry-run report: every folder, file (with its full content) and command."""
    parts = [f"would create folder {d}" for d in plan.directories]
    for path, text in plan.files:
        parts.append(f"would write {path}:\n{text.rstrip()}\n")
    parts += [f"would run: {shlex.join(step.argv)}" for step in plan.steps]
    parts += [f"then: {note}" for note in plan.notes]
    return "\n".join(parts)


def apply(plan: InstallPlan, runner: Runner, echo: Callable[[str], None]) -> None:
    """Carry out a plan, reporting each action through ``echo``.

    Raises:
        KeyframedError: a required command is missing or exits non-zero; nothing after it runs.
    """
    for folder in plan.directories:
        folder.mkdir(parents=True, exist_ok=True)
    for path, text in plan.files:
        atomic_write(path, text.encode("utf-8"))
        path.chmod(0o644)  # the temp file was private; unit files are normally world-readable
        echo(f"wrote {path}")
    for step in plan.steps:
        _run_step(step, runner, echo)
    for note in plan.notes:
        echo(note)


def _run_step(step: Step, runner: Runner, echo: Callable[[str], None]) -> None:
    command = shlex.join(step.argv)
    result = runner(step.argv)
    if result.returncode == 0:
        echo(f"ran: {command}")
    elif step.may_fail:
        echo(f"ran: {command} (exit {result.returncode}, ignored: most likely nothing was loaded)")
    else:
        detail = f":\n{result.output}" if result.output else ""
        hint = f"\nhint: {step.hint}" if step.hint else ""
        raise KeyframedError(
            f"`{command}` failed with exit status {result.returncode}{detail}{hint}"
        )
