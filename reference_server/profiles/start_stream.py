"""`start-stream` (seed 002): `POST /chat/start` makes a stream session, a browser's EventSource GETs it once.

Stream grammar `token* (done | error)`: `{"type":"token","content":TEXT}` per LLM chunk (the client
concatenates them), then `{"type":"done"}` or `{"type":"error","message"}`. Answers come from the
response cache when the same model was asked the same conversation within `cache_ttl_s`; the stream
response says which in `X-Cache: HIT|MISS`.

A stream session lives in the shared state (so any worker can stream it) under
`stream-session:<id>`, kept `session_ttl_s` plus a margin so that an expired session can still be
told from an unknown one. Streaming it takes it atomically and leaves a tombstone: of two
concurrent GETs exactly one streams, and a later GET gets 410.

Choices where the contract is silent:
- There is no token: `userId` in the body names the user, as in the seed. `GET /chat/stream` and
  `GET /chat/history` take an optional `userId` query parameter; when given and not the owner,
  the answer is 404 (as for an unknown id, so ids do not leak), and a session is not used up by it.
- Refusals: unknown session 404; expired or already streamed 410 (for max(`session_ttl_s`, 60 s)
  after the expiry; after that it is unknown, 404). All with a JSON body, before the stream starts.
- `/chat/start` checks, in order: the body (400: `prompt` 1 to `message_max_chars` characters, bounds
  of this server's own, for the contract states none; `modelId` and `userId` non-empty; unknown fields
  rejected), a configured rate limit (429), the plan (403), the chat (404 for an unknown `chatId` or
  another user's). A new chat's title is the prompt's first 80 characters.
- The LLM gets the chat's whole history as it is when the stream starts (system prompt first).
- `rate_limits` may name `start-stream` (none by default): it counts `/chat/start` per `userId`.
- A comment line (`: keep-alive`) goes out whenever the LLM is silent for `heartbeat_s`, as the
  contract recommends (the seed sends none); clients skip comments.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import get, post
from litestar.exceptions import HTTPException, NotFoundException, PermissionDeniedException, ValidationException
from litestar.params import JSONBody, QueryParameter
from litestar.response import Stream

from .._chat import Answer, ChatCore
from .._sse_encoder import data_event, event_stream, text_event, with_heartbeats
from .._store import Conversation, iso
from ._adapter import ContractAdapter

NAME = "start-stream"
token_event = text_event({"type": "token"}, "content")  # the per-token event, templated once
HEARTBEAT = b": keep-alive\n\n"
MIN_MARGIN_S = 60.0  # how long an expired or used session is remembered, at least
TITLE_CHARS = 80

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
SessionIdQuery = Annotated[str, QueryParameter(name="sessionId", min_length=1)]
ChatIdQuery = Annotated[str, QueryParameter(name="chatId", min_length=1)]
UserIdQuery = Annotated[str | None, QueryParameter(name="userId", min_length=1)]


class StartBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    prompt: Annotated[str, msgspec.Meta(min_length=1)]
    model_id: NonEmpty
    user_id: NonEmpty
    chat_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class StreamSession(msgspec.Struct, rename="camel"):
    chat_id: str
    user_id: str
    model_id: str
    expires_at: float  # wall-clock seconds (time.time()), so that every worker reads it alike


class Gone(HTTPException):
    status_code = 410


def session_key(session_id: str) -> str:
    return f"stream-session:{session_id}"


def used_key(session_id: str) -> str:
    return f"stream-session-used:{session_id}"


def handlers(core: ChatCore) -> list[Any]:
    settings, store, state = core.settings, core.store, core.state
    margin_s = max(settings.session_ttl_s, MIN_MARGIN_S)

    async def owned_chat(chat_id: str, user_id: str | None) -> Conversation:
        """The chat, if it exists and (when `user_id` is given) is that user's; 404 otherwise."""
        chat = await store.conversation(NAME, chat_id)
        if chat is None or (user_id is not None and chat.owner != user_id):
            raise NotFoundException(f"no chat {chat_id!r}")
        return chat

    @post("/chat/start", status_code=200, opt={"refusals": (403, 404), "rate_limited": True})
    async def start(data: JSONBody[StartBody]) -> dict[str, str]:
        if len(data.prompt) > settings.message_max_chars:
            message = f"at most {settings.message_max_chars} characters, got {len(data.prompt)}"
            raise ValidationException(detail=f"prompt: {message}", extra=[{"key": "prompt", "message": message}])
        await core.limits.check(NAME, data.user_id)
        if not core.model_allowed(data.user_id, data.model_id):
            raise PermissionDeniedException(f"model {data.model_id!r} is not in the plan of user {data.user_id!r}")
        if data.chat_id is None:
            chat_id = (await store.create_conversation(NAME, owner=data.user_id, title=data.prompt[:TITLE_CHARS])).id
        else:
            chat_id = (await owned_chat(data.chat_id, data.user_id)).id
        await store.add_message(chat_id, "user", data.prompt)
        session_id = str(uuid.uuid4())
        session = StreamSession(chat_id, data.user_id, data.model_id, time.time() + settings.session_ttl_s)
        await state.set(session_key(session_id), msgspec.json.encode(session), settings.session_ttl_s + margin_s)
        return {"sessionId": session_id, "chatId": chat_id}

    async def claim(session_id: str, user_id: str | None) -> StreamSession:
        """The session, used up by this call; refused (404 / 410) if it cannot be streamed."""
        raw = await state.get(session_key(session_id))
        if raw is None:
            if await state.get(used_key(session_id)) is not None:
                raise Gone(detail=f"stream session {session_id!r} was already streamed")
            raise NotFoundException(f"no stream session {session_id!r}")
        session = msgspec.json.decode(raw, type=StreamSession)
        if user_id is not None and user_id != session.user_id:
            raise NotFoundException(f"no stream session {session_id!r}")
        left_s = session.expires_at - time.time()
        if left_s <= 0:
            raise Gone(detail=f"stream session {session_id!r} expired")
        # The tombstone first, so that a concurrent GET that finds no session finds it and gets 410.
        await state.set(used_key(session_id), b"1", left_s + margin_s)
        if await state.take(session_key(session_id)) is None:
            raise Gone(detail=f"stream session {session_id!r} was already streamed")
        return session

    @get("/chat/stream", opt={"refusals": (404, 410)})
    async def stream_session(session_id: SessionIdQuery, user_id: UserIdQuery = None) -> Stream:
        session = await claim(session_id, user_id)
        chat_id, model = session.chat_id, session.model_id
        messages = await core.llm_messages(chat_id)
        # Looked up here, once: the header goes out before the first token, and answer() replays it.
        cached = await core.cache.get(model, messages)
        hit = cached is not None

        async def events() -> AsyncIterator[bytes]:
            answer = Answer()
            async for chunk in core.answer(chat_id, model, messages, answer, cache=True, cached=cached):
                yield token_event(chunk)
            if answer.outcome == "completed":
                yield data_event({"type": "done"})
            else:
                yield data_event({"type": "error", "message": answer.error or "the LLM failed"})

        return event_stream(
            with_heartbeats(events(), settings.heartbeat_s, lambda: HEARTBEAT),
            headers={"X-Cache": "HIT" if hit else "MISS"},
        )

    @get("/chat/history", opt={"refusals": (404,)})
    async def history(chat_id: ChatIdQuery, user_id: UserIdQuery = None) -> list[dict[str, str]]:
        chat = await owned_chat(chat_id, user_id)
        return [
            {"role": m.role, "content": m.content, "createdAt": iso(m.created_at)}
            for m in await store.messages(chat.id)
        ]

    return [start, stream_session, history]


ADAPTER = ContractAdapter(NAME, "POST /chat/start, then a single-use EventSource GET stream; response cache", handlers)
