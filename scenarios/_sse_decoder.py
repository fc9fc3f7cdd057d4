"""A strict, incremental decoder for `text/event-stream` bytes (WHATWG HTML, "Server-sent events").

It works on bytes as they arrive, one network read per `feed`, so a scenario can say which read
completed which event and when, and it keeps what a browser's EventSource throws away: comments,
byte offsets, and the wire-level deviations it tolerated. Lines end in CRLF, LF or a lone CR, also
when a CR ends one read and its LF starts the next; each complete line is decoded as UTF-8 on its
own, so a character split across reads comes out whole; one BOM at the very start is dropped, also
when its three bytes arrive in different reads. Nothing here does I/O.

Issues (`WireIssue.code`), each tied to the byte offset where it starts:

- ``invalid-utf8`` (error): a line is not valid UTF-8; it was decoded with U+FFFD in place of the
  bad bytes, as the spec says, so the client sees different text than the server meant.
- ``unterminated-block`` (error when the block held data, else warning): the stream ended inside a
  block, without the blank line that dispatches it; the spec discards the block, so its data never
  reaches the client (its `id:` never becomes the last event ID).
- ``unknown-field`` (warning): a field name the spec ignores (a typo, `Data`, ` data`, a second
  BOM); reported once per distinct name, since a server that sends one usually sends it every time.
- ``bad-retry`` (warning): a `retry:` value that is not all ASCII digits; the spec ignores it.
- ``id-with-nul`` (warning): an `id:` value containing U+0000; the spec ignores it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Read:
    """One network read as fed: its place in the stream and when it arrived."""

    index: int
    offset: int  # byte offset of its first byte in the stream
    size: int
    time: float


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event, with where and when its dispatching blank line arrived."""

    type: str  # the event field; "message" when absent or empty
    data: str
    id: str  # the last-event-ID string after this event's block
    retry: int | None  # the reconnection time set inside this event's block, if any
    index: int  # dispatch order, 0-based (events only, comments not counted)
    read: int  # index of the Read in which its dispatching blank line completed
    time: float  # that Read's time
    start: int  # byte offset of the block's first line (comments inside the block included)
    end: int  # byte offset just past the dispatching blank line (past its CR when the LF came later)


@dataclass(frozen=True, slots=True)
class SSEComment:
    """A comment line: invisible to an EventSource, but a heartbeat to a harness."""

    text: str  # after the ':' (a leading space kept as sent)
    read: int
    time: float
    start: int
    end: int  # just past the line's end (or the end of the stream, for a last line without one)


@dataclass(frozen=True, slots=True)
class WireIssue:
    """A deviation the decoder tolerated; see the module docstring for the codes."""

    code: str
    severity: str  # "error": the client loses or corrupts data; "warning": legal, but likely a bug
    message: str
    offset: int
    read: int  # the Read that holds the byte at `offset`


class SSEDecoder:
    """Feed it reads as they arrive; it returns events and comments in stream order.

    Linear in the bytes fed: each read is split into lines once, and a line that spans reads is
    collected in a buffer that only grows, so one long line over many small reads costs no more
    than the same line in one read.
    """

    def __init__(self, *, last_event_id: str = "") -> None:
        """`last_event_id` seeds the ID for a reconnection that sent it as `Last-Event-ID`."""
        self.reads: list[Read] = []
        self.issues: list[WireIssue] = []
        self.last_event_id = last_event_id
        self.retry: int | None = None
        self._raw = bytearray()
        self._read_offsets: list[int] = []
        self._closed = False
        self._head = b""  # the first bytes, held back until it is clear whether they are a BOM
        self._at_start = True
        self._after_cr = False  # the last line ended with a CR at the end of a read
        self._tail = bytearray()  # a line not ended yet
        self._tail_start = 0
        # The block being collected (the spec's buffers).
        self._data: list[str] = []
        self._type = ""
        self._id_buffer = last_event_id
        self._block_retry: int | None = None
        self._block_start: int | None = None
        self._block_has_field = False
        self._dispatched = 0
        self._unknown_seen: set[str] = set()
        # Where the line being processed came from, for what it produces.
        self._out: list[SSEEvent | SSEComment] = []
        self._read = -1
        self._time = 0.0

    @property
    def raw(self) -> bytes:
        """Every byte fed so far, BOM included."""
        return bytes(self._raw)

    def feed(self, data: bytes, time: float = 0.0) -> list[SSEEvent | SSEComment]:
        """Take one network read; return the events and comments it completed, in stream order."""
        if self._closed:
            raise ValueError("feed() after close(): the stream has ended")
        offset = len(self._raw)
        self._read = len(self.reads)
        self._time = time
        self.reads.append(Read(self._read, offset, len(data), time))
        self._read_offsets.append(offset)
        self._raw += data
        self._out = out = []
        if self._at_start:
            head = self._head + data
            if len(head) < len(_BOM) and _BOM.startswith(head):
                self._head = head
                return out
            self._at_start = False
            self._head = b""
            data, offset = (head[3:], 3) if head.startswith(_BOM) else (head, 0)
        if self._after_cr and data:
            self._after_cr = False
            if data[0] == 0x0A:  # the LF of a CRLF whose CR ended the previous read
                data = data[1:]
                offset += 1
        if data:
            self._split(data, offset)
        return out

    def close(self) -> list[SSEEvent | SSEComment]:
        """End of stream: process a last line without line end, then discard an undispatched block."""
        if self._closed:
            return []
        self._closed = True
        self._out = out = []
        if self._at_start and self._head:  # fewer than three bytes in all, a BOM's start but not one
            self._tail += self._head
            self._tail_start = 0
        if self._tail:
            line = bytes(self._tail)
            self._tail.clear()
            self._line(line, self._tail_start, len(self._raw))
        if self._block_start is not None and (self._data or self._block_has_field):
            lost = f"{len(self._data)} data line(s)" if self._data else "fields but no data"
            self._issue(
                "unterminated-block",
                "error" if self._data else "warning",
                f"the stream ended inside a block (from byte {self._block_start}) that holds {lost}; "
                "without a blank line after it, the block is discarded",
                self._block_start,
            )
        return out

    def _split(self, data: bytes, offset: int) -> None:
        # bytes.splitlines splits at exactly CR, LF and CRLF (str.splitlines would also split
        # at other characters), in C, once per read.
        lines = data.splitlines(keepends=True)
        last = lines[-1]
        if last[-1] not in b"\r\n":  # the read ends inside a line: keep it for the next read
            lines.pop()
        elif last[-1] == 0x0D:
            self._after_cr = True
        pos = offset
        for piece in lines:
            end = pos + len(piece)
            cut = 2 if piece.endswith(b"\r\n") else 1
            if self._tail:
                self._tail += piece[:-cut]
                line = bytes(self._tail)
                self._tail.clear()
                self._line(line, self._tail_start, end)
            else:
                self._line(piece[:-cut], pos, end)
            pos = end
        if last[-1] not in b"\r\n":
            if not self._tail:
                self._tail_start = pos
            self._tail += last

    def _line(self, line: bytes, start: int, end: int) -> None:
        """Interpret one line (without its line end) that spans [start, end) of the stream."""
        if not line:
            self._dispatch(end)
            return
        if self._block_start is None:
            self._block_start = start
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = line.decode("utf-8", errors="replace")
            self._issue(
                "invalid-utf8",
                "error",
                f"invalid UTF-8 at byte {start + exc.start} (in the line at byte {start}); "
                "the client sees U+FFFD in its place",
                start + exc.start,
            )
        if text[0] == ":":
            self._out.append(SSEComment(text[1:], self._read, self._time, start, end))
            return
        self._block_has_field = True
        name, _, value = text.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._type = value
        elif name == "id":
            if "\0" in value:
                self._issue("id-with-nul", "warning", f"id at byte {start} contains U+0000; it is ignored", start)
            else:
                self._id_buffer = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self.retry = self._block_retry = int(value)
            else:
                self._issue(
                    "bad-retry",
                    "warning",
                    f"retry at byte {start} is {value!r}, not ASCII digits; it is ignored",
                    start,
                )
        elif name not in self._unknown_seen:
            self._unknown_seen.add(name)
            hint = " (a byte order mark after the start of the stream)" if name.startswith("\ufeff") else ""
            self._issue("unknown-field", "warning", f"unknown field {name!r}{hint} at byte {start}; ignored", start)

    def _dispatch(self, end: int) -> None:
        # The last event ID is taken from the buffer even when nothing is dispatched.
        self.last_event_id = self._id_buffer
        if self._data:
            assert self._block_start is not None
            # Positional: a frozen dataclass built from keywords costs twice as much, once per event.
            event = SSEEvent(
                self._type or "message",
                "\n".join(self._data),
                self.last_event_id,
                self._block_retry,
                self._dispatched,
                self._read,
                self._time,
                self._block_start,
                end,
            )
            self._out.append(event)
            self._dispatched += 1
            self._data = []
        self._type = ""
        self._block_retry = None
        self._block_start = None
        self._block_has_field = False

    def _issue(self, code: str, severity: str, message: str, offset: int) -> None:
        read = max(bisect.bisect_right(self._read_offsets, offset) - 1, 0)
        self.issues.append(WireIssue(code, severity, message, offset, read))


def parse_stream(chunks: bytes | Iterable[bytes]) -> tuple[list[SSEEvent], list[WireIssue]]:
    """Decode a whole stream (one bytes object, or its reads in order): its events and issues."""
    decoder = SSEDecoder()
    items: list[SSEEvent | SSEComment] = []
    for chunk in [chunks] if isinstance(chunks, bytes | bytearray | memoryview) else chunks:
        items += decoder.feed(bytes(chunk))
    items += decoder.close()
    return [item for item in items if isinstance(item, SSEEvent)], decoder.issues
