"""A stalled upstream body: no byte for `timeout_s`, found by one timer per stream, not one per chunk.

aiohttp's own `sock_read` timeout cancels and re-arms a loop timer on every chunk it receives, a
per-token cost on the server's hot path. This watch instead looks at how many bytes the body has
received (`StreamReader.total_bytes`) every quarter of the timeout: a body whose count has not moved
for `timeout_s` is stalled, and `on_stall` is called once. The last byte is taken to have come at the
look that first saw it (the later edge of when it can have come), so a stall is never called early: it is called between
`timeout_s` and 1.25 x `timeout_s` after the last byte arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp

LOOKS_PER_TIMEOUT = 4


class StallWatch:
    """Watches `content` from now until `cancel()`; calls `on_stall()` once if it stalls."""

    __slots__ = ("_content", "_handle", "_interval", "_loop", "_on_stall", "_seen_at", "_seen_bytes", "_timeout")

    def __init__(self, content: aiohttp.StreamReader, timeout_s: float, on_stall: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._content, self._timeout, self._on_stall = content, timeout_s, on_stall
        self._interval = timeout_s / LOOKS_PER_TIMEOUT
        self._seen_bytes = content.total_bytes
        self._seen_at = self._loop.time()
        self._handle: asyncio.TimerHandle | None = self._loop.call_at(self._seen_at + self._interval, self._look)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _look(self) -> None:
        now = self._loop.time()
        received = self._content.total_bytes
        if received != self._seen_bytes:
            # Arrived since the last look: dated now, the latest it can have come (never an early stall).
            self._seen_bytes, self._seen_at = received, now
        elif now - self._seen_at >= self._timeout:
            self._handle = None
            self._on_stall()
            return
        self._handle = self._loop.call_at(now + self._interval, self._look)
