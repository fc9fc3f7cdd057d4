"""The provider wire formats the mock speaks, and the registry of them.

A dialect is described once, in one module, and registered with one line, `register(Dialect())`:
its class declares the routes it serves (`Route` records), parses a request, encodes a plan in
the provider's bytes, reads the text out of its own events (`text_of`, for replayed captures),
names the load profile a load test of it uses (`load_profile`) and says how a benchmark client asks
it for a stream (`probe`, a `StreamProbe`). Every other part reads `DIALECTS`, the registered
dialects in order: the server's routes (of each server made after a registration), the replay
loader, the load tests' dialect profiles and the benchmarks' wires.

The rest of the names here are a dialect module's kit: the records, the encoders of `_base`, and
the request and response types it works with.
"""

from __future__ import annotations

from typing import TypeVar

from .._dialect_registry import DIALECTS as _REGISTERED
from .._dialect_registry import Registry
from .._wire import HttpResponse, StreamFrames
from ._base import (
    BlockFrames,
    Call,
    Dialect,
    Encoding,
    Endpoint,
    NumberedTextFrames,
    Route,
    StreamProbe,
    TextFrames,
    dumps,
    json_string,
    json_text_field,
)
from .anthropic_messages import AnthropicMessages
from .gemini import Gemini
from .openai_chat import OpenAIChat
from .openai_completions import OpenAICompletions
from .openai_responses import OpenAIResponses

D = TypeVar("D", bound=Dialect)

DIALECTS: Registry[Dialect] = _REGISTERED


def register(dialect: D) -> D:
    """Add a dialect (an instance); returns it. Servers made from now on serve its routes.

    Registering the same instance again is harmless; another dialect under a name already taken is
    a ValueError, so a transcript's or a load test's dialect name always means one format."""
    return _REGISTERED.add(dialect)


def unregister(name: str) -> Dialect:
    """Take the dialect of this name out of the registry (KeyError when none); returns it."""
    return _REGISTERED.remove(name)


register(OpenAIChat())
register(OpenAIResponses())
register(OpenAICompletions())
register(AnthropicMessages())
register(Gemini())

__all__ = [
    "DIALECTS",
    "BlockFrames",
    "Call",
    "Dialect",
    "Encoding",
    "Endpoint",
    "HttpResponse",
    "NumberedTextFrames",
    "Registry",
    "Route",
    "StreamFrames",
    "StreamProbe",
    "TextFrames",
    "dumps",
    "json_string",
    "json_text_field",
    "register",
    "unregister",
]
