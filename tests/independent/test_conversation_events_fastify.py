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
from pathlib import Path

from mockllm import start_listening, start_mock
from scenarios import run
from tests.independent.node_apps import install
from tests.independent.verdicts import assert_verdicts, load_expected, run_config

APP = Path(__file__).parent / "conversation_events_fastify"
SERVER_JS = APP / "server.js"
EXPECTED = load_expected(APP / "expected.yaml")
SECRET = "independent-fastify-secret-0123456789abcdef"


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
    node = install(APP)
    with (
        start_mock(seed=1, ttft_ms=20, itl_ms=5) as mock,
        start_listening([node, str(SERVER_JS)], env=server_env(mock.url)) as server,
    ):
        result = asyncio.run(run(run_config(EXPECTED, server.url, mock.url, SECRET)))
    assert_verdicts(result, EXPECTED)
