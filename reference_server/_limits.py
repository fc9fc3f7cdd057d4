"""Fixed-window rate limits per profile and client, on the shared state store (so across workers)."""

from __future__ import annotations

import math

from litestar.exceptions import HTTPException

from ._settings import Settings
from ._state import StateStore


class TooManyRequests(HTTPException):
    status_code = 429


class RateLimiter:
    def __init__(self, settings: Settings, state: StateStore) -> None:
        self._limits = settings.rate_limits
        self._state = state

    async def check(self, profile: str, client: str) -> None:
        """Count a request of `client` (a user id, or an address) under `profile`; 429 past the limit."""
        limit = self._limits.get(profile)
        if limit is None:
            return
        hits, left_s = await self._state.hit(f"rate:{profile}:{client}", limit.window_s)
        if hits > limit.count:
            retry = max(1, math.ceil(left_s))
            raise TooManyRequests(
                detail=f"rate limit: {limit.count} requests per {limit.window_s:g} s; retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )
