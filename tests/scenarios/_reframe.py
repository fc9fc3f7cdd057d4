"""The fixture host's view of an event stream: the reference server's blocks, what they mean, how to write them.

The reference server writes every event as one LF-framed block (`data: <json>\\n\\n`, or a comment such
as `: keep-alive\\n\\n`), one block per write, in UTF-8. The fixtures re-emit those blocks with another
framing or with one deliberate defect, so this parser reads only what the reference server writes
(no CR line ends, no split data fields): it is a fixture's tool, not the suite's SSE parser.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from reference_server._store import iso, utc_now

DEFAULT_MODEL = "mock-model"  # the model the reference server asks for where a contract names none
_decode = msgspec.json.decode
_encode = msgspec.json.encode


@dataclass(slots=True)
class Block:
    """One block of an event stream: its lines, without line ends."""

    lines: list[str]

    @property
    def is_comment(self) -> bool:
        return all(line.startswith(":") for line in self.lines)

    @property
    def data(self) -> str | None:
        """The data lines' values joined by LF, as a client dispatches them; None without a data line."""
        values = [line[5:].removeprefix(" ") for line in self.lines if line.startswith("data:")]
        return "\n".join(values) if values else None

    def payload(self) -> Any:
        """The data as JSON, or None (no data, or not JSON)."""
        data = self.data
        if data is None:
            return None
        try:
            return _decode(data)
        except msgspec.DecodeError:
            return None


def data_block(payload: Any) -> Block:
    """A block of one `data:` line holding `payload` as compact JSON (a str is written as it is)."""
    text = payload if isinstance(payload, str) else _encode(payload).decode()
    return Block([f"data: {text}"])


def encode(block: Block, eol: str = "\n") -> bytes:
    """The block as bytes, every line ended by `eol` and a blank line after it."""
    return (eol.join(block.lines) + eol + eol).encode()


class BlockParser:
    """Blocks out of the reference server's writes, as they complete."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[Block]:
        self._pending += chunk
        *complete, self._pending = self._pending.split(b"\n\n")
        return [Block(part.decode().split("\n")) for part in complete if part]

    @property
    def leftover(self) -> bytes:
        """Bytes after the last complete block (the reference server leaves none)."""
        return self._pending


# -- what the events mean ----------------------------------------------------------------------------


@dataclass(slots=True)
class StreamFacts:
    """What a stream has carried so far: what a fixture needs to write a plausible event of its own."""

    tokens: int = 0
    text: str = ""  # the token events' texts joined as they are (sessions: words without spaces)
    conversation_id: str | None = None  # query-stream's first event

    def note(self, shape: Shape, block: Block, kind: str) -> None:
        payload = block.payload()
        if kind == "token":
            self.tokens += 1
            self.text += payload.get(shape.text_key, "")
        elif isinstance(payload, dict) and payload.get("type") == "conversationId":
            self.conversation_id = payload.get("conversationId")


@dataclass(frozen=True, slots=True)
class Shape:
    """One profile's stream as a fixture sees it: the kind of each block and how to make events.

    Kinds: `token` (carries answer text), `done` (the success terminal), `error` (the error terminal),
    `comment`, `other` (opening, heartbeat and trailing events)."""

    name: str
    kinds: Callable[[Block], str]
    token: Callable[[str, StreamFacts], Block]
    done: Callable[[StreamFacts], Block]
    unknown: Block  # an event outside the profile's grammar
    heartbeat: Callable[[], Block]
    text_key: str = "content"


def _typed(token: str, done: str, error: str) -> Callable[[Block], str]:
    """`kinds` of a profile whose events name their type in a `type` field."""
    names = {token: "token", done: "done", error: "error"}

    def kind(block: Block) -> str:
        if block.is_comment:
            return "comment"
        payload = block.payload()
        return names.get(payload.get("type"), "other") if isinstance(payload, dict) else "other"

    return kind


def _conversations_kind(block: Block) -> str:
    if block.is_comment:
        return "comment"
    if block.data == "[DONE]":
        return "done"
    payload = block.payload()
    if isinstance(payload, dict) and "error" in payload:
        return "error"
    return "token" if isinstance(payload, dict) and "content" in payload else "other"


def _comment(text: str) -> Callable[[], Block]:
    return lambda: Block([f": {text}"])


def _query_complete(facts: StreamFacts) -> Block:
    metadata = {"model": DEFAULT_MODEL, "conversationId": facts.conversation_id}
    return data_block({"type": "complete", "timestamp": iso(utc_now()), "metadata": metadata})


def _events_complete(facts: StreamFacts) -> Block:
    return data_block({"type": "llm_complete", "timestamp": iso(utc_now()), "content": facts.text})


SHAPES: dict[str, Shape] = {
    shape.name: shape
    for shape in (
        Shape(
            "sessions",
            _typed("content", "done", "error"),
            lambda text, facts: data_block({"type": "content", "content": text, "index": facts.tokens}),
            lambda facts: data_block({"type": "done"}),
            data_block({"type": "debug", "message": "tokens so far"}),
            _comment("keep-alive"),
        ),
        Shape(
            "conversations",
            _conversations_kind,
            lambda text, facts: data_block({"content": text}),
            lambda facts: data_block("[DONE]"),
            data_block({"status": "thinking"}),
            _comment("keep-alive"),
        ),
        Shape(
            "start-stream",
            _typed("token", "done", "error"),
            lambda text, facts: data_block({"type": "token", "content": text}),
            lambda facts: data_block({"type": "done"}),
            data_block({"type": "debug", "message": "tokens so far"}),
            _comment("keep-alive"),
        ),
        Shape(
            "query-stream",
            _typed("token", "complete", "error"),
            lambda text, facts: data_block({"type": "token", "content": text}),
            _query_complete,
            data_block({"type": "debug", "message": "tokens so far"}),
            _comment("heartbeat"),
        ),
        Shape(
            "conversation-events",
            _typed("llm_chunk", "llm_complete", "error"),
            lambda text, facts: data_block({"type": "llm_chunk", "timestamp": iso(utc_now()), "content": text}),
            _events_complete,
            data_block({"type": "debug", "timestamp": iso(utc_now()), "message": "tokens so far"}),
            lambda: data_block({"type": "heartbeat", "timestamp": iso(utc_now())}),
        ),
    )
}

# (method, path) of each profile's stream, paths as the app sees them (the /impl/<name> prefix gone).
_STREAM_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"/api/chat/stream/?"), "sessions"),
    ("POST", re.compile(r"/chat/stream/?"), "conversations"),
    ("GET", re.compile(r"/chat/stream/?"), "start-stream"),
    ("GET", re.compile(r"/api/v1/ai/chat/stream/?"), "query-stream"),
    ("GET", re.compile(r"/api/v1/chat/conversations/[^/]+/stream/?"), "conversation-events"),
)


def shape_of(method: str, path: str) -> Shape | None:
    """The profile whose stream `method path` is, if it is one."""
    for route_method, pattern, name in _STREAM_ROUTES:
        if method == route_method and pattern.fullmatch(path):
            return SHAPES[name]
    return None


def pieces(data: bytes, size: Callable[[], int]) -> list[bytes]:
    """`data` cut into writes of `size()` bytes each, and also inside every multi-byte UTF-8 character
    (between its lead byte and the first continuation byte)."""
    cuts = {p for p in range(1, len(data)) if data[p] & 0xC0 == 0x80 and data[p - 1] & 0xC0 == 0xC0}
    at = size()
    while at < len(data):
        cuts.add(at)
        at += size()
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]
