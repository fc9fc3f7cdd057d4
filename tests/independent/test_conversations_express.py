"""The conformance suite on an independently written backend: conversations (contracts.md §2) in Express.

`conversations_express/server.js` was written from seed 001 and contracts.md alone (Express, jsonwebtoken, the
openai npm SDK, in-memory storage), and its real defects were found by reading it against contracts.md and by
hand; `conversations_express/expected.yaml` lists them. This test runs the scenario library on it, against
the real mock, and asserts that the MUST checks the suite fails are exactly those defects, except the known
gaps of the suite (`suite_false_alarms`, `suite_misses`), which it prints and leaves out of the comparison.
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

APP = Path(__file__).parent / "conversations_express"
SERVER_JS = APP / "server.js"
EXPECTED = load_expected(APP / "expected.yaml")
SECRET = "independent-express-secret-0123456789abcdef"
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


def test_the_suite_fails_exactly_the_real_defects_of_the_express_backend() -> None:
    node = _need("node")
    _install()
    timeout_ms = round(float(EXPECTED["settings"]["upstream_timeout_s"]) * 1000)
    env = {"PORT": "0", "JWT_SECRET": SECRET, "UPSTREAM_TIMEOUT_MS": str(timeout_ms)}
    with start_mock(seed=1, ttft_ms=20, itl_ms=5) as mock:
        env["OPENAI_BASE_URL"] = f"{mock.url}/v1"
        with start_listening([node, str(SERVER_JS)], env=env) as server:
            result = asyncio.run(run(run_config(EXPECTED, server.url, mock.url, SECRET)))
    assert_verdicts(result, EXPECTED)
