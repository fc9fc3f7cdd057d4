"""`mockllm record`: a pass-through proxy in front of a real (or OpenAI-compatible) provider that
writes every chat answer as a recording (`_recording`), one file per request. The I/O edge of it.

Every request is forwarded to the upstream as it came (method, path, query, body, headers but the
hop-by-hop ones; `host` is the upstream's, and `accept-encoding: identity` is asked so the recorded
bytes are the bytes a client reads), and the answer is streamed on to the client read by read, as
it arrives: a client sees its first token as soon as the upstream sends it. A request to a chat
endpoint of a registered dialect is also recorded: its head, and each read cut into SSE events with
its arrival time (ms since the request was forwarded). The file is written when the response ends
(a temporary file, then `os.replace`), named by the request's key, so recording the same request
again replaces it; an answer that ended early (the upstream reset or closed mid-body, or the client
left) is written too, with `"complete": false`. Other paths (model lists, token counts) are only
forwarded.

Why aiohttp and not the mock's `_http.HttpServer`: that server plays prepared schedules on their
deadlines, while a proxy writes what it just read, with backpressure from a slow client;
aiohttp's `StreamResponse.write` (which waits for the transport to drain) is that, and its client is
already the reference server's upstream client. A slow client delays the next read's timestamp, so
record with a client that reads as it goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from time import perf_counter
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from ._recording import HOP_BY_HOP, Capture, Recording, chat_route, save_recording

log = logging.getLogger("mockllm.record")
MAX_BODY_BYTES = 64 * 1024 * 1024
READ_TIMEOUT_S = 600.0  # an upstream silent this long mid-answer is taken as gone


class RecorderError(ValueError):
    """The recorder cannot start as asked (a bad upstream URL, an output directory it cannot write)."""


def upstream_base(url: str) -> str:
    """The upstream as `scheme://host[:port][/prefix]`, or a `RecorderError` saying what is wrong."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises on a port that is not a number
    except ValueError as err:
        raise RecorderError(f"--upstream {url!r} is not a URL: {err}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RecorderError(f"--upstream {url!r}: expected http://HOST[:PORT] or https://HOST[:PORT][/PREFIX]")
    if parts.query or parts.fragment:
        raise RecorderError(f"--upstream {url!r}: a base URL has no query or fragment")
    return url.rstrip("/")


def writable_dir(out: str | Path) -> Path:
    """`out`, made if need be and tried with a file: a recorder that could not save would be useless."""
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".mockllm-record-", suffix=".tmp")
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise RecorderError(f"cannot write recordings to {str(out)!r}: {err.strerror or err}") from None
    return folder


class Recorder:
    """The proxy: `await start(host, port)` (port 0: any free one) returns the bound port;
    `recorded` lists the files written so far, and `on_recorded` is told of each."""

    def __init__(
        self,
        upstream: str,
        out: str | Path,
        *,
        on_recorded: Callable[[Path], None] | None = None,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        self.upstream = upstream_base(upstream)
        self.out = writable_dir(out)
        self.recorded: list[Path] = []
        self._on_recorded = on_recorded
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=30.0, sock_read=read_timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        parts = urlsplit(self.upstream)  # shown and noted without any user:password it may carry
        self.shown = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"
        self._note = f"recorded by mockllm record from {self.shown}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._session = aiohttp.ClientSession(
            timeout=self._timeout,
            auto_decompress=False,  # forwarded and recorded as they came
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60.0),
        )
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        return int(self._runner.addresses[0][1])  # the bound port (with port 0, the kernel's pick)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        """Forward one request; record it when it is a chat request."""
        assert self._session is not None
        body = await request.read()
        path, _, query = request.raw_path.partition("?")  # as sent: no re-quoting either way
        target = URL(self.upstream + path + (f"?{query}" if query else ""), encoded=True)
        headers = [(name, value) for name, value in request.headers.items() if name.lower() not in HOP_BY_HOP]
        forwarded = CIMultiDict(headers)
        forwarded["accept-encoding"] = "identity"
        route = chat_route(request.method, path)
        capture = None
        if route is not None:
            capture = Capture(
                route[0], request.method, path, dict(parse_qsl(query)), body, forwarded.items(), self._note
            )
        started = perf_counter()
        try:
            upstream = await self._session.request(
                request.method,
                target,
                headers=forwarded,
                data=body or None,
                allow_redirects=False,
                skip_auto_headers=("User-Agent", "Content-Type"),
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            log.warning("mockllm record: %s %s: upstream failed: %s: %s", request.method, path, type(err).__name__, err)
            message = f"mockllm record: the upstream did not answer ({type(err).__name__})"
            return web.json_response({"error": {"message": message, "type": "upstream_error"}}, status=502)
        async with upstream:
            return await self._relay(request, upstream, capture, started)

    async def _relay(
        self, request: web.Request, upstream: aiohttp.ClientResponse, capture: Capture | None, started: float
    ) -> web.StreamResponse:
        """Stream the upstream's answer to the client read by read, recording it as it goes."""
        raw_headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in upstream.raw_headers]
        if capture is not None:
            capture.head(upstream.status, raw_headers, _ms(started))
        response = web.StreamResponse(
            status=upstream.status,
            reason=upstream.reason,
            headers=CIMultiDict([(n, v) for n, v in raw_headers if n.lower() not in HOP_BY_HOP]),
        )
        names = {name.lower() for name, _ in raw_headers}
        if "content-length" in names and "transfer-encoding" not in names and upstream.content_length is not None:
            response.content_length = upstream.content_length
        complete = False
        saved = False
        length = response.content_length  # a whole body: its client is done at its last byte
        received = 0
        try:
            await response.prepare(request)
            while True:
                try:
                    data = await upstream.content.readany()
                except (aiohttp.ClientError, OSError, TimeoutError):
                    # Bytes read before the cut are still buffered: the client and the file get them.
                    salvage = getattr(upstream.content, "_read_nowait", None)  # aiohttp 3.x internal
                    data = b""
                    with contextlib.suppress(Exception):
                        data = salvage(-1) if salvage else b""
                    if data:
                        await self._pass(response, capture, data, started)
                    break
                if not data:
                    complete = True
                    break
                received += len(data)
                if capture is not None and length is not None and received >= length:
                    # The file is written before the body's last byte goes on: a client that has
                    # its whole answer finds its recording there.
                    capture.feed(data, _ms(started))
                    self._save(capture.finish(True))
                    saved = True
                    await response.write(data)
                    continue
                await self._pass(response, capture, data, started)
        except ConnectionError:  # the client left: what it was sent is recorded as incomplete
            complete = False
        finally:
            if capture is not None and not saved:
                self._save(capture.finish(complete))
        if not complete and request.transport is not None:
            request.transport.close()  # the body ends before its end, as the upstream's did
        return response

    async def _pass(self, response: web.StreamResponse, capture: Capture | None, data: bytes, started: float) -> None:
        if capture is not None:
            capture.feed(data, _ms(started))
        await response.write(data)

    def _save(self, recording: Recording) -> None:
        try:
            path = save_recording(self.out, recording)
        except OSError as err:
            log.error("mockllm record: cannot write %s: %s", self.out / recording.name, err)
            return
        self.recorded.append(path)
        if self._on_recorded is not None:
            self._on_recorded(path)


def _ms(started: float) -> float:
    return (perf_counter() - started) * 1000.0


async def serve(recorder: Recorder, host: str, port: int, ready: Callable[[int], None], stop: asyncio.Event) -> None:
    """Run `recorder` on host:port until `stop` is set; `ready(port)` once it listens."""
    bound = await recorder.start(host, port)
    ready(bound)
    try:
        await stop.wait()
    finally:
        await recorder.close()
