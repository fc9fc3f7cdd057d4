"""The conformance suite on an independently written backend: start-stream (contracts.md §3) in Express.

`start_stream_express/server.js` was written from seed 002 and contracts.md alone (Express, cors, the openai
npm SDK, in-memory chats, sessions, plans and a Map-with-TTL response cache), and its real defects were found
by reading it against contracts.md and by hand with curl against the mock; `start_stream_express/expected.yaml`
lists them. This test runs the scenario library on it, against the real mock, and asserts that the MUST
checks the suite fails are exactly those defects, except the known gaps of the suite (`suite_false_alarms`,
`suite_misses`), which it prints and leaves out of the comparison.
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

APP = Path(__file__).parent / "start_stream_express"
SERVER_JS = APP / "server.js"
EXPECTED = load_expected(APP / "expected.yaml")
NPM_CI_TIMEOUT_S = 60


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        reason = f"{tool} is not installed: the Express backend under test needs Node and npm"
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


def _ms(setting: str) -> str:
    return str(round(float(EXPECTED["settings"][setting]) * 1000))


def test_the_suite_fails_exactly_the_real_defects_of_the_start_stream_express_backend() -> None:
    node = _need("node")
    _install()
    # The server reads these; the run is told the same values through expected.yaml's settings.
    env = {
        "PORT": "0",
        "UPSTREAM_TIMEOUT_MS": _ms("upstream_timeout_s"),
        "SESSION_TTL_MS": _ms("session_ttl_s"),
    }
    with start_mock(seed=1, ttft_ms=20, itl_ms=5) as mock:
        env["OPENAI_BASE_URL"] = f"{mock.url}/v1"
        with start_listening([node, str(SERVER_JS)], env=env) as server:
            result = asyncio.run(run(run_config(EXPECTED, server.url, mock.url)))
    assert_verdicts(result, EXPECTED)
