"""Settings: every timing, limit and fixture of the contracts, from defaults < YAML file < env < flags.

The contracts fix some values (a 10-minute stream session, a 30-second heartbeat, one hour of cache)
that a test cannot wait out, so each one is a setting. A bad value is a `SettingsError` naming its key.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from contracts import SpecError, contract_profiles, read_yaml

DEFAULT_PROJECT_ID = "5f0c6a2e-8c1b-4d7e-9a53-2b6f1e0d4c11"


class SettingsError(ValueError):
    """A setting with a bad value; `key` names it as it is written in the config file."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `count` requests per `window_s` seconds per client (or per user, where there is one)."""

    count: int
    window_s: float


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """Where a model is served: `provider` is `openai`, `anthropic` or `gemini` (their wire formats)."""

    pattern: str  # fnmatch pattern over the model name
    provider: str = "openai"
    base_url: str | None = None  # None: the server's --llm-base-url (its root for anthropic/gemini)
    api_key: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    profiles: tuple[str, ...] = field(default_factory=contract_profiles)  # default: every contract
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    # The LLM. None: start the mock LLM in-process and use it.
    llm_base_url: str | None = None
    llm_api_key: str = "sk-reference-server"
    llm_timeout_s: float = 60.0
    default_model: str = "mock-model"
    models: tuple[ModelRoute, ...] = ()
    system_prompt: str | None = None
    # Storage, cache and auth.
    database_url: str = "sqlite+aiosqlite:///reference-server.sqlite3"
    redis_url: str | None = None
    jwt_secret: str = "dev-secret"
    # contracts.md's Auth rule asks only for a signed `sub`: a token without `exp` is one it admits,
    # so it is accepted unless a deployment asks for more (an `exp` in the past is always refused).
    require_exp: bool = False
    cors_origins: tuple[str, ...] = ("*",)
    # Timings of contracts.md.
    session_ttl_s: float = 600.0
    heartbeat_s: float = 30.0
    cache_ttl_s: float = 3600.0
    rate_limits: Mapping[str, RateLimit] = field(
        default_factory=lambda: {
            "sessions": RateLimit(100, 60.0),
            "conversations": RateLimit(10, 60.0),
        }
    )
    # Fixtures the contracts leave to configuration.
    message_max_chars: int = 2000
    history_limit: int = 10  # query-stream: the last N messages go to the LLM
    projects: tuple[str, ...] = (DEFAULT_PROJECT_ID,)
    plans: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {"free": ("mock-model", "gpt-4o-mini"), "pro": ("*",)}
    )
    user_plans: Mapping[str, str] = field(default_factory=lambda: {"pro-user": "pro"})
    default_plan: str = "free"
    mock_seed: int = 0
    mock_ttft_ms: float = 150.0
    mock_itl_ms: float = 30.0
    # The HTTP edge (reference_server/_edge.py): what one client may send or hold, each refused with
    # a JSON body. The head limit leaves room for a query-stream URL carrying a message of
    # message_max_chars code points, each up to 12 bytes when percent-encoded.
    max_body_bytes: int = 1_048_576  # 413 past it
    max_header_bytes: int = 65_536  # request line + header fields; 431 past it
    max_headers: int = 100  # header fields; 431 past it
    header_timeout_s: float = 10.0  # from connect (or the end of the last request) to a whole head; then 408
    keep_alive_timeout_s: float = 5.0  # an idle keep-alive connection is closed after it (uvicorn's)
    limit_concurrency: int = 2048  # connections or running requests at once, as uvicorn counts them; 503 past it

    def rate_limit(self, profile: str) -> RateLimit | None:
        return self.rate_limits.get(profile)


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
ENV_PREFIX = "REFSERVER_"
# Conventional names read as they are (12-factor), besides REFSERVER_<KEY>.
_PLAIN_ENV = {"DATABASE_URL": "database_url", "REDIS_URL": "redis_url", "JWT_SECRET": "jwt_secret"}


def _number(key: str, value: Any, kind: type, minimum: float) -> Any:
    if isinstance(value, bool):
        raise SettingsError(key, f"expected a number, got {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise SettingsError(key, f"expected a number, got {value!r}") from None
    if number < minimum:
        raise SettingsError(key, f"must be >= {minimum}, got {value!r}")
    return number


def _strings(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise SettingsError(key, f"expected a list of strings, got {value!r}")
    return tuple(value)


def _mapping(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise SettingsError(key, f"expected a mapping, got {value!r}")
    return dict(value)


def _rate_limits(key: str, value: Any) -> dict[str, RateLimit]:
    limits: dict[str, RateLimit] = {}
    for profile, spec in _mapping(key, value).items():
        where = f"{key}.{profile}"
        if profile not in contract_profiles():
            raise SettingsError(where, f"unknown profile; use one of {', '.join(contract_profiles())}")
        if spec is None:
            limits[profile] = None  # type: ignore[assignment]  # no limit: removed when merged
            continue
        spec = _mapping(where, spec)
        unknown = set(spec) - {"count", "window_s"}
        if unknown:
            raise SettingsError(f"{where}.{sorted(unknown)[0]}", "unknown key; use count, window_s")
        limits[profile] = RateLimit(
            _number(f"{where}.count", spec.get("count", 1), int, 1),
            _number(f"{where}.window_s", spec.get("window_s", 60.0), float, 0.001),
        )
    return limits


def _models(key: str, value: Any) -> tuple[ModelRoute, ...]:
    if not isinstance(value, list):
        raise SettingsError(key, "expected a list of {pattern, provider, base_url?, api_key?}")
    routes = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        item = _mapping(where, item)
        unknown = set(item) - {"pattern", "provider", "base_url", "api_key"}
        if unknown:
            raise SettingsError(
                f"{where}.{sorted(unknown)[0]}", "unknown key; use pattern, provider, base_url, api_key"
            )
        if not isinstance(item.get("pattern"), str):
            raise SettingsError(f"{where}.pattern", "required: a model name or fnmatch pattern")
        provider = item.get("provider", "openai")
        if provider not in ("openai", "anthropic", "gemini"):
            raise SettingsError(f"{where}.provider", f"use openai, anthropic or gemini, not {provider!r}")
        routes.append(ModelRoute(item["pattern"], provider, item.get("base_url"), item.get("api_key")))
    return tuple(routes)


def _plans(key: str, value: Any) -> dict[str, tuple[str, ...]]:
    return {name: _strings(f"{key}.{name}", models) for name, models in _mapping(key, value).items()}


def _user_plans(key: str, value: Any) -> dict[str, str]:
    plans = _mapping(key, value)
    for user, plan in plans.items():
        if not isinstance(plan, str):
            raise SettingsError(f"{key}.{user}", f"expected a plan name, got {plan!r}")
    return plans


def _profiles(key: str, value: Any) -> tuple[str, ...]:
    names = _strings(key, value)
    for name in names:
        if name not in contract_profiles():
            raise SettingsError(key, f"unknown profile {name!r}; use {', '.join(contract_profiles())}")
    if not names:
        raise SettingsError(key, "at least one profile")
    return tuple(dict.fromkeys(names))


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOLEANS:
        return _BOOLEANS[value.strip().lower()]
    raise SettingsError(key, f"expected true or false, got {value!r}")


_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def _optional_str(key: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SettingsError(key, f"expected a string, got {value!r}")
    return value


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise SettingsError(key, f"expected a non-empty string, got {value!r}")
    return value


_PARSERS: dict[str, Any] = {
    "profiles": _profiles,
    "host": _str,
    "port": lambda k, v: _number(k, v, int, 0),
    "workers": lambda k, v: _number(k, v, int, 1),
    "llm_base_url": _optional_str,
    "llm_api_key": _str,
    "llm_timeout_s": lambda k, v: _number(k, v, float, 0.001),
    "default_model": _str,
    "models": _models,
    "system_prompt": _optional_str,
    "database_url": _str,
    "redis_url": _optional_str,
    "jwt_secret": _str,
    "require_exp": _bool,
    "cors_origins": _strings,
    "session_ttl_s": lambda k, v: _number(k, v, float, 0.001),
    "heartbeat_s": lambda k, v: _number(k, v, float, 0.001),
    "cache_ttl_s": lambda k, v: _number(k, v, float, 0.001),
    "rate_limits": _rate_limits,
    "message_max_chars": lambda k, v: _number(k, v, int, 1),
    "history_limit": lambda k, v: _number(k, v, int, 0),
    "projects": _strings,
    "plans": _plans,
    "user_plans": _user_plans,
    "default_plan": _str,
    "mock_seed": lambda k, v: _number(k, v, int, 0),
    "mock_ttft_ms": lambda k, v: _number(k, v, float, 0),
    "mock_itl_ms": lambda k, v: _number(k, v, float, 0),
    "max_body_bytes": lambda k, v: _number(k, v, int, 1024),
    "max_header_bytes": lambda k, v: _number(k, v, int, 1024),
    "max_headers": lambda k, v: _number(k, v, int, 8),
    "header_timeout_s": lambda k, v: _number(k, v, float, 0.01),
    "keep_alive_timeout_s": lambda k, v: _number(k, v, float, 0.01),
    "limit_concurrency": lambda k, v: _number(k, v, int, 1),
}
assert set(_PARSERS) == set(_FIELDS), "every setting needs a parser"


def parse_settings(raw: Mapping[str, Any], base: Settings | None = None) -> Settings:
    """`base` (defaults if None) with the keys of `raw` parsed and laid over it."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        parser = _PARSERS.get(key)
        if parser is None:
            raise SettingsError(key, f"unknown setting; known: {', '.join(sorted(_PARSERS))}")
        values[key] = parser(key, value)
    base = base or Settings()
    if "rate_limits" in values:  # merged per profile, so one limit can be changed alone
        merged = {**base.rate_limits, **values["rate_limits"]}
        values["rate_limits"] = {p: limit for p, limit in merged.items() if limit is not None}
    settings = dataclasses.replace(base, **values)
    if settings.default_plan not in settings.plans:
        raise SettingsError("default_plan", f"no plan named {settings.default_plan!r} in plans")
    for user, plan in settings.user_plans.items():
        if plan not in settings.plans:
            raise SettingsError(f"user_plans.{user}", f"no plan named {plan!r} in plans")
    return settings


def read_config_file(path: str | Path) -> dict[str, Any]:
    try:
        raw = read_yaml(Path(path))
    except SpecError as err:
        raise SettingsError("config", str(err)) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SettingsError("config", f"{path} must hold a mapping of settings")
    return raw


def env_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings from the environment: `REFSERVER_<KEY>` (upper case) and the plain conventional names.

    Structured values (rate_limits, plans, models ...) are read as YAML, so
    `REFSERVER_RATE_LIMITS='{conversations: {count: 2, window_s: 1}}'` works."""
    raw: dict[str, Any] = {}
    for name, key in _PLAIN_ENV.items():
        if environ.get(name):
            raw[key] = environ[name]
    for key in _FIELDS:
        value = environ.get(ENV_PREFIX + key.upper())
        if value is not None:
            try:
                raw[key] = yaml.safe_load(value) if key in _STRUCTURED else value
            except yaml.YAMLError as err:
                raise SettingsError(key, f"{ENV_PREFIX}{key.upper()} is not valid YAML: {err}") from None
    return raw


_STRUCTURED = {"rate_limits", "plans", "user_plans", "models"}


def load_settings(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults < config file (`config_file` or `REFSERVER_CONFIG`) < environment < flags."""
    environ = os.environ if environ is None else environ
    inherited = environ.get(ENV_PREFIX + "SETTINGS_YAML")
    if inherited:  # a worker process: the parent's settings, whole
        return parse_settings(yaml.safe_load(inherited))
    config_file = config_file or environ.get(ENV_PREFIX + "CONFIG")
    settings = Settings()
    if config_file:
        settings = parse_settings(read_config_file(config_file), settings)
    settings = parse_settings(env_settings(environ), settings)
    return parse_settings(dict(flags or {}), settings)


def to_environ(settings: Settings) -> dict[str, str]:
    """The settings as `REFSERVER_*` variables: how worker processes get the parent's settings."""
    return {ENV_PREFIX + "SETTINGS_YAML": yaml.safe_dump(dump(settings), sort_keys=False)}


def dump(settings: Settings) -> dict[str, Any]:
    """A mapping that `parse_settings` reads back into equal settings."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.name == "rate_limits":
            value = {p: {"count": r.count, "window_s": r.window_s} for p, r in value.items()}
        elif f.name == "models":
            value = [dataclasses.asdict(route) for route in value]
        elif f.name == "plans":
            value = {name: list(models) for name, models in value.items()}
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        out[f.name] = value
    return out
