"""A chat request in dialect-free form: what the planner needs, whichever API it arrived on."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._agent import Agent
from ._errors import RequestError


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Overrides:
    """Per-request settings from `x-mock-*` headers; None leaves the configured value."""

    seed: str | None = None
    ttft_ms: float | None = None
    itl_ms: float | None = None
    answer_tokens: int | None = None
    multibyte: float | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """The normalized request. `sampling` holds the parameters that may change an answer."""

    model: str
    messages: tuple[Message, ...]
    stream: bool = False
    max_tokens: int | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    overrides: Overrides = field(default_factory=Overrides)
    raw_prompt: bool = False  # a legacy completion's prompt: counted without chat message framing
    agent: Agent | None = None  # tools, tool choice, reasoning, output format, tool calls and results

    @property
    def last_user(self) -> str:
        for message in reversed(self.messages):
            if message.role == "user":
                return message.content
        return ""

    @property
    def turn(self) -> int:
        """1 for the first user turn of a conversation, 2 for the second, …"""
        return sum(1 for message in self.messages if message.role == "user")

    @property
    def prompt(self) -> str:
        """All message texts, one per line: what journal filters and prompt rules search."""
        return "\n".join(message.content for message in self.messages)


def request_seed(global_seed: int, request: ChatRequest) -> int:
    """A 64-bit seed from the global seed and the request's content.

    The same model, messages, sampling parameters and `x-mock-seed` give the same seed whatever
    the arrival order or the dialect; `stream` is left out so a streamed and a non-streamed call
    get the same answer.
    """
    # Every string goes in with its length in front, so no two requests share an encoding.
    hasher = hashlib.blake2b(digest_size=8)
    update = hasher.update
    update(b"%d|%d|%s|%s|" % (global_seed, -1 if request.max_tokens is None else request.max_tokens,
                              _field(request.model), _field(request.overrides.seed)))  # fmt: skip
    for message in request.messages:
        update(_field(message.role))
        update(_field(message.content))
    if request.sampling:
        update(json.dumps(request.sampling, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode())
    return int.from_bytes(hasher.digest(), "big")


def _field(text: str | None) -> bytes:
    if text is None:
        return b"-"
    data = text.encode("utf-8", "surrogatepass")
    return b"%d:%b" % (len(data), data)


_HEADER_OVERRIDES: dict[str, tuple[str, type]] = {
    "x-mock-ttft-ms": ("ttft_ms", float),
    "x-mock-itl-ms": ("itl_ms", float),
    "x-mock-answer-tokens": ("answer_tokens", int),
    "x-mock-multibyte": ("multibyte", float),
}


# The most a header may ask: an hour of waiting, a million tokens (planned at once, on the loop).
_HEADER_MAXIMA: dict[str, float] = {
    "ttft_ms": 3_600_000,
    "itl_ms": 3_600_000,
    "answer_tokens": 1_000_000,
    "multibyte": 1,
}

_NO_OVERRIDES = Overrides()


def overrides_from_headers(headers: Mapping[str, str]) -> Overrides:
    """The per-request `x-mock-*` settings; a bad value is a 400 naming the header."""
    seed = headers.get("x-mock-seed")
    if seed is None and not any(map(headers.__contains__, _HEADER_OVERRIDES)):
        return _NO_OVERRIDES
    values: dict[str, Any] = {"seed": seed}
    for header, (name, kind) in _HEADER_OVERRIDES.items():
        raw = headers.get(header)
        if raw is None:
            continue
        try:
            value = kind(raw)
        except ValueError:
            raise RequestError(header, f"header {header} must be a {kind.__name__}, got {raw!r}") from None
        if not 0 <= value <= _HEADER_MAXIMA[name]:  # NaN and infinity too: a plan must end
            raise RequestError(header, f"header {header} is out of range (0 to {_HEADER_MAXIMA[name]:g}): {raw!r}")
        values[name] = value
    return Overrides(**values)
