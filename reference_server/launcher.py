"""The reference server as a child process on a free loopback port.

For whatever needs one running beside it — the conformance `reference` run, the demo, the load
tests: `start_reference(llm_base_url, *flags)` returns once the server says where it listens (the
harness's one launcher, `mockllm.launcher`), and stopping it ends the process.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mockllm import ServerProcess, start_listening


def reference_command(*flags: str, host: str = "127.0.0.1", port: int = 0) -> list[str]:
    """`python -m reference_server` on `host:port` with `flags` (any of its command-line flags)."""
    return [sys.executable, "-m", "reference_server", "--host", host, "--port", str(port), *flags]


def start_reference(llm_base_url: str, *flags: str, log: Path | None = None, cwd: Path | None = None) -> ServerProcess:
    """The reference server (every contract profile unless `--profile` is among `flags`) against
    the OpenAI-compatible LLM at `llm_base_url` (e.g. a mock's `http://127.0.0.1:PORT/v1`)."""
    return start_listening(reference_command("--llm-base-url", llm_base_url, *flags), log, cwd=cwd)
