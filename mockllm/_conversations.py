"""The conversations the mock keeps when it plays a contract's agent: history by id, and the messages
posted for a stream still to be opened.

An agent behind a proxy holds each conversation's turns and sends them to its LLM with the new
message; the mock, in that agent's place, keeps them here so the journal shows what the agent would
have asked (and the conformance suite judges whether the proxy carried the conversation id from turn
to turn). Ids are UUIDs drawn from the request's seed and the number of conversations that request
has made before, so a fresh server with the same seed makes the same ids (same bytes), and two equal
requests still make two conversations. State at the edge: only the server's contract routes use it.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field

from ._request import Message


def seeded_uuid(seed: int, purpose: str, n: int = 0) -> str:
    """A version-4 UUID from a request's seed: the same seed, purpose and count, the same id."""
    bits = random.Random(f"{seed}:{purpose}:{n}").getrandbits(128)
    return str(uuid.UUID(int=bits, version=4))


@dataclass
class Conversation:
    id: str
    messages: list[Message] = field(default_factory=list)


class Conversations:
    """Every conversation by id, and the pending streams: (variable, value) -> the conversation whose
    latest user message that stream answers (a two-call profile: message first, stream after)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Conversation] = {}
        self._pending: dict[tuple[str, str], str] = {}
        self._made: Counter[tuple[int, str]] = Counter()

    def new_id(self, seed: int, purpose: str) -> str:
        """A fresh id for `purpose` (a conversation, a stream session) from the request's seed."""
        key = (seed, purpose)
        while True:
            candidate = seeded_uuid(seed, purpose, self._made[key])
            self._made[key] += 1
            if candidate not in self._by_id:
                return candidate

    def open(self, conversation_id: str) -> Conversation:
        """The conversation of this id, made empty if it is new."""
        found = self._by_id.get(conversation_id)
        if found is None:
            found = self._by_id[conversation_id] = Conversation(conversation_id)
        return found

    def get(self, conversation_id: str) -> Conversation | None:
        return self._by_id.get(conversation_id)

    def expect_stream(self, variable: str, value: str, conversation_id: str) -> None:
        """A message was posted: the stream call that names `variable=value` will answer it."""
        self._pending[(variable, value)] = conversation_id

    def waiting(self, variable: str, value: str) -> Conversation | None:
        """The conversation a stream call would answer, left waiting (the request may yet be refused)."""
        conversation_id = self._pending.get((variable, value))
        return None if conversation_id is None else self._by_id.get(conversation_id)

    def take_stream(self, variable: str, value: str) -> Conversation | None:
        """The conversation a stream call answers, once: a second stream of it finds none."""
        conversation_id = self._pending.pop((variable, value), None)
        return None if conversation_id is None else self._by_id.get(conversation_id)

    def clear(self) -> None:
        self._by_id.clear()
        self._pending.clear()
        self._made.clear()
