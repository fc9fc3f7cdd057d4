"""The core every profile shares: conversations, turns, the LLM call, the cache and the stream lifecycle.

A profile is an adapter: it validates its own requests, names its own events and joins; what a
turn does (history to the LLM in order, the user message stored before the call, the assistant
message stored after, a stop that cancels the upstream call and keeps what was streamed) lives
here once.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from ._auth import Authenticator
from ._cache import ResponseCache
from ._limits import RateLimiter
from ._llm import ChatMessages, LlmClient, LlmError, StreamState
from ._settings import Settings
from ._state import StateStore, open_state
from ._store import Message, Store

__all__ = ["Answer", "ChatCore", "LlmError"]


def as_llm_messages(history: list[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in history]


@dataclass(slots=True)
class Answer:
    """One streamed answer as it goes: its chunks so far and how it ended."""

    chunks: list[str] = field(default_factory=list)
    outcome: str = "streaming"  # "completed" | "failed" | "cancelled"
    error: str | None = None
    cached: bool = False
    upstream: StreamState = field(default_factory=StreamState)

    @property
    def text(self) -> str:
        return "".join(self.chunks)


class ChatCore:
    """Built synchronously (so route handlers can close over it); `start()` and `close()` do the I/O."""

    def __init__(self, settings: Settings, llm_base_url: str) -> None:
        self.settings = settings
        self.store = Store(settings.database_url)
        self.state: StateStore = open_state(settings.redis_url)
        self.llm = LlmClient(settings, llm_base_url)
        self.cache = ResponseCache(self.state, settings.cache_ttl_s)
        self.limits = RateLimiter(settings, self.state)
        self.auth = Authenticator(settings.jwt_secret, require_exp=settings.require_exp)

    async def start(self) -> None:
        await self.store.create_tables()

    async def close(self) -> None:
        await self.llm.close()
        await self.state.close()
        await self.store.close()

    # -- turns ------------------------------------------------------------------------------------

    async def llm_messages(self, conversation_id: str, *, last: int | None = None) -> list[dict[str, str]]:
        """The stored conversation as the LLM gets it, the system prompt (if any) first."""
        return [*self.preamble(), *as_llm_messages(await self.store.messages(conversation_id, last=last))]

    def preamble(self) -> list[dict[str, str]]:
        """What the LLM gets before any stored message: the system prompt, if one is set."""
        prompt = self.settings.system_prompt
        return [{"role": "system", "content": prompt}] if prompt else []

    def model_allowed(self, user_id: str, model: str) -> bool:
        plan = self.settings.user_plans.get(user_id, self.settings.default_plan)
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.settings.plans[plan])

    async def answer(
        self,
        conversation_id: str,
        model: str,
        messages: ChatMessages,
        answer: Answer,
        *,
        cache: bool = False,
        cached: list[str] | None = None,
        store: bool = True,
        deferred: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncIterator[str]:
        """The LLM's answer chunk by chunk, kept in `answer`; with `cache`, a completed answer is
        cached, and `cached` (the entry the caller looked up, to tell the client before the first
        token) is replayed instead of calling the LLM.

        When it ends the assistant message is stored (if `store`): the whole answer when complete,
        what was streamed when the client left (cancelled), nothing when the LLM failed. A failure
        is `answer.outcome == "failed"` with `answer.error`, not an exception: the profile turns it
        into its error event. `deferred` holds writes a profile puts off until the answer ends, so
        that no database work stands between the request and the LLM call (`query-stream` stores
        its turn after streaming, as its seed does); it runs first, whatever the outcome.
        """
        try:
            if cached is not None:
                answer.cached = True
                for chunk in cached:
                    answer.chunks.append(chunk)
                    yield chunk
            else:
                # aclosing: a stop at a `yield` closes the upstream stream now, not at garbage collection.
                async with contextlib.aclosing(self.llm.stream(model, messages, answer.upstream)) as chunks:
                    async for chunk in chunks:
                        answer.chunks.append(chunk)
                        yield chunk
            answer.outcome = "completed"
        except LlmError as err:
            answer.outcome, answer.error = "failed", str(err)
        except BaseException:  # the client left: CancelledError, or GeneratorExit on aclose()
            answer.outcome = "cancelled"
            raise
        finally:
            with anyio.CancelScope(shield=True):  # a cancelled stream must still record its turn
                if deferred is not None:
                    await deferred()
                await self._finish(conversation_id, model, messages, answer, cache=cache, store=store)

    async def _finish(
        self, conversation_id: str, model: str, messages: ChatMessages, answer: Answer, *, cache: bool, store: bool
    ) -> None:
        if answer.outcome == "completed" and cache and not answer.cached:
            await self.cache.put(model, messages, answer.chunks)
        if store and answer.outcome in ("completed", "cancelled") and answer.chunks:
            await self.store.add_message(conversation_id, "assistant", answer.text)


async def reply(
    core: ChatCore,
    conversation_id: str,
    model: str,
    messages: ChatMessages,
    *,
    deferred: Callable[[], Awaitable[None]] | None = None,
) -> Answer:
    """A whole answer, not streamed (the profiles' JSON chat calls); stored like a streamed one."""
    answer = Answer()
    async for _ in core.answer(conversation_id, model, messages, answer, deferred=deferred):
        pass
    return answer
