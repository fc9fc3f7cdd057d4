"""A 1 byte/s reader beside hundreds of normal streams: one slow client must not slow the others.

A client on a bad link reads slower than the LLM writes. A server that waits for that client's
socket inside the loop that serves everyone (a blocking write, a lock held across a send) hands its
slowness to every other stream; one that buffers without bound for it grows until it is killed.
So the slow readers here have a 1 KiB receive buffer and read one byte a second, and ask for long
answers (the mock streams thousands of tokens to them); the normal streams' ITL p99 is measured
without and then with them, in one run, and compared as a ratio; the server's RSS is read before
the slow readers start and once the normal streams are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._runtime import run as run_loop

from ._common import (
    Outcome,
    Property,
    Sizes,
    StreamStats,
    Target,
    close,
    connect,
    mock_and_reference,
    normal_streams,
    ratio_holds,
    rss_kb,
)

RCVBUF = 1024
READ_EVERY_S = 1.0  # one byte each time: 1 byte/s
SLOW_ANSWER_TOKENS = 5000
HEAD_START_S = 0.5  # the slow readers' buffers fill before the normal streams start
ITL_RATIO_LIMIT = 1.5  # p99 with the slow readers at most 1.5x the p99 without them ...
ITL_FLOOR_MS = 5.0  # ... or 5 ms above it: a p99 of a few ms moves that much from noise alone
RSS_LIMIT_KB = 32 * 1024  # 5,000 tokens per slow reader are ~1 MiB at most: buffered whole, still far below
TTFT_MS, TOKENS = 50, 20
SPREAD_S = 0.5
SLOW_PROMPT = "slow-reader"


# ---------------------------------------------------------------------------------------------- pure part


@dataclass(frozen=True, slots=True)
class SlowFigures:
    target: str
    without: StreamStats
    with_slow: StreamStats
    rss_before_kb: int
    rss_after_kb: int
    slow_bytes_read: int


def judge(fig: SlowFigures) -> list[Property]:
    """Normal streams all finish, their ITL p99 holds its ratio, the server's memory stays bounded."""
    before, after = fig.without, fig.with_slow
    ratio = after.itl_p99_ms / before.itl_p99_ms if before.itl_p99_ms else float("nan")
    growth = fig.rss_after_kb - fig.rss_before_kb
    return [
        Property(
            f"{fig.target}: normal streams all finish",
            before.failed == 0 and after.failed == 0,
            f"{before.failed} + {after.failed} failed of {before.streams + after.streams}",
            "0",
        ),
        Property(
            f"{fig.target}: normal ITL p99 unchanged by slow readers",
            ratio_holds(after.itl_p99_ms, before.itl_p99_ms, ITL_RATIO_LIMIT, ITL_FLOOR_MS),
            f"{before.itl_p99_ms:.1f} -> {after.itl_p99_ms:.1f} ms (x{ratio:.2f})",
            f"at most x{ITL_RATIO_LIMIT} or +{ITL_FLOOR_MS:g} ms",
        ),
        Property(
            f"{fig.target}: memory bounded beside slow readers",
            growth <= RSS_LIMIT_KB,
            f"RSS {growth / 1024:+.1f} MiB",
            f"at most +{RSS_LIMIT_KB / 1024:.0f} MiB",
        ),
    ]


# ---------------------------------------------------------------------------------------------- I/O part


async def slow_reader(target: Target, i: int, stop: asyncio.Event) -> int:
    """Ask for a long stream, then read it one byte a second until `stop`; the bytes read."""
    got = 0
    try:
        reader, writer = await connect(target.addr, rcvbuf=RCVBUF)
    except (OSError, TimeoutError):
        return -1
    try:
        writer.write(target.request(f"{SLOW_PROMPT} {i}"))
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), READ_EVERY_S)
            byte = await asyncio.wait_for(reader.read(1), 5.0)
            if not byte:
                break
            got += 1
    except (OSError, TimeoutError):
        pass
    finally:
        close(writer)
    return got


def run(sizes: Sizes, workdir: Path | None = None) -> Outcome:
    outcome = Outcome(
        f"slow reader: {sizes.slow_readers} clients reading 1 byte/s (SO_RCVBUF {RCVBUF}) of "
        f"{SLOW_ANSWER_TOKENS}-token answers, beside {sizes.normal_streams} normal streams "
        f"(TTFT {TTFT_MS} ms, ITL {sizes.normal_itl_ms:g} ms, {TOKENS} tokens)",
        ["target", "phase", "streams", "finished", "ITL p50 ms", "ITL p99 ms", "TTFT p99 ms", "RSS MiB"],
    )
    with (
        tempfile.TemporaryDirectory(prefix="reliability-slow-") as tmp,
        mock_and_reference(workdir or Path(tmp), ttft_ms=TTFT_MS, itl_ms=sizes.normal_itl_ms, tokens=TOKENS) as stack,
    ):
        # The reference server cannot pass the mock's per-request headers on: a rule makes its
        # slow readers' answers long; the mock's own slow readers ask by header, and fast.
        rule = {"match": {"contains": SLOW_PROMPT}, "answer": {"prose": {"length_tokens": SLOW_ANSWER_TOKENS}}}
        stack.admin().patch_config({"answers": {"rules": [rule]}})
        fast = (f"x-mock-answer-tokens: {SLOW_ANSWER_TOKENS}", "x-mock-itl-ms: 1")
        mock_slow = stack.mock_target(fast)
        ref = stack.ref_target()
        # Both servers at once, on one schedule: their "without" phases overlap, and so do their "beside" ones.
        figures = run_loop(both(measure_with(stack.mock_target(), mock_slow, sizes), measure_with(ref, ref, sizes)))
    for fig in figures:
        for phase, stats, rss in (
            ("without", fig.without, fig.rss_before_kb),
            ("beside", fig.with_slow, fig.rss_after_kb),
        ):
            outcome.rows.append(
                [
                    fig.target,
                    phase,
                    str(stats.streams),
                    str(stats.finished),
                    f"{stats.itl_p50_ms:.1f}",
                    f"{stats.itl_p99_ms:.1f}",
                    f"{stats.ttft_p99_ms:.1f}",
                    f"{rss / 1024:.1f}",
                ]
            )
        outcome.properties.extend(judge(fig))
        outcome.notes.append(f"{fig.target}: the slow readers read {fig.slow_bytes_read} bytes in all")
    return outcome


async def both(*measures: Coroutine[Any, Any, SlowFigures]) -> list[SlowFigures]:
    return list(await asyncio.gather(*measures))


async def measure_with(target: Target, slow_target: Target, sizes: Sizes) -> SlowFigures:
    """`measure`, with the slow readers asking `slow_target` (same server, other request headers)."""
    prefix = f"{target.name} normal"
    without = await normal_streams(target, sizes.normal_streams, SPREAD_S, prefix + " before")
    rss_before = rss_kb(target.pid)
    stop = asyncio.Event()
    readers = [asyncio.create_task(slow_reader(slow_target, i, stop)) for i in range(sizes.slow_readers)]
    await asyncio.sleep(HEAD_START_S)
    with_slow = await normal_streams(target, sizes.normal_streams, SPREAD_S, prefix + " beside")
    rss_after = rss_kb(target.pid)
    stop.set()
    read = sum(max(0, n) for n in await asyncio.gather(*readers))
    return SlowFigures(target.name, without, with_slow, rss_before, rss_after, read)
