"""Start the mock LLM and the reference server as child processes on free loopback ports.

Used by `python -m scenarios reference` (the library on all five profiles of our own reference
server, as the demo and CI run it); the tests use the same launchers.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from mockllm.pytest_plugin import stop_process

from ._profiles import load_profile
from ._runner import Credentials, RunConfig
from ._scenarios import library

START_TIMEOUT_S = 30.0
# Short timings, so the scenarios that wait (expiry, heartbeats, upstream timeout) fit the budget.
REFERENCE_SETTINGS = {"heartbeat_s": "0.5", "session_ttl_s": "1.5", "upstream_timeout_s": "5"}
REFERENCE_SECRET = "reference-conformance-secret-0123456789abcdef"


def started(command: list[str], cwd: Path, log: Path) -> tuple[subprocess.Popen[str], str]:
    """Run `command`; return it and the URL it prints as `... listening on URL`."""
    out = log.open("w")
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=out, text=True)
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if "listening on " in line:
            return process, line.rsplit("listening on ", 1)[1].strip()
        if not line and process.poll() is not None:
            break
    stop_process(process)
    raise RuntimeError(f"{' '.join(command[:4])} did not start; see {log}")


def start_mock(workdir: Path, *, ttft_ms: float = 20, itl_ms: float = 5, extra: tuple[str, ...] = ()) -> tuple[
    subprocess.Popen[str], str
]:  # fmt: skip
    """The mock LLM on a free loopback port, seed 1, with the given token timing."""
    command = [sys.executable, "-m", "mockllm", "serve", "--port", "0", "--seed", "1",
               "--ttft-ms", f"{ttft_ms:g}", "--itl-ms", f"{itl_ms:g}", *extra]  # fmt: skip
    return started(command, workdir, workdir / "mockllm.log")


def start_reference(
    workdir: Path, mock_url: str, *, settings: dict[str, str] | None = None, extra: tuple[str, ...] = (),
    name: str = "reference",
) -> tuple[subprocess.Popen[str], str]:  # fmt: skip
    """The reference server (all five profiles) on a free loopback port, against the mock."""
    chosen = {**REFERENCE_SETTINGS, **(settings or {})}
    command = [sys.executable, "-m", "reference_server", "--port", "0", "--llm-base-url", f"{mock_url}/v1",
               "--jwt-secret", REFERENCE_SECRET, "--heartbeat-s", chosen["heartbeat_s"],
               "--session-ttl-s", chosen["session_ttl_s"], "--llm-timeout-s", chosen["upstream_timeout_s"],
               "--database-url", f"sqlite+aiosqlite:///{workdir}/{name}.sqlite3", *extra]  # fmt: skip
    return started(command, workdir, workdir / f"{name}_server.log")


def reference_config(mock_url: str, target: str, profile: str) -> RunConfig:
    """The whole library on one profile of a reference server started with `REFERENCE_SETTINGS`."""
    return RunConfig(
        target=target,
        profile=load_profile(profile),
        mock=mock_url,
        scenarios=library(),
        settings=REFERENCE_SETTINGS,
        credentials=Credentials(secret=REFERENCE_SECRET),
    )


@contextlib.contextmanager
def mock_and_reference(workdir: Path | None = None) -> Iterator[tuple[str, str]]:
    """(mock URL, reference server URL), both running until the block ends."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="conformance-")))
        mock, mock_url = start_mock(workdir)
        stack.callback(stop_process, mock)
        reference, reference_url = start_reference(workdir, mock_url)
        stack.callback(stop_process, reference)
        yield mock_url, reference_url
