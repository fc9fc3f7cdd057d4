"""The load client's edge: HTTP/1.1 over a plain socket, every read timestamped as it returns.

No client library sits between the socket and the clock. A streamed response is read by the
process's reactor (`_reactor`: one io watcher per stream in the gevent hub, the time taken right
after each read, the parsing after the loop iteration's reads are stamped). The few small
non-streamed responses (opening a conversation, the mock's journal) are read here with plain
blocking `recv`s, cooperative under Locust's gevent patching. One keep-alive connection per user,
reopened when the server closes it.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from ._http import ProtocolError, Response, ResponseParser
from ._measure import StreamMeter, StreamResult
from ._reactor import clock, reactor

READ_SIZE = 65536


class RequestFailed(Exception):
    """A request failed before or outside a stream: `kind` is `connect`, `timeout`, `http-NNN` or `protocol`."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    host_header: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected an http:// URL, got {url!r}")
        port = parts.port or 80
        return cls(parts.hostname, port, f"{parts.hostname}:{port}")


def encode_request(target: Target, method: str, path: str, query: Mapping[str, Any], headers: Mapping[str, str],
                   body: Any) -> bytes:  # fmt: skip
    """The request's bytes; a JSON body when `body` is not None. Built once per request."""
    if query:
        path += ("&" if "?" in path else "?") + urlencode({k: str(v) for k, v in query.items()})
    lines = [f"{method} {path} HTTP/1.1", f"Host: {target.host_header}", "Accept-Encoding: identity"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    payload = b""
    if body is not None:
        payload = json.dumps(body, separators=(",", ":")).encode()
        lines.append("Content-Type: application/json")
    if payload or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


class Connection:
    """One keep-alive HTTP/1.1 connection to the target."""

    def __init__(self, target: Target, *, timeout_s: float = 60.0, source: str | None = None) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.source = source
        self._sock: socket.socket | None = None

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def _socket(self) -> socket.socket:
        if self._sock is None:
            try:
                source = (self.source, 0) if self.source else None
                sock = socket.create_connection(
                    (self.target.host, self.target.port), timeout=self.timeout_s, source_address=source
                )
            except OSError as exc:
                raise RequestFailed("connect", f"{self.target.host_header}: {exc}") from None
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
        return self._sock

    def send(self, request: bytes) -> int:
        """Send a request (reconnecting once if a kept-alive connection was closed); returns t0."""
        for attempt in (0, 1):
            sock = self._socket()
            t0 = clock()
            try:
                sock.sendall(request)
                return t0
            except OSError as exc:
                self.close()
                if attempt:
                    raise RequestFailed("connect", f"send failed: {exc}") from None
        raise AssertionError("unreachable")

    def receive(self, deadline_ns: int) -> tuple[Response, bytes]:
        """A whole (non-streamed) response to the request just sent: the response and its body."""
        parser = ResponseParser()
        body: list[bytes] = []
        self._read(parser, deadline_ns, lambda piece, t: body.append(piece))
        return parser.response, b"".join(body)

    def receive_stream(self, meter: StreamMeter, deadline_ns: int, ok_status: tuple[int, ...]) -> StreamResult:
        """The streamed response to the request just sent, read into `meter` by the reactor.

        A failure becomes the result's error kind, never an exception: a broken stream is a
        measured failure, and the connection is dropped rather than read to its end.
        """
        result, keep = reactor().read_stream(self._socket().fileno(), meter, deadline_ns, ok_status, self.timeout_s)
        if not keep:
            self.close()
        return result

    def _read(self, parser: ResponseParser, deadline_ns: int, on_body: Callable[[bytes, int], None]) -> None:
        """Read a (small) response to its end. The socket's own timeout (set once) bounds a silence; the
        deadline, checked after each read, bounds the whole response."""
        sock = self._socket()
        recv = sock.recv
        head_seen = False
        try:
            while not parser.done:
                data = recv(READ_SIZE)
                t = clock()
                if t > deadline_ns:
                    raise RequestFailed("timeout", "the response did not end before the deadline")
                if not data:
                    parser.eof()
                    break
                piece = parser.feed(data)
                if parser.head_done:
                    if not head_seen:
                        head_seen = True
                        on_body(piece, t)
                    elif piece:
                        on_body(piece, t)
        except TimeoutError:
            self.close()
            raise RequestFailed("timeout", f"no byte for {self.timeout_s:g} s") from None
        except ProtocolError as exc:
            self.close()
            raise RequestFailed("protocol", str(exc)) from None
        except OSError as exc:
            self.close()
            raise RequestFailed("connect", f"read failed: {exc}") from None
        if not parser.response.keep_alive:
            self.close()
