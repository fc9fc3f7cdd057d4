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
from pathlib import Path

from mockllm import start_listening, start_mock
from scenarios import run
from tests.independent.node_apps import install
from tests.independent.verdicts import assert_verdicts, load_expected, run_config

APP = Path(__file__).parent / "start_stream_express"
SERVER_JS = APP / "server.js"
EXPECTED = load_expected(APP / "expected.yaml")


def _ms(setting: str) -> str:
    return str(round(float(EXPECTED["settings"][setting]) * 1000))


def test_the_suite_fails_exactly_the_real_defects_of_the_start_stream_express_backend() -> None:
    node = install(APP)
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
