"""Helpers for the reference server's tests: read an SSE response, find the mock's answer."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
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
