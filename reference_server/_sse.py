"""Server-Sent Events as a thin layer over Litestar's streaming response.

Events are encoded here once, as bytes (`data: <json>\\n\\n`); the response only moves them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import anyio
import msgspec
from litestar.response import Stream

MEDIA_TYPE = "text/event-stream"  # Litestar adds "; charset=utf-8"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DONE = b"data: [DONE]\n\n"
_encode = msgspec.json.encode


def data_event(payload: Any) -> bytes:
    """One event: a `data:` line holding `payload` as JSON (JSON never contains a raw newline)."""
    return b"data: " + _encode(payload) + b"\n\n"


def event_stream(events: AsyncIterator[bytes], headers: Mapping[str, str] | None = None) -> Stream:
    return Stream(events, media_type=MEDIA_TYPE, headers={**SSE_HEADERS, **(headers or {})})


async def with_heartbeats(
    events: AsyncIterator[bytes], interval_s: float, heartbeat: Callable[[], bytes]
) -> AsyncIterator[bytes]:
    """`events`, with `heartbeat()` sent whenever `interval_s` passes without one (from the start).

    The next event is awaited as a task so that a heartbeat can go out while the LLM is silent;
    closing this iterator cancels that task and closes `events`.
    """
    loop = asyncio.get_running_loop()
    next_beat = loop.time() + interval_s
    pending: asyncio.Future[bytes] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait((pending,), timeout=max(0.0, next_beat - loop.time()))
            if not done:
                next_beat += interval_s
                yield heartbeat()
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            finally:
                pending = None
            yield event
    finally:
        if pending is not None:
            pending.cancel()
            # Shielded, and waited with asyncio.wait (which, unlike `await pending`, does not pass
            # the outer scope's repeated cancels on): the LLM stream inside must finish closing
            # its connection, or the upstream call would run on until garbage collection.
            with anyio.CancelScope(shield=True):
                await asyncio.wait((pending,))
            if not pending.cancelled():
                pending.exception()  # retrieved: no "exception was never retrieved" warning
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
