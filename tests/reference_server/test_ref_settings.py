"""Settings: defaults < YAML file < environment < flags, and bad values named by their key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from reference_server._settings import RateLimit, Settings, SettingsError, dump, load_settings, parse_settings


def test_defaults_are_the_contract_values():
    settings = load_settings(environ={})
    assert settings == Settings()
    assert (settings.session_ttl_s, settings.heartbeat_s, settings.cache_ttl_s) == (600.0, 30.0, 3600.0)
    assert settings.rate_limit("sessions") == RateLimit(100, 60.0)
    assert settings.rate_limit("conversations") == RateLimit(10, 60.0)
    assert settings.jwt_secret == "dev-secret"


def test_file_then_environment_then_flags(tmp_path):
    config = tmp_path / "settings.yaml"
    config.write_text("heartbeat_s: 5\nsession_ttl_s: 7\ncache_ttl_s: 9\nrate_limits: {sessions: {count: 2}}\n")
    environ = {"REFSERVER_SESSION_TTL_S": "8", "JWT_SECRET": "from-env", "REFSERVER_CONFIG": str(config)}
    settings = load_settings(environ=environ, flags={"cache_ttl_s": "11"})
    assert settings.heartbeat_s == 5.0  # file
    assert settings.session_ttl_s == 8.0  # env over file
    assert settings.cache_ttl_s == 11.0  # flag over file
    assert settings.jwt_secret == "from-env"
    # One profile's limit changed; the other's default kept.
    assert settings.rate_limit("sessions") == RateLimit(2, 60.0)
    assert settings.rate_limit("conversations") == RateLimit(10, 60.0)


def test_structured_environment_values_are_yaml():
    settings = load_settings(environ={"REFSERVER_RATE_LIMITS": "{conversations: null}", "REDIS_URL": "redis://x"})
    assert settings.rate_limit("conversations") is None
    assert settings.redis_url == "redis://x"


def test_dump_reads_back_equal():
    settings = parse_settings({"profiles": ["sessions"], "models": [{"pattern": "claude-*", "provider": "anthropic"}]})
    assert parse_settings(dump(settings)) == settings


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"port": "eighty"}, "port"),
        ({"heartbeat_s": 0}, "heartbeat_s"),
        ({"heartbeat": 5}, "heartbeat"),
        ({"profiles": ["chat"]}, "profiles"),
        ({"rate_limits": {"nope": {"count": 1}}}, "rate_limits.nope"),
        ({"rate_limits": {"sessions": {"count": 0}}}, "rate_limits.sessions.count"),
        ({"rate_limits": {"sessions": {"per": 1}}}, "rate_limits.sessions.per"),
        ({"models": [{"pattern": "x", "provider": "cohere"}]}, "models[0].provider"),
        ({"user_plans": {"ann": "gold"}}, "user_plans.ann"),
        ({"default_plan": "gold"}, "default_plan"),
        ({"cors_origins": 5}, "cors_origins"),
    ],
)
def test_bad_settings_name_their_key(raw, key):
    with pytest.raises(SettingsError) as caught:
        parse_settings(raw)
    assert caught.value.key == key


def test_cli_refuses_a_bad_config_file_naming_the_key(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("session_ttl_s: soon\n")
    done = subprocess.run(
        [sys.executable, "-m", "reference_server", "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "session_ttl_s" in done.stderr and "soon" in done.stderr
