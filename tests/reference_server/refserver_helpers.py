"""Helpers for the reference server's tests: read an SSE response, find the mock's answer."""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import EventSource

from mockllm.client import MockLLMClient


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def events(response: httpx.Response) -> Iterator[Any]:
    """The response's events as they arrive: each `data:` parsed as JSON (`"[DONE]"` kept as is);
    comments and heartbeat-only lines are not events."""
    for sse in EventSource(response).iter_sse():
        yield sse.data if sse.data == "[DONE]" else json.loads(sse.data)


def llm_calls(mockllm: MockLLMClient, marker: str, count: int = 1) -> list[dict[str, Any]]:
    """The mock's journal entries whose prompt holds `marker`, once `count` have finished."""
    return mockllm.wait_for_journal(marker, count=count)


def llm_messages(entry: dict[str, Any]) -> list[dict[str, str]]:
    """The messages the implementation sent to the LLM in one call (OpenAI chat format)."""
    return entry["body"]["messages"]


def stored_conversations(profile: str, server: Any, owner: str) -> dict[str, list[tuple[str, str]]]:
    """The owner's conversations in `profile` as the server stored them (its SQLite file, next to its
    log): id -> [(role, content)] in order. For contracts with no call that reads history back."""
    with sqlite3.connect(Path(server.log.name).parent / "reference-server.sqlite3") as db:
        rows = db.execute(
            "SELECT c.id, m.role, m.content FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id"
            " WHERE c.profile = ? AND c.owner = ? ORDER BY c.created_at, m.seq",
            (profile, owner),
        ).fetchall()
    found: dict[str, list[tuple[str, str]]] = {}
    for conversation, role, content in rows:
        found.setdefault(conversation, [])
        if role is not None:
            found[conversation].append((role, content))
    return found
