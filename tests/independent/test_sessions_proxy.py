"""The conformance suite on a proxy: seed 000's NestJS layer (in FastAPI + httpx) in front of the mock
as the FastAPI agent (contract mode, `sessions` profile).

`sessions_proxy/app.py` was written from seed 000's NestJS layer and contracts.md §1 alone, and keeps the
defects a straightforward port of it has; `sessions_proxy/expected.yaml` lists them (found by reading it
and by hand with curl). The mock serves both sides of the run: the proxy's upstream (`--contract sessions`)
and the suite's journal, so the faults the scenarios arm for their marker reach the proxy's upstream
stream, and continuity is judged on the conversation the mock holds as the agent.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from mockllm import start_listening, start_mock
from scenarios import run
from tests.independent.verdicts import assert_verdicts, load_expected, run_config

HERE = Path(__file__).parent
EXPECTED = load_expected(HERE / "sessions_proxy" / "expected.yaml")
ROOT = HERE.parents[1]


def proxy_command(upstream: str) -> list[str]:
    return [sys.executable, "-m", "tests.independent.sessions_proxy.app", "--port", "0", "--upstream", upstream]


def test_suite_verdicts_on_the_sessions_proxy() -> None:
    env = {"UPSTREAM_TIMEOUT": str(EXPECTED["settings"]["upstream_timeout_s"])}
    with (
        start_mock("--contract", "sessions", seed=1, ttft_ms=20, itl_ms=5) as mock,
        start_listening(proxy_command(mock.url), cwd=ROOT, env=env) as proxy,
    ):
        result = asyncio.run(run(run_config(EXPECTED, proxy.url, mock.url)))
    assert_verdicts(result, EXPECTED)
