"""Servers as child processes: start one, wait until it says where it listens, stop it.

Every server the harness starts for itself — the mock LLM, the reference server, the conformance
fixture host, the benchmarks' servers — prints one line `... listening on http://HOST:PORT` once
its socket is bound (port 0: the kernel picks a free one). This module is the one way to start
such a child and to stop it. Its output goes to a log file, never to a pipe: a server that writes
a line per request would block on a full pipe nobody reads, and stall the run it serves.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
LISTENING = "listening on "


class StartError(RuntimeError):
    """A child exited, or did not say where it listens, in time; the message ends with its log."""


def stop_process(process: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class ServerProcess:
    """A running child: `url` is the address it printed; `stop()` (or the `with` block) ends it."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        """Everything it wrote so far (stdout and stderr, interleaved)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """End it; its exit status."""
        stop_process(self.process, timeout)
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def start_listening(
    command: Sequence[str],
    log: Path | None = None,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    ready: str | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> ServerProcess:
    """Run `command` and return once it has printed `... listening on URL` (and, with `ready`, a
    line starting with `ready` too, e.g. a host that listens first and warms up after).

    `log` receives its output (a temporary file when not given). StartError, with the log's tail,
    when it exits first or says nothing in `timeout_s`; the child is stopped then."""
    if log is None:
        handle, name = tempfile.mkstemp(prefix="server-", suffix=".log")
        os.close(handle)
        log = Path(name)
    environment = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as sink:
        process = subprocess.Popen(list(command), cwd=cwd, stdout=sink, stderr=subprocess.STDOUT, env=environment)
    child = ServerProcess(process, "", log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = child.output().splitlines()
        url = next((line.rsplit(LISTENING, 1)[1].split()[0] for line in lines if LISTENING in line), "")
        if url and (ready is None or any(line.startswith(ready) for line in lines)):
            child.url = url
            return child
        if process.poll() is not None:
            break
        time.sleep(0.02)
    exited = process.poll() is not None
    child.stop()
    what = f"exited with status {process.returncode}" if exited else f"did not start within {timeout_s:g} s"
    tail = "\n".join(child.output().splitlines()[-20:])
    raise StartError(f"{' '.join(command[:4])} {what}; its output ({log}):\n{tail}")


def mock_command(*args: str, host: str = "127.0.0.1", port: int = 0) -> list[str]:
    """`python -m mockllm serve` on `host:port` with `args` (seed, timing, config ...)."""
    return [sys.executable, "-m", "mockllm", "serve", "--host", host, "--port", str(port), *args]


def start_mock(
    *args: str,
    seed: int = 1,
    ttft_ms: float = 20,
    itl_ms: float = 5,
    log: Path | None = None,
    cwd: Path | None = None,
    workers: int = 1,
) -> ServerProcess:
    """The mock LLM on a free loopback port with this seed and constant token timing, as `workers`
    processes (`mockllm serve --workers`); `args` are more `mockllm serve` flags (given last, so they win)."""
    timing = ("--seed", str(seed), "--ttft-ms", f"{ttft_ms:g}", "--itl-ms", f"{itl_ms:g}")
    processes = ("--workers", str(workers)) if workers != 1 else ()
    return start_listening(mock_command(*timing, *processes, *args), log, cwd=cwd)
