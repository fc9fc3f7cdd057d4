"""The request journal: what every request asked and what it got, newest last.

An entry of a contract request (the mock serving a contract profile's stream, `contract:` in its
config) also names the contract, the operation and the conversation, and carries the conversation
the mock holds as that contract's agent as `messages` (see `ContractBody`).

Tests find their own requests among concurrent ones by a unique marker in the prompt
(`prompt_contains`), so the journal is the ground truth for what an implementation sent upstream.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._errors import RequestError
from ._jsonbody import decode_json
from ._limits import JSON_DEPTH_CAP

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "cookie",
        "set-cookie",
    }
)


class RawBody(bytes):
    """A request body kept as it came; decoded only when the journal is read: as JSON if it is JSON
    the journal can render again (the decoder's bounds, nested at most `JSON_DEPTH_CAP` deep),
    else as text, so no body makes the journal unreadable."""

    __slots__ = ()

    def to_journal(self) -> Any:
        if not self:
            return None
        try:
            return decode_json(self, JSON_DEPTH_CAP)
        except RequestError:
            return self.decode("utf-8", "replace")


class ContractBody:
    """A contract request's body as the journal shows it: the request's own JSON fields as they came
    and, under `messages`, the conversation the mock holds as that contract's agent plus the new
    message (unless the body has a `messages` of its own). Every reader of the journal finds an LLM
    request's conversation in its body's `messages`; a contract request's is found there alike, and
    also in the entry's own `messages`."""

    __slots__ = ("messages", "raw")

    def __init__(self, raw: bytes, messages: list[dict[str, str]]) -> None:
        self.raw = RawBody(raw)
        self.messages = messages

    def to_journal(self) -> Any:
        body = self.raw.to_journal()
        if body is None:
            return {"messages": self.messages}
        if isinstance(body, dict) and "messages" not in body:
            return {**body, "messages": self.messages}
        return body


def render(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry as JSON-ready data: values that know their journal form (a plan, a raw body) give it."""
    return {key: value.to_journal() if hasattr(value, "to_journal") else value for key, value in entry.items()}


def redact(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers with secret values replaced: the journal is served over HTTP."""
    return {name: ("[redacted]" if name in SECRET_HEADERS else value) for name, value in headers.items()}


def _prompt_has(entry: Mapping[str, Any], text: str) -> bool:
    """Whether the entry's prompt holds `text`; for an entry closed before it was planned (its client
    left while it waited), whether its raw body does: it still belongs to whoever sent that marker."""
    prompt = entry.get("prompt")
    if prompt is not None:
        return text in prompt
    body = entry.get("body")
    return isinstance(body, bytes) and text.encode("utf-8") in body


class Journal:
    """A bounded, ordered record of requests; entries are JSON-ready dicts. Ids come from `next_id`
    (the workers of one mock share one counter, `_shared_state`), by default 1, 2, 3 ..."""

    def __init__(self, max_entries: int, next_id: Callable[[], int] | None = None) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=max_entries)
        self._next_id = next_id or itertools.count(1).__next__

    def resize(self, max_entries: int) -> None:
        if max_entries != self._entries.maxlen:
            self._entries = deque(self._entries, maxlen=max_entries)

    def open(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Add an entry now; the caller fills in the outcome as the response proceeds."""
        entry["id"] = self._next_id()
        self._entries.append(entry)
        return entry

    def clear(self) -> int:
        count = len(self._entries)
        self._entries.clear()
        return count

    def __len__(self) -> int:
        return len(self._entries)

    def count_newer(self, floor: int) -> int:
        """How many entries have an id above `floor`."""
        if not self._entries or self._entries[0]["id"] > floor:
            return len(self._entries)
        return sum(1 for entry in self._entries if entry["id"] > floor)

    def query(
        self,
        *,
        prompt_contains: str | None = None,
        model: str | None = None,
        path: str | None = None,
        outcome: str | None = None,
        since_id: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Entries matching every given filter, oldest first; `limit` keeps the newest."""
        entries: Iterable[dict[str, Any]] = self._entries
        if since_id is not None:
            entries = (e for e in entries if e["id"] > since_id)
        if prompt_contains is not None:
            entries = (e for e in entries if _prompt_has(e, prompt_contains))
        if model is not None:
            entries = (e for e in entries if e.get("model") == model)
        if path is not None:
            entries = (e for e in entries if e.get("path") == path)
        if outcome is not None:
            entries = (e for e in entries if e.get("outcome") == outcome)
        found = list(entries)
        return [render(entry) for entry in (found[-limit:] if limit else found)]
