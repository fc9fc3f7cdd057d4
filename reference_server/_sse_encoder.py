"""Server-Sent Events as a thin layer over Litestar's streaming response.

Events are encoded here once, as bytes (`data: <json>\\n\\n`); the response only moves them.
"""

from __future__ import annotations

import asyncio
from collections import deque
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

    One task pumps `events` for the whole stream and a timer marks each heartbeat; both wake one
    future that this generator waits on, so an event costs a future, not a task and a wait set. The
    heartbeats keep a fixed schedule (every `interval_s` from the start), so one timer is armed per
    heartbeat, not one per event: an event neither arms nor cancels a timer.
    Closing this iterator cancels the pump, which closes `events` (and the LLM call inside).
    """
    loop = asyncio.get_running_loop()
    ready: deque[bytes] = deque()
    waiter: asyncio.Future[None] | None = None
    timer: asyncio.TimerHandle | None = None  # armed for `next_beat` while one is due and not yet sent
    ended = False
    failure: BaseException | None = None

    def wake() -> None:
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def beat() -> None:
        nonlocal timer
        timer = None
        wake()

    async def pump() -> None:
        nonlocal ended, failure
        try:
            async for event in events:
                ready.append(event)
                wake()
        except Exception as err:
            failure = err
        finally:
            ended = True
            wake()

    pumping = loop.create_task(pump())
    next_beat = loop.time() + interval_s
    try:
        while True:
            if ready:
                yield ready.popleft()
            elif ended:
                if failure is not None:
                    raise failure
                return
            elif loop.time() >= next_beat:
                next_beat += interval_s
                yield heartbeat()
            else:
                if timer is None:
                    timer = loop.call_at(next_beat, beat)
                waiter = loop.create_future()
                try:
                    await waiter
                finally:
                    waiter = None
    finally:
        if timer is not None:
            timer.cancel()
        if not pumping.done():
            pumping.cancel()
            # Shielded, and waited with asyncio.wait (which, unlike `await pumping`, does not pass
            # the outer scope's repeated cancels on): the LLM stream inside must finish closing
            # its connection, or the upstream call would run on until garbage collection.
            with anyio.CancelScope(shield=True):
                await asyncio.wait((pumping,))
