"""The benchmarks' lean SSE load client, on raw asyncio protocols.

httpx costs tens of microseconds per event; this client has to follow ~20,000 events/s on one
core, so it parses HTTP/1.1 by hand and timestamps every network read itself.  Run it in its
own process so it has a core of its own; it prints one JSON object on stdout:

    python -m bench._stream_client count   --url http://127.0.0.1:PORT --conns 50 --seconds 5
    python -m bench._stream_client latency --url http://127.0.0.1:PORT --streams 100 --timeout 60
    python -m bench._stream_client hold    --url http://127.0.0.1:PORT --streams 5000 --timeout 60

`hold` opens the streams, prints a line once every response head has arrived, waits for a line on
stdin, then closes them all and prints its result: the benchmark measures the server's memory
with the streams open and after they closed.

`--dialect` picks the wire: each dialect registered in `mockllm.dialects` brings its own
`StreamProbe` (how to ask it for a stream and tell its frames apart); the reference server's
`ref-query-stream` is the one wire kept here. Percentiles are nearest-rank over the exact, sorted
samples (no interpolation, no histograms).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import itertools
import json
import math
import re
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import quote, urlsplit

from bench._runtime import raise_nofile_limit, run
from mockllm.dialects import DIALECTS, StreamProbe

CONNECT_TIMEOUT_S = 10.0
CONNECT_BATCH = 100  # connections opened at once; far below any sane listen backlog
CONNECT_PAUSE_S = 0.005  # lets the server accept one batch before the next arrives

_now = time.perf_counter_ns
REF_PROJECT_ID = "5f0c6a2e-8c1b-4d7e-9a53-2b6f1e0d4c11"  # reference_server's default project
_CHUNKED, _LENGTH, _CLOSE = 0, 1, 2


# The wires of servers other than the mock, by name.
OTHER_WIRES: dict[str, StreamProbe] = {
    # The reference server's `query-stream` profile (a GET with a bearer token: pass --header).
    "ref-query-stream": StreamProbe(
        lambda prompt: f"/api/v1/ai/chat/stream?projectId={REF_PROJECT_ID}&message={quote(prompt)}",
        None,
        re.compile(rb'"type":"token"'),
        b'"type":"complete"',
    ),
}


def mock_wires() -> dict[str, StreamProbe]:
    """Each registered mock dialect's probe, by the dialect's name, in registration order."""
    return {dialect.name: dialect.probe for dialect in DIALECTS if dialect.probe is not None}


def wires() -> dict[str, StreamProbe]:
    """Every wire by name: the mock dialects' (as registered now), then the other servers'."""
    return mock_wires() | OTHER_WIRES


Addr = tuple[str, int]


def percentiles(samples: Iterable[float], ps: Iterable[float] = (50, 99)) -> dict[str, float]:
    """Nearest-rank percentiles of exact samples: the value at rank ceil(p/100 * n)."""
    ordered = sorted(samples)
    if not ordered:
        return {f"p{p:g}": math.nan for p in ps}
    n = len(ordered)
    return {f"p{p:g}": ordered[max(1, math.ceil(p / 100 * n)) - 1] for p in ps}


def split_url(url: str) -> Addr:
    """Host and port of a loopback URL; anything else is refused, it is a benchmark."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1") or parts.port is None:
        raise ValueError(f"only loopback URLs with a port may be targeted: {url}")
    return parts.hostname, parts.port


def build_request(host: str, port: int, i: int, wire: StreamProbe, headers: Iterable[str] = ()) -> bytes:
    """One streaming request; the unique prompt keeps servers from caching answers."""
    prompt = f"bench {i}"
    path = wire.path(prompt) if callable(wire.path) else wire.path
    extra = "".join(f"{header}\r\n" for header in headers)
    if wire.body is None:
        head = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}"
        return (head + "Accept: text/event-stream\r\nConnection: close\r\n\r\n").encode()
    body = json.dumps(wire.body(prompt), separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}"
        "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
        f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _Stream(asyncio.Protocol):
    """One request/response on its own connection: HTTP head, de-chunking, SSE framing.

    Subclasses see the de-chunked body in ``self.sse`` together with the time of the read that
    delivered it, and consume whole events from it.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.status = 0
        self.complete = False  # the body ended the way its framing says it should
        self.error = ""
        self.sse = bytearray()
        self._head = bytearray()
        self._mode = -1  # body framing, known once the head is parsed
        self._left = 0  # bytes left in the current chunk (or in a Content-Length body)
        self._skip = 0  # bytes of the CRLF that closes the current chunk still to skip
        self._size_line = b""  # a chunk-size line split across reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, request: bytes) -> None:
        """Write the request; subclasses take their time origin just before."""
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        t = _now()
        if self._mode < 0:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            data = bytes(self._head[end + 4 :])
            self._parse_head(bytes(self._head[:end]))
        if data:
            self._feed(data)
        if self.sse:
            self.on_body(t)
        if self.complete:
            self.finish()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._mode == _CLOSE and exc is None:
            self.complete = True
        if not self.complete and not self.error:
            self.error = type(exc).__name__ if exc else "closed before the end of the body"
        self.finish()

    def finish(self) -> None:
        """Resolve ``done`` once and drop the connection (we asked for Connection: close)."""
        if not self.done.done():
            self.done.set_result(None)
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def on_body(self, t: int) -> None:
        raise NotImplementedError

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.complete

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status = lines[0].split(b" ", 2)
        self.status = int(status[1]) if len(status) > 1 and status[1].isdigit() else 0
        self._mode = _CLOSE
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"transfer-encoding" and b"chunked" in value:
                self._mode = _CHUNKED
            elif name == b"content-length" and self._mode != _CHUNKED:
                self._mode, self._left = _LENGTH, int(value)
                self.complete = self._left == 0

    def _feed(self, data: bytes) -> None:
        if self._mode == _CHUNKED:
            self._dechunk(data)
        elif self._mode == _LENGTH:
            take = data[: self._left]
            self.sse += take
            self._left -= len(take)
            self.complete = self._left == 0
        else:
            self.sse += data

    def _dechunk(self, data: bytes) -> None:
        """Strip chunked framing; every state survives a read boundary, headers included."""
        view = memoryview(data)
        pos, end = 0, len(data)
        while pos < end and not self.complete:
            if self._left:
                take = min(self._left, end - pos)
                self.sse += view[pos : pos + take]
                self._left -= take
                pos += take
            elif self._skip:
                take = min(self._skip, end - pos)
                self._skip -= take
                pos += take
            else:
                nl = data.find(b"\n", pos)
                if nl < 0:
                    self._size_line += data[pos:]
                    return
                line, self._size_line = self._size_line + data[pos:nl], b""
                pos = nl + 1
                self._left = int(line.split(b";", 1)[0].strip(), 16)
                self._skip = 2
                self.complete = self._left == 0  # trailers after the last chunk are ignored


@dataclass
class _Tally:
    """Counts shared by every connection of a throughput run."""

    events: int = 0  # all events received, whether or not their stream finished in time
    streams: int = 0  # streams that finished in time
    stream_events: int = 0  # events of those streams
    errors: Counter[str] = field(default_factory=Counter)


class _CountStream(_Stream):
    """Only counts events: the cheapest possible consumer, for throughput runs."""

    def __init__(self, tally: _Tally, wire: StreamProbe) -> None:
        super().__init__()
        self._tally = tally
        self._event_end = wire.event_end
        self.events = 0

    def on_body(self, t: int) -> None:
        buf, event_end = self.sse, self._event_end
        n = buf.count(event_end)
        if n:
            self.events += n
            self._tally.events += n
            del buf[: buf.rfind(event_end) + len(event_end)]


class _TimedStream(_Stream):
    """Records when each content-carrying event arrived (time of the read that completed it)."""

    def __init__(self, wire: StreamProbe) -> None:
        super().__init__()
        self._content, self._end, self._event_end = wire.content, wire.end, wire.event_end
        self.t_sent = 0
        self.times: list[int] = []
        self.events = 0  # every event, content or not
        self.saw_done = False

    def send(self, request: bytes) -> None:
        self.t_sent = _now()
        super().send(request)

    def on_body(self, t: int) -> None:
        buf, content, event_end = self.sse, self._content, self._event_end
        start = 0
        while (end := buf.find(event_end, start)) >= 0:
            self.events += 1
            if content.search(buf, start, end):
                self.times.append(t)
            elif buf.find(self._end, start, end) >= 0:
                self.saw_done = True
            start = end + len(event_end)
        if start:
            del buf[:start]

    @property
    def ok(self) -> bool:
        return super().ok and self.saw_done and bool(self.times)


def _failure(proto: _Stream) -> str:
    if proto.status != 200:
        return f"HTTP {proto.status}" if proto.status else "no HTTP response"
    if proto.error:
        return proto.error
    if not proto.complete:
        return "timed out"
    return "no terminal event" if isinstance(proto, _TimedStream) and proto.times else "no content"


_S = TypeVar("_S", bound="_Stream")


async def _connect(host: str, port: int, factory: Callable[[], _Stream]) -> _Stream:
    loop = asyncio.get_running_loop()
    connecting = loop.create_connection(factory, host, port)
    _, proto = await asyncio.wait_for(connecting, CONNECT_TIMEOUT_S)
    return proto


async def _open_all(
    host: str, port: int, n: int, factory: Callable[[], _S], kind: type[_S], errors: Counter[str]
) -> list[_S]:
    """Open every connection before any request, in batches that cannot overflow a backlog."""
    protos: list[_S] = []
    for first in range(0, n, CONNECT_BATCH):
        batch = min(CONNECT_BATCH, n - first)
        opened = await asyncio.gather(*(_connect(host, port, factory) for _ in range(batch)), return_exceptions=True)
        for item in opened:
            if isinstance(item, kind):
                protos.append(item)
            else:
                errors[f"connect: {type(item).__name__}"] += 1
        await asyncio.sleep(CONNECT_PAUSE_S)
    return protos


async def run_latency(
    url: str, streams: int, timeout: float, wire: StreamProbe, headers: Iterable[str] = ()
) -> dict[str, Any]:
    """Open ``streams`` connections, start every stream at once, record TTFT and ITL samples."""
    host, port = split_url(url)
    errors: Counter[str] = Counter()
    protos = await _open_all(host, port, streams, lambda: _TimedStream(wire), _TimedStream, errors)
    requests = [build_request(host, port, i, wire, headers) for i in range(len(protos))]
    for proto, request in zip(protos, requests, strict=True):
        proto.send(request)
    if protos:
        await asyncio.wait([p.done for p in protos], timeout=timeout)
    for proto in protos:
        if not proto.done.done():
            proto.abort()
    return _latency_result(streams, protos, errors)


class _HoldStream(_Stream):
    """Holds its stream open and drops what arrives: for measuring the server with idle streams."""

    def on_body(self, t: int) -> None:
        self.sse.clear()


HOLD_POLL_S = 0.05


async def run_hold(url: str, streams: int, timeout: float, wire: StreamProbe) -> dict[str, Any]:
    """Open ``streams`` streams, report once every response head has arrived (or ``timeout``
    passed), wait for a line on stdin, close them all, report again."""
    host, port = split_url(url)
    loop = asyncio.get_running_loop()
    errors: Counter[str] = Counter()
    protos = await _open_all(host, port, streams, _HoldStream, _HoldStream, errors)
    for index, proto in enumerate(protos):
        proto.send(build_request(host, port, index, wire))
    deadline = loop.time() + timeout
    while loop.time() < deadline and not all(p.status or p.done.done() for p in protos):
        await asyncio.sleep(HOLD_POLL_S)
    held = sum(1 for p in protos if p.status == 200 and not p.done.done())
    for proto in protos:
        if not proto.status:
            errors["no response head in time"] += 1
        elif proto.done.done():
            errors[_failure(proto) if proto.status != 200 else "ended while held"] += 1
    print(json.dumps({"held": held, "errors": dict(errors)}), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    for proto in protos:
        proto.abort()
    return {"streams": streams, "held": held, "errors": dict(errors)}


def _latency_result(streams: int, protos: list[_TimedStream], errors: Counter[str]) -> dict[str, Any]:
    ttft: list[int] = []
    itl: list[int] = []
    tokens: Counter[int] = Counter()
    for proto in protos:
        if not proto.ok:
            errors[_failure(proto)] += 1
            continue
        ttft.append(proto.times[0] - proto.t_sent)
        itl.extend(b - a for a, b in itertools.pairwise(proto.times))
        tokens[len(proto.times)] += 1
    return {
        "streams": streams,
        "ok": streams - sum(errors.values()),
        "failures": sum(errors.values()),
        "errors": dict(errors),
        "content_events_per_stream": {str(k): v for k, v in tokens.items()},
        "events": sum(proto.events for proto in protos),  # every stream's, finished or not
        "ttft_ns": ttft,
        "itl_ns": itl,
    }


async def run_users(
    url: str, users: int, rounds: int, ramp_s: float, timeout: float, wire: StreamProbe, headers: Iterable[str] = ()
) -> dict[str, Any]:
    """``users`` closed-loop users, each streaming ``rounds`` times back to back (a fresh
    connection each), their first requests spread evenly over ``ramp_s``: once the ramp is over,
    ``users`` streams are open at every moment, as in a steady load rather than one burst."""
    host, port = split_url(url)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.1
    finished: list[_TimedStream] = []
    errors: Counter[str] = Counter()
    headers = list(headers)

    async def user(u: int) -> None:
        await asyncio.sleep(max(0.0, start + u * ramp_s / users - loop.time()))
        for r in range(rounds):
            try:
                proto = cast(_TimedStream, await _connect(host, port, lambda: _TimedStream(wire)))
            except (OSError, TimeoutError) as err:
                errors[f"connect: {type(err).__name__}"] += 1
                continue
            proto.send(build_request(host, port, u * rounds + r, wire, headers))
            try:
                await asyncio.wait_for(asyncio.shield(proto.done), timeout)
            except TimeoutError:
                proto.abort()
            finished.append(proto)

    await asyncio.gather(*(user(u) for u in range(users)))
    return _latency_result(users * rounds, finished, errors)


async def _count_worker(addr: Addr, tally: _Tally, ids: Iterable[int], deadline: float, wire: StreamProbe) -> None:
    """Stream request after request on fresh connections until the deadline.

    Workers stop by themselves instead of being cancelled: on Python 3.11, cancelling a task
    inside asyncio.wait_for can be swallowed, leaving a worker that never ends.
    """
    loop = asyncio.get_running_loop()
    host, port = addr
    for i in ids:
        if loop.time() >= deadline:
            return
        try:
            proto = await _connect(host, port, lambda: _CountStream(tally, wire))
        except (OSError, TimeoutError) as exc:
            tally.errors[f"connect: {type(exc).__name__}"] += 1
            await asyncio.sleep(0.01)
            continue
        if loop.time() < deadline:
            proto.send(build_request(host, port, i, wire))
            await asyncio.wait([proto.done], timeout=deadline - loop.time())
            _settle(proto, tally)
        proto.abort()  # a no-op for finished streams; cuts those the deadline caught


def _settle(proto: _CountStream, tally: _Tally) -> None:
    if proto.ok:
        tally.streams += 1
        tally.stream_events += proto.events
    elif proto.done.done():  # ended badly; streams merely cut by the deadline are no failure
        tally.errors[_failure(proto)] += 1


async def run_count(url: str, conns: int, seconds: float, wire: StreamProbe) -> dict[str, Any]:
    """Events received per second by ``conns`` connections over a fixed wall time."""
    host, port = split_url(url)
    loop = asyncio.get_running_loop()
    tally = _Tally()
    ids = itertools.count()  # shared, so every prompt in the run is unique
    deadline = loop.time() + seconds
    t0 = _now()
    work = functools.partial(_count_worker, (host, port), tally, ids, deadline, wire)
    workers = [asyncio.create_task(work()) for _ in range(conns)]
    await asyncio.sleep(seconds)
    events, elapsed_s = tally.events, (_now() - t0) / 1e9
    await asyncio.wait(workers, timeout=CONNECT_TIMEOUT_S + 1)
    return {
        "conns": conns,
        "seconds": elapsed_s,
        "events": events,
        "events_per_s": events / elapsed_s,
        "streams": tally.streams,
        "stream_events": tally.stream_events,
        "failures": sum(tally.errors.values()),
        "errors": dict(tally.errors),
    }


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench._stream_client", description=__doc__)
    sub = parser.add_subparsers(dest="mode", required=True)
    count = sub.add_parser("count", help="events/s over a fixed wall time")
    count.add_argument("--url", required=True)
    count.add_argument("--conns", type=int, default=50)
    count.add_argument("--seconds", type=float, default=5.0)
    latency = sub.add_parser("latency", help="TTFT and ITL samples of concurrent streams")
    latency.add_argument("--url", required=True)
    latency.add_argument("--streams", type=int, default=100)
    latency.add_argument("--timeout", type=float, default=60.0)
    hold = sub.add_parser("hold", help="hold streams open until a line arrives on stdin")
    hold.add_argument("--url", required=True)
    hold.add_argument("--streams", type=int, default=1000)
    hold.add_argument("--timeout", type=float, default=60.0, help="for every response head to arrive")
    users = sub.add_parser("users", help="TTFT and ITL samples of closed-loop users (a steady load)")
    users.add_argument("--url", required=True)
    users.add_argument("--users", type=int, default=200)
    users.add_argument("--rounds", type=int, default=3)
    users.add_argument("--ramp-s", type=float, default=5.0, help="first requests spread over this long")
    users.add_argument("--timeout", type=float, default=60.0, help="per stream")
    names = sorted(wires())
    for mode in (count, latency, users, hold):
        mode.add_argument("--dialect", choices=names, default="openai-chat")
        mode.add_argument("--header", action="append", default=[], help="an extra request header line")
    args = parser.parse_args(argv)
    if args.mode == "count" and not 0 < args.seconds <= 600:
        parser.error("--seconds must be in (0, 600]")
    if args.mode in ("latency", "users", "hold") and not 0 < args.timeout <= 600:
        parser.error("--timeout must be in (0, 600]")
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    wire = wires()[args.dialect]
    # The modules imported for the wires live as long as the process: out of the collector's view,
    # so no collection during the run scans them.
    gc.freeze()
    raise_nofile_limit()
    if args.mode == "count":
        result = run(run_count(args.url, args.conns, args.seconds, wire))
    elif args.mode == "hold":
        result = run(run_hold(args.url, args.streams, args.timeout, wire))
    elif args.mode == "users":
        result = run(run_users(args.url, args.users, args.rounds, args.ramp_s, args.timeout, wire, args.header))
    else:
        result = run(run_latency(args.url, args.streams, args.timeout, wire, args.header))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
