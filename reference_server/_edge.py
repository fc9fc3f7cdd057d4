"""The HTTP edge: what one client may send or hold before the app sees a request, and how it is refused.

uvicorn's httptools protocol (the one it picks when httptools is installed, as it is here) bounds
none of a request's head: a 64 MB header is read into memory in full, any number of header fields
is taken, and a connection that sends nothing, or a head a byte at a time, is never closed
(`timeout_keep_alive` runs only after a response). Its h11 protocol does bound the head
(`h11_max_incomplete_event_size`), but answers a plain-text 400, not 431, and has no header-read
timeout either. So the server runs uvicorn with `EdgeProtocol`, a subclass of its httptools
protocol that adds, per connection:

- `max_header_bytes` (request line + header fields) and `max_headers`: past either, 431 with a JSON
  body, then the connection is closed; the head is counted as it arrives, so at most one read
  (<= 256 KiB) past the limit is ever buffered;
- `header_timeout_s`: from the connection (or the end of the last response's keep-alive wait) to a
  whole head; a head begun and not finished by then is answered 408, an idle connection is closed;
- uvicorn's own `limit_concurrency` check, answered with a JSON 503 and `Retry-After` instead of
  its plain-text one;
- an HTTP/1.0 client's response without a length (an event stream) sent as it is and ended by the
  close: uvicorn would frame it in chunks, which HTTP/1.0 does not know (`_CloseDelimitedCycle`).

Idle keep-alive connections are uvicorn's `timeout_keep_alive`; the body limit is Litestar's
`request_max_body_size` (413). Refusal bodies have the shape of the app's error bodies,
`{"status_code", "detail"}`, so a client (and the OpenAPI schema) sees one error format.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from ._settings import Settings, load_settings

_log = logging.getLogger("reference_server.edge")


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """The per-connection limits `EdgeProtocol` enforces (the others are uvicorn's or Litestar's)."""

    max_header_bytes: int
    max_headers: int
    header_timeout_s: float

    @classmethod
    def of(cls, settings: Settings) -> EdgeLimits:
        return cls(settings.max_header_bytes, settings.max_headers, settings.header_timeout_s)


def refusal(status: int, detail: str, *, default_headers: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    """A whole HTTP/1.1 response with the app's JSON error body, for the edge to write and close."""
    body = json.dumps({"status_code": status, "detail": detail}).encode()
    lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}".encode()]
    lines += [name + b": " + value for name, value in default_headers]
    lines += [b"content-type: application/json", b"content-length: " + str(len(body)).encode(), b"connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; uvicorn then calls `send_400_response`."""


async def _unavailable(scope: Any, receive: Any, send: Any) -> None:
    """The ASGI app answering a request past `limit_concurrency` (uvicorn's own says it in plain text)."""
    body = json.dumps({"status_code": 503, "detail": "server busy: too many connections; retry shortly"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 503, "headers": [*headers, (b"retry-after", b"1")]})
    await send({"type": "http.response.body", "body": body})


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with head limits, a header-read timeout and a JSON 503.

    `limits` is set on a subclass (`protocol_class`); left None (worker processes, which get the
    class by its import path) it is read once from the inherited settings in the environment."""

    limits: ClassVar[EdgeLimits | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cls = type(self)
        if cls.limits is None:
            cls.limits = EdgeLimits.of(load_settings())
        self._limits: EdgeLimits = cls.limits
        self._in_head = True  # between requests or inside a head: what arrives counts toward a head
        self._head_begun = False
        self._head_bytes = 0
        self._head_fields = 0
        self._messages = 0
        self._refusal: tuple[int, str] | None = None
        self._head_timer: asyncio.TimerHandle | None = None

    # -- the connection ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return
        in_head, messages = self._in_head, self._messages
        super().data_received(data)
        # A read wholly inside one head counts whole; a read that crosses a head's end is counted by
        # the parser callbacks (on_url, on_header), exactly.
        if in_head and self._in_head and messages == self._messages and self._refusal is None:
            self._head_bytes += len(data)
            if self._head_bytes > self._limits.max_header_bytes:
                self._refuse(431, f"request head over {self._limits.max_header_bytes} bytes")

    # -- parser callbacks -------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun = True
        if self._head_timer is None:
            self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count_head(len(url), fields=0)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count_head(len(name) + len(value) + 4, fields=1)

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        self._in_head = False
        limit = self.limit_concurrency
        if limit is None or (len(self.connections) < limit and len(self.tasks) < limit):
            super().on_headers_complete()
            if self.cycle is not None and self.scope.get("http_version") == "1.0":
                self.cycle.__class__ = _CloseDelimitedCycle  # the one cycle uvicorn just made for it
            return
        _log.warning("Exceeded concurrency limit: %d connections, %d tasks", len(self.connections), len(self.tasks))
        app, self.app, self.limit_concurrency = self.app, _unavailable, None
        try:
            super().on_headers_complete()
        finally:
            self.app, self.limit_concurrency = app, limit

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._messages += 1
        self._in_head, self._head_begun, self._head_bytes, self._head_fields = True, False, 0, 0

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error; a refusal raised from a callback is answered as itself."""
        if self._refusal is not None:
            status, detail = self._refusal
            self._write_refusal(status, detail)
            return
        self._write_refusal(400, "malformed HTTP request")

    # -- refusing ---------------------------------------------------------------------------------

    def _count_head(self, size: int, *, fields: int) -> None:
        self._head_bytes += size
        self._head_fields += fields
        if self._head_fields > self._limits.max_headers:
            self._refusal = (431, f"more than {self._limits.max_headers} header fields")
        elif self._head_bytes > self._limits.max_header_bytes:
            self._refusal = (431, f"request head over {self._limits.max_header_bytes} bytes")
        else:
            return
        raise _Refused(self._refusal[1])

    def _refuse(self, status: int, detail: str) -> None:
        self._refusal = (status, detail)
        self._write_refusal(status, detail)

    def _write_refusal(self, status: int, detail: str) -> None:
        self._disarm_head_timer()
        if not self.transport.is_closing():
            self.transport.write(refusal(status, detail, default_headers=list(self.server_state.default_headers)))
            self.transport.close()

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self._limits.header_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_begun:
            self._refuse(408, f"request head not received within {self._limits.header_timeout_s:g} s")
        else:
            self.transport.close()  # idle since the connection was made: nothing to answer


class _CloseDelimitedCycle(RequestResponseCycle):
    """An HTTP/1.0 request's cycle: a response without a content-length goes out unframed, with
    `connection: close`, and the close ends it (uvicorn frames every such body in chunks, whatever the
    client's version). A response with a length is uvicorn's as ever."""

    _unframed = False

    async def send(self, message: Any) -> None:
        if self.disconnected or self.response_complete:
            await super().send(message)
            return
        if message["type"] == "http.response.start" and not self.response_started:
            names = {bytes(name).lower() for name, _ in message.get("headers", ())}
            if b"content-length" not in names and b"transfer-encoding" not in names:
                self._unframed = True
                self.chunked_encoding = False  # so uvicorn adds no `transfer-encoding: chunked`
        elif self._unframed and message["type"] == "http.response.body":
            self.transport.write(message.get("body", b""))
            if not message.get("more_body", False):
                self.response_complete = True
                self.message_event.set()
                self.transport.close()
            return
        await super().send(message)


def protocol_class(limits: EdgeLimits) -> type[EdgeProtocol]:
    """`EdgeProtocol` bound to `limits`, for a server in this process."""
    return type("EdgeProtocol", (EdgeProtocol,), {"limits": limits, "__module__": __name__})


def uvicorn_options(settings: Settings, *, in_workers: bool = False) -> dict[str, Any]:
    """The uvicorn options that carry the edge settings. Worker processes import the protocol by
    name (a class made here cannot be sent to them) and read its limits from their settings."""
    return {
        "http": f"{__name__}:EdgeProtocol" if in_workers else protocol_class(EdgeLimits.of(settings)),
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "limit_concurrency": settings.limit_concurrency,
        # Used only by uvicorn's h11 protocol; set alike so that one limit holds whichever parses.
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }
