"""Load the configuration: defaults ← config.toml ← project keyframed.toml ← KEYFRAMED_* ← flags.

Validated once into the frozen :class:`keyframed.settings.Settings`. Secrets never come from
files: a backend names the environment variable that holds its token (``token_env``). A
project's ``keyframed.toml`` may name only ``KEYFRAMED_*`` variables there: a project folder
(perhaps someone else's) must not be able to send, say, ``$AWS_SECRET_ACCESS_KEY`` as a bearer
token to a server of its choosing. The user's own config.toml may name any variable.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from keyframed.errors import ConfigError
from keyframed.settings import BackendSettings, Settings, origin

PROJECT_CONFIG = "keyframed.toml"
ENV_PREFIX = "KEYFRAMED_"
# Environment overrides that map to one setting each (the token variables are read elsewhere).
ENV_KEYS: dict[str, tuple[str, ...]] = {
    "KEYFRAMED_APPROVAL": ("approval",),
    "KEYFRAMED_SEED_SALT": ("seed_salt",),
    "KEYFRAMED_QUIET_MS": ("watch", "quiet_ms"),
    "KEYFRAMED_RESYNC_S": ("watch", "resync_s"),
    "KEYFRAMED_POLL": ("watch", "poll"),
    "KEYFRAMED_MAX_ATTEMPTS": ("run", "max_attempts"),
}


def user_config_path(env: Mapping[str, str]) -> Path:
    """``$KEYFRAMED_CONFIG``, else ``$XDG_CONFIG_HOME/keyframed/config.toml``."""
    if env.get("KEYFRAMED_CONFIG"):
        return Path(env["KEYFRAMED_CONFIG"])
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "keyframed" / "config.toml"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except RecursionError as exc:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8: "
                          "save it as UTF-8") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc


def merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` into a copy of ``base``; tables merge, everything else replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _check_project_tokens(path: Path, layer: Mapping[str, Any]) -> None:
    """Refuse a project file whose backends name a token variable outside ``KEYFRAMED_*``."""
    backends = layer.get("backends")
    for n, backend in enumerate(backends if isinstance(backends, list) else []):
        name = backend.get("token_env") if isinstance(backend, Mapping) else None
        if isinstance(name, str) and not name.startswith(ENV_PREFIX):
            raise ConfigError(
                f"{path}: backends[{n}].token_env = {name!r}: a project's {PROJECT_CONFIG} may "
                f"only name {ENV_PREFIX}* variables for a token (set other names in your own "
                "config.toml)")


def _env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, keys in ENV_KEYS.items():
        if name in env:
            value: Any = env[name]
            if keys[-1] == "poll":
                value = value.lower() in ("1", "true", "yes")
            node = layer
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node[keys[-1]] = value
    return layer


def _describe(exc: ValidationError, sources: list[str]) -> str:
    lines = [f"invalid configuration (from {', '.join(sources) or 'defaults'}):"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def load_settings(
    project: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Load and validate the settings for a project (or none).

    Raises:
        ConfigError: a file is not valid TOML, or a value is invalid; the message names the
            file(s) and the key.
    """
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    sources: list[str] = []
    candidates = [user_config_path(env)]
    if project is not None:
        candidates.append(project / PROJECT_CONFIG)
    trusted: list[Any] = []
    for n, path in enumerate(candidates):
        if not _is_config_file(path):
            continue
        layer = _read_toml(path)
        if path.name == PROJECT_CONFIG and project is not None and n > 0:
            _check_project_tokens(path, layer)
        else:
            trusted.append(layer.get("backends"))
        data = merge(data, layer)
        sources.append(str(path))
    data = merge(data, _env_layer(env))
    data = merge(data, overrides or {})
    trusted.append((overrides or {}).get("backends"))
    if "backends" in data and isinstance(data["backends"], list):
        data["backends"] = tuple(data["backends"])
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, sources)) from exc
    return settings.model_copy(update={"token_origins": _origins(trusted)})


def _is_config_file(path: Path) -> bool:
    """True for a regular file (or a link to one); False when nothing is there.

    Raises:
        ConfigError: something else is there (a folder, a FIFO, a dangling link): skipping it
            would quietly send jobs to the default server.
    """
    if path.is_file():
        return True
    if not os.path.lexists(path):
        return False
    what = "a folder" if path.is_dir() else "a dangling link" if path.is_symlink() \
        else "not a regular file"
    raise ConfigError(f"{path}: is {what}, not a config file; remove or replace it with a TOML "
                      "file")


def _origins(layers: list[Any]) -> tuple[str, ...]:
    """The servers the user's own layers name (the default backend's too when no layer of the
    user's names any): these alone may be sent a token from the environment."""
    default = BackendSettings(name="local").url
    urls = [b.get("url", default) for layer in layers
            if isinstance(layer, list) for b in layer if isinstance(b, Mapping)]
    if not any(isinstance(layer, list) for layer in layers):
        urls.append(default)
    found: set[str] = set()
    for url in urls:
        try:
            found.add(origin(str(url)))
        except ValueError:
            continue  # refused by validation where it is used
    return tuple(sorted(found))
