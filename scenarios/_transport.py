"""The HTTP edge of a run: send one call, and read a stream read by read, timestamping each.

httpx's `aiter_bytes` hands over what each socket read returned, so every chunk gets the time it
arrived; the strict decoder (`_sse_decoder`) turns the chunks into events carrying those times. Deadlines
bound every wait: a stream that hangs ends the read with `ended="deadline"`, never a hung suite.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import httpx

from contracts import StreamSpec

from ._results import Exchange, StreamEvent, StreamRecord
from ._scenarios import Timing
from ._sse_decoder import SSEComment, SSEDecoder, SSEEvent
from ._stream import StreamView, classify, view

SLOW_READER_BYTES = 256


@dataclass(slots=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    json_body: Any = None
    has_body: bool = False
    raw_body: bytes | None = None  # sent as it is instead of the JSON body (bad input: not JSON)


@dataclass(slots=True)
class StreamRead:
    """A stream as read: its decoded items, how it ended, and when (s since the request)."""

    items: list[SSEEvent | SSEComment] = field(default_factory=list)
    reads: list[tuple[int, int, float]] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)
    raw: bytes = b""
    ended: str = ""
    end_time: float | None = None
    stopped_at: float | None = None  # wall-clock time the client stopped reading (an abort)
    view: StreamView | None = None


async def send(
    client: httpx.AsyncClient,
    request: Request,
    *,
    step: int,
    operation: str,
    stream: StreamSpec | None,
    timing: Timing,
    abort_after: int | None = None,
    read_delay_s: float = 0.0,
) -> tuple[Exchange, StreamRead | None]:
    """Send `request`; read its body whole, or as an event stream when `stream` is given and it is 2xx."""
    body = request.raw_body if request.raw_body is not None else None
    if body is None and request.has_body:
        body = json.dumps(request.json_body).encode()
    headers = dict(request.headers)
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    exchange = Exchange(
        step=step,
        operation=operation,
        method=request.method,
        url=request.url,
        request_headers=headers,
        request_body=body.decode() if body is not None else None,
    )
    started = perf_counter()
    built = client.build_request(request.method, request.url, headers=headers, content=body)
    try:
        response = await asyncio.wait_for(client.send(built, stream=True), timing.deadline_s)
    except TimeoutError:
        exchange.elapsed_ms = (perf_counter() - started) * 1000
        return exchange, StreamRead(ended="deadline") if stream is not None else None
    except httpx.HTTPError as err:
        exchange.elapsed_ms = (perf_counter() - started) * 1000
        exchange.response_body = f"<no answer: {type(err).__name__}: {err}>"
        return exchange, StreamRead(ended=f"error: {err}") if stream is not None else None
    exchange.status = response.status_code
    exchange.response_headers = dict(response.headers.items())
    try:
        if stream is None or not 200 <= response.status_code < 300 or response.status_code == 204:
            try:
                raw = await asyncio.wait_for(response.aread(), timing.deadline_s)
                exchange.response_body = raw.decode("utf-8", "replace")
            except (TimeoutError, httpx.HTTPError) as err:
                exchange.response_body = f"<body not read: {type(err).__name__}>"
            return exchange, None
        read = await _read_stream(response, stream, timing, started, abort_after, read_delay_s)
        exchange.stream = _record(read)
        return exchange, read
    finally:
        await response.aclose()
        exchange.elapsed_ms = (perf_counter() - started) * 1000


async def _read_stream(
    response: httpx.Response,
    spec: StreamSpec,
    timing: Timing,
    started: float,
    abort_after: int | None,
    read_delay_s: float,
) -> StreamRead:
    decoder = SSEDecoder()
    out = StreamRead()
    chunks = response.aiter_bytes().__aiter__()
    until = started + timing.deadline_s
    texts = 0
    terminal_seen = False
    unpaused = 0  # bytes read since the slow reader last paused
    while True:
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), max(0.0, until - perf_counter()))
        except StopAsyncIteration:
            out.ended = "closed"
            out.items.extend(decoder.close())
            break
        except TimeoutError:
            out.ended = "open-after-terminal" if terminal_seen else "deadline"
            break
        except httpx.HTTPError as err:
            out.ended = f"error: {type(err).__name__}: {err}"
            out.items.extend(decoder.close())
            break
        now = perf_counter() - started
        items = decoder.feed(chunk, now)
        out.items.extend(items)
        for item in items:
            if not isinstance(item, SSEEvent):
                continue
            kind = classify(spec, item).kind
            if kind in spec.terminal and not terminal_seen:
                terminal_seen = True
                until = min(until, started + now + timing.close_grace_s)
            elif kind in spec.text_kinds:
                texts += 1
        if abort_after is not None and texts >= abort_after and not terminal_seen:
            out.ended, out.stopped_at = "aborted", time.time()
            break
        unpaused += len(chunk)
        if read_delay_s and unpaused >= SLOW_READER_BYTES:
            # A pause per SLOW_READER_BYTES, not per read: a server that writes a byte at a time
            # must not turn a slow reader into a stalled one.
            unpaused = 0
            await asyncio.sleep(read_delay_s)
    out.end_time = perf_counter() - started
    out.raw = decoder.raw
    out.reads = [(r.offset, r.size, r.time) for r in decoder.reads]
    out.issues = [
        {"code": i.code, "severity": i.severity, "message": i.message, "offset": i.offset, "read": i.read}
        for i in decoder.issues
    ]
    out.view = view(spec, out.items)
    return out


def _record(read: StreamRead) -> StreamRecord:
    """The stream as the reports show it (times in ms since the request)."""
    kinds = {id(c.event): c.kind for c in (read.view.events if read.view else [])}
    events: list[StreamEvent] = []
    for item in read.items:
        if isinstance(item, SSEComment):
            events.append(StreamEvent(-1, "comment", item.text, item.read, item.time * 1000, item.start, item.end))
        else:
            kind = kinds.get(id(item)) or "?"
            events.append(StreamEvent(item.index, kind, item.data, item.read, item.time * 1000, item.start, item.end))
    return StreamRecord(
        raw=read.raw,
        reads=[(offset, size, t * 1000) for offset, size, t in read.reads],
        events=events,
        issues=read.issues,
        ended=read.ended,
    )
