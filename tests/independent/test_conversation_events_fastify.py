"""The conformance suite on an independently written backend: conversation-events (contracts.md §5) in Fastify.

`conversation_events_fastify/server.js` was written from seed 004 and contracts.md alone (Fastify,
@fastify/cors, jsonwebtoken, the openai npm SDK pointed at the mock, in-memory storage), without reading the
reference server; its real defects were found by reading it against contracts.md and confirmed by hand with
curl against the real mock, and `conversation_events_fastify/expected.yaml` lists them. This test runs the
whole scenario library on it with the `conversation-events` profile and asserts that the MUST checks the suite
fails are exactly those defects, except the suite's known gaps (`suite_false_alarms`, `suite_misses`), which
it prints and leaves out of the comparison.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mockllm import start_listening, start_mock
from scenarios import run
from tests.independent.verdicts import assert_verdicts, load_expected, run_config

APP = Path(__file__).parent / "conversation_events_fastify"
SERVER_JS = APP / "server.js"
EXPECTED = load_expected(APP / "expected.yaml")
SECRET = "independent-fastify-secret-0123456789abcdef"
NPM_CI_TIMEOUT_S = 60


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        reason = f"{tool} is not installed: the Fastify backend under test needs Node and npm"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
        pytest.skip(reason)
    return path


def _install() -> None:
    """`npm ci` once: when node_modules is missing or older than package-lock.json."""
    npm = _need("npm")
    modules, lock = APP / "node_modules", APP / "package-lock.json"
    if modules.is_dir() and modules.stat().st_mtime >= lock.stat().st_mtime:
        return
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=APP,
        capture_output=True,
        text=True,
        timeout=NPM_CI_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"npm ci failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    modules.touch()  # npm ci keeps the packages' own mtimes; mark the folder as installed now


def server_env(mock_url: str) -> dict[str, str]:
    """The server's configuration: the short timings expected.yaml tells the run, in the variables it reads."""
    settings = EXPECTED["settings"]
    return {
        "PORT": "0",
        "JWT_SECRET": SECRET,
        "OPENAI_BASE_URL": f"{mock_url}/v1",
        "HEARTBEAT_INTERVAL_MS": str(round(float(settings["heartbeat_s"]) * 1000)),
        "UPSTREAM_TIMEOUT_MS": str(round(float(settings["upstream_timeout_s"]) * 1000)),
    }


def test_the_suite_fails_exactly_the_real_defects_of_the_fastify_backend() -> None:
    node = _need("node")
    _install()
    with (
        start_mock(seed=1, ttft_ms=20, itl_ms=5) as mock,
        start_listening([node, str(SERVER_JS)], env=server_env(mock.url)) as server,
    ):
        result = asyncio.run(run(run_config(EXPECTED, server.url, mock.url, SECRET)))
    assert_verdicts(result, EXPECTED)
