"""What every benchmark process shares: uvloop, the open-file limit, CPUs to pin processes to, and
what a server process has cost so far (CPU time, resident memory, read from /proc).

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


def _family(pid: int) -> list[int]:
    """`pid` and its live descendants (a server's worker processes), children after parents."""
    family, i = [pid], 0
    while i < len(family):
        try:
            tasks = list(Path(f"/proc/{family[i]}/task").iterdir())
        except OSError:
            tasks = []
        for task in tasks:
            with contextlib.suppress(OSError, ValueError):
                family.extend(int(child) for child in (task / "children").read_text().split())
        i += 1
    return family


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process and its descendants have used so far: its own, that of
    children it has reaped, and that of the live ones. The cost of a server's work, whatever the
    client's pace: a client that cannot keep up makes a run take longer, not cost more.

    Raises OSError when the process is gone or /proc is not there (no Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in _family(pid):
        try:
            fields = _stat_fields(member)
        except OSError:
            if member == pid:
                raise
            continue  # a descendant that exited meanwhile
        utime, stime, cutime, cstime = (int(v) for v in fields[11:15])  # stat fields 14-17
        total += utime + stime + cutime + cstime
    return total / tick


def rss_kib(pid: int) -> int:
    """Resident memory of the process and its live descendants, KiB (VmRSS of each)."""
    total = 0
    for member in _family(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            if member == pid:
                raise
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total
