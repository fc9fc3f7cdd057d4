"""An incremental HTTP/1.1 response parser: status, headers, then body bytes as they arrive.

The load client reads the socket itself, so that each read is timestamped the moment it returns
and no client library holds bytes back (Locust's `FastHttpSession.iter_lines` waits for 1 KB).
This parser turns those reads into body pieces: chunked, `Content-Length` or close-delimited. Pure:
no I/O; a malformed response raises `ProtocolError` naming what was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class ProtocolError(ValueError):
    """The bytes are not a well-formed HTTP/1.1 response."""


@dataclass(slots=True)
class Response:
    status: int = 0
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names; repeated ones joined by ", "
    keep_alive: bool = True


_MAX_HEAD = 64 * 1024


class ResponseParser:
    """Feed reads; `feed` returns the body bytes they completed. `done` once the body has ended."""

    __slots__ = ("_buffer", "_chunk_state", "_left", "_mode", "done", "head_done", "response")

    def __init__(self) -> None:
        self.response = Response()
        self.head_done = False
        self.done = False
        self._buffer = b""
        self._mode = ""  # "chunked", "length" or "close"
        self._left = 0  # bytes left in the body (length) or in the current chunk (chunked)
        self._chunk_state = "size"  # chunked: "size", "data", "crlf", "trailer"

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        if not self.head_done:
            data = self._head(self._buffer + data)
            if not self.head_done:
                return b""
        if self._mode == "length":
            piece = data[: self._left]
            self._left -= len(piece)
            self.done = self._left == 0
            return piece
        if self._mode == "close":
            return data
        return self._chunked(data)

    def eof(self) -> None:
        """The connection closed: fine for a close-delimited body, an error otherwise."""
        if self.done:
            return
        if self.head_done and self._mode == "close":
            self.done = True
            return
        where = "in the response head" if not self.head_done else f"in a {self._mode} body"
        raise ProtocolError(f"connection closed {where}")

    def _head(self, buffer: bytes) -> bytes:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > _MAX_HEAD:
                raise ProtocolError("response head longer than 64 KiB")
            self._buffer = buffer
            return b""
        lines = buffer[:end].decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise ProtocolError(f"bad status line {lines[0][:80]!r}")
        response = self.response
        response.status, response.reason = int(code), reason
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise ProtocolError(f"bad header line {line[:80]!r}")
            name, value = name.strip().lower(), value.strip()
            response.headers[name] = f"{response.headers[name]}, {value}" if name in response.headers else value
        headers = response.headers
        response.keep_alive = "close" not in headers.get("connection", "").lower() and version == "HTTP/1.1"
        self.head_done = True
        self._buffer = b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._mode = "chunked"
        elif "content-length" in headers:
            try:
                self._left = int(headers["content-length"])
            except ValueError:
                raise ProtocolError(f"bad Content-Length {headers['content-length']!r}") from None
            self._mode = "length"
        elif response.status in (204, 304) or 100 <= response.status < 200:
            self._mode, self._left = "length", 0
        else:
            self._mode = "close"
            response.keep_alive = False
        if self._mode == "length" and self._left == 0:
            self.done = True
        return buffer[end + 4 :]

    def _chunked(self, data: bytes) -> bytes:
        buffer = self._buffer + data if self._buffer else data
        self._buffer = b""
        out = []
        position = 0
        if self._chunk_state == "size":
            # The common read: whole chunks (a streaming server writes one per event). Anything else
            # (a partial chunk, an extension, the last chunk, bad bytes) goes the careful way below.
            size_of, total = int, len(buffer)
            while True:
                end = buffer.find(b"\r\n", position, position + 18)
                if end < 0:
                    break
                try:
                    size = size_of(buffer[position:end], 16)
                except ValueError:
                    break
                stop = end + 2 + size
                if size <= 0 or buffer[stop : stop + 2] != b"\r\n":
                    break
                out.append(buffer[end + 2 : stop])
                position = stop + 2
                if position == total:
                    return out[0] if len(out) == 1 else b"".join(out)
        while position < len(buffer) and not self.done:
            state = self._chunk_state
            if state == "data":
                piece = buffer[position : position + self._left]
                out.append(piece)
                position += len(piece)
                self._left -= len(piece)
                if self._left == 0:
                    self._chunk_state = "crlf"
                continue
            end = buffer.find(b"\r\n", position)
            if end < 0:
                if len(buffer) - position > 4096:
                    raise ProtocolError("chunk size line longer than 4 KiB")
                self._buffer = buffer[position:]
                break
            line = buffer[position:end]
            position = end + 2
            if state == "crlf":
                if line:
                    raise ProtocolError(f"chunk data longer than its size (extra {line[:20]!r})")
                self._chunk_state = "size"
            elif state == "size":
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
                if size == 0:
                    self._chunk_state = "trailer"
                else:
                    self._left, self._chunk_state = size, "data"
            elif not line:  # the blank line after the (usually empty) trailer
                self.done = True
        return b"".join(out)
