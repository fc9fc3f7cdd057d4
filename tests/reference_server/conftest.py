"""Real reference servers (`python -m reference_server` child processes) in front of the real mock LLM.

`refserver` serves all five profiles with test-friendly settings for the whole session; tests that
need other settings (a tiny rate limit, a short session TTL, Redis, PostgreSQL) start their own
with `start_refserver(**settings)`. Each is its own process on a free loopback port, with its own
SQLite file, stopped when the session ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from refserver_helpers import free_port

from contracts import mint_token
from mockllm import ServerProcess, stop_process

START_TIMEOUT_S = 30.0
JWT_SECRET = "test-secret-of-at-least-32-bytes-for-hs256"
# Settings of the shared server: limits out of the way, short timeouts, a quick heartbeat.
TEST_SETTINGS: dict[str, Any] = {
    "jwt_secret": JWT_SECRET,
    "llm_timeout_s": 3.0,
    "heartbeat_s": 0.5,
    "rate_limits": {
        "sessions": {"count": 100_000, "window_s": 60},
        "conversations": {"count": 100_000, "window_s": 60},
    },
}


class RefServer:
    """A running reference server: `base_url`, `token(user)`, `client()`; `stop()` ends it."""

    def __init__(self, settings: dict[str, Any], workdir: Path, *, workers: int = 1) -> None:
        self.settings = settings
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = workdir / "settings.yaml"
        config.write_text(yaml.safe_dump(settings))
        command = [sys.executable, "-m", "reference_server", "--config", str(config), "--port", str(self.port)]
        if workers > 1:
            command += ["--workers", str(workers)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("REFSERVER_")}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        self.log = (workdir / "server.log").open("w+")
        self.process = subprocess.Popen(command, cwd=workdir, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.base_url}/schema/openapi.json", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"reference server did not start:\n{self.output()}")

    def token(self, user: str) -> str:
        return mint_token(self.settings.get("jwt_secret", "dev-secret"), user)

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=kwargs.pop("timeout", 10.0), **kwargs)

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text()

    def stop(self) -> None:
        stop_process(self.process)
        self.log.close()


@pytest.fixture(scope="session")
def start_refserver(
    mockllm_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., RefServer]]:
    """`start_refserver(workers=1, **settings)`: a new server over the session's mock, with
    TEST_SETTINGS and then `settings` (merged one level deep) as its config."""
    started: list[RefServer] = []

    def start(*, workers: int = 1, **settings: Any) -> RefServer:
        merged = {**TEST_SETTINGS, "llm_base_url": f"{mockllm_server.url}/v1"}
        for key, value in settings.items():
            merged[key] = {**merged[key], **value} if isinstance(merged.get(key), dict) else value
        server = RefServer(merged, tmp_path_factory.mktemp("refserver"), workers=workers)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def refserver(start_refserver: Callable[..., RefServer]) -> RefServer:
    """All five profiles with TEST_SETTINGS, shared by the session."""
    return start_refserver()
