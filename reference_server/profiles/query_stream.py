"""`query-stream`: not yet written."""

from __future__ import annotations

from typing import Any

from .._chat import ChatCore
from . import Profile

NAME = "query-stream"


def handlers(core: ChatCore) -> list[Any]:
    return []


PROFILE = Profile(NAME, "TODO", handlers)
