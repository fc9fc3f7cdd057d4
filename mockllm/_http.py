"""A small HTTP/1.1 server on asyncio, made for timing: the mock's only I/O edge.

Why not an ASGI server: the mock must control each TCP write (a fragmented stream is several
writes at chosen byte offsets), close a connection mid-body, stay silent with it open, and send
a thousand streams' tokens on their deadlines. Here a response is a `WireSchedule` of prepared
bytes, and the per-write work is a clock read, a timer and one `transport.write`.

Requests are parsed by httptools (llhttp, in C); keep-alive and pipelined requests are served in
order; TCP_NODELAY is set so a write is a segment. A schedule is played from timer callbacks
(`_Player`), not by a coroutine that sleeps between writes: a thousand streams' tokens then cost
a timer and a write each, with no future and no wake-up of the handler's coroutine chain.

One client's bad input must not delay another's writes, nor exhaust the server. The `Limits` in
force (`HttpServer.limits`, the config's `limits` section) bound each connection:

- a request head (request line and header fields) is fed to the parser in slices of at most
  `HEAD_SLICE` bytes, counted against `max_header_bytes`; past it, or past `max_headers` fields,
  parsing stops at once and the answer is 431. No oversized head is ever parsed in one go, so a
  64 MB header costs its sender a 431 after 64 KiB, not the server seconds of parsing. (A head that
  begins in the same read as the previous pipelined request's end is counted from the next read:
  at most one read more is parsed.)
- a body over `max_body_bytes` is read and dropped; the request still goes to its route, which
  answers 413 in its own error shape (`Request.body_over`).
- a request whose head is not whole `header_timeout_s` after its first byte is answered 408 (a
  slowloris client); a body still awaited `idle_timeout_s` after its head, likewise; a connection
  with no request in flight is closed after `idle_timeout_s`. A response being written has no
  timeout: a `stall` fault stays silent as long as the client waits.
- a connection beyond `max_connections` open ones is answered 503 at once and closed, before
  anything of it is read (a client that had already sent its request may see a reset instead).

A rejected request (400, 408, 431) is answered, then the connection is half-closed and what the
client still sends is read and dropped for up to `LINGER_S`: closing at once, with its bytes
unread, would make the kernel send a reset that can destroy the answer before the client reads it.
The timers are per connection and change only when a request begins, its head ends, or a
response ends: nothing is added per write.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable, MutableSequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import httptools

from ._limits import Limits
from ._wire import WireSchedule, close_delimited

# A wake-up up to this early writes at once: uvloop's timers run on a millisecond clock, so a
# shorter sleep would spin. Writes land within half a millisecond of their deadline.
EARLY_WRITE_S = 0.0005
# A request head is parsed this many bytes at a time: a slice of tiny header fields costs the
# parser's callbacks some hundreds of microseconds at most before the limits are checked again.
HEAD_SLICE = 4096
LINGER_S = 2.0  # after a rejection: how long what the client still sends is read and dropped
_INTERNAL_ERROR = (
    b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: 69\r\n"
    b'connection: close\r\n\r\n{"error":{"message":"mockllm internal error","type":"server_error"}}\n'
)
_PHRASES = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}
log = logging.getLogger("mockllm")
_LINGER_ZERO = struct.pack("ii", 1, 0)  # struct linger {l_onoff = 1, l_linger = 0}
RELISTEN_RETRY_S = 0.05
RELISTEN_ATTEMPTS = 100  # 5 s of retries if another socket holds the port for a moment


class ClientGone(Exception):
    """The client closed the connection before the response was complete."""


class _Refused(Exception):
    """Raised from a parser callback (or after a slice) to stop parsing a request we will not serve."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    arrival: float  # perf_counter() when the request was complete
    keep_alive: bool
    body_over: int | None = None  # the size limit its body went over (the body was dropped), if any
    http_10: bool = False  # an HTTP/1.0 client: no chunked framing, the body ends with the connection


Handler = Callable[[Request, "Connection"], Awaitable[None]]


def error_response(status: int, message: str, kind: str = "invalid_request_error") -> bytes:
    """A whole response the HTTP layer answers itself (no route was reached), then closes."""
    text = message.replace("\\", "/").replace('"', "'").encode("utf-8", "replace")
    body = b'{"error":{"message":"%b","type":"%b"}}' % (text, kind.encode())
    extra = b"retry-after: 1\r\n" if status == 503 else b""
    return (
        b"HTTP/1.1 %d %b\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%bconnection: close\r\n\r\n%b"
        % (status, _PHRASES[status], len(body), extra, body)
    )


class Connection(asyncio.Protocol):
    """One client connection: parses requests within the limits, runs the handler for each in turn."""

    __slots__ = (
        "_body",
        "_body_size",
        "_closed",
        "_head_bytes",
        "_header_count",
        "_headers",
        "_heads",
        "_http",
        "_http_10",
        "_in_head",
        "_in_message",
        "_on_writable",
        "_parser",
        "_paused",
        "_queue",
        "_task",
        "_timer",
        "_timer_due",
        "_too_large",
        "_transport",
        "_url",
        "_wrote",
    )

    def __init__(self, http: HttpServer) -> None:
        self._http = http
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._queue: deque[Request] = deque()
        self._task: asyncio.Task[None] | None = None
        self._closed: asyncio.Future[None] | None = None  # made when a stalled response waits for it
        self._paused = False  # the transport's buffer is full: writes wait for resume_writing
        self._on_writable: Callable[[], None] | None = None  # a player waiting for that
        self._timer: asyncio.TimerHandle | None = None  # the idle, head or linger timeout
        self._timer_due = 0.0  # when it is due, on perf_counter (the loop's clock runs in whole ms)
        # Parser state of the request being read.
        self._in_head = True  # the next bytes fed belong to a request head (or precede one)
        self._head_bytes = 0  # bytes of that head fed so far, in whole slices
        self._heads = 0  # heads begun: tells a slice that ended one request and began another
        self._in_message = False  # a request has begun and is not complete
        self._header_count = 0
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_size = 0
        self._too_large = False
        self._wrote = False  # whether the current response has started
        self._http_10 = False  # the current request is HTTP/1.0 (its stream body ends with the connection)

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        limits = self._http.limits
        connections = self._http.connections
        if len(connections) >= limits.max_connections:
            self._parser = None
            message = f"the mock serves at most {limits.max_connections} connections at once (limits.max_connections)"
            self._transport.write(error_response(503, message, "server_error"))  # type: ignore[union-attr]
            self._transport.close()  # type: ignore[union-attr]
            return
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connections.add(self)
        self._set_timer(limits.idle_timeout_s)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            return  # closed, or answered and lingering: what the client still sends is dropped
        try:
            if self._in_head:
                self._feed_head(parser, data)
            else:  # a body: its limit is counted in on_body
                parser.feed_data(data)
        except _Refused as refused:
            self._reject(refused.status, refused.message)
        except httptools.HttpParserUpgrade:
            self._reject(400, "upgrades are not supported")
        except httptools.HttpParserError as err:
            if isinstance(err.__context__, _Refused):  # raised by one of our callbacks
                self._reject(err.__context__.status, err.__context__.message)
            else:
                self._reject(400, f"malformed HTTP request: {err}")

    def _feed_head(self, parser: httptools.HttpRequestParser, data: bytes) -> None:
        """Feed `data` in slices while a head is being read, counting them against the limit."""
        limit = self._http.limits.max_header_bytes
        start, size = 0, len(data)
        view = memoryview(data)
        while start < size:
            if not self._in_head:  # the head ended in the last slice: the rest is body (or more)
                parser.feed_data(view[start:])
                return
            end = min(size, start + min(HEAD_SLICE, limit - self._head_bytes))
            heads = self._heads
            parser.feed_data(data if start == 0 and end == size else view[start:end])
            if self._in_head and heads == self._heads:  # the whole slice was this head's
                self._head_bytes += end - start
                if self._head_bytes >= limit:  # and it is not over: it is longer than the limit
                    raise _Refused(431, f"the request head is over {limit} bytes (limits.max_header_bytes)")
            start = end

    def connection_lost(self, exc: Exception | None) -> None:
        self._http.connections.discard(self)
        self._clear_timer()
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        self._transport = None
        # The parser holds this protocol's callbacks: without it the connection is freed at once,
        # not left in a cycle for the garbage collector to find.
        self._parser = None
        self._resume()  # a paused player finds the client gone
        if self._task is not None:
            self._task.cancel()  # the handler learns at once that its client left

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._resume()

    def _resume(self) -> None:
        waiting, self._on_writable = self._on_writable, None
        if waiting is not None:
            waiting()

    # -- timeouts ---------------------------------------------------------------------------------

    def _set_timer(self, seconds: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = perf_counter() + seconds
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expire)

    def _clear_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        """The timer ran out: a request that did not arrive whole in time gets 408, an idle
        connection is closed. uvloop's timers count from the loop's cached millisecond clock, so one
        can fire a little before its time; it is then set again for the rest, never early."""
        self._timer = None
        if self._transport is None:
            return
        early = self._timer_due - perf_counter()
        if early > 0:
            self._timer = asyncio.get_running_loop().call_later(max(early, 0.001), self._expire)
            return
        limits = self._http.limits
        if self._in_message and self._in_head:
            wait = f"{limits.header_timeout_s:g} s (limits.header_timeout_s)"
            self._reject(408, f"the request head was not whole within {wait}")
        elif self._in_message:
            wait = f"{limits.idle_timeout_s:g} s (limits.idle_timeout_s)"
            self._reject(408, f"the request body was not whole within {wait} of its head")
        else:
            self._transport.close()

    # -- httptools callbacks ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._header_count = 0
        self._url = b""
        self._headers = {}
        self._body = []
        self._body_size = 0
        self._too_large = False
        self._set_timer(self._http.limits.header_timeout_s)

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self._http.limits.max_headers:
            limit = self._http.limits.max_headers
            raise _Refused(431, f"the request has over {limit} header fields (limits.max_headers)")
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._set_timer(self._http.limits.idle_timeout_s)  # for the body, if one is still to come

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._http.limits.max_body_bytes:
            self._too_large = True
            self._body = []  # dropped: the route answers 413
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        self._in_head = True  # what follows is the next request's head
        self._head_bytes = 0
        self._heads += 1
        self._clear_timer()
        parser = self._parser
        assert parser is not None  # it is calling us
        parsed = httptools.parse_url(self._url)
        request = Request(
            method=parser.get_method().decode("ascii"),
            path=parsed.path.decode("utf-8", "replace"),
            query=(parsed.query or b"").decode("utf-8", "replace"),
            headers=self._headers,
            body=b"".join(self._body),
            arrival=perf_counter(),
            keep_alive=parser.should_keep_alive(),
            body_over=self._http.limits.max_body_bytes if self._too_large else None,
            http_10=parser.get_http_version() == "1.0",
        )
        self._queue.append(request)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._serve())

    # -- serving ----------------------------------------------------------------------------------

    async def _serve(self) -> None:
        try:
            while self._queue and self._transport is not None:
                request = self._queue.popleft()
                self._wrote = False
                self._http_10 = request.http_10
                try:
                    await self._http.handler(request, self)
                except ClientGone:
                    break
                except Exception:
                    # A bug must not leave the client waiting: answer 500 if nothing was sent, close.
                    log.exception("mockllm: handler failed for %s %s", request.method, request.path)
                    if self._transport is not None and not self._transport.is_closing():
                        if not self._wrote:
                            self._transport.write(_INTERNAL_ERROR)
                        self._transport.close()
                    break
                if (not request.keep_alive or request.http_10) and self._transport is not None:
                    self._transport.close()  # an HTTP/1.0 body may have ended with the connection
        finally:
            self._task = None
            if not self._in_message and self.is_open:  # kept alive, and no next request begun
                self._set_timer(self._http.limits.idle_timeout_s)

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    async def play(self, schedule: WireSchedule, start: float, sent: MutableSequence[float] | None = None) -> None:
        """Write the schedule on its deadlines (`start` + offset), appending to `sent` when each
        write went out (kept by the caller, so it survives a client that leaves mid-stream).

        Writes already due go out as one (unless the schedule forbids it), so a late wake-up
        never makes the stream drift. Raises `ClientGone` if the client leaves first.
        """
        if self._http_10 and schedule.chunked:  # HTTP/1.0 knows no chunks: the close ends the body
            schedule = close_delimited(schedule)
        player = _Player(self, schedule, start, [] if sent is None else sent)
        try:
            await player.done
        finally:
            player.stop()
        self._finish(schedule)
        if schedule.end == "stall":
            if self._transport is not None:  # silent until the client leaves
                self._closed = asyncio.get_running_loop().create_future()
                await asyncio.shield(self._closed)
            raise ClientGone

    def _finish(self, schedule: WireSchedule) -> None:
        if schedule.end == "abort" and self._transport is not None:
            # FIN after a partial body: the client sees the response end before its length.
            self._queue.clear()
            self._transport.close()
        elif schedule.end == "reset":
            self.reset()

    def reset(self) -> None:
        """Close with SO_LINGER 0: the kernel sends RST instead of FIN and drops what is unsent,
        so the client's next read or write fails with ECONNRESET (a crashed upstream, a middlebox)."""
        transport = self._transport
        if transport is None:
            return
        self._queue.clear()
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        transport.abort()

    def send_now(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _reject(self, status: int, message: str) -> None:
        """Answer a request we will not serve, then close: the rest of the byte stream cannot be
        trusted. The answer is followed by a FIN, and what the client still sends is dropped for up
        to `LINGER_S` before the close (see the module docstring)."""
        transport = self._transport
        self._parser = None  # nothing more is parsed
        self._queue.clear()
        if transport is None or transport.is_closing():
            return
        if self._task is not None:  # a response is being written: an answer now would land inside it
            transport.close()
            return
        transport.write(error_response(status, message))
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(LINGER_S, transport.close)


class _Player:
    """Plays one schedule from timer callbacks: each call writes what is due, then sets a timer
    for the next write. `done` resolves after the last write, or fails with `ClientGone`."""

    __slots__ = ("_conn", "_context", "_loop", "_next", "_schedule", "_sent", "_start", "_timer", "done")

    def __init__(self, conn: Connection, schedule: WireSchedule, start: float, sent: MutableSequence[float]) -> None:
        self._conn = conn
        self._loop = asyncio.get_running_loop()
        self._context = contextvars.copy_context()  # once, not a copy per timer
        self._schedule = schedule
        self._start = start
        self._sent = sent
        self._next = 0
        self._timer: asyncio.TimerHandle | None = None
        self.done: asyncio.Future[None] = self._loop.create_future()
        self._step()  # what is due on arrival goes out now, not after a turn of the loop

    def stop(self) -> None:
        """Cancel the pending write, if any (the handler was cancelled or the stream is over)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._conn._on_writable == self._step:
            self._conn._on_writable = None

    def _step(self) -> None:
        self._timer = None
        if self.done.done():  # the handler stopped waiting
            return
        try:
            self._write_due()
        except Exception as err:  # ClientGone, or a bug: the handler raises it
            self.done.set_exception(err)

    def _write_due(self) -> None:
        """Every write due now (the same instant's as one), then a timer for the next."""
        conn, schedule, start, sent = self._conn, self._schedule, self._start, self._sent
        offsets = schedule.offsets
        n, i = len(offsets), self._next
        while i < n:
            transport = conn._transport
            if transport is None or transport.is_closing():
                raise ClientGone
            now = perf_counter()
            delay = start + offsets[i] - now
            if delay > EARLY_WRITE_S:
                self._next = i
                self._timer = self._loop.call_later(delay, self._step, context=self._context)
                return
            j = i + 1
            if schedule.coalesce:
                horizon = now - start + EARLY_WRITE_S
                while j < n and offsets[j] <= horizon:
                    j += 1
            data = schedule.payload(i) if j == i + 1 else b"".join([schedule.payload(k) for k in range(i, j)])
            if data:
                transport.write(data)
                conn._wrote = True
            if j == i + 1:
                sent.append(now)
            else:
                sent.extend([now] * (j - i))
            i = j
            if conn._paused and i < n:  # the client reads slower than we write: wait for it
                self._next = i
                conn._on_writable = self._step
                return
        self.done.set_result(None)


@dataclass(frozen=True, slots=True)
class Refusal:
    """The listener's refusal windows: how long the current one has left (0: listening), how many
    were opened since start."""

    remaining_s: float
    windows: int


class HttpServer:
    """Listens on host:port and hands each request to `handler`, every connection within `limits`
    (read when needed, so a new value applies at once); can stop listening for a while (`refuse`)
    so that new connections are refused by the kernel, then listen on the same port."""

    def __init__(self, handler: Handler, limits: Limits | None = None) -> None:
        self.handler = handler
        self.limits = limits or Limits()
        self.connections: set[Connection] = set()
        self._server: asyncio.base_events.Server | None = None
        self._address: tuple[str, int, int] = ("127.0.0.1", 0, 4096)  # host, bound port, backlog
        self._reopen: asyncio.TimerHandle | None = None  # set while a refusal window is open
        self._refusing_until = 0.0  # loop time
        self._windows = 0
        self.reuse_port = False  # set before start: the workers of one mock listen on one port (SO_REUSEPORT)

    async def start(self, host: str, port: int, *, backlog: int = 4096) -> int:
        self._server = await self._listen(host, port, backlog)
        sockets: Any = self._server.sockets
        bound = int(sockets[0].getsockname()[1])
        self._address = (host, bound, backlog)
        return bound

    async def _listen(self, host: str, port: int, backlog: int) -> asyncio.base_events.Server:
        loop = asyncio.get_running_loop()
        return await loop.create_server(
            lambda: Connection(self),
            host,
            port,
            backlog=backlog,
            reuse_address=True,
            reuse_port=self.reuse_port or None,
        )

    def refuse(self, seconds: float) -> None:
        """Stop listening for `seconds` (a window already open is extended, never shortened):
        connections open now are served on, new ones get ECONNREFUSED until the port listens again."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        if self._reopen is not None:
            if until <= self._refusing_until:
                return
            self._reopen.cancel()
        else:
            if self._server is not None:
                self._server.close()  # the listening socket only: accepted connections stay open
                self._server = None
            self._windows += 1
        self._refusing_until = until
        self._reopen = loop.call_later(seconds, lambda: loop.create_task(self._listen_again()))

    async def _listen_again(self) -> None:
        host, port, backlog = self._address
        for _ in range(RELISTEN_ATTEMPTS):
            try:
                self._server = await self._listen(host, port, backlog)
                break
            except OSError as err:  # the port was taken meanwhile: another process's, for a moment
                log.warning("mockllm: cannot listen again on %s:%d yet (%s)", host, port, err)
                await asyncio.sleep(RELISTEN_RETRY_S)
        else:
            log.error("mockllm: gave up listening again on %s:%d", host, port)
        self._reopen = None

    def refusal(self) -> Refusal:
        remaining = 0.0
        if self._reopen is not None:
            remaining = max(0.0, self._refusing_until - asyncio.get_running_loop().time())
        return Refusal(remaining, self._windows)

    async def close(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
            self._reopen = None
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if connection._transport is not None:
                connection._transport.close()
        if self._server is not None:
            await self._server.wait_closed()
