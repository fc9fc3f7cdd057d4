"""Placeholder: being written. Registered so the dialect table is in place."""

from __future__ import annotations


class AnthropicMessages:
    name = "anthropic-messages"
    chat_routes: tuple[tuple[str, str], ...] = ()
    extra_routes: tuple[tuple[str, str, str], ...] = ()
    stream_headers: tuple[tuple[str, str], ...] = ()
