"""The conformance suite on an independently written backend: conversations (contracts.md §2) in Express.

`conversations_express/server.js` was written from seed 001 and contracts.md alone (Express, jsonwebtoken, the
openai npm SDK, in-memory storage), and its real defects were found by reading it against contracts.md and by
hand; `conversations_express/expected.yaml` lists them. This test runs the scenario library on it, against
the real mock, and asserts that the MUST checks the suite fails are exactly those defects, except the known
gaps of the suite (`suite_false_alarms`, `suite_misses`), which it prints and leaves out of the comparison.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from mockllm import start_listening, start_mock
from scenarios import run
from tests.independent.node_apps import install
from tests.independent.verdicts import assert_verdicts, load_expected, run_config

APP = Path(__file__).parent / "conversations_express"
SERVER_JS = APP / "server.js"
EXPECTED = load_expected(APP / "expected.yaml")
SECRET = "independent-express-secret-0123456789abcdef"


def test_the_suite_fails_exactly_the_real_defects_of_the_express_backend() -> None:
    node = install(APP)
    timeout_ms = round(float(EXPECTED["settings"]["upstream_timeout_s"]) * 1000)
    env = {"PORT": "0", "JWT_SECRET": SECRET, "UPSTREAM_TIMEOUT_MS": str(timeout_ms)}
    with start_mock(seed=1, ttft_ms=20, itl_ms=5) as mock:
        env["OPENAI_BASE_URL"] = f"{mock.url}/v1"
        with start_listening([node, str(SERVER_JS)], env=env) as server:
            result = asyncio.run(run(run_config(EXPECTED, server.url, mock.url, SECRET)))
    assert_verdicts(result, EXPECTED)
