"""The contract profiles: each an adapter over the shared core, registered here by name.

A profile module builds its route handlers from a `ChatCore`; a sixth contract is one more module
and one more line in `PROFILES`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from litestar.types import ControllerRouterHandler

from .._chat import ChatCore


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    summary: str
    handlers: Callable[[ChatCore], Sequence[ControllerRouterHandler]]


def _registry() -> dict[str, Profile]:
    from . import conversation_events, conversations, query_stream, sessions, start_stream

    modules = (sessions, conversations, start_stream, query_stream, conversation_events)
    return {module.PROFILE.name: module.PROFILE for module in modules}


PROFILES: dict[str, Profile] = _registry()
