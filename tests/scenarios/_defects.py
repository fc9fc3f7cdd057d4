"""Deliberate defects, and unusual but valid framings, laid over the reference server: one per fixture.

Three ways in, the least invasive that is faithful for each defect:
- ASGI middleware around the app: `StreamRewrite` re-emits the app's event stream block by block through
  a `StreamEdit`, `ResponseRewrite` rewrites a whole (non-stream) answer, `RequestRewrite` the request;
  two small gates do work around the app (a refused request served anyway, 500s after an abort).
- One component of the app's `ChatCore` replaced once the app is built (what the LLM is sent, the
  cache, one store or auth method). Each replacement here is a deliberately broken variant for the
  negative fixtures; `reference_server` itself is never changed.
- Settings that differ from what the run is told (in implementations.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import itertools
import json
import random
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jwt
import msgspec
from litestar import Litestar
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from reference_server._cache import ResponseCache, cache_key
from reference_server._chat import ChatCore
from reference_server._llm import ChatMessages, LlmError
from reference_server._store import iso, utc_now

from ._reframe import Block, BlockParser, Shape, StreamFacts, data_block, encode, pieces, shape_of

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
Build = Callable[[Litestar], ASGIApp]  # lays a fixture over a freshly built reference app

MESSAGE_MAX_CHARS = 2000  # the reference server's message limit (its settings' default)
HISTORY_WINDOW = 10  # query-stream: the stored messages that go to the LLM
_SESSION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def plain(app: Litestar) -> ASGIApp:
    """The reference server as it is."""
    return app


def core_of(app: Litestar) -> ChatCore:
    return app.state["core"]


# -- ASGI helpers --------------------------------------------------------------------------------------


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    return next((value for key, value in headers if key.lower() == name), None)


def without(headers: Iterable[tuple[bytes, bytes]], *names: bytes) -> Headers:
    return [(key, value) for key, value in headers if key.lower() not in names]


def is_event_stream(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    return (header(headers, b"content-type") or b"").startswith(b"text/event-stream")


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives `body` first, then whatever `receive` gives (a disconnect, in the end)."""
    given = False

    async def again() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


async def gone() -> Message:
    return {"type": "http.disconnect"}


async def send_json(send: Send, status: int, payload: Any) -> None:
    await send_whole(send, Whole(status, [(b"content-type", b"application/json")], msgspec.json.encode(payload)))


@dataclasses.dataclass(slots=True)
class Whole:
    """A whole answer: status, headers and body."""

    status: int
    headers: Headers
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def with_json(self, payload: Any) -> Whole:
        headers = [*without(self.headers, b"content-type"), (b"content-type", b"application/json")]
        return Whole(self.status, headers, msgspec.json.encode(payload))


async def send_whole(send: Send, whole: Whole) -> None:
    headers = without(whole.headers, b"content-length", b"transfer-encoding")
    body = whole.body
    if whole.status in (204, 304):
        headers, body = without(headers, b"content-type"), b""
    else:
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": whole.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def route(scope: Scope, method: str, pattern: str) -> bool:
    return scope["method"] == method and re.fullmatch(pattern, scope["path"]) is not None


# -- streams -------------------------------------------------------------------------------------------


class Out:
    """The response body as a fixture writes it: one write at a time (a fixture may also write from a
    timer or pinger task), and those tasks cancelled when the response is over."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def write(self, data: bytes, *, unless: Callable[[], bool] | None = None) -> None:
        """Write `data` (now, or after the write in progress), unless `unless()` is true by then."""
        async with self._lock:
            if data and not (unless is not None and unless()):
                await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self) -> None:
        async with self._lock:
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    def spawn(self, coroutine: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()


class StreamEdit:
    """One stream's edit: `block` for each block the app writes, `end` when the app ends the stream.

    Both run inside the app's own `send`: awaiting in them holds the app back as a slow socket would
    (it reads its LLM stream no further meanwhile); `Queued` edits write from a task of their own
    instead. `facts` describe the blocks before the one at hand."""

    def __init__(self, shape: Shape, out: Out) -> None:
        self.shape = shape
        self.out = out
        self.facts = StreamFacts()

    def headers(self, headers: Headers) -> Headers:
        return headers

    async def block(self, block: Block, kind: str) -> None:
        await self.out.write(encode(block))

    async def end(self) -> None:
        pass


EditFactory = Callable[[Shape, Out], StreamEdit]


class StreamRewrite:
    """ASGI middleware: every event stream of the app (a 200 `text/event-stream` on a profile's stream
    route) goes out through a fresh `edit(shape, out)`; everything else passes as it is."""

    def __init__(self, app: ASGIApp, edit: EditFactory) -> None:
        self.app = app
        self.edit = edit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        shape = shape_of(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if shape is None:
            await self.app(scope, receive, send)
            return
        out = Out(send)
        parser = BlockParser()
        edit: StreamEdit | None = None

        async def edited(message: Message) -> None:
            nonlocal edit
            if message["type"] == "http.response.start":
                if message["status"] == 200 and is_event_stream(message.get("headers", ())):
                    edit = self.edit(shape, out)
                    message = {**message, "headers": edit.headers(list(message.get("headers", ())))}
                await send(message)
                return
            if edit is None:
                await send(message)
                return
            for block in parser.feed(message.get("body", b"")):
                kind = shape.kinds(block)
                await edit.block(block, kind)
                edit.facts.note(shape, block, kind)
            if not message.get("more_body", False):
                await edit.end()
                await out.end()

        try:
            await self.app(scope, receive, edited)
        finally:
            out.cancel()


def streams(edit: EditFactory, **options: Any) -> Build:
    """A build that re-emits every stream through `edit(shape, out, **options)`."""
    return lambda app: StreamRewrite(app, lambda shape, out: edit(shape, out, **options))


def first_stream_per_user(build: Build) -> Build:
    """Only each user's first stream goes through `build`'s fixture (a per-user cold start); later
    streams, and requests without a bearer token, get the app as it is."""

    def wrap(app: Litestar) -> ASGIApp:
        edited = build(app)
        seen: set[str] = set()

        async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
            user = _bearer_subject(scope) if scope["type"] == "http" else None
            if user is None or user in seen or shape_of(scope["method"], scope["path"]) is None:
                await app(scope, receive, send)
                return
            seen.add(user)
            await edited(scope, receive, send)

        return asgi

    return wrap


def bearer_token(scope: Scope) -> str | None:
    scheme, _, token = (header(scope["headers"], b"authorization") or b"").decode("latin-1").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _bearer_subject(scope: Scope) -> str | None:
    """The token's `sub`, unverified: a fixture only tells users apart."""
    token = bearer_token(scope)
    if token is None:
        return None
    try:
        return str(jwt.decode(token, options={"verify_signature": False})["sub"])
    except (jwt.InvalidTokenError, KeyError):
        return None


# Defective edits.


class DropKind(StreamEdit):
    """The blocks of one kind never go out (no-terminal: `done`; silent-close-on-error: `error`), or,
    with `after_tokens`, only once a token has gone out (an empty stream would also fail first-event)."""

    def __init__(self, shape: Shape, out: Out, *, kind: str, after_tokens: bool = False) -> None:
        super().__init__(shape, out)
        self.kind = kind
        self.after_tokens = after_tokens

    async def block(self, block: Block, kind: str) -> None:
        if kind != self.kind or (self.after_tokens and not self.facts.tokens):
            await super().block(block, kind)


class TokenAfterTerminal(StreamEdit):
    """One more token event (with empty text, so the joined text is unchanged) after the terminal one."""

    async def end(self) -> None:
        await self.out.write(encode(self.shape.token("", self.facts)))


class UnknownBeforeTerminal(StreamEdit):
    """An event outside the profile's grammar just before the terminal one."""

    async def block(self, block: Block, kind: str) -> None:
        if kind in ("done", "error"):
            await self.out.write(encode(self.shape.unknown))
        await super().block(block, kind)


class LoseCharacter(StreamEdit):
    """The first token of 3 or more characters from the `after`-th token on loses its middle character;
    a whole-text event (conversation-events' `llm_complete`) loses the same one, so that only the text
    is wrong. (The first tokens stay whole: a client that stops after 2 has seen, and the server stored,
    the same text.)"""

    def __init__(self, shape: Shape, out: Out, *, after: int = 3) -> None:
        super().__init__(shape, out)
        self.after = after
        self.cut_at: int | None = None  # in the text joined so far

    async def block(self, block: Block, kind: str) -> None:
        key = self.shape.text_key
        payload = block.payload()
        text = payload.get(key) if isinstance(payload, dict) else None
        if not isinstance(text, str):
            pass
        elif kind == "token" and self.cut_at is None and self.facts.tokens >= self.after and len(text) >= 3:
            middle = len(text) // 2
            payload[key] = text[:middle] + text[middle + 1 :]
            self.cut_at = len(self.facts.text) + middle
            block = data_block(payload)
        elif kind == "done" and self.cut_at is not None and len(text) > self.cut_at:
            payload[key] = text[: self.cut_at] + text[self.cut_at + 1 :]
            block = data_block(payload)
        await super().block(block, kind)


class ErrorAsDone(StreamEdit):
    """An upstream failure ends the stream with the success terminal instead of the error event."""

    async def block(self, block: Block, kind: str) -> None:
        await super().block(self.shape.done(self.facts) if kind == "error" else block, kind)


class HangOnError(StreamEdit):
    """On an upstream failure the error event never comes and the stream never ends: only heartbeats
    go on (every `every_s`), until the client gives up."""

    def __init__(self, shape: Shape, out: Out, *, every_s: float) -> None:
        super().__init__(shape, out)
        self.every_s = every_s
        self.failed = False

    async def block(self, block: Block, kind: str) -> None:
        if kind == "error":
            self.failed = True
            return
        await super().block(block, kind)

    async def end(self) -> None:
        while self.failed:  # ends when the client leaves: the app's send (this call) is then cancelled
            await asyncio.sleep(self.every_s)
            await self.out.write(encode(self.shape.heartbeat()))


class Buffered(StreamEdit):
    """Events are held and written in one piece when the stream ends, or once none has come for
    `idle_s` (a buffer flushed on idle; None: never, the whole answer collected, then sent). Comments
    pass at once (a heartbeat writer of its own), so heartbeats still come; with `idle_s`, a stalled
    LLM still lets a client see, and stop, what came before."""

    def __init__(self, shape: Shape, out: Out, *, idle_s: float | None) -> None:
        super().__init__(shape, out)
        self.idle_s = idle_s
        self.held: list[bytes] = []
        self.timer: asyncio.Task[None] | None = None

    async def block(self, block: Block, kind: str) -> None:
        if kind == "comment":
            await super().block(block, kind)
            return
        self.held.append(encode(block))
        if self.idle_s is None:
            return
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.out.spawn(self.flush_when_idle(self.idle_s))

    async def flush_when_idle(self, idle_s: float) -> None:
        await asyncio.sleep(idle_s)
        self.timer = None
        await self.flush()

    async def flush(self) -> None:
        data, self.held = b"".join(self.held), []
        await self.out.write(data)

    async def end(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        await self.flush()


class Queued(StreamEdit):
    """The blocks are written, in order, by a writer task of its own, so the app is never held back by
    the writing: held in its `send`, a stream the client stopped would close its generator, and the
    LLM call in it, only when the garbage collector gets to it."""

    def __init__(self, shape: Shape, out: Out) -> None:
        super().__init__(shape, out)
        self._queue: asyncio.Queue[tuple[Block, str, float] | None] = asyncio.Queue()
        self._writer = out.spawn(self._write_all())

    async def block(self, block: Block, kind: str) -> None:
        self._queue.put_nowait((block, kind, time.monotonic()))

    async def _write_all(self) -> None:
        while (item := await self._queue.get()) is not None:
            await self.emit(*item)

    async def emit(self, block: Block, kind: str, at: float) -> None:
        """Write one block that the app wrote at `at` (monotonic seconds)."""
        await self.out.write(encode(block))

    async def end(self) -> None:
        self._queue.put_nowait(None)
        await self._writer


class Delayed(Queued):
    """Every block goes out `seconds` after the app wrote it, its pacing kept: the first event comes
    late. An upstream failure releases everything at once (so a failing stream still ends within its
    deadline, and only the first event's delay is wrong)."""

    def __init__(self, shape: Shape, out: Out, *, seconds: float) -> None:
        super().__init__(shape, out)
        self.seconds = seconds
        self.released = asyncio.Event()

    async def block(self, block: Block, kind: str) -> None:
        if kind == "error":
            self.released.set()
        await super().block(block, kind)

    async def emit(self, block: Block, kind: str, at: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.released.wait(), max(0.0, at + self.seconds - time.monotonic()))
        await self.out.write(encode(block))


class Pause(Queued):
    """`seconds` of silence on the wire before the `before`-th event (comments not counted); what the
    app writes meanwhile waits, then follows at once. A stream that has already carried a heartbeat
    comment (its LLM stalled) is spared: a heartbeat check measures the same silence, and only the gap
    check should fail."""

    def __init__(self, shape: Shape, out: Out, *, before: int, seconds: float) -> None:
        super().__init__(shape, out)
        self.before = before
        self.seconds = seconds
        self.events = 0
        self.heartbeats = 0

    async def emit(self, block: Block, kind: str, at: float) -> None:
        if kind == "comment":
            self.heartbeats += 1
        else:
            self.events += 1
            if self.events == self.before and not self.heartbeats:
                await asyncio.sleep(self.seconds)
        await self.out.write(encode(block))


class NonJsonEvent(StreamEdit):
    """A `data: keep-alive` event (not JSON) after the first token event."""

    sent = False

    async def block(self, block: Block, kind: str) -> None:
        await super().block(block, kind)
        if kind == "token" and not self.sent:
            self.sent = True
            await self.out.write(b"data: keep-alive\n\n")


class UnterminatedTail(StreamEdit):
    """After the real end, a block with no blank line after it: data a client must discard."""

    async def end(self) -> None:
        await self.out.write(b"data: {}\n")


class DropField(StreamEdit):
    """Token events lose one field: `fields` names it per profile."""

    def __init__(self, shape: Shape, out: Out, *, fields: dict[str, str]) -> None:
        super().__init__(shape, out)
        self.field = fields.get(shape.name)

    async def block(self, block: Block, kind: str) -> None:
        payload = block.payload()
        if kind == "token" and isinstance(payload, dict) and self.field in payload:
            del payload[self.field]
            block = data_block(payload)
        await super().block(block, kind)


class CompleteMismatch(StreamEdit):
    """The whole-text terminal event (`llm_complete`) loses its last character: it no longer equals
    the chunks joined, which stay right."""

    async def block(self, block: Block, kind: str) -> None:
        payload = block.payload()
        key = self.shape.text_key
        if kind == "done" and isinstance(payload, dict) and isinstance(payload.get(key), str) and payload[key]:
            payload[key] = payload[key][:-1]
            block = data_block(payload)
        await super().block(block, kind)


class HeaderEdit(StreamEdit):
    """The stream's response headers changed: some removed, some replaced."""

    def __init__(
        self, shape: Shape, out: Out, *, drop: tuple[bytes, ...] = (), replace: tuple[tuple[bytes, bytes], ...] = ()
    ) -> None:
        super().__init__(shape, out)
        self.drop = drop
        self.replace = replace

    def headers(self, headers: Headers) -> Headers:
        names = self.drop + tuple(name for name, _ in self.replace)
        return [*without(headers, *names), *self.replace]


# Valid but unusual framings: a conforming client must read them as it reads the reference server.


class LineEnds(StreamEdit):
    """Every line ended by `eol` (CRLF, or a lone CR) instead of LF."""

    def __init__(self, shape: Shape, out: Out, *, eol: str) -> None:
        super().__init__(shape, out)
        self.eol = eol

    async def block(self, block: Block, kind: str) -> None:
        await self.out.write(encode(block, self.eol))


class Comments(StreamEdit):
    """A comment block before every block, and comment lines inside it, before and after its fields."""

    async def block(self, block: Block, kind: str) -> None:
        await self.out.write(b": note\n\n" + encode(Block([": note", *block.lines, ": note, inside the block"])))


class SplitWrites(Queued):
    """Each block written in pieces of 1 to 7 bytes (cut inside every multi-byte character too), ~1 ms apart."""

    _streams = itertools.count()

    def __init__(self, shape: Shape, out: Out) -> None:
        super().__init__(shape, out)
        self.rng = random.Random(next(self._streams))

    async def emit(self, block: Block, kind: str, at: float) -> None:
        for piece in pieces(encode(block), lambda: self.rng.randint(1, 7)):
            await self.out.write(piece)
            await asyncio.sleep(0.001)


class Coalesced(StreamEdit):
    """Two or three blocks per write; a block is never held more than `hold_s` for company."""

    _streams = itertools.count()

    def __init__(self, shape: Shape, out: Out, *, hold_s: float = 0.02) -> None:
        super().__init__(shape, out)
        self.rng = random.Random(next(self._streams))
        self.hold_s = hold_s
        self.held: list[bytes] = []
        self.group = self.rng.choice((2, 3))
        self.timer: asyncio.Task[None] | None = None

    async def block(self, block: Block, kind: str) -> None:
        self.held.append(encode(block))
        if len(self.held) >= self.group:
            await self.flush()
        elif len(self.held) == 1:
            self.timer = self.out.spawn(self.flush_later())

    async def flush_later(self) -> None:
        await asyncio.sleep(self.hold_s)
        self.timer = None  # from here on the held blocks are this task's to write
        await self.flush()

    async def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        data, self.held = b"".join(self.held), []
        self.group = self.rng.choice((2, 3))
        await self.out.write(data)  # taken and queued for the lock in one step: writes keep their order

    async def end(self) -> None:
        await self.flush()


class EventFields(StreamEdit):
    """`event: <type>` and `id: <n>` on every event, and `retry: 3000` at the start of the first."""

    def __init__(self, shape: Shape, out: Out) -> None:
        super().__init__(shape, out)
        self.ids = itertools.count(1)

    async def block(self, block: Block, kind: str) -> None:
        if kind != "comment":
            payload = block.payload()
            kind_name = payload.get("type") if isinstance(payload, dict) else None
            number = next(self.ids)
            fields = [*(["retry: 3000"] if number == 1 else []), f"event: {kind_name or 'message'}", f"id: {number}"]
            block = Block([*fields, *block.lines])
        await super().block(block, kind)


class Bom(StreamEdit):
    """A byte order mark before the first byte of the stream."""

    first = True

    async def block(self, block: Block, kind: str) -> None:
        data = encode(block)
        if self.first:
            self.first, data = False, b"\xef\xbb\xbf" + data
        await self.out.write(data)


class DoneSentinel(StreamEdit):
    """`data: [DONE]` after the terminal event."""

    async def end(self) -> None:
        await self.out.write(b"data: [DONE]\n\n")


class ExtraFields(StreamEdit):
    """Fields no profile names, added to every JSON event."""

    async def block(self, block: Block, kind: str) -> None:
        payload = block.payload()
        if isinstance(payload, dict):
            block = data_block({**payload, "fixtureNote": "unknown field", "fixtureSeq": self.facts.tokens})
        await super().block(block, kind)


class MultilineJson(StreamEdit):
    """Each JSON event pretty-printed over several `data:` lines (a client joins them with LF)."""

    async def block(self, block: Block, kind: str) -> None:
        payload = block.payload()
        if payload is not None:
            text = json.dumps(payload, indent=2, ensure_ascii=False)
            block = Block([f"data: {line}" for line in text.split("\n")])
        await super().block(block, kind)


class EagerPings(StreamEdit):
    """A `: ping` comment every `every_s` from the first event until the terminal one."""

    def __init__(self, shape: Shape, out: Out, *, every_s: float = 0.1) -> None:
        super().__init__(shape, out)
        self.every_s = every_s
        self.over = False
        self.pinger: asyncio.Task[None] | None = None

    async def block(self, block: Block, kind: str) -> None:
        if self.pinger is None:
            self.pinger = self.out.spawn(self.ping())
        if kind in ("done", "error"):
            self.over = True
        await super().block(block, kind)

    async def ping(self) -> None:
        while not self.over:
            await asyncio.sleep(self.every_s)
            await self.out.write(b": ping\n\n", unless=lambda: self.over)

    async def end(self) -> None:
        self.over = True


class TwoWords(StreamEdit):
    """two-words (sessions): each two successive `content` events go out as one carrying both words,
    "a b" (index counted anew); a lone last one goes out with the terminal event. The joined text
    is the same."""

    def __init__(self, shape: Shape, out: Out) -> None:
        super().__init__(shape, out)
        self.held: str | None = None
        self.index = 0

    async def block(self, block: Block, kind: str) -> None:
        payload = block.payload()
        if kind == "token" and isinstance(payload, dict):
            if self.held is None:
                self.held = payload.get("content", "")
                return
            words, self.held = f"{self.held} {payload.get('content', '')}", None
            block = data_block({**payload, "content": words, "index": self.index})
            self.index += 1
        elif kind in ("done", "error") and self.held is not None:
            await self.out.write(encode(data_block({"type": "content", "content": self.held, "index": self.index})))
            self.held = None
        await super().block(block, kind)


class MergedTokens(StreamEdit):
    """merged-tokens (valid): two token events that come within `hold_s` of each other go out as one
    event carrying both texts; a token alone that long goes out by itself. Framing that batches what
    arrived together (contracts.md), for profiles whose texts are concatenated."""

    def __init__(self, shape: Shape, out: Out, *, hold_s: float = 0.02) -> None:
        super().__init__(shape, out)
        self.hold_s = hold_s
        self.held: Block | None = None
        self.timer: asyncio.Task[None] | None = None

    async def block(self, block: Block, kind: str) -> None:
        key = self.shape.text_key
        if kind == "token" and self.held is None:
            self.held = block
            self.timer = self.out.spawn(self.alone())
            return
        if kind == "token" and self.held is not None:
            first, second = self.held.payload(), block.payload()
            block = data_block({**first, key: first.get(key, "") + second.get(key, "")})
            self.drop_held()
        elif self.held is not None:
            await self.out.write(encode(self.held))
            self.drop_held()
        await super().block(block, kind)

    def drop_held(self) -> None:
        self.held = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    async def alone(self) -> None:
        await asyncio.sleep(self.hold_s)
        held, self.held, self.timer = self.held, None, None  # from here on the held block is this task's
        if held is not None:
            await self.out.write(encode(held))

    async def end(self) -> None:
        if self.held is not None:
            await self.out.write(encode(self.held))
            self.drop_held()


class SystemAlways(StreamEdit):
    """system-always (conversation-events): a `system` event after every `llm_complete`, whether or not
    the answer mentions a bet or odds (the app's own `system` event, after a bet, is left out)."""

    async def block(self, block: Block, kind: str) -> None:
        payload = block.payload()
        if isinstance(payload, dict) and payload.get("type") == "system":
            return
        await super().block(block, kind)
        if kind == "done":
            note = {"type": "system", "timestamp": iso(utc_now()), "message": "New bet recommendation available"}
            await self.out.write(encode(data_block(note)))


# -- whole answers -------------------------------------------------------------------------------------

Rewrite = Callable[[Scope, Whole], "Whole | None"]


class ResponseRewrite:
    """ASGI middleware: each whole (non-stream) answer of the app goes through `rewrite(scope, whole)`,
    which gives the answer to send instead, or None to send it as it is. Streams pass untouched."""

    def __init__(self, app: ASGIApp, rewrite: Rewrite) -> None:
        self.app = app
        self.rewrite = rewrite

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body: list[bytes] = []
        streaming = False

        async def held(message: Message) -> None:
            nonlocal start, streaming
            if message["type"] == "http.response.start":
                streaming = is_event_stream(message.get("headers", ()))
                if streaming:
                    await send(message)
                else:
                    start = message
                return
            if streaming or start is None:
                await send(message)
                return
            body.append(message.get("body", b""))
            if not message.get("more_body", False):
                whole = Whole(start["status"], list(start.get("headers", ())), b"".join(body))
                await send_whole(send, self.rewrite(scope, whole) or whole)

        await self.app(scope, receive, held)


def answers(rewrite: Rewrite) -> Build:
    return lambda app: ResponseRewrite(app, rewrite)


def word_dropped(scope: Scope, whole: Whole) -> Whole | None:
    """non-stream-wrong: the JSON chat calls' `response` loses its middle word."""
    if whole.status != 200 or not (route(scope, "POST", r"/api/chat/?") or route(scope, "POST", r"/api/v1/ai/chat/?")):
        return None
    payload = whole.json()
    if not isinstance(payload, dict) or not isinstance(payload.get("response"), str):
        return None
    words = payload["response"].split(" ")
    del words[len(words) // 2]
    return whole.with_json({**payload, "response": " ".join(words)})


def llm_failure_as_empty_answer(scope: Scope, whole: Whole) -> Whole | None:
    """llm-failure-as-200: when the LLM fails, POST /api/chat answers 200 with an empty `response` (every
    field of the contract present) instead of its 503."""
    if whole.status != 503 or not route(scope, "POST", r"/api/chat/?"):
        return None
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    payload = {"response": "", "session_id": f"s-{random.getrandbits(64):016x}", "tokens_used": 0, "timestamp": now}
    return dataclasses.replace(whole.with_json(payload), status=200)


def health_down(scope: Scope, whole: Whole) -> Whole | None:
    """health-down: GET /api/health answers 503 (its body unchanged, so only the status is wrong)."""
    return Whole(503, whole.headers, whole.body) if route(scope, "GET", r"/api/health/?") else None


def health_status_renamed(scope: Scope, whole: Whole) -> Whole | None:
    """health-status-renamed: GET /api/health answers 200 with `status` renamed `state` (its value and
    the other fields kept), so only the answer's fields are wrong."""
    if whole.status != 200 or not route(scope, "GET", r"/api/health/?"):
        return None
    payload = whole.json()
    if not isinstance(payload, dict) or "status" not in payload:
        return None
    return whole.with_json({("state" if key == "status" else key): value for key, value in payload.items()})


def history_timestamps_dropped(scope: Scope, whole: Whole) -> Whole | None:
    """history-timestamps-dropped: the sessions history lists each message without its `timestamp`
    (roles and contents kept, so the history itself stays right)."""
    if whole.status != 200 or not route(scope, "GET", r"/api/sessions/[^/]+/history/?"):
        return None
    payload = whole.json()
    if not isinstance(payload, dict) or not isinstance(payload.get("history"), list):
        return None
    history = [{k: v for k, v in m.items() if k != "timestamp"} for m in payload["history"] if isinstance(m, dict)]
    return whole.with_json({**payload, "history": history})


def conversation_dates_dropped(scope: Scope, whole: Whole) -> Whole | None:
    """conversation-dates-dropped: a created conversation answers 201 without `createdAt`/`updatedAt`."""
    if whole.status != 201 or not route(scope, "POST", r"/chat/conversation/?"):
        return None
    payload = whole.json()
    if not isinstance(payload, dict):
        return None
    return whole.with_json({k: v for k, v in payload.items() if k not in ("createdAt", "updatedAt")})


def chat_metadata_dropped(scope: Scope, whole: Whole) -> Whole | None:
    """chat-metadata-dropped: the query-stream JSON chat call answers without its `metadata` (the
    conversation id and the response kept, so continuity and the text stay right)."""
    if whole.status != 200 or not route(scope, "POST", r"/api/v1/ai/chat/?"):
        return None
    payload = whole.json()
    if not isinstance(payload, dict):
        return None
    return whole.with_json({k: v for k, v in payload.items() if k != "metadata"})


def _validation_problem(whole: Whole) -> str:
    """What a 4xx JSON body says, fields named, as one line."""
    payload = whole.json()
    if not isinstance(payload, dict):
        return whole.body.decode("utf-8", "replace")
    extra = payload.get("extra") if isinstance(payload.get("extra"), list) else []
    named = [f"{e.get('key')}: {e.get('message')}" for e in extra if isinstance(e, dict)]
    return "; ".join([str(payload.get("detail", "")), *named])


def plain_text_errors(scope: Scope, whole: Whole) -> Whole | None:
    """Validation errors (400/422) as text/plain; the text still names the field."""
    if whole.status not in (400, 422):
        return None
    headers = [*without(whole.headers, b"content-type"), (b"content-type", b"text/plain; charset=utf-8")]
    return Whole(whole.status, headers, f"bad request: {_validation_problem(whole)}".encode())


def vague_errors(scope: Scope, whole: Whole) -> Whole | None:
    """Validation errors (400/422) as a JSON object that names nothing."""
    return whole.with_json({"error": "bad request"}) if whole.status in (400, 422) else None


def validation_as_422(scope: Scope, whole: Whole) -> Whole | None:
    """unknown-field-422 (sessions): every validation error answers 422 (FastAPI's default), where
    contracts.md §1 names 400 for an unknown body field; the body is unchanged."""
    return Whole(422, whole.headers, whole.body) if whole.status == 400 else None


def no_retry_after(scope: Scope, whole: Whole) -> Whole | None:
    if whole.status != 429:
        return None
    return Whole(whole.status, without(whole.headers, b"retry-after"), whole.body)


_SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def unknown_session_streams(scope: Scope, whole: Whole) -> Whole | None:
    """unknown-session-ok: start-stream's 404 for an unknown session becomes an empty answer, streamed."""
    if whole.status != 404 or not route(scope, "GET", r"/chat/stream/?"):
        return None
    headers = [*without(whole.headers, b"content-type", b"cache-control", b"x-accel-buffering"), *_SSE_HEADERS]
    return Whole(200, headers, encode(data_block({"type": "done"})))


def refused_as_204(scope: Scope, whole: Whole) -> Whole | None:
    """gone-204 (valid): start-stream refuses a stream session with 204 instead of 404/410."""
    if whole.status not in (404, 410) or not route(scope, "GET", r"/chat/stream/?"):
        return None
    return Whole(204, whole.headers, b"")


_CE_BY_ID = re.compile(r"/api/v1/chat/conversations/(?P<id>[^/]+)/(messages|stream)/?")


def malformed_id_as_404(scope: Scope, whole: Whole) -> Whole | None:
    """malformed-id-404 (valid): conversation-events answers a malformed conversation id 404 (its JSON
    body kept) instead of 400: contracts.md §5 names no status, so any 4xx is right."""
    found = _CE_BY_ID.fullmatch(scope["path"])
    if whole.status != 400 or found is None or _UUID.fullmatch(found["id"]):
        return None
    return Whole(404, whole.headers, whole.body)


def posted_streams_answer(status: int) -> Build:
    """A POST that starts a stream answers `status`, not 200; GET streams stay 200. stream-201 (valid,
    with a SHOULD warning: contracts.md has 200 expected, 201 tolerated); stream-202 (a defect: the
    stream itself is whole and right, so only its status is wrong)."""

    def build(app: Litestar) -> ASGIApp:
        async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
            posted = scope["type"] == "http" and scope["method"] == "POST"
            posted = posted and shape_of("POST", scope["path"]) is not None

            async def restatused(message: Message) -> None:
                start = message["type"] == "http.response.start" and message["status"] == 200
                if posted and start and is_event_stream(message.get("headers", ())):
                    message = {**message, "status": status}
                await send(message)

            await app(scope, receive, restatused)

        return asgi

    return build


def route_moved(method: str, pattern: str) -> RequestEdit:
    """route-moved: every `method` request to a path matching `pattern` goes to a path the app does
    not serve (its stream route moved elsewhere), so the app itself answers 404, CORS headers and all."""

    def edit(scope: Scope, body: bytes) -> tuple[Scope, bytes]:
        if route(scope, method, pattern):
            moved = scope["path"].rstrip("/") + "-moved"
            scope = {**scope, "path": moved, "raw_path": moved.encode()}
        return scope, body

    return edit


def history_without_answers(app: Litestar) -> ASGIApp:
    """history-no-assistant: the history calls leave out every assistant answer that completed. (A
    stopped stream's partial answer still shows, so the fixture breaks history.content alone.) The
    core's `_finish` is wrapped to note which answers completed."""
    core = core_of(app)
    completed: set[str] = set()
    finish = core._finish

    async def noting(conversation_id: str, model: str, messages: ChatMessages, answer: Any, **kw: Any) -> None:
        await finish(conversation_id, model, messages, answer, **kw)
        if answer.outcome == "completed":
            completed.add(answer.text)

    core._finish = noting  # type: ignore[method-assign]

    def kept(messages: list[Any]) -> list[Any]:
        return [m for m in messages if not (m.get("role") == "assistant" and m.get("content") in completed)]

    def rewrite(scope: Scope, whole: Whole) -> Whole | None:
        payload = whole.json()
        if whole.status != 200:
            return None
        if route(scope, "GET", r"/api/sessions/[^/]+/history/?") and isinstance(payload, dict):
            return whole.with_json({**payload, "history": kept(payload.get("history", []))})
        if route(scope, "GET", r"/chat/history/?") and isinstance(payload, list):
            return whole.with_json(kept(payload))
        return None

    return ResponseRewrite(app, rewrite)


# -- requests ------------------------------------------------------------------------------------------

RequestEdit = Callable[[Scope, bytes], "tuple[Scope, bytes]"]


class RequestRewrite:
    """ASGI middleware: the request (scope and whole body) goes through `edit` before the app reads it."""

    def __init__(self, app: ASGIApp, edit: RequestEdit) -> None:
        self.app = app
        self.edit = edit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        edited, new_body = self.edit(dict(scope), body)
        if new_body != body:
            length = (b"content-length", str(len(new_body)).encode())
            edited["headers"] = [*without(edited["headers"], b"content-length"), length]
        await self.app(edited, replay(new_body, receive), send)


def requests(edit: RequestEdit) -> Build:
    return lambda app: RequestRewrite(app, edit)


def edit_query(scope: Scope, change: Callable[[list[tuple[str, str]]], list[tuple[str, str]]]) -> Scope:
    params = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    return {**scope, "query_string": urlencode(change(params)).encode("latin-1")}


def edit_json(body: bytes, change: Callable[[dict[str, Any]], dict[str, Any]]) -> bytes:
    try:
        payload = json.loads(body)
    except ValueError:
        return body
    return msgspec.json.encode(change(payload)) if isinstance(payload, dict) else body


_MESSAGE_BODIES = r"/api/chat(/stream)?/?|/chat/stream/?|/api/v1/ai/chat/?"
_QUERY_STREAM = r"/api/v1/ai/chat/stream/?"


def long_message_cut(scope: Scope, body: bytes) -> tuple[Scope, bytes]:
    """accepts-long-message: a `message` over the limit is cut to it (sessions, conversations, query-stream)."""

    def cut(value: Any) -> Any:
        return value[:MESSAGE_MAX_CHARS] if isinstance(value, str) else value

    if scope["method"] == "POST" and re.fullmatch(_MESSAGE_BODIES, scope["path"]):
        body = edit_json(body, lambda p: {**p, "message": cut(p["message"])} if "message" in p else p)
    if route(scope, "GET", _QUERY_STREAM):
        scope = edit_query(scope, lambda ps: [(k, cut(v) if k == "message" else v) for k, v in ps])
    return scope, body


def any_project(known: str) -> RequestEdit:
    """any-project: a well-formed but unknown `projectId` is taken to be the known project."""

    def swap(value: Any) -> Any:
        unknown = isinstance(value, str) and _UUID.fullmatch(value) and value.lower() != known.lower()
        return known if unknown else value

    def edit(scope: Scope, body: bytes) -> tuple[Scope, bytes]:
        if route(scope, "GET", _QUERY_STREAM):
            scope = edit_query(scope, lambda ps: [(k, swap(v) if k == "projectId" else v) for k, v in ps])
        if route(scope, "POST", r"/api/v1/ai/chat/?"):
            body = edit_json(body, lambda p: {**p, "projectId": swap(p["projectId"])} if "projectId" in p else p)
        return scope, body

    return edit


def given_session_ignored(scope: Scope, body: bytes) -> tuple[Scope, bytes]:
    """reopen-makes-new: POST /api/sessions never sees a given `session_id`, so it makes (and answers)
    a new session; the chat calls still honour theirs, so conversations go on."""
    if not route(scope, "POST", r"/api/sessions/?"):
        return scope, body
    return scope, edit_json(body, lambda payload: {k: v for k, v in payload.items() if k != "session_id"})


def query_token_ignored(scope: Scope, body: bytes) -> tuple[Scope, bytes]:
    """no-query-token: `?access_token=` never reaches the app, but on the stream GET (a browser's
    EventSource still works, so only the calls that rely on the query token elsewhere fail)."""
    if scope["method"] == "GET":
        return scope, body
    return edit_query(scope, lambda ps: [(k, v) for k, v in ps if k != "access_token"]), body


EMPTY_MESSAGE_STANDS_FOR = "(an empty message)"


def empty_message_served(scope: Scope, body: bytes) -> tuple[Scope, bytes]:
    """accepts-empty-message (valid, with a SHOULD warning): an empty `prompt` (start-stream), `message`
    (query-stream) or `content` (conversation-events) is served, the LLM asked about "(an empty message)":
    their contracts and seeds state no minimum length."""

    def fill(payload: dict[str, Any], name: str) -> dict[str, Any]:
        return {**payload, name: EMPTY_MESSAGE_STANDS_FOR} if payload.get(name) == "" else payload

    if route(scope, "POST", r"/chat/start/?"):
        body = edit_json(body, lambda p: fill(p, "prompt"))
    elif route(scope, "POST", r"/api/v1/ai/chat/?"):
        body = edit_json(body, lambda p: fill(p, "message"))
    elif route(scope, "POST", r"/api/v1/chat/conversations/[^/]+/messages/?"):
        body = edit_json(body, lambda p: fill(p, "content"))
    elif route(scope, "GET", _QUERY_STREAM):
        stands_for = EMPTY_MESSAGE_STANDS_FOR
        scope = edit_query(scope, lambda ps: [(k, (v or stands_for) if k == "message" else v) for k, v in ps])
    return scope, body


def empty_message_echoed(scope: Scope, whole: Whole) -> Whole | None:
    """accepts-empty-message: conversation-events answers the stored user message as it was sent, empty."""
    payload = whole.json()
    if not route(scope, "POST", r"/api/v1/chat/conversations/[^/]+/messages/?") or not isinstance(payload, dict):
        return None
    if payload.get("content") != EMPTY_MESSAGE_STANDS_FOR:
        return None
    return whole.with_json({**payload, "content": ""})


def empty_message_accepted(app: Litestar) -> ASGIApp:
    """accepts-empty-message: an empty message served (`empty_message_served`) and answered as sent."""
    return RequestRewrite(ResponseRewrite(app, empty_message_echoed), empty_message_served)


_ASGI_HTTP_KEYS = (
    "type",
    "asgi",
    "http_version",
    "method",
    "scheme",
    "path",
    "raw_path",
    "query_string",
    "root_path",
    "headers",
    "client",
    "server",
)


class ServerErrorOnBadBody:
    """bad-body-500 (sessions): a chat body that is not a JSON object (not JSON, or an array) gets a
    500 with a JSON body, as a handler that reads `body.message` before validating does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not route(scope, "POST", r"/api/chat(/stream)?/?"):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        try:
            ok = isinstance(json.loads(body), dict)
        except ValueError:
            ok = False
        if ok:
            await self.app(scope, replay(body, receive), send)
            return
        answer = b'{"error": "Internal Server Error"}'
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 500, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


def number_content_served(scope: Scope, body: bytes) -> tuple[Scope, bytes]:
    """number-content-served (conversation-events): a message `content` that is a number is stored and
    answered as its text (`String(content)`), where the contract asks for a string."""
    if route(scope, "POST", r"/api/v1/chat/conversations/[^/]+/messages/?"):
        body = edit_json(body, lambda p: {**p, "content": str(p["content"])} if _is_number(p.get("content")) else p)
    return scope, body


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class StoredWhenRefused:
    """stored-when-refused (start-stream): a `/chat/start` refused with 400/422 still stores its prompt in
    the chat it names (no LLM call), as a handler that saves the user turn before it validates the rest."""

    def __init__(self, app: Litestar) -> None:
        self.app = app
        self.store = core_of(app).store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not route(scope, "POST", r"/chat/start/?"):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        refused: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (400, 422):
                refused.append(message["status"])
            await send(message)

        await self.app(scope, replay(body, receive), watch)
        try:
            payload = json.loads(body)
        except ValueError:
            return
        if refused and isinstance(payload, dict) and isinstance(payload.get("chatId"), str):
            prompt = payload.get("prompt")
            if isinstance(prompt, str) and prompt:
                with contextlib.suppress(Exception):  # an unknown chat: nothing to store it in
                    await self.store.add_message(payload["chatId"], "user", prompt)


class RejectsAfterCalling:
    """rejects-after-calling (sessions): a chat call rejected with 400/422 still gets its 4xx, but a
    fixed-up copy of it (message cut or filled in, unknown fields dropped) was served first, as
    `POST /api/chat`: the LLM is called and the turn stored, as if validation ran after the work."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not route(scope, "POST", r"/api/chat(/stream)?/?"):
            await self.app(scope, receive, send)
            return
        pristine = {key: scope[key] for key in _ASGI_HTTP_KEYS if key in scope}  # the app adds its own keys
        body = await read_body(receive)
        held: list[Message] = []

        async def watch(message: Message) -> None:
            if held or (message["type"] == "http.response.start" and message["status"] in (400, 422)):
                held.append(message)
            else:
                await send(message)

        await self.app(scope, replay(body, receive), watch)
        if held:
            copy = msgspec.json.encode(self.fixed_up(body))
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(copy)).encode())]
            sub = {**pristine, "path": "/api/chat", "raw_path": b"/api/chat", "query_string": b"", "headers": headers}

            async def discard(message: Message) -> None:
                pass

            await self.app(sub, replay(copy, gone), discard)
            for message in held:
                await send(message)

    @staticmethod
    def fixed_up(body: bytes) -> dict[str, Any]:
        try:
            raw = json.loads(body)
        except ValueError:
            raw = None
        raw = raw if isinstance(raw, dict) else {}
        message = raw.get("message")
        message = message if isinstance(message, str) and message.strip() else "(no message)"
        if len(message) > MESSAGE_MAX_CHARS:  # both ends kept: a marker may sit at either
            half = MESSAGE_MAX_CHARS // 2
            message = message[:half] + message[-half:]
        fixed: dict[str, Any] = {"message": message}
        session = raw.get("session_id")
        if isinstance(session, str) and _SESSION_ID.fullmatch(session):
            fixed["session_id"] = session
        return fixed


class BrokenAfterAbort:
    """broken-after-abort (sessions): once a client leaves a stream early, the next `failures` requests
    about that session get 500, as if the stop left the session's lock held until it timed out. (Scoped
    to the session so that the other scenarios of a concurrent run are not hit.)"""

    _SESSION = re.compile(rb'"session_id"\s*:\s*"([^"]+)"')
    _SESSION_PATH = re.compile(r"/api/sessions/([^/]+)(/.*)?")

    def __init__(self, app: ASGIApp, failures: int = 3) -> None:
        self.app = app
        self.failures = failures
        self.owed: dict[str, int] = {}
        self.streaming: dict[str, asyncio.Event] = {}  # session -> set when its open stream has ended

    def session_of(self, scope: Scope, body: bytes) -> str | None:
        found = self._SESSION_PATH.fullmatch(scope["path"]) or self._SESSION.search(body)
        if found is None:
            return None
        value = found.group(1)
        return value.decode() if isinstance(value, bytes) else value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        session = self.session_of(scope, body)
        if session is not None and session in self.streaming:
            # The client that just left may not be noticed yet: let its stream end first.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.streaming[session].wait(), 3.0)
        if session is not None and self.owed.get(session):
            self.owed[session] -= 1
            await send_json(send, 500, {"status_code": 500, "detail": "Internal Server Error"})
            return
        started = ended = False

        async def watch_send(message: Message) -> None:
            nonlocal started, ended, session
            if message["type"] == "http.response.start":
                started = True
            else:
                ended = not message.get("more_body", False)
                if session is None:
                    session = self.session_of(scope, message.get("body", b""))
                if session is not None and not ended:
                    self.streaming.setdefault(session, asyncio.Event()).clear()
            await send(message)

        async def watch_receive() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect" and started and not ended and session is not None:
                self.owed[session] = self.failures
            return message

        try:
            await self.app(scope, replay(body, watch_receive), watch_send)
        finally:
            if started and not ended and session is not None:
                self.owed[session] = self.failures  # the response never finished: its client left
            if session is not None and session in self.streaming:
                self.streaming.pop(session).set()


# -- replaced components of the core (deliberate defect variants) -------------------------------------


def llm_sent(rewrite: Callable[[list[dict[str, str]]], list[dict[str, str]]]) -> Build:
    """The LLM is sent `rewrite(messages)` instead of the conversation the core built; the core's cache
    key and stored turns are unchanged. The mock's journal shows what was sent."""

    def build(app: Litestar) -> ASGIApp:
        llm = core_of(app).llm
        stream = llm.stream
        llm.stream = lambda model, messages, state=None: stream(model, rewrite(list(messages)), state)  # type: ignore[method-assign]
        return app

    return build


def upstream_detached(app: Litestar) -> ASGIApp:
    """abort-not-cancelled: the LLM stream is read by a task of its own, which a client's stop does not
    end: the core stops and stores the partial answer as usual, but the LLM request runs to its end."""
    llm = core_of(app).llm
    stream = llm.stream
    running: set[asyncio.Task[None]] = set()

    def detached(model: str, messages: ChatMessages, state: Any = None) -> Any:
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for chunk in stream(model, messages, state):
                    queue.put_nowait(("chunk", chunk))
                queue.put_nowait(("end", None))
            except Exception as err:  # LlmError: the reader raises it
                queue.put_nowait(("error", err))

        task = asyncio.ensure_future(pump())
        running.add(task)
        task.add_done_callback(running.discard)

        async def relay() -> Any:
            while True:
                kind, value = await queue.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield value

        return relay()

    llm.stream = detached  # type: ignore[method-assign]
    return app


def newest_only(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """no-history: the newest message alone while the window is not full (a full window passes, so
    query-stream's turn.window still holds)."""
    return messages[-1:] if len(messages) - 1 < HISTORY_WINDOW else messages


def one_short(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """short-window: a full window of history loses its oldest message."""
    return messages[1:] if len(messages) - 1 >= HISTORY_WINDOW else messages


def clear_does_nothing(app: Litestar) -> ASGIApp:
    """delete-noop: DELETE answers as usual but the store's clear deletes nothing."""

    async def clear_messages(conversation_id: str) -> int:
        return 0

    core_of(app).store.clear_messages = clear_messages  # type: ignore[method-assign]
    return app


def partial_dropped(app: Litestar) -> ASGIApp:
    """partial-not-stored: an answer the client stopped is not stored (a completed one still is)."""
    core = core_of(app)
    finish = core._finish

    async def finishing(conversation_id: str, model: str, messages: ChatMessages, answer: Any, **kw: Any) -> None:
        kw["store"] = kw.get("store", True) and answer.outcome != "cancelled"
        await finish(conversation_id, model, messages, answer, **kw)

    core._finish = finishing  # type: ignore[method-assign]
    return app


class NoCache:
    """no-cache: a cache that never holds anything."""

    async def get(self, model: str, messages: ChatMessages) -> list[str] | None:
        return None

    async def put(self, model: str, messages: ChatMessages, chunks: list[str]) -> None:
        pass


class LastPromptCache(ResponseCache):
    """cache-key-prompt-only: keyed by the model and the newest message alone, so two conversations
    that end with the same prompt share an entry."""

    async def get(self, model: str, messages: ChatMessages) -> list[str] | None:
        return await super().get(model, list(messages)[-1:])

    async def put(self, model: str, messages: ChatMessages, chunks: list[str]) -> None:
        await super().put(model, list(messages)[-1:], chunks)


def cache_replaced(make: Callable[[ChatCore], Any]) -> Build:
    def build(app: Litestar) -> ASGIApp:
        core = core_of(app)
        core.cache = make(core)
        return app

    return build


def cache_replayed_at_llm_pace(app: Litestar) -> ASGIApp:
    """paced-cache (start-stream): a cache hit is replayed at the pace the LLM gave that answer: each
    chunk waits as long as it took to come from upstream (the first one, the LLM's time to its first
    token), so a hit comes no sooner than a miss. The text, the X-Cache header and the absence of an
    LLM call stay right; a miss is the reference server's own stream."""
    core = core_of(app)
    stream, answer = core.llm.stream, core.answer
    paces: dict[str, list[float]] = {}  # cache key -> each chunk's wait after the one before (completed answers)

    async def timed(model: str, messages: ChatMessages, state: Any = None) -> AsyncIterator[str]:
        waits: list[float] = []
        last = time.monotonic()
        async with contextlib.aclosing(stream(model, messages, state)) as chunks:
            async for chunk in chunks:
                now = time.monotonic()
                waits.append(now - last)
                last = now
                yield chunk
        paces[cache_key(model, messages)] = waits

    async def paced(generator: AsyncGenerator[str, None], waits: list[float]) -> AsyncIterator[str]:
        """The core's replay, each chunk taken from it only once its wait is over: a client that stops
        during a wait has had every chunk the core counts as streamed (the partial answer stays right)."""
        waiting = iter(waits)
        async with contextlib.aclosing(generator):
            while True:
                await asyncio.sleep(next(waiting, 0.0))
                try:
                    chunk = await anext(generator)
                except StopAsyncIteration:
                    return
                yield chunk

    def answering(conversation_id: str, model: str, messages: ChatMessages, out: Any, **kw: Any) -> AsyncIterator[str]:
        generator = answer(conversation_id, model, messages, out, **kw)
        if kw.get("cached") is None:
            return generator
        return paced(generator, paces.get(cache_key(model, messages), []))  # type: ignore[arg-type]

    core.llm.stream = timed  # type: ignore[method-assign]
    core.answer = answering  # type: ignore[method-assign]
    return app


def anonymous_allowed(app: Litestar) -> ASGIApp:
    """no-auth-required: a request with no token is served as the user `anonymous` (a bad token is
    still 401)."""
    auth = core_of(app).auth
    token_user = auth._token_user

    def lenient(connection: Any, query_token: bool) -> str:
        if connection.headers.get("authorization") or (query_token and connection.query_params.get("access_token")):
            return token_user(connection, query_token)
        return "anonymous"

    auth._token_user = lenient  # type: ignore[method-assign]
    return app


def signature_unchecked(app: Litestar) -> ASGIApp:
    """unverified-jwt: a token's `sub` is believed whatever its signature."""

    def user_id(token: str) -> str:
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError as err:
            raise NotAuthorizedException(f"invalid token: {err}") from None
        return _subject_of(claims)

    core_of(app).auth.user_id = user_id  # type: ignore[method-assign]
    return app


def expiry_unchecked(app: Litestar) -> ASGIApp:
    """expiry-ignored: a token's signature is checked, its `exp` is not (an expired token still works)."""
    auth = core_of(app).auth
    secret = auth._secret

    def user_id(token: str) -> str:
        try:
            claims = jwt.decode(token, secret, algorithms=["HS256"], options={"verify_exp": False})
        except jwt.InvalidTokenError as err:
            raise NotAuthorizedException(f"invalid token: {err}") from None
        return _subject_of(claims)

    auth.user_id = user_id  # type: ignore[method-assign]
    return app


def alg_none_accepted(app: Litestar) -> ASGIApp:
    """alg-none-accepted: a token whose header says `alg: none` is believed unsigned; every other
    token is checked as it should be (the classic JWT library misuse)."""
    auth = core_of(app).auth
    checked = auth.user_id

    def user_id(token: str) -> str:
        try:
            unsigned = jwt.get_unverified_header(token).get("alg", "").lower() == "none"
        except jwt.InvalidTokenError:
            unsigned = False
        if not unsigned:
            return checked(token)
        return _subject_of(jwt.decode(token, options={"verify_signature": False}))

    auth.user_id = user_id  # type: ignore[method-assign]
    return app


def _subject_of(claims: dict[str, Any]) -> str:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise NotAuthorizedException("invalid token: sub must be a non-empty string")
    return sub


_CALLER: contextvars.ContextVar[str | None] = contextvars.ContextVar("fixture_caller", default=None)


def owners_unchecked_on(method: str, pattern: str) -> Build:
    """As `owners_unchecked`, on the calls `method pattern` only: every other call still checks the
    owner. stream-owner-unchecked (conversation-events' GET stream), send-owner-unchecked (query-stream's
    POST /api/v1/ai/chat, its GET stream checked)."""

    def build(app: Litestar) -> ASGIApp:
        edited = owners_unchecked(app)

        async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and route(scope, method, pattern):
                await edited(scope, receive, send)
            else:
                await app(scope, receive, send)

        return asgi

    return build


def others_forbidden(app: Litestar) -> ASGIApp:
    """others-403 (valid, the other choice contracts.md leaves open): another user's conversation id
    gets 403, not 404 (the caller read from the bearer token before the app runs); an unknown id is
    still a 404."""
    core = core_of(app)
    store = core.store
    conversation = store.conversation

    async def owners_only(profile: str, id: str) -> Any:
        found = await conversation(profile, id)
        caller = _CALLER.get()
        if found is not None and caller is not None and found.owner not in (None, caller):
            raise PermissionDeniedException("this conversation belongs to another user")
        return found

    store.conversation = owners_only  # type: ignore[method-assign]

    return noting_the_caller(app, core)


def owners_unchecked(app: Litestar) -> ASGIApp:
    """shared-user: every stored conversation reads as the caller's own, as if every token were one user;
    a new conversation still records (and answers with) its real owner. The caller is read from the
    token before the app runs, into a context variable of the request's task (Litestar runs sync
    guards in a thread, whose context changes do not come back)."""
    core = core_of(app)
    store = core.store
    conversation = store.conversation

    async def anyones(profile: str, id: str) -> Any:
        found = await conversation(profile, id)
        caller = _CALLER.get()
        return dataclasses.replace(found, owner=caller) if found is not None and caller else found

    store.conversation = anyones  # type: ignore[method-assign]

    return noting_the_caller(app, core)


def sessions_reusable(app: Litestar) -> ASGIApp:
    """reusable-session: claiming a stream session reads it without taking it, and starts its lifetime
    again (so that a slow first stream does not let it expire before it is opened again)."""
    core = core_of(app)
    state, ttl_s = core.state, core.settings.session_ttl_s

    async def renewed(key: str) -> bytes | None:
        raw = await state.get(key)
        if raw is not None:
            session = json.loads(raw)
            session["expiresAt"] = time.time() + ttl_s
            await state.set(key, msgspec.json.encode(session), ttl_s + 60.0)
        return raw

    state.take = renewed  # type: ignore[method-assign]
    return app


# Valid but unusual behaviour of the core.

UPSTREAM_ATTEMPTS = 3  # the OpenAI SDK's default: the call and two retries


def upstream_retried(app: Litestar) -> ASGIApp:
    """retrying-upstream (valid): an LLM call that fails before its first chunk is tried again, up to
    `UPSTREAM_ATTEMPTS` times with a short back-off, as the OpenAI SDK does by default; a failure
    after the first chunk is final (a retry would repeat text the client already has)."""
    llm = core_of(app).llm
    once = llm.stream

    async def retried(model: str, messages: ChatMessages, state: Any = None) -> AsyncIterator[str]:
        for attempt in range(1, UPSTREAM_ATTEMPTS + 1):
            started = False
            try:
                async for chunk in once(model, messages, state):
                    started = True
                    yield chunk
                return
            except LlmError:
                if started or attempt == UPSTREAM_ATTEMPTS:
                    raise
            await asyncio.sleep(0.05 * 2**attempt)

    llm.stream = retried  # type: ignore[method-assign]
    return app


# -- unknown ids, error texts, CORS (issue 15 §3) ------------------------------------------------------


def unknown_history_empty(scope: Scope, whole: Whole) -> Whole | None:
    """unknown-history-empty: the history of an unknown id answers 200 with an empty list, not 404."""
    if whole.status != 404:
        return None
    found = re.fullmatch(r"/api/sessions/([^/]+)/history/?", scope["path"])
    if scope["method"] == "GET" and found:
        return dataclasses.replace(whole.with_json({"session_id": found.group(1), "history": []}), status=200)
    if route(scope, "GET", r"/chat/history/?"):
        return dataclasses.replace(whole.with_json([]), status=200)
    return None


def _caller_of(core: ChatCore, scope: Scope) -> str | None:
    token = bearer_token(scope)
    if token is None:
        return None
    try:
        return core.auth.user_id(token)
    except NotAuthorizedException:
        return None


def noting_the_caller(app: ASGIApp, core: ChatCore) -> ASGIApp:
    """`app` with each request's caller (from its bearer token) in `_CALLER` before the app runs, in the
    request's own task (Litestar runs sync guards in a thread, whose context changes do not come back)."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            _CALLER.set(_caller_of(core, scope))
        await app(scope, receive, send)

    return asgi


def made_when_unknown(profile: str) -> Build:
    """A well-formed (UUID) id that `profile`'s store does not know is made on the spot, as the caller's
    (the caller read from the token before the app runs, as `owners_unchecked` does): a new message
    under an unknown id makes that conversation. Another user's conversation is still theirs (404)."""

    def build(app: Litestar) -> ASGIApp:
        core = core_of(app)
        store = core.store
        conversation = store.conversation

        async def or_made(name: str, id: str) -> Any:
            found = await conversation(name, id)
            if found is None and name == profile and _UUID.fullmatch(id):
                found = await store.create_conversation(name, owner=_CALLER.get(), id=id)
            return found

        store.conversation = or_made  # type: ignore[method-assign]

        return noting_the_caller(app, core)

    return build


def unknown_session_refused(app: Litestar) -> ASGIApp:
    """unknown-session-404 (valid, sessions): a chat call under a `session_id` the server does not know
    gets 404 and no LLM call, instead of making that session (either is right where clients choose ids)."""
    store = core_of(app).store

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not route(scope, "POST", r"/api/chat(/stream)?/?"):
            await app(scope, receive, send)
            return
        body = await read_body(receive)
        try:
            given = json.loads(body).get("session_id")
        except (ValueError, AttributeError):
            given = None
        if isinstance(given, str) and await store.conversation("sessions", given) is None:
            await send_json(send, 404, {"status_code": 404, "detail": f"no session {given!r}"})
            return
        await app(scope, replay(body, receive), send)

    return asgi


class UpstreamUrlInErrors(StreamEdit):
    """upstream-url-in-errors: an error event's message names the upstream request, URL and all."""

    def __init__(self, shape: Shape, out: Out, *, url: str) -> None:
        super().__init__(shape, out)
        self.url = url

    async def block(self, block: Block, kind: str) -> None:
        payload = block.payload()
        if kind == "error" and isinstance(payload, dict):
            key = next((k for k in ("error", "message") if isinstance(payload.get(k), str)), None)
            if key is not None:
                payload[key] = f"upstream error: {self.url} returned 500"
                block = data_block(payload)
        await super().block(block, kind)


def upstream_url_in_errors(app: Litestar) -> ASGIApp:
    url = f"{core_of(app).llm._base_url.rstrip('/')}/chat/completions"
    return StreamRewrite(app, lambda shape, out: UpstreamUrlInErrors(shape, out, url=url))


_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/chat.py", line 118, in chat\n'
    "    answer = await reply(core, session_id, model, messages)\n"
    "LlmError: the LLM failed"
)


def traceback_in_5xx(scope: Scope, whole: Whole) -> Whole | None:
    """traceback-500: a 5xx answer keeps its status, but its body is the server's traceback."""
    if whole.status < 500:
        return None
    return whole.with_json({"status_code": whole.status, "detail": "Internal Server Error", "traceback": _TRACEBACK})


CorsEdit = Callable[[bytes | None, Headers], Headers]  # (the request's Origin, the response headers) -> headers


def cors_headers(edit: CorsEdit) -> Build:
    """Every response's headers go through `edit(origin, headers)` (the stream's too)."""

    def build(app: Litestar) -> ASGIApp:
        async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            origin = header(scope["headers"], b"origin")

            async def edited(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": edit(origin, list(message.get("headers", ())))}
                await send(message)

            await app(scope, receive, edited)

        return asgi

    return build


_ACAO, _ACAC = b"access-control-allow-origin", b"access-control-allow-credentials"


def star_with_credentials(origin: bytes | None, headers: Headers) -> Headers:
    """cors-star-credentials: an allowed origin gets `*` and `Allow-Credentials: true` instead of its echo."""
    if origin is None or header(headers, _ACAO) != origin:
        return headers
    return [*without(headers, _ACAO, _ACAC), (_ACAO, b"*"), (_ACAC, b"true")]


def any_origin_echoed(origin: bytes | None, headers: Headers) -> Headers:
    """cors-any-origin: every Origin is echoed, the configured list or not."""
    if origin is None or header(headers, _ACAO) is not None:
        return headers
    return [*without(headers, b"vary"), (_ACAO, origin), (b"vary", b"Origin")]


def exactly_origin(allowed: str) -> CorsEdit:
    """cors-exact-origin (valid): CORS by hand: exactly `allowed` is echoed, with `Vary: Origin` and
    credentials allowed; any other origin gets no CORS header."""

    def edit(origin: bytes | None, headers: Headers) -> Headers:
        kept = without(headers, _ACAO, _ACAC, b"vary")
        if origin != allowed.encode():
            return kept
        return [*kept, (_ACAO, origin), (_ACAC, b"true"), (b"vary", b"Origin")]

    return edit
