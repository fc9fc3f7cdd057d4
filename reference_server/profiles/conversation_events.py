"""`conversation-events`: not yet written."""

from __future__ import annotations

from typing import Any

from .._chat import ChatCore
from . import Profile

NAME = "conversation-events"


def handlers(core: ChatCore) -> list[Any]:
    return []


PROFILE = Profile(NAME, "TODO", handlers)
