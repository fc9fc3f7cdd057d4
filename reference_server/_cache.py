"""The response cache (`start-stream`): the same model and the same conversation so far, the same answer.

Keyed by a digest of (model, messages sent to the LLM); the value is the answer's chunks, so a hit
replays the same text in the same pieces, with no LLM call.
"""

from __future__ import annotations

import hashlib

import msgspec

from ._llm import ChatMessages
from ._state import StateStore

_encode = msgspec.json.encode


def cache_key(model: str, messages: ChatMessages) -> str:
    digest = hashlib.sha256(_encode([model, [[m["role"], m["content"]] for m in messages]])).hexdigest()
    return f"cache:{digest}"


class ResponseCache:
    def __init__(self, state: StateStore, ttl_s: float) -> None:
        self._state = state
        self._ttl_s = ttl_s

    async def get(self, model: str, messages: ChatMessages) -> list[str] | None:
        raw = await self._state.get(cache_key(model, messages))
        return None if raw is None else msgspec.json.decode(raw, type=list[str])

    async def put(self, model: str, messages: ChatMessages, chunks: list[str]) -> None:
        await self._state.set(cache_key(model, messages), _encode(chunks), self._ttl_s)
