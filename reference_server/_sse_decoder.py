"""Upstream Server-Sent Events, decoded incrementally from the body's raw chunks: bytes in, events out.

A pure core (no I/O): the LLM client feeds it each chunk as the socket gives it (`content.readany()`)
and gets back the events that chunk completed, so a token costs one call here, not an await per line
and per event through stacked async generators.

The WHATWG rules an LLM API uses: lines end in LF or CRLF; `event:` and `data:` fields (one optional
space after the colon stripped; several data lines joined by LF), comments and other fields
ignored; a blank line dispatches the event if it had a data line (an empty one too). An event cut
off by the end of the body (no blank line after it) is not dispatched. Bytes that are not UTF-8 are replaced (the
JSON parse of the data then names the problem).

The common chunk, whole `data: <json>\\n\\n` events and nothing else (one, or a few when the loop was
busy), takes a fast path that gives the same events the line-by-line rules would.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class UpstreamEvent:
    event: str
    data: str


class SseDecoder:
    """Feed it the body's chunks in order; each `feed` returns the events completed so far."""

    __slots__ = ("_data", "_kind", "_pending")

    def __init__(self) -> None:
        self._pending = b""  # the unfinished last line
        self._kind = ""  # the current event's `event:` field
        self._data: list[str] = []  # the current event's `data:` lines

    def feed(self, chunk: bytes) -> list[UpstreamEvent]:
        """The events `chunk` completes (often exactly one)."""
        if not self._pending and not self._data and not self._kind:
            events = _whole_data_events(chunk)
            if events is not None:
                return events
        buffer = self._pending + chunk if self._pending else chunk
        if b"\n" not in chunk:
            self._pending = buffer
            return []
        *lines, self._pending = buffer.split(b"\n")
        events: list[UpstreamEvent] = []
        for line in lines:
            self._line(line, events)
        return events

    def salvage(self, rest: bytes) -> list[UpstreamEvent]:
        """The events completed by `rest`, the last bytes of a body cut off by an error (no more follow)."""
        events = self.feed(rest)
        self._pending = b""
        return events

    def _line(self, raw: bytes, events: list[UpstreamEvent]) -> None:
        line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        if not line:
            if self._data:
                events.append(UpstreamEvent(self._kind or "message", "\n".join(self._data)))
            self._kind, self._data = "", []
            return
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._kind = value


def _whole_data_events(chunk: bytes) -> list[UpstreamEvent] | None:
    """The events of a chunk made only of whole `data: <text>\\n\\n` events (each text non-empty, no
    CR anywhere), as the line-by-line rules read them; None for any other chunk."""
    if not chunk.endswith(b"\n\n") or not chunk.startswith(b"data: ") or b"\r" in chunk:
        return None
    blocks = chunk[:-2].split(b"\n\n")
    for block in blocks:
        if len(block) <= 6 or not block.startswith(b"data: ") or b"\n" in block:
            return None
    return [UpstreamEvent("message", block[6:].decode("utf-8", "replace")) for block in blocks]
