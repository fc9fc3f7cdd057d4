"""Two minimal raw-asyncio SSE servers that bound what a Python mock server can do.

``zero-delay`` writes a whole chat.completion.chunk stream as fast as the loop allows: the
ceiling for events/s of one Python process.  ``deadline`` writes frame i at the absolute time
start + ttft + i * itl, so its timing error is the loop's own and never accumulates: the
reference for TTFT and ITL percentiles under load.  Both serialise each frame with json (as a
real server must) and write it with its own transport.write, in HTTP/1.1 chunked encoding, and
close the connection after the last chunk (no keep-alive).

    python -m bench._baselines --kind deadline --port 0 --tokens 100 --ttft-ms 200 --itl-ms 50

Each exits by itself after --lifetime-s (default an hour) if nobody stops it first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import socket
import time
from dataclasses import dataclass
from typing import cast

from bench._runtime import raise_nofile_limit, run

BACKLOG = 2048
_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
)
_NOT_ALLOWED = b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_LAST_CHUNK = b"0\r\n\r\n"


@dataclass(frozen=True, slots=True)
class StreamConfig:
    kind: str
    tokens: int
    ttft_s: float
    itl_s: float


def _chunk(event: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(event), event)


def _frame(stream_id: str, created: int, i: int) -> bytes:
    """One content delta as a chunked SSE event, shaped like OpenAI's stream."""
    payload = {
        "id": stream_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": "bench",
        "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}],
    }
    return _chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")


_DONE = _chunk(b"data: [DONE]\n\n")


class _SSEProtocol(asyncio.Protocol):
    """Reads one request (head and body, so closing never resets), then streams the answer."""

    _ids = 0

    def __init__(self, config: StreamConfig) -> None:
        self._config = config
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._started = False
        self._timer: asyncio.TimerHandle | None = None
        self._next = 0
        self._t0 = 0.0
        self._stream_id = ""
        self._created = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._transport = None

    def data_received(self, data: bytes) -> None:
        if self._started:
            return
        self._buf += data
        end = self._buf.find(b"\r\n\r\n")
        if end < 0 or len(self._buf) - end - 4 < _content_length(bytes(self._buf[:end])):
            return
        self._started = True
        self._respond(self._buf.startswith(b"POST "))

    def _respond(self, is_post: bool) -> None:
        assert self._transport is not None
        if not is_post:
            self._transport.write(_NOT_ALLOWED)
            self._transport.close()
            return
        _SSEProtocol._ids += 1
        self._stream_id = f"chatcmpl-bench-{_SSEProtocol._ids}"
        self._created = int(time.time())
        self._transport.write(_HEAD)
        if self._config.kind == "zero-delay":
            self._stream_all()
        else:
            self._t0 = asyncio.get_running_loop().time()
            self._schedule()

    def _stream_all(self) -> None:
        assert self._transport is not None
        for i in range(self._config.tokens):
            self._transport.write(_frame(self._stream_id, self._created, i))
        self._end()

    def _schedule(self) -> None:
        """Aim at the absolute deadline of the next frame, so lateness never accumulates."""
        if self._next >= self._config.tokens:
            self._end()
            return
        cfg = self._config
        when = self._t0 + cfg.ttft_s + self._next * cfg.itl_s
        self._timer = asyncio.get_running_loop().call_at(when, self._tick)

    def _tick(self) -> None:
        if self._transport is None:
            return
        self._transport.write(_frame(self._stream_id, self._created, self._next))
        self._next += 1
        self._schedule()

    def _end(self) -> None:
        assert self._transport is not None
        self._transport.write(_DONE)
        self._transport.write(_LAST_CHUNK)
        self._transport.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


async def serve(config: StreamConfig, port: int, lifetime_s: float) -> None:
    """Serve on loopback until killed or ``lifetime_s`` is over, so a forgotten one goes away."""
    loop = asyncio.get_running_loop()
    factory = functools.partial(_SSEProtocol, config)
    server = await loop.create_server(factory, "127.0.0.1", port, backlog=BACKLOG)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{bound}", flush=True)
    async with server:
        await asyncio.sleep(lifetime_s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._baselines", description=__doc__)
    parser.add_argument("--kind", choices=("zero-delay", "deadline"), required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--itl-ms", type=float, default=0.0)
    parser.add_argument("--lifetime-s", type=float, default=3600.0, help="exit after this long")
    args = parser.parse_args(argv)
    config = StreamConfig(args.kind, args.tokens, args.ttft_ms / 1000, args.itl_ms / 1000)
    raise_nofile_limit()
    with contextlib.suppress(KeyboardInterrupt):
        run(serve(config, args.port, args.lifetime_s))


if __name__ == "__main__":
    main()
