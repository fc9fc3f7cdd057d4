"""Abort storm: thousands of streams closed after 1-20 events, a quarter of them by RST.

Clients that leave mid-stream are the normal case for a chat backend (a closed tab, a stop button,
a phone that lost its signal), and each one must release everything it held: the socket, the task
that served it, the upstream call. A leak of one fd or one task per aborted stream is invisible in
a functional test and fatal after a day in production, so the storm is big and the servers are
read from outside afterwards: their fds and RSS (/proc), and the mock's journal, where an upstream
call still `in_progress` once everything has settled is a call the reference server never closed.

The storm runs in two equal halves with the mock's journal capped at one half and cleared between
them, so the second half runs at the journal's full size: memory that still grows then is a leak,
not the journal filling up. Then as many streams again are read to their end, so that what an aborted
stream costs the server (its CPU seconds, /proc) stands beside what a whole one costs: a stream the
client left must cost no more than one it read to the end (`CPU_SHARE`).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench._runtime import run as run_loop
from mockllm import MockLLMClient

from ._common import (
    Outcome,
    Property,
    Sizes,
    Stack,
    Target,
    cpu_seconds,
    fd_count,
    mock_and_reference,
    one_stream,
    rss_kb,
    thread_count,
    wait_until,
)

MAX_EVENTS = 20
RESET_EVERY = 4  # one stream in four is reset (SO_LINGER 0) instead of closed with a FIN
FD_SLACK = 5  # pooled upstream connections may come and go; a leak per stream is far above this
RSS_SLACK_KB = 16 * 1024  # allocator noise; a leak of even 2 KiB per stream over 5,000 streams is 10 MiB more
RSS_SLACK_SHARE = 0.10
STREAM_TIMEOUT_S = 10.0
# Below this many streams a leak of a few KiB each cannot be told from a server's warm-up (caches,
# the allocator's arenas): the memory property is then "not checked".
MIN_LEAK_STREAMS = 5_000
CPU_SHARE = 1.25  # an aborted stream may cost the server at most this much of a whole one's CPU time


# ---------------------------------------------------------------------------------------------- pure part


def stop_after(i: int) -> int:
    """How many events stream `i` reads before it leaves: 1..20, spread evenly (7 is prime to 20)."""
    return 1 + (i * 7) % MAX_EVENTS


def resets(i: int) -> bool:
    """Whether stream `i` leaves by RST rather than a FIN."""
    return i % RESET_EVERY == 0


@dataclass(frozen=True, slots=True)
class StormFigures:
    """One target's storm as measured: the server's fds before and after, its RSS after each half."""

    target: str
    streams: int
    seconds: float
    failures: Counter[str]
    fds_before: int
    fds_after: int
    upstream_fds_before: int  # the mock's, when the target is the reference server
    upstream_fds_after: int
    rss_first_kb: int  # after the first half (the journal at its cap)
    rss_second_kb: int
    threads_before: int
    threads_after: int
    in_progress: int  # journal entries still `in_progress` after each half settled, summed
    cpu_aborted_ms: float  # the server's CPU time per aborted stream
    cpu_whole_ms: float  # ... per stream read to its end
    whole_seconds: float  # how long as many streams read to their end took

    @property
    def whole_throughput(self) -> float:
        return self.streams / self.whole_seconds if self.whole_seconds > 0 else float("nan")

    @property
    def throughput(self) -> float:
        return self.streams / self.seconds if self.seconds > 0 else float("nan")


def judge(fig: StormFigures) -> list[Property]:
    """A storm's properties: every stream served, fds back, memory steady, every upstream call closed."""
    name = fig.target
    failed = sum(fig.failures.values())
    rss_limit = max(RSS_SLACK_KB, int(fig.rss_first_kb * RSS_SLACK_SHARE))
    growth = fig.rss_second_kb - fig.rss_first_kb
    # Through the reference server, each connection it keeps pooled to the mock holds one fd on each
    # side: its own growth beyond the mock's is what the storm left behind (a leak per stream would
    # show as thousands); the mock's own fds are judged in its own storm.
    pooled = max(0, fig.upstream_fds_after - fig.upstream_fds_before) if name != "mock" else 0
    fd_ok = fig.fds_after - fig.fds_before - pooled <= FD_SLACK
    fds = f"{fig.fds_before} -> {fig.fds_after}"
    if fig.upstream_fds_before >= 0 and name != "mock":
        fds += f" (mock {fig.upstream_fds_before} -> {fig.upstream_fds_after})"
    return [
        Property(
            f"{name}: every stream served",
            failed == 0,
            f"{failed} of {fig.streams} failed {dict(fig.failures) if failed else ''}".rstrip(),
            "0 failed",
        ),
        Property(
            f"{name}: no fd growth",
            fd_ok,
            f"fds {fds}",
            f"at most +{FD_SLACK} once settled" + (", beyond those pooled to the mock" if name != "mock" else ""),
        ),
        Property(
            f"{name}: memory steady at the journal's cap",
            growth <= rss_limit if fig.streams >= MIN_LEAK_STREAMS else None,
            f"RSS {growth / 1024:+.1f} MiB over the second half",
            f"at most +{rss_limit / 1024:.0f} MiB",
        ),
        Property(
            f"{name}: every upstream call closed",
            fig.in_progress == 0,
            f"{fig.in_progress} journal entries in_progress after settling",
            "0",
        ),
        Property(
            f"{name}: an aborted stream costs no more than a whole one",
            fig.cpu_aborted_ms <= CPU_SHARE * fig.cpu_whole_ms,
            f"CPU {fig.cpu_aborted_ms:.2f} ms per aborted stream, {fig.cpu_whole_ms:.2f} ms per whole one",
            f"at most {CPU_SHARE:g} x a whole one's",
        ),
    ]


def rows(figures: Iterable[StormFigures]) -> list[list[str]]:
    out = []
    for f in figures:
        out.append(
            [
                f.target,
                str(f.streams),
                f"{f.seconds:.1f}",
                f"{f.throughput:.0f}",
                str(sum(f.failures.values())),
                f"{f.fds_before} -> {f.fds_after}",
                f"{f.rss_first_kb / 1024:.1f} -> {f.rss_second_kb / 1024:.1f}",
                f"{f.threads_before} -> {f.threads_after}",
                str(f.in_progress),
                f"{f.cpu_aborted_ms:.2f} / {f.cpu_whole_ms:.2f}",
            ]
        )
    return out


# ---------------------------------------------------------------------------------------------- I/O part


async def storm(
    target: Target, indices: range, concurrency: int, prefix: str, *, whole: bool = False
) -> tuple[float, Counter[str]]:
    """Every stream of `indices`, `concurrency` at a time, each left after `stop_after(i)` events (or,
    `whole`, read to its end)."""
    failures: Counter[str] = Counter()
    queue = iter(indices)

    async def worker() -> None:
        for i in queue:
            leave = None if whole else stop_after(i)
            read = await one_stream(
                target, f"{prefix} {i}", stop_after=leave, reset=not whole and resets(i), timeout_s=STREAM_TIMEOUT_S
            )
            if read.status != 200:
                failures[f"status {read.status}" if read.status else read.error or "no status"] += 1
            elif read.events < stop_after(i) and not read.finished:
                failures[read.error or "short stream"] += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, failures


def in_progress(admin: MockLLMClient) -> int:
    return len(admin.journal(outcome="in_progress"))


def storm_target(stack: Stack, target: Target, sizes: Sizes) -> StormFigures:
    """Warm up, then the storm in two halves, each settled and read, the journal cleared between."""
    admin = stack.admin()
    half = max(1, sizes.storm_streams // 2)
    admin.patch_config({"journal": {"max_entries": half}})
    upstream = stack.mock.process.pid
    run_loop(storm(target, range(2 * sizes.storm_concurrency), sizes.storm_concurrency, "warm-up"))
    wait_until(lambda: in_progress(admin) == 0, sizes.settle_s)
    admin.clear_journal()
    fds_before, upstream_before = fd_count(target.pid), fd_count(upstream)
    threads_before = thread_count(target.pid)
    seconds, failures, stuck, rss = 0.0, Counter[str](), 0, []
    cpu_start = cpu_seconds(target.pid)
    for part in (range(half), range(half, 2 * half)):
        took, failed = run_loop(storm(target, part, sizes.storm_concurrency, f"{target.name} storm"))
        seconds += took
        failures += failed
        wait_until(lambda: in_progress(admin) == 0 and fd_count(target.pid) <= fds_before + FD_SLACK, sizes.settle_s)
        stuck += in_progress(admin)
        rss.append(rss_kb(target.pid))
        admin.clear_journal()
    cpu_aborted = cpu_seconds(target.pid) - cpu_start
    fds_after, upstream_after = fd_count(target.pid), fd_count(upstream)  # before the whole streams pool any
    cpu_start = cpu_seconds(target.pid)
    whole_seconds, _ = run_loop(
        storm(target, range(2 * half), sizes.storm_concurrency, f"{target.name} whole", whole=True)
    )
    wait_until(lambda: in_progress(admin) == 0, sizes.settle_s)
    cpu_whole = cpu_seconds(target.pid) - cpu_start
    admin.clear_journal()
    return StormFigures(
        target.name,
        2 * half,
        seconds,
        failures,
        fds_before,
        fds_after,
        upstream_before,
        upstream_after,
        rss[0],
        rss[1],
        threads_before,
        thread_count(target.pid),
        stuck,
        1000 * cpu_aborted / (2 * half),
        1000 * cpu_whole / (2 * half),
        whole_seconds,
    )


def run(sizes: Sizes, workdir: Path | None = None) -> Outcome:
    """The storm against the mock directly, then through the reference server in front of that mock."""
    outcome = Outcome(
        f"abort storm: {sizes.storm_streams} streams per target, {sizes.storm_concurrency} at a time, each left "
        f"after 1-{MAX_EVENTS} events, 1 in {RESET_EVERY} by RST",
        [
            "target",
            "streams",
            "s",
            "streams/s",
            "failed",
            "fds",
            "RSS MiB (1st -> 2nd half)",
            "threads",
            "in_progress",
            "CPU ms aborted / whole",
        ],
    )
    with tempfile.TemporaryDirectory(prefix="reliability-storm-") as tmp:
        base = workdir or Path(tmp)
        with mock_and_reference(base) as stack:  # the mock first, alone; then through the reference server
            figures = [storm_target(stack, target, sizes) for target in (stack.mock_target(), stack.ref_target())]
    outcome.rows.extend(rows(figures))
    for fig in figures:
        outcome.properties.extend(judge(fig))
    mock, ref = figures
    outcome.notes.append(
        f"throughput through the reference server {ref.throughput:.0f} streams/s beside the mock's "
        f"{mock.throughput:.0f} streams/s ({ref.throughput / mock.throughput:.0%} of it); streams read to their "
        f"end: {ref.whole_throughput:.0f} and {mock.whole_throughput:.0f} streams/s"
    )
    return outcome
