"""From a plan and a dialect's encoding to the exact bytes on the wire and when each write is due.

This is where a fault changes the response, as its `effect` (from the fault model) says: an error
event in place of the next chunk, a close mid-body, a silence for good or a pause, a broken chunk,
a clean early end, or writes cut at odd byte offsets. The result, a `WireSchedule`, is pure: each
write is a list of parts, either fixed bytes or the index of an answer chunk that the dialect's
template encodes when the write is due. Encoding a chunk costs the same then as on arrival, but a
burst of a thousand requests no longer spends the time before its first tokens encoding every
stream to the end.
"""

from __future__ import annotations

import itertools
import operator
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from http import HTTPStatus
from typing import Any, Literal

from ._plan import Plan

End = Literal["complete", "abort", "stall", "reset"]
"""After the last write: keep the connection for the next request, close it mid-body, fall
silent with the connection open until the client leaves, or reset it (RST, no FIN)."""

FRAGMENT_PAUSE_MS = (1.0, 3.0)


@dataclass(frozen=True, slots=True)
class StreamFrames:
    """A dialect's encoding of one streamed plan, in SSE bytes."""

    head: bytes  # events before the first chunk (OpenAI's role chunk, Anthropic's message_start)
    head_on_arrival: bool  # send `head` at once, or together with the first chunk
    chunks: Sequence[bytes]  # one event per plan chunk, encoded on access (see TextFrames)
    tail: bytes  # events after the last chunk (finish, usage, [DONE])
    error: bytes  # the in-band error event
    malformed: bytes  # an event whose data is not valid JSON
    headers: tuple[tuple[str, str], ...] | None = None  # instead of the dialect's stream_headers


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A complete, non-streamed response."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


Part = bytes | int
"""Fixed bytes, or the index of an answer chunk in `WireSchedule.chunk_frames`."""


@dataclass(frozen=True, slots=True)
class WireSchedule:
    offsets: tuple[float, ...]  # seconds after arrival at which each write is due
    parts: tuple[tuple[Part, ...], ...]  # what each write carries
    content: tuple[int, ...]  # answer chunks carried by each write (for achieved timings)
    end: End
    coalesce: bool = True  # writes already due may go out together (not for `fragment`)
    status: int = 200
    head: bytes = b""  # the HTTP response head, sent with the first write
    chunked: bool = False  # frame each write as an HTTP/1.1 chunk
    chunk_frames: Sequence[bytes] = ()

    def payload(self, k: int) -> bytes:
        """The bytes of write `k`, HTTP framing included: the only per-write encoding work."""
        parts = self.parts[k]
        frames = self.chunk_frames
        if len(parts) == 1:
            part = parts[0]
            data = part if part.__class__ is bytes else frames[part]  # type: ignore[index]
        else:
            data = b"".join([part if part.__class__ is bytes else frames[part] for part in parts])  # type: ignore[misc,index]
        if self.chunked:
            if data:
                data = b"%x\r\n%b\r\n" % (len(data), data)
            if self.end == "complete" and k == len(self.parts) - 1:
                data += LAST_CHUNK
        return self.head + data if k == 0 else data

    @property
    def payloads(self) -> tuple[bytes, ...]:
        """Every write's bytes, materialized (for tests and inspection; the server calls `payload`)."""
        return tuple(self.payload(k) for k in range(len(self.parts)))


def close_delimited(schedule: WireSchedule) -> WireSchedule:
    """The schedule for an HTTP/1.0 client, once per request: no chunk framing, and `connection: close`
    in place of `transfer-encoding: chunked`, since for HTTP/1.0 the body ends when the connection does."""
    head = schedule.head.replace(b"transfer-encoding: chunked\r\n", b"connection: close\r\n")
    return replace(schedule, chunked=False, head=head)


def response_head(status: int, headers: tuple[tuple[str, str], ...], *, length: int | None) -> bytes:
    """Status line and headers; chunked transfer when `length` is None."""
    lines = [_status_line(status)]
    lines += [f"{name}: {value}\r\n" for name, value in headers]
    lines.append("transfer-encoding: chunked\r\n\r\n" if length is None else f"content-length: {length}\r\n\r\n")
    return "".join(lines).encode("latin-1")


@lru_cache(maxsize=64)
def _status_line(status: int) -> str:
    return f"HTTP/1.1 {status} {_reason(status)}\r\n"


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return _PROVIDER_REASONS.get(status, "Error")


# Statuses that providers use but the HTTP registry does not name.
_PROVIDER_REASONS = {529: "Overloaded", 520: "Unknown Error", 524: "A Timeout Occurred"}


LAST_CHUNK = b"0\r\n\r\n"


def immediate(response: HttpResponse) -> WireSchedule:
    """A whole response sent on arrival (an error before any stream, an admin answer)."""
    data = response_head(response.status, response.headers, length=len(response.body)) + response.body
    return WireSchedule((0.0,), ((data,),), (0,), "complete", status=response.status)


def reset_schedule() -> WireSchedule:
    """No byte at all: the connection is reset as soon as the request is read (`reset`, `refuse`)."""
    return WireSchedule((0.0,), ((),), (0,), "reset", status=0)


def stream_schedule(
    plan: Plan,
    frames: StreamFrames,
    headers: tuple[tuple[str, str], ...],
    rng: random.Random | None,
) -> WireSchedule:
    """The streamed response, with the plan's fault applied."""
    if plan.fault is None:
        plain = _plain_stream(plan, frames, headers)
        if plain is None:
            plain = _instant_stream(plan, frames, headers)
        if plain is not None:
            return plain
    return _any_stream(plan, frames, headers, rng)


def _any_stream(
    plan: Plan, frames: StreamFrames, headers: tuple[tuple[str, str], ...], rng: random.Random | None
) -> WireSchedule:
    """Any plan, any fault: the writes listed one by one, then those due together merged."""
    fault = plan.fault
    kind = fault.effect if fault else None
    n = len(frames.chunks)
    cut = n if fault is None or fault.after is None else min(fault.after, n)
    at_cut = plan.offsets[cut] if cut < n else plan.end_offset
    end: End = "complete"
    # A pause is a stall that passes: the rest follows, later by its length.
    shift = fault.seconds if kind == "pause" and fault is not None and fault.seconds else 0.0
    last = cut if kind in ("error", "disconnect", "truncate", "stall") else n
    # Parallel lists, one entry per write: when it is due, its parts, the answer chunks it carries.
    offsets: list[float] = [0.0]
    parts: list[tuple[Part, ...]] = [()]
    content: list[int] = [0]
    if frames.head:
        _add(offsets, parts, content, 0.0 if frames.head_on_arrival else plan.ttft, (frames.head,))
    if kind in ("malformed", "pause") and cut < last:
        _add_chunks(offsets, parts, content, plan.offsets, 0, cut, 0.0)
        if kind == "malformed":
            _add(offsets, parts, content, plan.offsets[cut], (frames.malformed,))
        _add_chunks(offsets, parts, content, plan.offsets, cut, last, shift)
    else:
        _add_chunks(offsets, parts, content, plan.offsets, 0, last, 0.0)
    if kind == "error":
        _add(offsets, parts, content, at_cut, (frames.error,))
    elif kind == "disconnect":
        _add(offsets, parts, content, at_cut, ())
        end = "abort"
    elif kind == "stall":
        end = "stall"
    elif kind != "truncate":
        if kind == "malformed" and cut == n:
            _add(offsets, parts, content, at_cut, (frames.malformed,))
        _add(offsets, parts, content, plan.end_offset + shift, (frames.tail,))

    if kind == "fragment":
        offsets, parts, content = _fragment(offsets, parts, content, frames.chunks, rng)
    elif len(set(offsets)) < len(offsets):  # events due together go out in one write
        offsets, parts, content = _merge_same_time(offsets, parts, content)
    return WireSchedule(
        offsets=tuple(offsets),
        parts=tuple(parts),
        content=tuple(content),
        end=end,
        coalesce=kind != "fragment",
        head=response_head(200, headers, length=None),
        chunked=True,
        chunk_frames=frames.chunks,
    )


def _plain_stream(plan: Plan, frames: StreamFrames, headers: tuple[tuple[str, str], ...]) -> WireSchedule | None:
    """The common case in constant time: no fault, the head with the response head (on arrival)
    or with the first chunk, the tail with the last chunk, every chunk strictly later than the one
    before. None when it does not apply."""
    offsets = _plain_offsets(plan.offsets)
    if offsets is None:
        return None
    n = len(plan.offsets)
    head, tail = frames.head, frames.tail
    arrival: tuple[Part, ...] = (head,) if frames.head_on_arrival and head else ()
    first: tuple[Part, ...] = (0,) if arrival else (head, 0)
    if n == 1:
        parts: tuple[tuple[Part, ...], ...] = (arrival, (*first, tail))
    else:
        parts = (arrival, first, *_INDEX_PARTS[1 : n - 1], (n - 1, tail))
    return WireSchedule(
        offsets=offsets,
        parts=parts,
        content=_plain_content(n),
        end="complete",
        head=response_head(200, headers, length=None),
        chunked=True,
        chunk_frames=frames.chunks,
    )


def _instant_stream(plan: Plan, frames: StreamFrames, headers: tuple[tuple[str, str], ...]) -> WireSchedule | None:
    """A zero-delay stream without a fault in constant time: every event is due on arrival, so the
    whole response is one write (what `_any_stream` makes of it, without listing and merging a write
    per event). None when it does not apply."""
    chunk_offsets = plan.offsets
    n = len(chunk_offsets)
    if not n or any(chunk_offsets) or not (frames.head_on_arrival or plan.ttft == 0.0):
        return None
    head: tuple[Part, ...] = (frames.head,) if frames.head else ()
    return WireSchedule(
        offsets=(0.0,),
        parts=((*head, *range(n), frames.tail),),
        content=(n,),
        end="complete",
        head=response_head(200, headers, length=None),
        chunked=True,
        chunk_frames=frames.chunks,
    )


def _plain_offsets(chunk_offsets: tuple[float, ...]) -> tuple[float, ...] | None:
    """The writes' offsets of a plain stream (one at arrival, then one per chunk), or None unless
    every chunk is due strictly after the one before."""
    last_chunk_offsets, last_found = _last_plain_offsets
    if chunk_offsets is last_chunk_offsets:
        return last_found
    n = len(chunk_offsets)
    plain = (
        0 < n <= len(_INDEX_PARTS)
        and chunk_offsets[0] > 0.0
        and all(map(operator.lt, chunk_offsets, chunk_offsets[1:]))
    )
    found = (0.0, *chunk_offsets) if plain else None
    _last_plain_offsets[:] = (chunk_offsets, found)
    return found


# The last offsets seen and what they gave: with constant timing every plan shares one offsets
# tuple, found here by identity instead of hashing its hundred floats per request.
_last_plain_offsets: list[Any] = [(), None]


@lru_cache(maxsize=1024)
def _plain_content(n: int) -> tuple[int, ...]:
    return (0,) + (1,) * n


def _add(offsets: list[float], parts: list[tuple[Part, ...]], content: list[int], at: float, part: tuple) -> None:
    """A write that carries no answer chunk (head, tail, error, a malformed event, a close)."""
    offsets.append(at)
    parts.append(part)
    content.append(0)


_INDEX_PARTS = tuple((i,) for i in range(4096))  # (i,) for the usual answer lengths, made once


def _add_chunks(
    offsets: list[float],
    parts: list[tuple[Part, ...]],
    content: list[int],
    planned: tuple[float, ...],
    start: int,
    stop: int,
    shift: float,
) -> None:
    """Writes for answer chunks start..stop-1, each at its planned offset plus `shift`."""
    offsets.extend(planned[start:stop] if not shift else [at + shift for at in planned[start:stop]])
    parts.extend(_INDEX_PARTS[start:stop] if stop <= len(_INDEX_PARTS) else [(i,) for i in range(start, stop)])
    content.extend([1] * (stop - start))


def body_schedule(
    plan: Plan,
    ok: HttpResponse,
    server_error: HttpResponse,
    rng: random.Random | None,
) -> WireSchedule:
    """The non-streamed response, sent when its last token is due, with the plan's fault applied."""
    fault = plan.fault
    kind = fault.effect if fault else None
    at = plan.end_offset
    if fault is not None and fault.after is not None and fault.after < len(plan.offsets):
        cut_at = plan.offsets[fault.after]
    else:
        cut_at = at
    response = server_error if kind == "error" else ok
    data = response_head(response.status, response.headers, length=len(response.body)) + response.body
    if kind == "disconnect":
        return WireSchedule((cut_at,), ((),), (0,), "abort")
    if kind == "stall":
        return WireSchedule((cut_at,), ((),), (0,), "stall")
    if kind == "pause" and fault is not None and fault.seconds is not None:
        at += fault.seconds
    if kind == "malformed":
        body = ok.body[: len(ok.body) // 2]
        data = response_head(ok.status, ok.headers, length=len(body)) + body
    if kind == "truncate":
        # The head promises the whole body; half of it arrives, then the connection closes.
        return WireSchedule((at,), ((data[: len(data) - len(ok.body) // 2],),), (0,), "abort")
    content = len(plan.chunks) if response is ok else 0
    if kind == "fragment":
        offsets, parts, counts = _fragment([at], [(data,)], [content], (), rng)
        return WireSchedule(
            tuple(offsets), tuple(parts), tuple(counts), "complete", coalesce=False, status=response.status
        )
    return WireSchedule((at,), ((data,),), (content,), "complete", status=response.status)


Writes = tuple[list[float], list[tuple[Part, ...]], list[int]]


def _merge_same_time(offsets: list[float], parts: list[tuple[Part, ...]], content: list[int]) -> Writes:
    """One write for events due at the same moment (the head with the first chunk, the tail with
    the last, a whole zero-delay stream), as a real server's single flush sends them. In one pass:
    a zero-delay stream is a run as long as the answer."""
    out_offsets: list[float] = []
    out_parts: list[tuple[Part, ...]] = []
    out_content: list[int] = []
    k, n = 0, len(offsets)
    while k < n:
        at, stop = offsets[k], k + 1
        while stop < n and offsets[stop] == at:
            stop += 1
        out_offsets.append(at)
        if stop == k + 1:
            out_parts.append(parts[k])
            out_content.append(content[k])
        else:
            out_parts.append(tuple(itertools.chain.from_iterable(parts[k:stop])))
            out_content.append(sum(content[k:stop]))
        k = stop
    return out_offsets, out_parts, out_content


def _fragment(
    offsets: list[float],
    parts: list[tuple[Part, ...]],
    content: list[int],
    chunks: Sequence[bytes],
    rng: random.Random | None,
) -> Writes:
    """Cut each event into 2-4 pieces at odd offsets, one inside a multi-byte character where there
    is one, each piece a short pause after the one before (so pieces never overtake each other)."""
    assert rng is not None, "fragmenting draws its cuts from the request's generator"
    out_offsets: list[float] = []
    out_parts: list[tuple[Part, ...]] = []
    out_content: list[int] = []
    when = 0.0
    for at, step_parts, count in zip(offsets, parts, content, strict=True):
        data = b"".join(part if isinstance(part, bytes) else chunks[part] for part in step_parts)
        when = max(when, at)
        if len(data) < 2:
            out_offsets.append(when)
            out_parts.append((data,) if data else ())
            out_content.append(count)
            continue
        cuts = {rng.randrange(1, len(data)) for _ in range(rng.randint(1, 3))}
        inside = [i for i, byte in enumerate(data) if 0x80 <= byte <= 0xBF]
        if inside:
            cuts.add(rng.choice(inside))
        bounds = [0, *sorted(cuts), len(data)]
        for k, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            if k:
                when += rng.uniform(*FRAGMENT_PAUSE_MS) / 1000.0
            out_offsets.append(when)
            out_parts.append((data[lo:hi],))
            # the answer chunks count as carried by the piece that completes them
            out_content.append(count if hi == len(data) else 0)
    return out_offsets, out_parts, out_content
