"""The implementations that prove the conformance suite: negative fixtures and valid-but-unusual ones.

    python -m tests.scenarios.implementations --port 0 --llm-base-url http://127.0.0.1:8000 [--data-dir DIR]

One process serves every implementation under its own prefix, `/impl/<name>/...`. Each is the reference
server (all five profiles, its own SQLite file and in-memory state) with at most one change: a defect
that the suite must fail on exactly one check (`breaks`), or an unusual framing that it must pass
(`breaks` None). `/impl/reference/` is the reference server as it is. A conformance run is told
`RUN_SETTINGS` about every one of them; the defects that lie about their settings differ from it.

The host answers as soon as it has imported; then it builds and starts every implementation's app in
turn (driving its lifespan), building one out of turn on its first request (`--lazy`: only then).
Every started app is shut down with the host. `GET /` lists them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts import contract_profiles
from mockllm.launcher import START_TIMEOUT_S, ServerProcess, start_listening
from reference_server._app import create_app
from reference_server._listen import BACKLOG, listening_socket
from reference_server._settings import DEFAULT_PROJECT_ID, Settings, parse_settings

from . import _defects as d

JWT_SECRET = "conformance-fixtures-secret-0123456789abcdef"
HEARTBEAT_S = 0.5
ALLOWED_MODEL = "mock-model"
FORBIDDEN_MODEL = "gpt-4o"
CORS_ORIGIN = "http://app.example"
# Past the limits a run derives from these settings (scenarios/_timing.py: a first event within the
# LLM timeout + a heartbeat + 2 s = 7.5 s; no read gap over the LLM's own longest silence + 5 s).
FIRST_EVENT_DELAY_S = 10.5
MID_STREAM_GAP_S = 5.5

# What every implementation on the host is configured with (the settings defects change one value).
COMMON_SETTINGS: dict[str, Any] = {
    "jwt_secret": JWT_SECRET,
    "heartbeat_s": HEARTBEAT_S,
    "session_ttl_s": 3.0,
    "cache_ttl_s": 3600,
    "llm_timeout_s": 5,
    "cors_origins": [CORS_ORIGIN],
    # conversations counts per user, and a run mints users per scenario: 20 is plenty, and the rate-limit
    # scenario's 21 streams fit in the window (1001 took over 60 s under load, so the window reset).
    "rate_limits": {"sessions": {"count": 100, "window_s": 60}, "conversations": {"count": 20, "window_s": 60}},
}

# What a conformance run is told about every implementation on the host.
RUN_SETTINGS: dict[str, str] = {
    "jwt_secret": JWT_SECRET,
    "heartbeat_s": str(HEARTBEAT_S),
    "session_ttl_s": "3",
    "allowed_model": ALLOWED_MODEL,
    "forbidden_model": FORBIDDEN_MODEL,
    "project_id": DEFAULT_PROJECT_ID,
    "rate_limit_sessions": "100/60",
    "rate_limit_conversations": "20/60",
    "cors_origin": CORS_ORIGIN,
    "upstream_timeout_s": "5",
}


@dataclass(frozen=True)
class Implementation:
    name: str
    profiles: tuple[str, ...]  # the profiles to run the suite on against it
    breaks: str | None  # the check id it must fail; None: valid, it must pass everything
    summary: str
    # A valid one's tolerated deviation: the SHOULD check id it must fail (warn on), and only that
    warns: str | None = None


@dataclass(frozen=True)
class _Recipe:
    build: d.Build = d.plain
    settings: Mapping[str, Any] = field(default_factory=dict)


IMPLEMENTATIONS: dict[str, Implementation] = {}
_RECIPES: dict[str, _Recipe] = {}


def _add(
    name: str,
    profiles: tuple[str, ...] | str,
    breaks: str | None,
    summary: str,
    build: d.Build = d.plain,
    *,
    warns: str | None = None,
    **settings: Any,
) -> None:
    profiles = (profiles,) if isinstance(profiles, str) else profiles
    assert warns is None or breaks is None, f"{name}: a defect breaks one check; only a valid fixture warns"
    IMPLEMENTATIONS[name] = Implementation(name, profiles, breaks, summary, warns)
    _RECIPES[name] = _Recipe(build, settings)


ALL = contract_profiles()
SS, CV, ST, QS, CE = ALL[:5]  # the built-in five, in the seeds' order: sessions, conversations, start-stream ...
streams = d.streams

_add("reference", ALL, None, "the reference server as it is")

# Negative fixtures: one defect each; `breaks` is the one check the suite must fail.
_add(
    "no-terminal",
    (SS, QS),
    "stream.terminal",
    "stream edit: a successful stream's done/complete event is dropped",
    streams(d.DropKind, kind="done"),
)
_add(
    "silent-close-on-error",
    ST,
    "stream.terminal",
    "stream edit: after the first token, an error event is dropped and the stream just ends",
    streams(d.DropKind, kind="error", after_tokens=True),
)
_add(
    "event-after-terminal",
    (ST, CE),
    "stream.after-terminal",
    "stream edit: one more token event (empty text) after the terminal one",
    streams(d.TokenAfterTerminal),
)
_add(
    "unknown-event",
    (SS, CV),
    "stream.grammar",
    'stream edit: {"type":"debug"} (conversations: {"status":"thinking"}) just before the terminal event',
    streams(d.UnknownBeforeTerminal),
)
_add(
    "lost-character",
    ALL,
    "stream.text",
    "stream edit: the first token of 3+ characters loses its middle one (llm_complete loses the same one)",
    streams(d.LoseCharacter),
)
_add(
    "error-as-done",
    (SS, QS),
    "stream.outcome",
    "stream edit: an upstream failure ends with done/complete, not error",
    streams(d.ErrorAsDone),
)
_add(
    "hang-on-error",
    CE,
    "stream.deadline",
    "stream edit: on an upstream failure no error event and no end; heartbeats go on until the client leaves",
    streams(d.HangOnError, every_s=HEARTBEAT_S),
)
_add(
    "buffered",
    ST,
    "stream.incremental",
    "stream edit: events held and written in one piece at the end, or after 2 s without one (comments pass)",
    streams(d.Buffered, idle_s=2.0),
)
_add(
    "slow-first-event",
    QS,
    "stream.first-event",
    f"stream edit: each user's first stream (a cold start) goes out {FIRST_EVENT_DELAY_S:g} s late, pacing kept "
    "(an upstream failure releases it)",
    d.first_stream_per_user(streams(d.Delayed, seconds=FIRST_EVENT_DELAY_S)),
)
_add(
    "mid-stream-gap",
    SS,
    "stream.max-gap",
    f"stream edit: {MID_STREAM_GAP_S:g} s of silence on the wire before the 3rd event (unless a heartbeat came)",
    streams(d.Pause, before=3, seconds=MID_STREAM_GAP_S),
)
_add(
    "no-content-type",
    CE,
    "stream.content-type",
    "stream headers: Content-Type text/plain",
    streams(d.HeaderEdit, replace=((b"content-type", b"text/plain; charset=utf-8"),)),
)
_add(
    "no-cache-control",
    CE,
    "stream.cache-control",
    "stream headers: no Cache-Control",
    streams(d.HeaderEdit, drop=(b"cache-control",)),
)
_add(
    "no-accel-buffering",
    CE,
    "stream.accel-buffering",
    "stream headers: no X-Accel-Buffering",
    streams(d.HeaderEdit, drop=(b"x-accel-buffering",)),
)
_add(
    "non-json-event",
    ST,
    "wire.json",
    "stream edit: a `data: keep-alive` event after the first token",
    streams(d.NonJsonEvent),
)
_add(
    "bad-framing",
    CV,
    "wire.framing",
    "stream edit: `data: {}` and no blank line after the real end",
    streams(d.UnterminatedTail),
)
_add(
    "missing-field",
    (SS, CE),
    "stream.fields",
    "stream edit: token events lose a field (sessions: index; conversation-events: timestamp)",
    streams(d.DropField, fields={SS: "index", CE: "timestamp"}),
)
_add(
    "complete-mismatch",
    CE,
    "stream.fields",
    "stream edit: llm_complete's content loses its last character (the chunks stay right)",
    streams(d.CompleteMismatch),
)
_add("no-heartbeat", CE, "stream.heartbeat", "settings: heartbeat_s 60 (the run is told 0.5)", heartbeat_s=60)
_add(
    "no-history",
    ALL,
    "turn.continuity",
    "core: the LLM is sent the newest message alone while fewer than 10 precede it (query-stream's full window passes)",
    d.llm_sent(d.newest_only),
)
_add(
    "short-window",
    QS,
    "turn.window",
    "core: a full window of 10 history messages goes to the LLM without its oldest",
    d.llm_sent(d.one_short),
)
_add(
    "non-stream-wrong",
    (SS, QS),
    "turn.non-stream",
    "answer edit: POST /api/chat and /api/v1/ai/chat `response` loses its middle word",
    d.answers(d.word_dropped),
)
_add(
    "history-no-assistant",
    (SS, ST),
    "history.content",
    "answer edit + core: history calls omit completed assistant answers (a stopped stream's partial one shows)",
    d.history_without_answers,
)
_add(
    "delete-noop",
    SS,
    "history.delete",
    "core: DELETE answers 200 but the store's clear deletes nothing",
    d.clear_does_nothing,
)
_add("partial-not-stored", ST, "history.partial", "core: an answer the client stopped is not stored", d.partial_dropped)
_add(
    "abort-not-cancelled",
    ST,
    "abort.upstream-cancelled",
    "core: the LLM stream is read by a task of its own that a client's stop leaves running to the end",
    d.upstream_detached,
)
_add(
    "broken-after-abort",
    SS,
    "abort.server-healthy",
    "gate: after a client stops a stream, the next 3 requests about that session get 500",
    d.BrokenAfterAbort,
)
_add(
    "no-cache",
    ST,
    "cache.hit",
    "core: a cache that never holds anything (X-Cache: MISS always)",
    d.cache_replaced(lambda core: d.NoCache()),
)
_add(
    "cache-key-prompt-only",
    ST,
    "cache.key",
    "core: cache keyed by model and the newest message only",
    d.cache_replaced(lambda core: d.LastPromptCache(core.state, core.settings.cache_ttl_s)),
)
_add(
    "accepts-long-message",
    (SS, QS),
    "validation.status",
    "request edit: a message over 2000 characters is cut to 2000 and served (where the contract states that limit)",
    d.requests(d.long_message_cut),
)
_add(
    "rejects-after-calling",
    SS,
    "validation.no-side-effect",
    "gate: a rejected chat call gets its 4xx after a fixed-up copy was served (LLM called, turn stored)",
    d.RejectsAfterCalling,
)
_add(
    "bad-body-500",
    SS,
    "validation.status",
    "gate: a chat body that is not a JSON object (not JSON, or an array) gets 500 with a JSON body",
    d.ServerErrorOnBadBody,
)
_add(
    "number-content-served",
    CE,
    "validation.status",
    "request edit: a message `content` that is a number is served as its text",
    d.requests(d.number_content_served),
)
_add(
    "stored-when-refused",
    ST,
    "validation.no-side-effect",
    "gate: a /chat/start refused with 400/422 still stores its prompt in the chat it names (no LLM call)",
    d.StoredWhenRefused,
)
_add(
    "unknown-field-422",
    SS,
    "validation.status",
    "answer edit: every 400 answers 422 instead (FastAPI's default), an unknown body field's too",
    d.answers(d.validation_as_422),
)
_add(
    "plain-text-errors",
    CV,
    "validation.body",
    'answer edit: 400/422 bodies as text/plain "bad request: <detail>" (still naming the field)',
    d.answers(d.plain_text_errors),
)
_add(
    "vague-errors",
    SS,
    "validation.names-field",
    'answer edit: 400/422 bodies are {"error":"bad request"}',
    d.answers(d.vague_errors),
)
_add(
    "no-auth-required",
    (CV, QS),
    "auth.missing",
    "core: a request with no token is served as user `anonymous`",
    d.anonymous_allowed,
)
_add("unverified-jwt", CE, "auth.invalid", "core: a token's signature is not checked", d.signature_unchecked)
_add("expiry-ignored", CV, "auth.invalid", "core: a token's `exp` is not checked", d.expiry_unchecked)
_add("alg-none-accepted", QS, "auth.invalid", "core: a token with `alg: none` is believed", d.alg_none_accepted)
_add(
    "shared-user",
    CV,
    "auth.isolation",
    "core: every stored conversation reads as the caller's own (as if all tokens were one user)",
    d.owners_unchecked,
)
_add(
    "no-query-token",
    CE,
    "auth.query-token",
    "request edit: ?access_token= is removed before the app sees it, but on GET (EventSource still works)",
    d.requests(d.query_token_ignored),
)
_add("no-plans", ST, "plan.forbidden", "settings: every plan allows every model", plans={"free": ["*"], "pro": ["*"]})
_add(
    "reusable-session",
    ST,
    "session.single-use",
    "core: claiming a stream session reads it without taking it (and restarts its lifetime)",
    d.sessions_reusable,
)
_add(
    "unknown-session-ok",
    ST,
    "session.unknown",
    "answer edit: an unknown stream session streams an empty answer",
    d.answers(d.unknown_session_streams),
)
_add("no-session-expiry", ST, "session.expiry", "settings: session_ttl_s 600 (the run is told 3)", session_ttl_s=600)
_add(
    "no-rate-limit",
    SS,
    "ratelimit.enforced",
    "settings: sessions rate limit 100000/60 (the run is told 100/60)",
    rate_limits={"sessions": {"count": 100_000, "window_s": 60}},
)
_add("no-retry-after", SS, "ratelimit.retry-after", "answer edit: 429 without Retry-After", d.answers(d.no_retry_after))
_add(
    "any-project",
    QS,
    "project.unknown",
    "request edit: an unknown (well-formed) projectId becomes the known one",
    d.requests(d.any_project(DEFAULT_PROJECT_ID)),
)
_add(
    "health-down",
    SS,
    "api.status",
    "answer edit: GET /api/health answers 503 (with its usual body)",
    d.answers(d.health_down),
)
_add("no-cors", SS, "cors.allow-origin", "settings: no CORS origin allowed", cors_origins=[])
_add(
    "health-status-renamed",
    SS,
    "api.json",
    "answer edit: GET /api/health answers 200 with `status` renamed `state` (value and other fields kept)",
    d.answers(d.health_status_renamed),
)
_add(
    "llm-failure-as-200",
    SS,
    "api.status",
    "answer edit: when the LLM fails, POST /api/chat answers 200 with an empty `response` instead of 503",
    d.answers(d.llm_failure_as_empty_answer),
)
_add(
    "reopen-makes-new",
    SS,
    "api.json",
    "request edit: POST /api/sessions ignores a given `session_id` and answers a new session",
    d.requests(d.given_session_ignored),
)
_add(
    "history-timestamps-dropped",
    SS,
    "api.json",
    "answer edit: the sessions history lists its messages without `timestamp`",
    d.answers(d.history_timestamps_dropped),
)
_add(
    "conversation-dates-dropped",
    CV,
    "api.json",
    "answer edit: POST /chat/conversation answers 201 without `createdAt` and `updatedAt`",
    d.answers(d.conversation_dates_dropped),
)
_add(
    "chat-metadata-dropped",
    QS,
    "api.json",
    "answer edit: POST /api/v1/ai/chat answers without `metadata`",
    d.answers(d.chat_metadata_dropped),
)
_add(
    "paced-cache",
    ST,
    "cache.faster",
    "core: a cache hit is replayed at the LLM's own pace (each chunk as late as it came from upstream)",
    d.cache_replayed_at_llm_pace,
)
# Issue 15 §3: unknown ids, error texts, CORS as Fetch has it, the stream's charset.
_add(
    "unknown-history-empty",
    (SS, ST),
    "conversation.unknown",
    "answer edit: the history of an unknown id answers 200 with an empty list instead of 404",
    d.answers(d.unknown_history_empty),
)
_add(
    "unknown-conversation-made",
    CV,
    "conversation.unknown",
    "core: a stream under an unknown (well-formed) conversationId makes that conversation and calls the LLM",
    d.made_when_unknown(CV),
)
_add(
    "upstream-url-in-errors",
    (SS, CE),
    "errors.no-internals",
    "stream edit: an error event says `upstream error: http://127.0.0.1:PORT/v1/chat/completions returned 500`",
    d.upstream_url_in_errors,
)
_add(
    "traceback-500",
    (SS, QS),
    "errors.no-internals",
    "answer edit: a 5xx answer (its status kept) carries the server's Python traceback",
    d.answers(d.traceback_in_5xx),
)
_add(
    "cors-star-credentials",
    SS,
    "cors.credentials",
    "headers: an allowed origin gets `Access-Control-Allow-Origin: *` with `Allow-Credentials: true`",
    d.cors_headers(d.star_with_credentials),
)
_add(
    "cors-any-origin",
    SS,
    "cors.foreign-origin",
    "headers: every Origin is echoed in Access-Control-Allow-Origin, the configured list or not",
    d.cors_headers(d.any_origin_echoed),
)
_add(
    "no-charset",
    (CE, SS),
    "stream.charset",
    "stream headers: Content-Type `text/event-stream`, without `; charset=utf-8` (a SHOULD)",
    streams(d.HeaderEdit, replace=((b"content-type", b"text/event-stream"),)),
)
# Issue 15 §1 and §3, the rest: one deviation judged once, refusals of the input, ownership on every
# call, incremental delivery as a MUST, one word per event, `system` only after a bet.
_add(
    "stream-202",
    (SS, CV),
    "api.status",
    "status edit: a POST that starts a stream answers 202 (the stream itself whole and right)",
    d.posted_streams_answer(202),
)
_add(
    "route-moved",
    SS,
    "api.status",
    "request edit: the chat stream route has moved: every POST /api/chat/stream answers the app's own 404",
    d.requests(d.route_moved("POST", r"/api/chat/stream/?")),
)
_add(
    "stream-owner-unchecked",
    CE,
    "auth.isolation",
    "core: GET .../{id}/stream does not check the owner (another user streams, and the LLM answers, "
    "the first user's conversation); posting a message still does",
    d.owners_unchecked_on("GET", r"/api/v1/chat/conversations/[^/]+/stream/?"),
)
_add(
    "send-owner-unchecked",
    QS,
    "auth.isolation",
    "core: POST /api/v1/ai/chat does not check the owner of its conversationId; the GET stream still does",
    d.owners_unchecked_on("POST", r"/api/v1/ai/chat/?"),
)
_add(
    "collect-then-send",
    (SS, QS),
    "stream.incremental",
    "stream edit: every event held until the stream ends, then written in one piece (comments pass)",
    streams(d.Buffered, idle_s=None),
)
_add(
    "two-words",
    SS,
    "stream.fields",
    'stream edit: each two content events go out as one carrying both words, "a b" (the joined text kept)',
    streams(d.TwoWords),
)
_add(
    "system-always",
    CE,
    "stream.after-terminal",
    "stream edit: a `system` event after every `llm_complete`, the answer naming a bet or odds or not",
    streams(d.SystemAlways),
)

# Valid but unusual: the suite must pass every check on them.
_add(
    "retrying-upstream",
    (SS, QS),
    None,
    f"core: an LLM call failing before its first chunk is tried up to {d.UPSTREAM_ATTEMPTS} times (as the OpenAI SDK)",
    d.upstream_retried,
)
_add("crlf", ALL, None, "stream edit: every line ended by CRLF", streams(d.LineEnds, eol="\r\n"))
_add("lone-cr", (ST, CE), None, "stream edit: every line ended by a lone CR", streams(d.LineEnds, eol="\r"))
_add(
    "comments",
    (SS, QS),
    None,
    "stream edit: a `: note` comment block before each block, comment lines inside it",
    streams(d.Comments),
)
_add(
    "split-writes",
    ALL,
    None,
    "stream edit: each block in 1-7 byte writes ~1 ms apart, cut inside UTF-8 characters",
    streams(d.SplitWrites),
)
_add(
    "coalesced", (CV, ST), None, "stream edit: 2 or 3 blocks per write, none held back over 20 ms", streams(d.Coalesced)
)
_add(
    "event-id-fields",
    (SS, CE),
    None,
    "stream edit: `event: <type>` and `id: <n>` on each event, `retry: 3000` first",
    streams(d.EventFields),
)
_add("bom", QS, None, "stream edit: a byte order mark before the first event", streams(d.Bom))
_add("done-sentinel", (SS, ST), None, "stream edit: `data: [DONE]` after the terminal event", streams(d.DoneSentinel))
_add("extra-fields", ALL, None, "stream edit: unknown JSON fields added to every event", streams(d.ExtraFields))
_add(
    "multiline-json",
    QS,
    None,
    "stream edit: each JSON event pretty-printed over several data: lines",
    streams(d.MultilineJson),
)
_add(
    "gone-204",
    ST,
    None,
    "answer edit: a refused stream session answers 204 instead of 404/410",
    d.answers(d.refused_as_204),
)
_add(
    "eager-heartbeats",
    CE,
    None,
    "stream edit: a `: ping` comment every 100 ms until the terminal event",
    streams(d.EagerPings, every_s=0.1),
)
_add(
    "cors-exact-origin",
    SS,
    None,
    "headers: CORS by hand: exactly the configured origin echoed, with `Vary: Origin` and credentials allowed",
    d.cors_headers(d.exactly_origin(CORS_ORIGIN)),
)
# Valid where the contract leaves the choice open (issue 15 §1): the other choice than the reference's.
_add(
    "no-length-limit",
    (CV, ST, CE),
    None,
    "settings: message_max_chars 100000 (conversations, start-stream, conversation-events state no limit)",
    message_max_chars=100_000,
)
_add(
    "malformed-id-404",
    CE,
    None,
    "answer edit: a malformed conversation id gets 404, not 400 (contracts.md §5 names no status)",
    d.answers(d.malformed_id_as_404),
)
_add(
    "accepts-empty-message",
    (ST, QS, CE),
    None,
    "request edit: an empty prompt/message/content is served (no minimum is stated there): a SHOULD warning",
    d.empty_message_accepted,
    warns="validation.empty-message",
)
_add(
    "stream-201",
    (SS, CV),
    None,
    "status edit: a POST that starts a stream answers 201 (tolerated as a SHOULD deviation): a SHOULD warning",
    d.posted_streams_answer(201),
    warns="api.status-preferred",
)
_add(
    "system-then-done",
    CE,
    None,
    "stream edit: `data: [DONE]` last, after the `system` event that follows a bet's `llm_complete`",
    streams(d.DoneSentinel),
)
_add(
    "merged-tokens",
    (QS, CE, CV),
    None,
    "stream edit: two token events that come within 20 ms go out as one event carrying both texts",
    streams(d.MergedTokens),
)
_add(
    "others-403",
    (CE, QS),
    None,
    "core: another user's conversation id gets 403, not 404 (contracts.md: 404 or 403)",
    d.others_forbidden,
)
_add(
    "creates-on-unknown-id",
    QS,
    None,
    "core: a message under an unknown (well-formed) conversationId makes that conversation (clients choose ids)",
    d.made_when_unknown(QS),
)
_add(
    "unknown-session-404",
    SS,
    None,
    "gate: a chat call under an unknown session_id gets 404 and no LLM call, instead of making that session",
    d.unknown_session_refused,
)


def settings_for(name: str, data_dir: Path) -> Settings:
    """The common settings, its own SQLite file, then the implementation's own changes."""
    base = parse_settings({**COMMON_SETTINGS, "database_url": f"sqlite+aiosqlite:///{data_dir / name}.sqlite3"})
    return parse_settings(dict(_RECIPES[name].settings), base)


def openai_base_url(url: str) -> str:
    """The mock's root (`http://host:port`) or its OpenAI base: the OpenAI base (`.../v1`)."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


# -- the host ------------------------------------------------------------------------------------------


class _Lifespan:
    """Drives one app's ASGI lifespan protocol from the host: startup now, shutdown with the host."""

    def __init__(self, app: d.ASGIApp) -> None:
        self._to_app: asyncio.Queue[d.Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[d.Message] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self._task = asyncio.ensure_future(app(scope, self._to_app.get, self._from_app.put))

    async def _step(self, step: str) -> None:
        await self._to_app.put({"type": f"lifespan.{step}"})
        answer = asyncio.ensure_future(self._from_app.get())
        await asyncio.wait((answer, self._task), return_when=asyncio.FIRST_COMPLETED)
        if not answer.done():
            answer.cancel()
            raise RuntimeError(f"lifespan {step}: the app ended ({self._task.exception()!r})")
        message = answer.result()
        if message["type"] != f"lifespan.{step}.complete":
            raise RuntimeError(f"lifespan {step}: {message.get('message', message['type'])}")

    async def startup(self) -> None:
        await self._step("startup")

    async def shutdown(self) -> None:
        await self._step("shutdown")
        await self._task


_PREFIX = re.compile(r"/impl/(?P<name>[^/]+)(?P<rest>/.*)?")


class FixtureHost:
    """ASGI: `/impl/<name>/...` goes to that implementation's app with the prefix stripped from `path`
    and `raw_path` (Litestar routes on `path`); unknown names get a JSON 404."""

    def __init__(self, llm_base_url: str, data_dir: Path, *, warm: bool = True) -> None:
        self._llm_base_url = llm_base_url
        self._data_dir = data_dir
        self._warm = warm
        self._apps: dict[str, d.ASGIApp] = {}
        self._lifespans: list[_Lifespan] = []
        self._building: dict[str, asyncio.Lock] = {}
        self._warming: asyncio.Task[None] | None = None

    async def __call__(self, scope: d.Scope, receive: d.Receive, send: d.Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets here: the handshake is refused by returning
        found = _PREFIX.fullmatch(scope["path"])
        if found is None or found["name"] not in IMPLEMENTATIONS:
            await self._index(scope, send)
            return
        name, rest = found["name"], found["rest"] or "/"
        app = await self._app(name)
        prefix = f"/impl/{name}".encode()
        raw = scope.get("raw_path") or b""
        raw_rest = raw[len(prefix) :] if raw.startswith(prefix) else rest.encode()
        await app({**scope, "path": rest, "raw_path": raw_rest or b"/"}, receive, send)

    async def _index(self, scope: d.Scope, send: d.Send) -> None:
        listing = {
            name: {"profiles": list(impl.profiles), "breaks": impl.breaks, "summary": impl.summary}
            for name, impl in IMPLEMENTATIONS.items()
        }
        if scope["path"] in ("/", "/impl", "/impl/"):
            await d.send_json(send, 200, listing)
        else:
            detail = f"no implementation at {scope['path']!r}: use /impl/<name>/..."
            await d.send_json(send, 404, {"status_code": 404, "detail": detail, "implementations": sorted(listing)})

    async def _app(self, name: str) -> d.ASGIApp:
        """The implementation's app, built (in a thread: the other apps' streams keep their pace) and
        started on first use."""
        app = self._apps.get(name)
        if app is not None:
            return app
        async with self._building.setdefault(name, asyncio.Lock()):
            if name not in self._apps:
                app = await asyncio.to_thread(self._build, name)
                lifespan = _Lifespan(app)
                await lifespan.startup()
                self._lifespans.append(lifespan)
                self._apps[name] = app
        return self._apps[name]

    def _build(self, name: str) -> d.ASGIApp:
        return _RECIPES[name].build(create_app(settings_for(name, self._data_dir), self._llm_base_url))

    async def _warm_up(self) -> None:
        """Every app built in turn once the host is up, so that few are built while others stream."""
        for name in IMPLEMENTATIONS:
            try:
                await self._app(name)
            except Exception as err:  # its own requests will fail loudly; the others still warm up
                print(f"implementations: {name} did not start: {err!r}", file=sys.stderr, flush=True)
        print(f"implementations warm: {len(self._apps)} apps started", flush=True)

    async def _lifespan(self, receive: d.Receive, send: d.Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self._warm:
                    self._warming = asyncio.ensure_future(self._warm_up())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._warming is not None:
                    self._warming.cancel()
                results = await asyncio.gather(*(ls.shutdown() for ls in self._lifespans), return_exceptions=True)
                failures = [repr(r) for r in results if isinstance(r, BaseException)]
                if failures:
                    await send({"type": "lifespan.shutdown.failed", "message": "; ".join(failures)})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.scenarios.implementations",
        description="Serve every fixture implementation of the conformance suite under /impl/<name>/.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (the address is printed)")
    parser.add_argument("--llm-base-url", required=True, help="the mock LLM: http://host:port (or .../v1)")
    parser.add_argument("--data-dir", help="where the SQLite files go (default: a temporary directory)")
    parser.add_argument("--lazy", action="store_true", help="build each app on its first request only (no warm-up)")
    args = parser.parse_args(argv)

    import uvicorn

    with contextlib.ExitStack() as stack:
        if args.data_dir:
            data_dir = Path(args.data_dir)
            data_dir.mkdir(parents=True, exist_ok=True)
        else:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fixture-impls-")))
        try:
            sock = listening_socket(args.host, args.port)
        except OSError as err:
            print(f"implementations: cannot listen on {args.host}:{args.port}: {err.strerror}", file=sys.stderr)
            return 1
        host = FixtureHost(openai_base_url(args.llm_base_url), data_dir, warm=not args.lazy)
        config = uvicorn.Config(host, log_level="warning", lifespan="on", backlog=BACKLOG, timeout_graceful_shutdown=2)
        print(f"implementations listening on http://{args.host}:{sock.getsockname()[1]}", flush=True)
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again under the handler it
        # found: this one ends the process with status 0, the temporary directory removed.
        signal.signal(signal.SIGTERM, _exit_quietly)
        uvicorn.Server(config).run(sockets=[sock])
    return 0


def _exit_quietly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


# -- for tests: the host as a child process ------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]
WARM_TIMEOUT_S = 180.0


class Host(ServerProcess):
    """A running fixture host: `url`, `impl_url(name)`; `stop()` ends it."""

    def impl_url(self, name: str) -> str:
        return f"{self.url}/impl/{name}"

    def stop(self, timeout: float = 10.0) -> int | None:
        """End the host; its log is removed unless it exited with a failure (then it is kept to read)."""
        status = super().stop(timeout)
        if status == 0:
            self.log.unlink(missing_ok=True)
        return status


def start_host(llm_base_url: str, *, data_dir: str | Path | None = None, warm: bool = False) -> Host:
    """Start `python -m tests.scenarios.implementations` on a free port against the mock at `llm_base_url`.

    It answers once it has imported and builds its apps in the background; with `warm`, this returns
    only once every app is built, so that no build competes with the first runs' timing."""
    command = [sys.executable, "-m", "tests.scenarios.implementations", "--port", "0", "--llm-base-url", llm_base_url]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    log = Path(tempfile.mkstemp(prefix="fixture-host-", suffix=".log")[1])
    ready, timeout = ("implementations warm: ", WARM_TIMEOUT_S) if warm else (None, START_TIMEOUT_S)
    child = start_listening(command, log, cwd=REPO_ROOT, ready=ready, timeout_s=timeout)
    return Host(child.process, child.url, child.log)


if __name__ == "__main__":
    raise SystemExit(main())
