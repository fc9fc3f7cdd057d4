"""pytest plugin (entry point `pytest11`): a real mock LLM server for tests.

    def test_backend(mockllm):
        client = OpenAI(base_url=mockllm.openai_base_url, api_key="test")
        mockllm.arm_fault("error-after=3")
        ...
        assert mockllm.journal(prompt_contains="marker-123")

The server runs as its own process on a free loopback port for the whole session; each test gets
it reset (config, journal, armed faults). Override the `mockllm_args` fixture to change its flags.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from .client import MockLLMClient

START_TIMEOUT_S = 30.0


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class MockLLMProcess:
    """A `python -m mockllm serve` child process on a free loopback port."""

    def __init__(self, args: list[str]) -> None:
        command = [
            sys.executable,
            "-m",
            "mockllm",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *args,
        ]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.base_url = self._wait_for_address()

    def _wait_for_address(self) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.startswith("mockllm listening on "):
                return line.split(" on ", 1)[1].strip()
            if not line and self.process.poll() is not None:
                break
        self.stop()
        stderr = self.process.stderr.read() if self.process.stderr else ""
        raise RuntimeError(f"mockllm did not start: {stderr.strip()}")

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture(scope="session")
def mockllm_args() -> list[str]:
    """Flags for the session's mock: fast timing so tests run quickly."""
    return ["--seed", "0", "--ttft-ms", "0", "--itl-ms", "0"]


@pytest.fixture(scope="session")
def mockllm_server(mockllm_args: list[str]) -> Iterator[MockLLMProcess]:
    server = MockLLMProcess(mockllm_args)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mockllm(mockllm_server: MockLLMProcess) -> Iterator[MockLLMClient]:
    """The session's mock, reset for this test: `.base_url`, `.openai_base_url`, journal, faults."""
    with MockLLMClient(mockllm_server.base_url) as client:
        client.reset()
        yield client
