"""pytest plugin (entry point `pytest11`): a real mock LLM server for tests.

    def test_backend(mockllm):
        client = OpenAI(base_url=mockllm.openai_base_url, api_key="test")
        mockllm.arm_fault("error-after=3")
        ...
        assert mockllm.journal(prompt_contains="marker-123")
        assert mockllm.tool_results(prompt_contains="marker-123")   # what the backend sent back
        assert not mockllm.refusals()   # no request the real provider would refuse

The server runs as its own process on a free loopback port for the whole session, started by
`mockllm.launcher` (the `mockllm_server` fixture is its `ServerProcess`: `.url`, `.output()`); each
test gets it reset (config, journal, armed faults). Override the `mockllm_args` fixture to change
its flags, `mockllm_workers` to run it as several processes (one view of journal, faults, config).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .client import MockLLMClient
from .launcher import ServerProcess, mock_command, start_listening


@pytest.fixture(scope="session")
def mockllm_args() -> list[str]:
    """Flags for the session's mock: fast timing so tests run quickly."""
    return ["--seed", "0", "--ttft-ms", "0", "--itl-ms", "0"]


@pytest.fixture(scope="session")
def mockllm_workers() -> int:
    """Processes of the session's mock (`mockllm serve --workers`); override for a mock across cores."""
    return 1


@pytest.fixture(scope="session")
def mockllm_server(
    mockllm_args: list[str], mockllm_workers: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The session's mock process; its output goes to `mockllm.log` in a pytest temporary directory."""
    log = tmp_path_factory.mktemp("mockllm") / "mockllm.log"
    processes = ["--workers", str(mockllm_workers)] if mockllm_workers != 1 else []
    with start_listening(mock_command(*processes, *mockllm_args), log) as server:
        yield server


@pytest.fixture
def mockllm(mockllm_server: ServerProcess) -> Iterator[MockLLMClient]:
    """The session's mock, reset for this test: `.base_url`, `.openai_base_url`, journal, faults."""
    with MockLLMClient(mockllm_server.url) as client:
        client.reset()
        yield client
