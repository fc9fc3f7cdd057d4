"""Server-Sent Events as a thin layer over Litestar's streaming response.

Events are encoded here once, as bytes (`data: <json>\\n\\n`); the response only moves them. An
event sent once per token is encoded from a template (`text_event`): its fixed JSON around the one
field that varies is encoded once per process, so a token costs the encoding of its text only.
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


_SLOT = "\x00text-slot\x00"  # stands for the varying field while the template is made


def text_event(payload: Mapping[str, Any], field: str) -> Callable[[str], bytes]:
    """`data_event({**payload, field: text})` as a function of `text`, byte for byte, with the rest
    of the event encoded once, here (`field` goes where a dict would put it: last if it is new)."""
    template = data_event({**payload, field: _SLOT})
    prefix, suffix = template.split(_encode(_SLOT))
    if data_event({**payload, field: "probe"}) != prefix + _encode("probe") + suffix:
        raise ValueError(f"{field!r} of {dict(payload)!r} cannot be templated")

    def event(text: str) -> bytes:
        return prefix + _encode(text) + suffix

    return event


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
    Events the pump queued while this side was not yet resumed (a busy loop) go out joined, as one
    message: the same bytes in fewer sends and writes.
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
                if len(ready) == 1:
                    yield ready.popleft()
                else:  # the pump got ahead (a busy loop): what is queued goes out in one write
                    batch = b"".join(ready)
                    ready.clear()
                    yield batch
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
