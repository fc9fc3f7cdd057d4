"""`sessions` (seed 000): a session API under `/api` with a POST stream of whole words.

Stream grammar `session content* (done | error)`; each `content` event carries one
whitespace-delimited word with its `index`, and the client joins words with one space.
Choices where the contract is silent: an unknown `session_id` (in `POST /api/sessions` or a chat
call) makes a session with that id, as the seed's agent keys its sessions by the client's id (an id
that another profile's conversation already has is 409: ids are one namespace in the store);
`DELETE` clears the history and keeps the session; every call but `/api/health` counts toward
the per-client rate limit; a comment line (`: keep-alive`) goes out whenever the stream is silent
for `heartbeat_s`, as every other profile does.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Request, delete, get, post
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.params import FromPath, JSONBody
from litestar.response import Stream

from .._chat import Answer, ChatCore, reply
from .._sse_encoder import data_event, event_stream, with_heartbeats
from .._store import iso, utc_now
from ._adapter import ContractAdapter

NAME = "sessions"
HEARTBEAT = b": keep-alive\n\n"
_SESSION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# In the body schema too, so that the OpenAPI document says which ids a client may choose.
SessionId = Annotated[str, msgspec.Meta(pattern=f"^{_SESSION_ID.pattern}$")]


class SessionBody(msgspec.Struct, forbid_unknown_fields=True):
    session_id: SessionId | None = None


class ChatBody(msgspec.Struct, forbid_unknown_fields=True):
    message: Annotated[str, msgspec.Meta(min_length=1)]
    session_id: SessionId | None = None


def words(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    """Re-cut a stream of text chunks into whole words: a word goes out once whitespace follows it."""

    async def cut() -> AsyncIterator[str]:
        pending = ""
        async for chunk in chunks:
            pending += chunk
            parts = pending.split()
            if not parts:
                pending = ""
                continue
            # The last part may be an unfinished word: it waits for what follows.
            pending = "" if pending[-1].isspace() else parts.pop()
            for word in parts:
                yield word
        if pending:
            yield pending

    return cut()


def handlers(core: ChatCore) -> list[Any]:
    settings, store = core.settings, core.store
    model = settings.default_model

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    async def session(session_id: str | None) -> str:
        """The id of the session to use: the given one (made if new), else a new one."""
        if session_id is None:
            return (await store.create_conversation(NAME)).id
        if not _SESSION_ID.fullmatch(session_id):
            raise ValidationException(
                detail="session_id: 1 to 64 characters of letters, digits and _ . : -",
                extra=[{"key": "session_id", "message": "invalid session id"}],
            )
        if not await store.ensure_conversation(NAME, session_id):
            raise HTTPException(status_code=409, detail=f"session_id {session_id!r} is taken; choose another")
        return session_id

    def check_message(body: ChatBody) -> None:
        if len(body.message) > settings.message_max_chars:
            raise ValidationException(
                detail=f"message: at most {settings.message_max_chars} characters, got {len(body.message)}",
                extra=[{"key": "message", "message": f"longer than {settings.message_max_chars} characters"}],
            )

    async def turn(body: ChatBody, request: Request) -> tuple[str, list[dict[str, str]]]:
        await core.limits.check(NAME, client_of(request))
        check_message(body)
        session_id = await session(body.session_id)
        messages = await core.llm_messages(session_id)
        await store.add_message(session_id, "user", body.message)
        return session_id, [*messages, {"role": "user", "content": body.message}]

    @get("/api/health", sync_to_thread=False)
    def health() -> dict[str, Any]:
        return {"status": "healthy", "profile": NAME, "timestamp": iso(utc_now())}

    @post("/api/sessions", status_code=201, opt={"refusals": (409,), "rate_limited": True})
    async def create_session(request: Request, data: JSONBody[SessionBody | None] = None) -> dict[str, str]:
        await core.limits.check(NAME, client_of(request))
        return {"session_id": await session(data.session_id if data else None)}

    @post("/api/chat", status_code=200, opt={"refusals": (409, 503), "rate_limited": True})
    async def chat(data: JSONBody[ChatBody], request: Request) -> dict[str, Any]:
        session_id, messages = await turn(data, request)
        answer = await reply(core, session_id, model, messages)
        if answer.outcome != "completed":
            raise HTTPException(status_code=503, detail=f"the LLM failed: {answer.error}")
        return {
            "response": answer.text,
            "session_id": session_id,
            "tokens_used": answer.upstream.usage.total,
            "timestamp": iso(utc_now()),
        }

    @post("/api/chat/stream", status_code=200, opt={"refusals": (409,), "rate_limited": True})
    async def chat_stream(data: JSONBody[ChatBody], request: Request) -> Stream:
        session_id, messages = await turn(data, request)

        async def events() -> AsyncIterator[bytes]:
            yield data_event({"type": "session", "session_id": session_id})
            answer = Answer()
            index = 0
            async for word in words(core.answer(session_id, model, messages, answer)):
                yield data_event({"type": "content", "content": word, "index": index})
                index += 1
            if answer.outcome == "completed":
                yield data_event({"type": "done"})
            else:
                yield data_event({"type": "error", "error": answer.error or "the LLM failed"})

        return event_stream(with_heartbeats(events(), settings.heartbeat_s, lambda: HEARTBEAT))

    @get("/api/sessions/{session_id:str}/history", opt={"refusals": (404,), "rate_limited": True})
    async def history(session_id: FromPath[str], request: Request) -> dict[str, Any]:
        await core.limits.check(NAME, client_of(request))
        if await store.conversation(NAME, session_id) is None:
            raise NotFoundException(f"no session {session_id!r}")
        return {
            "session_id": session_id,
            "history": [
                {"role": m.role, "content": m.content, "timestamp": iso(m.created_at)}
                for m in await store.messages(session_id)
            ],
        }

    @delete("/api/sessions/{session_id:str}", status_code=200, opt={"refusals": (404,), "rate_limited": True})
    async def clear(session_id: FromPath[str], request: Request) -> dict[str, str]:
        await core.limits.check(NAME, client_of(request))
        if await store.conversation(NAME, session_id) is None:
            raise NotFoundException(f"no session {session_id!r}")
        await store.clear_messages(session_id)
        return {"session_id": session_id}

    return [health, create_session, chat, chat_stream, history, clear]


ADAPTER = ContractAdapter(NAME, "session API, POST stream of whole words", handlers)
