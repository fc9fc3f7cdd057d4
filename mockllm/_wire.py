"""From a plan and a dialect's encoding to the exact bytes on the wire and when each write is due.

This is where a fault changes the response: an error event in place of the next chunk, a close
mid-body, a silence, a broken chunk, a clean early end, or writes cut at odd byte offsets. The
result, a `WireSchedule`, is pure data: HTTP framing included, so the server's per-write work is
one `transport.write` of bytes made here, once per request.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from http import HTTPStatus
from typing import Literal

from ._plan import Plan

End = Literal["complete", "abort", "stall"]
"""After the last write: keep the connection for the next request, close it mid-body, or fall
silent with the connection open until the client leaves."""

FRAGMENT_PAUSE_MS = (1.0, 3.0)


@dataclass(frozen=True, slots=True)
class StreamFrames:
    """A dialect's encoding of one streamed plan, in SSE bytes."""

    head: bytes  # events before the first chunk (OpenAI's role chunk, Anthropic's message_start)
    head_on_arrival: bool  # send `head` at once, or together with the first chunk
    chunks: tuple[bytes, ...]  # one event per plan chunk
    tail: bytes  # events after the last chunk (finish, usage, [DONE])
    error: bytes  # the in-band error event
    malformed: bytes  # an event whose data is not valid JSON


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A complete, non-streamed response."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class WireSchedule:
    offsets: tuple[float, ...]  # seconds after arrival at which each write is due
    payloads: tuple[bytes, ...]  # what each write sends
    content: tuple[int, ...]  # answer chunks carried by each write (for achieved timings)
    end: End
    coalesce: bool = True  # writes already due may go out together (not for `fragment`)
    status: int = 200


def response_head(status: int, headers: tuple[tuple[str, str], ...], *, length: int | None) -> bytes:
    """Status line and headers; chunked transfer when `length` is None."""
    lines = [f"HTTP/1.1 {status} {_reason(status)}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines.append("transfer-encoding: chunked" if length is None else f"content-length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return _PROVIDER_REASONS.get(status, "Error")


# Statuses that providers use but the HTTP registry does not name.
_PROVIDER_REASONS = {529: "Overloaded", 520: "Unknown Error", 524: "A Timeout Occurred"}


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


def immediate(response: HttpResponse) -> WireSchedule:
    """A whole response sent on arrival (an error before any stream, an admin answer)."""
    data = response_head(response.status, response.headers, length=len(response.body)) + response.body
    return WireSchedule((0.0,), (data,), (0,), "complete", status=response.status)


def stream_schedule(
    plan: Plan,
    frames: StreamFrames,
    headers: tuple[tuple[str, str], ...],
    rng: random.Random,
) -> WireSchedule:
    """The streamed response, with the plan's fault applied."""
    fault = plan.fault
    kind = fault.kind if fault else None
    n = len(frames.chunks)
    cut = n if fault is None or fault.after is None else min(fault.after, n)
    at_cut = plan.offsets[cut] if cut < n else plan.end_offset
    end: End = "complete"
    if kind == "stall" and fault is not None and fault.seconds is not None:
        kind = "pause"  # a stall that passes: the rest follows, later by its length
    shift = fault.seconds if kind == "pause" and fault is not None and fault.seconds else 0.0
    last = cut if kind in ("error", "disconnect", "truncate", "stall") else n
    # Steps are (offset, SSE bytes, answer chunks carried); HTTP framing comes last.
    steps: list[tuple[float, bytes, int]] = [(0.0, b"", 0)]
    if frames.head:
        steps.append((0.0 if frames.head_on_arrival else plan.ttft, frames.head, 0))
    for i in range(last):
        if i == cut and kind == "malformed":
            steps.append((plan.offsets[i], frames.malformed, 0))
        steps.append((plan.offsets[i] + (shift if i >= cut else 0.0), frames.chunks[i], 1))
    if kind == "error":
        steps.append((at_cut, frames.error, 0))
    elif kind == "disconnect":
        steps.append((at_cut, b"", 0))
        end = "abort"
    elif kind == "stall":
        end = "stall"
    elif kind != "truncate":
        if kind == "malformed" and cut == n:
            steps.append((at_cut, frames.malformed, 0))
        steps.append((plan.end_offset + shift, frames.tail, 0))

    if kind == "fragment":
        steps = _fragment(steps, rng)
    elif len({at for at, _, _ in steps}) < len(steps):  # some events share a deadline
        steps = _merge_same_time(steps)
    head = response_head(200, headers, length=None)
    payloads = [http_chunk(data) if data else b"" for _, data, _ in steps]
    payloads[0] = head + payloads[0]
    if end == "complete":
        payloads[-1] += LAST_CHUNK
    return WireSchedule(
        offsets=tuple(at for at, _, _ in steps),
        payloads=tuple(payloads),
        content=tuple(count for _, _, count in steps),
        end=end,
        coalesce=kind != "fragment",
    )


def body_schedule(
    plan: Plan,
    ok: HttpResponse,
    server_error: HttpResponse,
    rng: random.Random,
) -> WireSchedule:
    """The non-streamed response, sent when its last token is due, with the plan's fault applied."""
    fault = plan.fault
    kind = fault.kind if fault else None
    at = plan.end_offset
    if fault is not None and fault.after is not None and fault.after < len(plan.offsets):
        cut_at = plan.offsets[fault.after]
    else:
        cut_at = at
    response = server_error if kind == "error" else ok
    data = response_head(response.status, response.headers, length=len(response.body)) + response.body
    if kind == "disconnect":
        return WireSchedule((cut_at,), (b"",), (0,), "abort")
    if kind == "stall":
        if fault is None or fault.seconds is None:
            return WireSchedule((cut_at,), (b"",), (0,), "stall")
        at += fault.seconds
    if kind == "malformed":
        body = ok.body[: len(ok.body) // 2]
        data = response_head(ok.status, ok.headers, length=len(body)) + body
    if kind == "truncate":
        # The head promises the whole body; half of it arrives, then the connection closes.
        return WireSchedule((at,), (data[: len(data) - len(ok.body) // 2],), (0,), "abort")
    content = len(plan.chunks) if response is ok else 0
    if kind == "fragment":
        steps = _fragment([(at, data, content)], rng)
        return WireSchedule(
            tuple(s[0] for s in steps), tuple(s[1] for s in steps), tuple(s[2] for s in steps),
            "complete", coalesce=False, status=response.status,
        )  # fmt: skip
    return WireSchedule((at,), (data,), (content,), "complete", status=response.status)


def _merge_same_time(steps: list[tuple[float, bytes, int]]) -> list[tuple[float, bytes, int]]:
    """One write for events due at the same moment (the head with the first chunk, the tail with
    the last), as a real server's single flush sends them."""
    merged: list[tuple[float, bytes, int]] = []
    for at, data, count in steps:
        if merged and merged[-1][0] == at:
            last_at, last_data, last_count = merged[-1]
            merged[-1] = (last_at, last_data + data, last_count + count)
        else:
            merged.append((at, data, count))
    return merged


def _fragment(steps: list[tuple[float, bytes, int]], rng: random.Random) -> list[tuple[float, bytes, int]]:
    """Cut each event into 2-4 pieces at odd offsets, one inside a multi-byte character where there
    is one, each piece a short pause after the one before (so pieces never overtake each other)."""
    pieces: list[tuple[float, bytes, int]] = []
    when = 0.0
    for at, data, count in steps:
        when = max(when, at)
        if len(data) < 2:
            pieces.append((when, data, count))
            continue
        cuts = {rng.randrange(1, len(data)) for _ in range(rng.randint(1, 3))}
        inside = [i for i, byte in enumerate(data) if 0x80 <= byte <= 0xBF]
        if inside:
            cuts.add(rng.choice(inside))
        bounds = [0, *sorted(cuts), len(data)]
        for k, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            if k:
                when += rng.uniform(*FRAGMENT_PAUSE_MS) / 1000.0
            # the answer chunks count as carried by the piece that completes them
            pieces.append((when, data[lo:hi], count if hi == len(data) else 0))
    return pieces
