"""A lean incremental `text/event-stream` splitter, for the parts that read streams by the thousand.

The conformance decoder (`scenarios` SSEDecoder) keeps every byte, offset and tolerated deviation, which
a load client reading thousands of events a second, or a server relaying an LLM's tokens, cannot
afford. This one keeps only what they need: each event's type and data, in order, as soon as its
dispatching blank line arrives. The load client (`loadtests`) and the reference server's upstream
reader (`reference_server`) both use it.
It follows the same WHATWG rules for what it keeps (CRLF, LF or a lone CR end a line, also split
across reads; one leading BOM is dropped; `data:` lines join with LF; one space after the colon is
dropped; comments and other fields are skipped), and works on whole blocks, so a multi-byte
character split across reads is decoded whole. Pure: no I/O.
"""

from __future__ import annotations

_BOM = b"\xef\xbb\xbf"


class EventSplitter:
    """Feed reads; get back `(type, data)` for each completed event."""

    __slots__ = ("_buffer", "_pending_cr", "_started")

    def __init__(self) -> None:
        self._buffer = b""
        self._started = False
        self._pending_cr = False  # the last read ended in CR: a LF that starts the next one belongs to it

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        # The commonest read: one whole one-line event, nothing pending, LF line ends.
        if (data[-2:] == b"\n\n" and data[:6] == b"data: " and data.count(b"\n") == 2 and not self._buffer
                and self._started and not self._pending_cr and b"\r" not in data):  # fmt: skip
            return [("message", data[6:-2].decode("utf-8", "replace"))]
        if self._pending_cr or not self._started or b"\r" in data:
            buffer = self._prelude(data)
            if buffer is None:
                return []
        else:  # the common read: LF line ends, past the start
            buffer = self._buffer + data if self._buffer else data
        if buffer[:1] == b"\n":  # a blank line right after a dispatch, which the split below would lose
            buffer = buffer.lstrip(b"\n")
        blocks = buffer.split(b"\n\n")
        self._buffer = blocks.pop()
        if not blocks:
            return []
        events = []
        for block in blocks:
            if block[:6] == b"data: " and b"\n" not in block:  # the common one-line event
                events.append(("message", block[6:].decode("utf-8", "replace")))
                continue
            event = _event(block)
            if event is not None:
                events.append(event)
        return events

    def _prelude(self, data: bytes) -> bytes | None:
        """CR line ends made LF (also across reads) and the leading BOM dropped; None: wait for more."""
        if self._pending_cr:
            self._pending_cr = False
            if data[:1] == b"\n":
                data = data[1:]
        if b"\r" in data:
            if data[-1:] == b"\r":
                self._pending_cr = True
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._buffer + data if self._buffer else data
        if not self._started:
            if len(buffer) < 3 and _BOM.startswith(buffer):
                self._buffer = buffer
                return None
            self._started = True
            if buffer.startswith(_BOM):
                buffer = buffer[3:]
        return buffer

    @property
    def pending(self) -> bytes:
        """Bytes of an event not completed yet (the stream ended here if it ends now)."""
        return self._buffer.strip(b"\n")


def _event(block: bytes) -> tuple[str, str] | None:
    """The event a block dispatches, or None (comments only, or no data)."""
    kind = "message"
    data: list[str] = []
    for raw in block.split(b"\n"):
        if not raw or raw[:1] == b":":
            continue
        name, colon, value = raw.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            kind = value.decode("utf-8", "replace") or "message"
    if not data:
        return None
    return kind, "\n".join(data)
