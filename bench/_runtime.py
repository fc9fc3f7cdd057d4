"""What every benchmark process shares: uvloop, the open-file limit, and CPUs to pin processes to.

Kept apart from the stream client so that the raw-asyncio baselines, which need only these, do not
import the mock (the client reads its wires from the registered dialects).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
from collections.abc import Coroutine
from pathlib import Path
from typing import Any


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run on uvloop when it is importable: its transports cost far less per read/write."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def raise_nofile_limit() -> None:
    """A thousand streams need a thousand sockets; the default soft limit is often 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def available_cpus() -> set[int]:
    """CPUs this process may run on (empty where affinity is not supported)."""
    try:
        return os.sched_getaffinity(0)
    except AttributeError:
        return set()


def pin_to_cpu(pid: int, cpu: int) -> None:
    """Give a process one core so server and client do not steal each other's time.

    Every thread it has is pinned (a server pinned once it listens may have started some, e.g. a
    database driver's), and the threads it starts from then on inherit the core. Best effort: where
    affinity is unsupported or the CPU is missing, the process runs unpinned.
    """
    if cpu not in available_cpus():
        return
    try:
        threads = [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:  # no /proc, or the process has exited
        threads = [pid]
    for thread in threads:
        with contextlib.suppress(OSError):  # it may have exited meanwhile
            os.sched_setaffinity(thread, {cpu})
