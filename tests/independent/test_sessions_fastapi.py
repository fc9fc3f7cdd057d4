"""The conformance suite on an independent FastAPI `sessions` backend (tests/independent/sessions_fastapi).

The backend was written from shared/seeds/000 and contracts.md §1 alone, and keeps the defects a
straightforward reading of them produces. `expected.yaml` lists those defects (found by reading and by
hand, not from the suite); the suite's failed MUST checks must be exactly them, except the known gaps of
the suite, which expected.yaml names under `suite_false_alarms` / `suite_misses`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from mockllm import start_listening, start_mock
from scenarios import run
from tests.independent.verdicts import assert_verdicts, load_expected, run_config

HERE = Path(__file__).parent
EXPECTED = load_expected(HERE / "sessions_fastapi" / "expected.yaml")
ROOT = HERE.parents[1]


def backend_command(mock_url: str) -> list[str]:
    return [
        sys.executable,
        *("-m", "tests.independent.sessions_fastapi.app"),
        *("--port", "0", "--llm-base-url", f"{mock_url}/v1"),
    ]


def test_suite_verdicts_on_sessions_fastapi() -> None:
    env = {"LLM_TIMEOUT": str(EXPECTED["settings"]["upstream_timeout_s"])}
    with (
        start_mock(seed=1, ttft_ms=20, itl_ms=5) as mock,
        start_listening(backend_command(mock.url), cwd=ROOT, env=env) as backend,
    ):
        result = asyncio.run(run(run_config(EXPECTED, backend.url, mock.url)))
    assert_verdicts(result, EXPECTED)
