"""Shared short-lived state: the response cache, stream sessions and rate-limit windows.

In memory for one process; in Redis when `REDIS_URL` is set, so that several server processes
see one cache, one set of stream sessions and one count per rate-limit window. Both stores offer
the same four atomic operations, which is all the contracts need.
"""

from __future__ import annotations

import time
from typing import Protocol


class StateStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def take(self, key: str) -> bytes | None:
        """Get and delete in one step: of two concurrent takers, one gets the value."""
        ...

    async def hit(self, key: str, window_s: float) -> tuple[int, float]:
        """Count one hit in the fixed window that `key` names; (hits so far, seconds left in it)."""
        ...

    async def close(self) -> None: ...


class MemoryStore:
    """A dict with expiry times; expired keys are dropped when met and swept now and then."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[float, bytes | int]] = {}
        self._next_sweep = 0.0

    def _live(self, key: str, now: float) -> bytes | int | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] <= now:
            del self._data[key]
            return None
        return item[1]

    def _sweep(self, now: float) -> None:
        if now >= self._next_sweep:
            self._next_sweep = now + 10.0
            for key in [k for k, (expiry, _) in self._data.items() if expiry <= now]:
                del self._data[key]

    async def get(self, key: str) -> bytes | None:
        value = self._live(key, time.monotonic())
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        now = time.monotonic()
        self._sweep(now)
        self._data[key] = (now + ttl_s, value)

    async def take(self, key: str) -> bytes | None:
        value = self._live(key, time.monotonic())
        self._data.pop(key, None)
        return value if isinstance(value, bytes) else None

    async def hit(self, key: str, window_s: float) -> tuple[int, float]:
        now = time.monotonic()
        self._sweep(now)
        count = self._live(key, now)
        if not isinstance(count, int):
            self._data[key] = (now + window_s, 1)
            return 1, window_s
        expiry = self._data[key][0]
        self._data[key] = (expiry, count + 1)
        return count + 1, expiry - now

    async def close(self) -> None:
        self._data.clear()


# One atomic step: count the hit, and start the window's expiry if it has none yet (the first hit,
# or a key left without one). A script rather than PEXPIRE ... NX, which needs Redis 7 (Ubuntu 22.04
# ships 6.0).
_HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


class RedisStore:
    """The same operations on Redis, with no command newer than Redis 2.6: GET + DEL in one transaction
    for take, a script of INCR + PEXPIRE (on the first hit) for windows."""

    def __init__(self, url: str, prefix: str = "refserver:") -> None:
        import redis.asyncio as redis  # only when Redis is configured

        self._redis = redis.from_url(url)
        self._prefix = prefix
        self._hit = self._redis.register_script(_HIT_SCRIPT)

    async def get(self, key: str) -> bytes | None:
        return await self._redis.get(self._prefix + key)

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._redis.set(self._prefix + key, value, px=max(1, int(ttl_s * 1000)))

    async def take(self, key: str) -> bytes | None:
        async with self._redis.pipeline(transaction=True) as pipe:  # MULTI GET DEL EXEC: GETDEL needs Redis 6.2
            pipe.get(self._prefix + key)
            pipe.delete(self._prefix + key)
            value, _ = await pipe.execute()
        return value

    async def hit(self, key: str, window_s: float) -> tuple[int, float]:
        count, ttl_ms = await self._hit(keys=[self._prefix + key], args=[max(1, int(window_s * 1000))])
        return int(count), max(int(ttl_ms), 0) / 1000.0

    async def close(self) -> None:
        await self._redis.aclose()


def open_state(redis_url: str | None) -> StateStore:
    return RedisStore(redis_url) if redis_url else MemoryStore()
