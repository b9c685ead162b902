"""Service integration: unit and plist templates, systemd-escape, and `service install`."""

from __future__ import annotations

import argparse
import os
import plistlib
import shutil
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from keyframed.cli import main as cli
from keyframed.cli import service as cmd_service
from keyframed.errors import KeyframedError
from keyframed.service import install as service
from keyframed.service import render as service_render
from keyframed.service.install import Host, RunResult

REPO = Path(__file__).resolve().parents[2]
PACKAGE_FILES = REPO / "keyframed" / "service" / "files"
FAKE_EXE = "/opt/keyframed/bin/keyframed"


# --- helpers --------------------------------------------------------------------------------------


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Read a unit file the way systemd does for our purposes: repeated keys accumulate."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"assignment outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


class Recorder:
    """A command runner that records every command and answers with preset exit codes."""

    def __init__(self, codes: dict[str, int] | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.codes = codes or {}

    def __call__(self, argv: Sequence[str]) -> RunResult:
        self.calls.append(tuple(argv))
        for needle, code in self.codes.items():
            if needle in argv:
                return RunResult(code, f"{argv[0]}: simulated failure of {needle}")
        return RunResult(0, "")


def refuse_to_run(argv: Sequence[str]) -> RunResult:
    raise AssertionError(f"a dry run must not run anything, ran {list(argv)}")


def host(tmp_path: Path, platform: str, **environ: str) -> Host:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return Host(platform=platform, home=home, uid=1234, command=(FAKE_EXE,), environ=environ)


def project(tmp_path: Path, name: str = "my film") -> Path:
    folder = tmp_path / "projects" / name
    folder.mkdir(parents=True)
    return folder


def run_cli(argv: list[str], h: Host, runner: service.Runner = refuse_to_run) -> int:
    parser = argparse.ArgumentParser()
    cmd_service.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return cmd_service.run_install(args, host=h, runner=runner)


def install(proj: Path, h: Host, runner: service.Runner = refuse_to_run) -> int:
    return run_cli(["service", "install", str(proj)], h, runner)


def all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


# --- shipped templates ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [service_render.UNIT_TEMPLATE, service_render.PLIST_TEMPLATE])
def test_repo_copies_are_identical_to_package_data(name: str) -> None:
    assert (REPO / "systemd" / name).read_bytes() == (PACKAGE_FILES / name).read_bytes()


def test_templates_are_readable_as_package_resources() -> None:
    text = service_render.template_text(service_render.UNIT_TEMPLATE)
    assert text == (PACKAGE_FILES / service_render.UNIT_TEMPLATE).read_text("utf-8")


def test_unit_template_has_placeholder_on_execstart() -> None:
    unit = parse_unit(service_render.template_text(service_render.UNIT_TEMPLATE))
    assert unit["Service"]["ExecStart"] == ["@KEYFRAMED@ watch %f"]


def test_rendered_unit_has_required_settings() -> None:
    unit = parse_unit(service_render.render_unit([FAKE_EXE]))
    svc = unit["Service"]
    assert svc["Type"] == ["notify"]
    assert svc["ExecStart"] == [f"{FAKE_EXE} watch %f"]
    assert svc["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert svc["KillSignal"] == ["SIGTERM"]
    assert svc["Restart"] == ["on-failure"]
    assert int(svc["RestartSec"][0]) > 0
    assert svc["WatchdogSec"] == ["30"]
    assert int(svc["TimeoutStopSec"][0]) > 0
    assert svc["NoNewPrivileges"] == ["yes"]
    assert svc["ReadWritePaths"] == ["%f"]
    assert "KEYFRAMED_LOG_FORMAT=json" in svc["Environment"]
    assert unit["Install"]["WantedBy"] == ["default.target"]
    assert "Description" in unit["Unit"]


def test_render_replaces_only_the_execstart_line() -> None:
    text = service_render.render_unit([FAKE_EXE])
    live = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert not any("@KEYFRAMED@" in ln for ln in live)
    template = service_render.template_text(service_render.UNIT_TEMPLATE)
    assert len(text.splitlines()) == len(template.splitlines())


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["/usr/bin/keyframed"], "/usr/bin/keyframed"),
        (["/opt/my app/keyframed"], '"/opt/my app/keyframed"'),
        (["/opt/100%/keyframed"], "/opt/100%%/keyframed"),
        (["/opt/$HOME/keyframed"], "/opt/$HOME/keyframed"),  # no variable expansion in argv[0]
        (["/usr/bin/python3", "-m", "keyframed"], "/usr/bin/python3 -m keyframed"),
        (["/usr/bin/python3", "a $b", ";"], '/usr/bin/python3 "a $$b" ";"'),
        (["/usr/bin/python3", 'say "hi"\\'], '/usr/bin/python3 "say \\"hi\\"\\\\"'),
    ],
)
def test_exec_command_line_quoting(command: list[str], expected: str) -> None:
    assert service_render.exec_command_line(command) == expected


@pytest.mark.parametrize(
    "exe", ["keyframed", '/opt/a"b/kf', "/opt/a\\b/kf", "/opt/a'b/kf", "/a\tb"]
)
def test_exec_command_line_refuses_what_systemd_refuses(exe: str) -> None:
    with pytest.raises(ValueError):
        service_render.exec_command_line([exe])


# --- systemd-analyze verify -----------------------------------------------------------------------


def _verify(unit_dir: Path, unit_file: Path, runtime: Path) -> tuple[int, str]:
    """Run `systemd-analyze verify --user`; returns the exit code and lines about our file."""
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
    done = subprocess.run(
        ["systemd-analyze", "verify", "--user", str(unit_file)],
        capture_output=True,
        text=True,
        env=env,
        cwd=unit_dir,
        timeout=60,
        check=False,
    )
    ours = [ln for ln in (done.stdout + done.stderr).splitlines() if unit_file.name in ln]
    return done.returncode, "\n".join(ours)


@pytest.fixture
def verify_env(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not on PATH (Debian/Ubuntu: apt-get install systemd)")
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    units = tmp_path / "units"
    units.mkdir()
    return units, runtime


def _executable(folder: Path) -> Path:
    folder.mkdir(parents=True)
    exe = folder / "keyframed"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return exe


def test_systemd_analyze_verifies_rendered_unit(
    tmp_path: Path, verify_env: tuple[Path, Path]
) -> None:
    units, runtime = verify_env
    # A folder name that needs quoting and specifier escaping in ExecStart=.
    exe = _executable(tmp_path / "bin dir 100%$x")
    text = service_render.render_unit([str(exe)])
    template = units / service_render.UNIT_TEMPLATE
    template.write_text(text)
    instance = units / service_render.unit_name(project(tmp_path, "my film"))
    instance.write_text(text)
    for unit_file in (template, instance):
        code, messages = _verify(units, unit_file, runtime)
        assert code == 0, messages
        assert messages == ""


def test_systemd_analyze_catches_a_broken_unit(
    tmp_path: Path, verify_env: tuple[Path, Path]
) -> None:
    """The verify harness above can fail: a missing executable and a misspelt key are reported."""
    units, runtime = verify_env
    broken = service_render.render_unit([str(tmp_path / "missing" / "keyframed")])
    broken = broken.replace("Type=notify", "Type=notifi")
    unit_file = units / "keyframed@x.service"
    unit_file.write_text(broken)
    code, messages = _verify(units, unit_file, runtime)
    assert code != 0
    assert "notifi" in messages


# --- launchd plist --------------------------------------------------------------------------------


def test_raw_plist_template_loads() -> None:
    data = plistlib.loads((PACKAGE_FILES / service_render.PLIST_TEMPLATE).read_bytes())
    assert data["ProgramArguments"] == ["@KEYFRAMED@", "watch", "@PROJECT@"]


def _render_plist(folder: str, command: Sequence[str] = (FAKE_EXE,)) -> dict[str, object]:
    text = service_render.render_plist(
        command,
        {
            "LABEL": "com.keyframed.x-1",
            "PROJECT": folder,
            "STDOUT": "/logs/x.out.log",
            "STDERR": "/logs/x.err.log",
            "PATH": "/opt/keyframed/bin:/usr/bin:/bin",
        },
    )
    assert "@" not in text.split("-->", 1)[1], "a placeholder was left unfilled"
    loaded: dict[str, object] = plistlib.loads(text.encode("utf-8"))
    return loaded


def test_rendered_plist_has_required_keys_and_types() -> None:
    data = _render_plist("/Users/me/A & B <film>")
    assert data["Label"] == "com.keyframed.x-1"
    assert data["ProgramArguments"] == [FAKE_EXE, "watch", "/Users/me/A & B <film>"]
    assert data["RunAtLoad"] is True
    assert data["KeepAlive"] == {"SuccessfulExit": False}
    throttle = data["ThrottleInterval"]
    assert isinstance(throttle, int) and not isinstance(throttle, bool) and throttle > 0
    assert data["WorkingDirectory"] == "/Users/me/A & B <film>"
    assert data["StandardOutPath"] == "/logs/x.out.log"
    assert data["StandardErrorPath"] == "/logs/x.err.log"
    env = data["EnvironmentVariables"]
    assert isinstance(env, dict)
    assert env["PATH"] == "/opt/keyframed/bin:/usr/bin:/bin"
    assert env["KEYFRAMED_LOG_FORMAT"] == "json"


def test_plist_expands_multi_word_command() -> None:
    data = _render_plist("/p", command=("/usr/bin/python3", "-m", "keyframed"))
    assert data["ProgramArguments"] == ["/usr/bin/python3", "-m", "keyframed", "watch", "/p"]


def test_plist_missing_value_is_an_error() -> None:
    with pytest.raises(KeyError):
        service_render.render_plist([FAKE_EXE], {"LABEL": "x"})


def test_launchd_slug_is_label_safe_and_distinct() -> None:
    a = service_render.launchd_slug(Path("/Users/me/My Film!"))
    b = service_render.launchd_slug(Path("/Volumes/work/My Film!"))
    assert a.startswith("my-film-")
    assert a != b
    assert all(c.isalnum() or c == "-" for c in a)
    assert service_render.launchd_slug(Path("/tmp/???")).startswith("project-")


# --- systemd-escape --path ------------------------------------------------------------------------

ESCAPES = [
    ("/home/me/my film", "home-me-my\\x20film"),
    ("/", "-"),
    ("//a//b/", "a-b"),
    ("/a/./b", "a-b"),
    ("/a/b-c/d", "a-b\\x2dc-d"),
    ("/a/.hidden/b", "a-.hidden-b"),
    ("/.x", "\\x2ex"),
    ("/a/b:c_d.e", "a-b:c_d.e"),
    ("/a/b~", "a-b\\x7e"),
    ("/ü/x", "\\xc3\\xbc-x"),
    ("/srv/a\\b", "srv-a\\x5cb"),
    ("a/b", "a-b"),
]


@pytest.mark.parametrize(("path", "expected"), ESCAPES)
def test_systemd_escape_path(path: str, expected: str) -> None:
    assert service_render.systemd_escape_path(path) == expected


@pytest.mark.skipif(shutil.which("systemd-escape") is None, reason="systemd-escape not on PATH")
@pytest.mark.parametrize(("path", "expected"), ESCAPES)
def test_systemd_escape_agrees_with_systemd(path: str, expected: str) -> None:
    done = subprocess.run(
        ["systemd-escape", "--path", "--", path], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == service_render.systemd_escape_path(path)


def test_systemd_escape_refuses_dotdot() -> None:
    with pytest.raises(ValueError):
        service_render.systemd_escape_path("/a/../b")


def test_unit_name_length_limit() -> None:
    assert service_render.unit_name(Path("/srv/film")) == "keyframed@srv-film.service"
    with pytest.raises(ValueError, match="255"):
        service_render.unit_name(Path("/" + "x" * 240))


# --- service install: planning and dry runs -------------------------------------------------------


def test_dry_run_linux_prints_everything_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = host(tmp_path, "linux")
    proj = project(tmp_path)
    assert run_cli(["service", "install", str(proj), "--dry-run"], h) == 0
    out = capsys.readouterr().out
    unit_path = h.home / ".config" / "systemd" / "user" / "keyframed@.service"
    instance = service_render.unit_name(proj)
    assert f"would write {unit_path}:" in out
    assert service_render.render_unit([FAKE_EXE]).rstrip() in out
    assert "would run: systemctl --user daemon-reload" in out
    assert f"would run: systemctl --user enable --now '{instance}'" in out
    assert f"journalctl --user -u '{instance.removesuffix('.service')}' -f" in out
    assert all_files(tmp_path / "home") == []
    assert not (h.home / ".config").exists()


def test_dry_run_darwin_prints_plist_and_launchctl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = host(tmp_path, "darwin")
    proj = project(tmp_path)
    assert run_cli(["service", "install", str(proj), "--dry-run"], h) == 0
    out = capsys.readouterr().out
    label = "com.keyframed." + service_render.launchd_slug(proj)
    plist = h.home / "Library" / "LaunchAgents" / f"{label}.plist"
    assert f"would write {plist}:" in out
    assert f"<string>{label}</string>" in out
    assert f"would run: launchctl bootstrap gui/1234 {plist}" in out
    assert str(h.home / "Library" / "Logs" / "keyframed") in out
    assert all_files(tmp_path / "home") == []


def test_xdg_config_home_is_respected(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    h = host(tmp_path, "linux", XDG_CONFIG_HOME=str(xdg))
    plan = service.plan_install(project(tmp_path), h)
    assert plan.files[0][0] == xdg / "systemd" / "user" / "keyframed@.service"


def test_relative_xdg_config_home_is_ignored(tmp_path: Path) -> None:
    h = host(tmp_path, "linux", XDG_CONFIG_HOME="relative/cfg")
    plan = service.plan_install(project(tmp_path), h)
    assert plan.files[0][0] == h.home / ".config" / "systemd" / "user" / "keyframed@.service"


def test_project_path_is_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = project(tmp_path, "film")
    monkeypatch.chdir(proj.parent)
    plan = service.plan_install(Path("film"), host(tmp_path, "linux"))
    expected = service_render.unit_name(proj.resolve())
    assert plan.steps[-1].argv == ("systemctl", "--user", "enable", "--now", expected)


# --- service install: real installs into a temporary home -----------------------------------------


def test_install_linux_writes_unit_and_enables_instance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = host(tmp_path, "linux")
    proj = project(tmp_path)
    runner = Recorder()
    assert run_cli(["service", "install", str(proj)], h, runner) == 0
    unit_path = h.home / ".config" / "systemd" / "user" / "keyframed@.service"
    assert unit_path.read_text("utf-8") == service_render.render_unit([FAKE_EXE])
    assert stat.S_IMODE(unit_path.stat().st_mode) == 0o644
    assert all_files(h.home) == [unit_path]  # no temp files left behind
    instance = service_render.unit_name(proj)
    assert runner.calls == [
        ("systemctl", "--user", "daemon-reload"),
        ("systemctl", "--user", "enable", "--now", instance),
    ]
    out = capsys.readouterr().out
    assert f"journalctl --user -u '{instance.removesuffix('.service')}' -f" in out


def test_install_linux_twice_overwrites_the_unit(tmp_path: Path) -> None:
    h = host(tmp_path, "linux")
    proj = project(tmp_path)
    assert run_cli(["service", "install", str(proj)], h, Recorder()) == 0
    other = Host(h.platform, h.home, h.uid, ("/usr/local/bin/keyframed",), h.environ)
    assert run_cli(["service", "install", str(proj)], other, Recorder()) == 0
    unit_path = h.home / ".config" / "systemd" / "user" / "keyframed@.service"
    assert "ExecStart=/usr/local/bin/keyframed watch %f" in unit_path.read_text("utf-8")


def test_install_darwin_writes_plist_and_bootstraps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = host(tmp_path, "darwin")
    proj = project(tmp_path)
    runner = Recorder({"bootout": 3})  # nothing loaded yet: launchctl bootout fails, ignored
    assert run_cli(["service", "install", str(proj)], h, runner) == 0
    label = "com.keyframed." + service_render.launchd_slug(proj)
    plist_path = h.home / "Library" / "LaunchAgents" / f"{label}.plist"
    data = plistlib.loads(plist_path.read_bytes())
    assert data["Label"] == label
    assert data["ProgramArguments"] == [FAKE_EXE, "watch", str(proj)]
    assert data["WorkingDirectory"] == str(proj)
    assert str(data["EnvironmentVariables"]["PATH"]).startswith("/opt/keyframed/bin:")
    logs = h.home / "Library" / "Logs" / "keyframed"
    assert logs.is_dir()
    assert Path(data["StandardErrorPath"]).parent == logs
    assert runner.calls == [
        ("launchctl", "bootout", f"gui/1234/{label}"),
        ("launchctl", "enable", f"gui/1234/{label}"),
        ("launchctl", "bootstrap", "gui/1234", str(plist_path)),
    ]
    out = capsys.readouterr().out
    assert str(logs / f"{label.removeprefix('com.keyframed.')}.err.log") in out


# --- service install: errors ----------------------------------------------------------------------


def test_failing_systemctl_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = Recorder({"enable": 1})
    assert install(project(tmp_path), host(tmp_path, "linux"), runner) == 1
    err = capsys.readouterr().err
    assert "systemctl --user enable --now" in err
    assert "exit status 1" in err
    assert "simulated failure of enable" in err
    assert "hint: systemctl --user talks to your login session" in err


def test_failing_bootstrap_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = Recorder({"bootstrap": 5})
    assert install(project(tmp_path), host(tmp_path, "darwin"), runner) == 1
    assert "launchctl bootstrap" in capsys.readouterr().err


def test_missing_systemctl_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing(argv: Sequence[str]) -> RunResult:
        raise KeyframedError(f"{argv[0]} was not found on PATH; is it installed?")

    assert install(project(tmp_path), host(tmp_path, "linux"), missing) == 1
    assert "systemctl was not found" in capsys.readouterr().err


def test_subprocess_runner_reports_missing_program() -> None:
    with pytest.raises(KeyframedError, match="not found"):
        service.subprocess_runner(["keyframed-no-such-program-xyz"])


def test_subprocess_runner_captures_exit_code_and_output() -> None:
    result = service.subprocess_runner(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert result.returncode == 3
    assert "out" in result.output and "err" in result.output


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_missing_project_folder(
    tmp_path: Path, platform: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["service", "install", str(tmp_path / "nope")], host(tmp_path, platform)) == 1
    assert "is not a folder" in capsys.readouterr().err


def test_unsupported_platform(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["service", "install", str(project(tmp_path))], host(tmp_path, "win32")) == 1
    assert "win32" in capsys.readouterr().err


def test_dollar_in_project_path_is_refused_on_linux(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proj = project(tmp_path, "cost$HOME")
    assert run_cli(["service", "install", str(proj), "--dry-run"], host(tmp_path, "linux")) == 1
    assert "'$'" in capsys.readouterr().err


def test_executable_systemd_refuses_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = Host("linux", tmp_path, 1, ('/opt/it"s/keyframed',), {})
    assert run_cli(["service", "install", str(project(tmp_path)), "--dry-run"], h) == 1
    assert "refuses" in capsys.readouterr().err


# --- wiring ---------------------------------------------------------------------------------------


def test_service_command_is_registered() -> None:
    assert "keyframed.cli.service" in cli.COMMANDS


def test_keyframed_command_is_absolute_and_runnable() -> None:
    command = service.keyframed_command()
    assert Path(command[0]).is_absolute()
    assert os.access(command[0], os.X_OK)
