"""The checks: pure functions from what one step saw to a verdict, one per id of checks.yaml.

The runner gathers everything first (the responses, the decoded stream, the mock journal entries
the step caused, the turns of the conversation so far); a check only reads that `StepView`. A
check returns `Pass`, `Fail(message, event)` or `NotChecked(reason)`.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts import FIELD_RULES, Operation, Profile, field_value, json_path, json_values, normalize

from ._results import Exchange
from ._stream import SENTINEL, StreamView
from ._timing import heartbeat_tolerance_s


@dataclass(frozen=True)
class Pass:
    message: str = ""


@dataclass(frozen=True)
class Fail:
    message: str
    event: int | None = None


@dataclass(frozen=True)
class NotChecked:
    reason: str


Outcome = Pass | Fail | NotChecked


@dataclass(slots=True)
class Turn:
    """One turn of a conversation as the runner saw it."""

    message: str
    answer: str | None  # the mock's answer (journal); None when no LLM call was seen
    received: str = ""  # the text the client assembled
    partial: bool = False  # the client stopped the stream early


@dataclass(slots=True)
class StepView:
    """Everything one step saw; the checks' only input."""

    profile: Profile
    settings: Mapping[str, str]
    operation: Operation | None
    exchanges: list[Exchange]
    final: Exchange | None  # the last call made (the one whose status counts)
    final_call_ok: bool  # every call answered with one of its success statuses
    call_problem: str = ""  # the first call that did not: what it answered
    # every call answered a 2xx with content, its own statuses or not (off them: api.status's one failure)
    call_answered: bool = False
    stream: StreamView | None = None
    ended: str = ""  # how the stream ended: closed, deadline, aborted, open-after-terminal, error
    stopped_at: float | None = None  # wall-clock time of a client abort
    end_time: float | None = None  # seconds since the stream request was sent
    reads: list[tuple[int, int, float]] = field(default_factory=list)  # (offset, size, s since request)
    issues: list[dict[str, Any]] = field(default_factory=list)
    journal: list[dict[str, Any]] = field(default_factory=list)  # entries this step caused
    journal_all: list[dict[str, Any]] = field(default_factory=list)  # every entry of the scenario so far
    earlier: list[Turn] = field(default_factory=list)  # the conversation's turns before this step
    message: str | None = None
    timing: Any = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    # Text the run knows must never reach a client: the mock's host:port (the LLM base URL), the JWT secret
    leaks: tuple[str, ...] = ()
    # What earlier steps as another user sent the LLM and what it answered them: none of it may reach the
    # LLM in this step's requests (auth.isolation)
    foreign: tuple[str, ...] = ()
    # The messages of bad requests the target refused earlier in the scenario: none may be stored
    refused: tuple[str, ...] = ()

    def header(self, name: str) -> str | None:
        if self.final is None:
            return None
        name = name.lower()
        return next((v for k, v in self.final.response_headers.items() if k.lower() == name), None)

    def body_json(self) -> Any:
        if self.final is None or self.final.response_body is None:
            return None
        try:
            return json.loads(self.final.response_body)
        except ValueError:
            return None

    def answer(self) -> str | None:
        """The mock's answer for this step's request; on a cache hit (no request), the latest one."""
        entries = self.journal or self.journal_all
        return entries[-1].get("answer") if entries else None


Check = Callable[[StepView, Any], Outcome]
CHECKS: dict[str, Check] = {}
STATUS_CHECKS: dict[str, Any] = {}  # checks that judge the step's status, with their default expectation


def check(name: str, *, status: Any = None) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[name] = fn
        if status is not None:
            STATUS_CHECKS[name] = status
        return fn

    return register


# -- status ---------------------------------------------------------------------------------------


def status_matches(status: int | None, expected: Any) -> bool:
    if status is None:
        return False
    if isinstance(expected, str) and re.fullmatch(r"[1-5]xx", expected):
        return status // 100 == int(expected[0])
    if isinstance(expected, str) and re.fullmatch(r"[1-5]\d\d", expected):  # a run setting's value
        return status == int(expected)
    if isinstance(expected, int):
        return status == expected
    if isinstance(expected, list):
        return any(status_matches(status, e) for e in expected)
    return False


def _judge_status(view: StepView, expected: Any) -> Outcome:
    if view.final is None:
        return NotChecked("no request was made")
    if expected == "success":
        if view.final_call_ok:
            return Pass()
        what = f"{view.final.method} {view.final.url} answered {view.final.status}"
        return Fail(view.call_problem or f"{what}; expected success")
    if isinstance(expected, list) and "success" in expected and view.final_call_ok:
        return Pass()  # `[success, 503]`: the call's own success statuses, or one of the others
    if status_matches(view.final.status, expected):
        return Pass()
    body = (view.final.response_body or "")[:200]
    what = f"{view.final.method} {view.final.url} answered {view.final.status}"
    return Fail(f"{what}; expected {expected}" + (f" (body: {body})" if body else ""))


def _status_check(name: str, default: Any) -> None:
    @check(name, status=default)
    def judge(view: StepView, param: Any) -> Outcome:
        return _judge_status(view, default if param is True else param)


for _name, _default in {
    "api.status": "success",
    "validation.status": "4xx",
    "validation.empty-message": "4xx",
    "auth.missing": 401,
    "auth.invalid": 401,
    "auth.query-token": "success",
    "plan.forbidden": 403,
    "session.single-use": [204, 404, 410],
    "session.unknown": [204, 404, 410],
    "session.expiry": [204, 404, 410],
    "ratelimit.enforced": 429,
    "project.unknown": 404,
}.items():
    _status_check(_name, _default)


@check("auth.isolation", status=[403, 404])
def _isolation(view: StepView, param: Any) -> Outcome:
    """Another user's id: 404 (or 403), and none of the first user's conversation in an LLM request of
    this step (their messages and the answers they got, judged in the mock's journal)."""
    for entry in view.journal:
        for role, text in _llm_messages(entry):
            found = next((t for t in view.foreign if len(t) >= 8 and normalize(t) in normalize(text)), None)
            if found is not None:
                what = "answer" if role == "assistant" else "message"
                return Fail(f"another user's {what} {found[:60]!r} reached the LLM in this step's request")
    return _judge_status(view, [403, 404] if param is True else param)


@check("abort.server-healthy", status="success")
def _server_healthy(view: StepView, param: Any) -> Outcome:
    """After a client's abort the implementation still answers: a 5xx or no answer fails; a 2xx off the
    call's statuses passes (the runner judges that deviation as api.status); a 4xx is not checked (the
    same call may have been refused before the abort too: api.status judges it there)."""
    final = view.final
    if final is None:
        return NotChecked("no request was made")
    what = f"{final.method} {final.url} answered {final.status}"
    if final.status is None or final.status >= 500:
        body = (final.response_body or "")[:120]
        return Fail(f"{what} after a client's abort" + (f": {body}" if body else ""))
    if view.final_call_ok or view.call_answered:
        return Pass()
    return NotChecked(f"{what}: a refusal, not a failure; whether it is the contract's status is api.status's to say")


@check("api.status-preferred")
def _status_preferred(view: StepView, param: Any) -> Outcome:
    """Explicitly: the final call answered exactly `param` (the runner judges every call that has a
    `preferred_status` on its own, e.g. 200 of a POST stream that may also answer 201)."""
    return _judge_status(view, 200 if param is True else param)


@check("api.json")
def _api_json(view: StepView, param: Any) -> Outcome:
    body = view.body_json()
    if body is None:
        return Fail("the answer is not JSON")
    problem = answer_problem(param, body)
    return Fail(f"the answer {problem}") if problem else Pass()


def answer_problem(rules: Mapping[str, Any], body: Any) -> str | None:
    """What is wrong with a JSON answer against `path -> rule`: a field rule, or the exact value.

    A `*` in a path stands for every item of a list, so `history.*.timestamp` judges each message.
    """
    for path, rule in rules.items():
        try:
            found = json_values(body, path)
        except KeyError as missing:
            return f"has no `{missing.args[0]}`"
        for where, value in found:
            if rule in FIELD_RULES:
                problem = field_problem(rule, value, "")
            else:
                problem = None if value == rule else f"is {value!r}, expected {rule!r}"
            if problem:
                return f"`{where}` {problem}"
    return None


@check("validation.body")
def _validation_body(view: StepView, param: Any) -> Outcome:
    if view.final is None or view.final.status is None or view.final.status < 400:
        return NotChecked("the request was not refused")
    if not isinstance(view.body_json(), dict):
        body = (view.final.response_body or "")[:120]
        return Fail(f"the {view.final.status} body is not a JSON object: {body!r}")
    return Pass()


@check("validation.names-field")
def _names_field(view: StepView, param: Any) -> Outcome:
    if view.final is None or view.final.status is None or view.final.status < 400:
        return NotChecked("the request was not refused")
    names = [param] if isinstance(param, str) else list(param)
    body = view.final.response_body or ""
    if any(re.search(rf"\b{re.escape(name)}\b", body, re.IGNORECASE) for name in names):
        return Pass()
    return Fail(f"the {view.final.status} body names none of {', '.join(names)}: {body[:160]!r}")


@check("validation.no-side-effect")
def _no_side_effect(view: StepView, param: Any) -> Outcome:
    """On the refused request: no LLM call in the journal. On a history read after refusals: none of
    the refused requests' messages is stored (each carries its own number and the marker)."""
    if view.operation is not None and view.operation.messages is not None:
        return _nothing_stored(view)
    if view.final is None or view.final.status is None or view.final.status < 400:
        return NotChecked("the request was not refused")
    if view.journal:
        return Fail(f"the refused request still made {len(view.journal)} LLM request(s)")
    return Pass()


@check("conversation.unknown", status=404)
def _conversation_unknown(view: StepView, param: Any) -> Outcome:
    """An unknown (well-formed) id: 404, no LLM call, no stream in the refusal; or, where the profile
    lets clients choose ids (`client_ids`) and the call sends a new message, the conversation made
    under that very id."""
    final = view.final
    if final is None:
        return NotChecked("no request was made")
    what = f"{final.method} {final.url} answered {final.status}"
    unknown = view.variables.get("unknown_uuid")
    sends = view.operation is not None and any("message" in call.required_names for call in view.operation.calls)
    if view.profile.has("client_ids") and sends and (view.final_call_ok or view.call_answered):
        made = view.variables.get("conversation")
        if made != unknown:
            return Fail(f"{what} under the unknown id {unknown}, but the conversation it made is {made!r}")
        return Pass(f"made the conversation {unknown} (this profile lets clients choose ids)")
    if final.status != 404:
        body = (final.response_body or "")[:160]
        return Fail(f"{what} for the unknown id {unknown}; expected 404" + (f" (body: {body})" if body else ""))
    if view.journal:
        return Fail(f"the 404 for an unknown id still made {len(view.journal)} LLM request(s)")
    body = final.response_body or ""
    if (view.header("content-type") or "").lower().startswith("text/event-stream") or re.search(r"(?m)^data:", body):
        return Fail(f"the 404 for an unknown id carries stream events: {body[:120]!r}")
    return Pass()


# What an error message must never carry (contracts.md: no upstream URL, key, stack trace or driver text).
_INTERNALS = (
    ("a Python traceback", re.compile(r"Traceback \(most recent call last\)")),
    ("a stack frame", re.compile(r"File \\?\"[^\"\n]+\", line \d+")),  # `\"`: a frame inside a JSON string
    (
        "a Node stack frame",
        re.compile(r"\bat (?:Function|Object|Module|process)\.[\w<>$]+|\bat (?:async )?[\w$.<>]+ \([^()\n]+:\d+:\d+\)"),
    ),
    (
        "database or driver error text",
        re.compile(
            r"sqlalchemy|asyncpg|psycopg|aiosqlite|sqlite3|SQLSTATE|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND"
            r"|aiohttp\.|httpx\.|urllib3|requests\.exceptions|OperationalError|IntegrityError|ProgrammingError"
            r"|ClientConnectorError|ClientPayloadError|ServerDisconnectedError|duplicate key value",
            re.IGNORECASE,
        ),
    ),
    (
        "an upstream URL",
        re.compile(
            r"https?://[^\s\"'<>]+/v1(?:beta)?/(?:chat/completions|completions|messages|responses|models/)"
            r"|api\.openai\.com|api\.anthropic\.com|generativelanguage\.googleapis\.com"
        ),
    ),
    ("an API key", re.compile(r"\bsk-[A-Za-z0-9_-]{16,}|\bBearer\s+[A-Za-z0-9._~+/=-]{20,}")),
)
# A library's own exception text passed through from the upstream side (Python's json module, JSON.parse
# in Node, the OpenAI SDKs' status errors): in an error event or a 5xx it names the server's internals,
# not a problem of the client's. A 4xx about the client's own malformed JSON may quote its parser.
_UPSTREAM_INTERNALS = (
    (
        "a parser's or an SDK's exception text",
        re.compile(
            r"line \d+ column \d+ \(char \d+\)|\bin JSON at position \d+|\bis not valid JSON\b"
            r"|Unexpected end of JSON input|Error code: [1-5]\d\d - |\b[1-5]\d\d status code \(no body\)"
        ),
    ),
)


def error_texts(view: StepView) -> list[tuple[str, str, bool]]:
    """(where, text, upstream side) of every error the step saw: each 4xx/5xx body and each error event
    of the stream; the last is False only for a 4xx, an answer about the client's own request."""
    out = [
        (f"the {e.status} body of {e.method} {e.url}", e.response_body or "", e.status >= 500)
        for e in view.exchanges
        if e.status is not None and e.status >= 400
    ]
    if view.stream is not None:
        out += [
            (f"error event {p}", item.event.data, True)
            for p, item in enumerate(view.stream.events)
            if item.kind in view.profile.stream.error
        ]
    return out


@check("errors.no-internals")
def _no_internals(view: StepView, param: Any) -> Outcome:
    texts = error_texts(view)
    if not texts:
        return NotChecked("no error body or error event")
    for where, text, upstream_side in texts:
        for secret in view.leaks:
            if secret and re.search(re.escape(secret) + r"(?!\d)", text, re.IGNORECASE):
                return Fail(f"{where} carries {secret!r}, which a client must never see: {text[:160]!r}")
        for name, pattern in _INTERNALS + (_UPSTREAM_INTERNALS if upstream_side else ()):
            found = pattern.search(text)
            if found:
                return Fail(f"{where} carries {name} ({found.group(0)[:60]!r}): {text[:160]!r}")
    return Pass(f"{len(texts)} error message(s) name no internals")


@check("ratelimit.retry-after")
def _retry_after(view: StepView, param: Any) -> Outcome:
    if view.final is None or view.final.status != 429:
        return NotChecked("no 429 to look at")
    value = view.header("retry-after")
    if value is None:
        return Fail("the 429 has no Retry-After header")
    if not re.fullmatch(r"\d+", value.strip()):
        try:
            from email.utils import parsedate_to_datetime

            parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return Fail(f"Retry-After {value!r} is neither seconds nor an HTTP date")
    return Pass()


@check("cors.allow-origin")
def _cors(view: StepView, param: Any) -> Outcome:
    origin = view.settings.get("cors_origin", "")
    value = view.header("access-control-allow-origin")
    if value in (origin, "*"):
        return Pass()
    return Fail(f"Access-Control-Allow-Origin is {value!r} for Origin {origin!r}")


@check("cors.credentials")
def _cors_credentials(view: StepView, param: Any) -> Outcome:
    value = (view.header("access-control-allow-origin") or "").strip()
    credentials = (view.header("access-control-allow-credentials") or "").strip().lower()
    if value == "*" and credentials == "true":
        return Fail("Access-Control-Allow-Origin `*` with Access-Control-Allow-Credentials `true` (Fetch refuses both)")
    return Pass()


@check("cors.foreign-origin")
def _cors_foreign_origin(view: StepView, param: Any) -> Outcome:
    foreign = view.settings.get("cors_foreign_origin", "")
    if not foreign:
        return NotChecked("the run was not told an origin outside the target's list (cors_foreign_origin)")
    value = view.header("access-control-allow-origin")
    if value is None:
        return Pass()
    return Fail(f"Access-Control-Allow-Origin is {value!r} for Origin {foreign!r}, which the target does not allow")


# -- stream headers ---------------------------------------------------------------------------------


@check("stream.content-type")
def _content_type(view: StepView, param: Any) -> Outcome:
    value = view.header("content-type") or ""
    media, _, params = value.partition(";")
    if media.strip().lower() != "text/event-stream":
        return Fail(f"Content-Type is {value!r}, not text/event-stream")
    charset = re.search(r"charset\s*=\s*\"?([^\";]+)", params, re.IGNORECASE)
    if charset and charset.group(1).strip().lower() not in ("utf-8", "utf8"):
        return Fail(f"Content-Type declares charset {charset.group(1)!r}; an event stream is always UTF-8")
    return Pass()


@check("stream.charset")
def _charset(view: StepView, param: Any) -> Outcome:
    value = view.header("content-type") or ""
    charset = re.search(r"charset\s*=\s*\"?([^\";]+)", value.partition(";")[2], re.IGNORECASE)
    if charset is None:
        return Fail(f"Content-Type is {value!r}, without `; charset=utf-8`")
    if charset.group(1).strip().lower() not in ("utf-8", "utf8"):
        return NotChecked("a charset other than utf-8: see stream.content-type")
    return Pass()


@check("stream.cache-control")
def _cache_control(view: StepView, param: Any) -> Outcome:
    value = view.header("cache-control") or ""
    if "no-cache" in {d.strip().lower() for d in value.split(",")}:
        return Pass()
    return Fail(f"Cache-Control is {value!r}, without no-cache")


@check("stream.accel-buffering")
def _accel(view: StepView, param: Any) -> Outcome:
    value = view.header("x-accel-buffering")
    return Pass() if (value or "").strip().lower() == "no" else Fail(f"X-Accel-Buffering is {value!r}, not 'no'")


# -- the stream itself --------------------------------------------------------------------------------


def _stream(view: StepView) -> StreamView | NotChecked:
    return view.stream if view.stream is not None else NotChecked("no stream was read")


@check("wire.framing")
def _framing(view: StepView, param: Any) -> Outcome:
    errors = [i for i in view.issues if i.get("severity") == "error"]
    if errors:
        first = errors[0]
        return Fail(f"{first['code']} at byte {first['offset']}: {first['message']}")
    return Pass()


@check("wire.json")
def _json(view: StepView, param: Any) -> Outcome:
    stream = _stream(view)
    if isinstance(stream, NotChecked):
        return stream
    for position, item in enumerate(stream.events):
        if item.kind is None and item.problem.startswith("data is"):
            return Fail(f"event {position}: {item.problem}", position)
    return Pass()


@check("stream.grammar")
def _grammar(view: StepView, param: Any) -> Outcome:
    stream = _stream(view)
    if isinstance(stream, NotChecked):
        return stream
    matcher = view.profile.stream.grammar.matcher()
    last = stream.terminal if stream.terminal is not None else len(stream.events) - 1
    for position, item in enumerate(stream.events[: last + 1]):
        if item.kind is None and item.problem.startswith("data is"):
            continue  # not JSON: wire.json's verdict
        kind = item.kind or "?"
        if not matcher.step(kind):
            expected = ", ".join(sorted(_expected_before(view.profile, stream, position))) or "nothing"
            shown = f"'{kind}'" if item.kind else f"an event of unknown kind ({item.problem})"
            return Fail(f"event {position} {shown} is out of order; expected one of: {expected}", position)
    return Pass()


def _expected_before(profile: Profile, stream: StreamView, position: int) -> frozenset[str]:
    matcher = profile.stream.grammar.matcher()
    for item in stream.events[:position]:
        if item.kind is None and item.problem.startswith("data is"):
            continue
        matcher.step(item.kind or "?")
    return matcher.expected


@check("stream.terminal")
def _terminal(view: StepView, param: Any) -> Outcome:
    stream = _stream(view)
    if isinstance(stream, NotChecked):
        return stream
    if stream.terminal is not None:
        return Pass()
    if view.ended != "closed":
        return NotChecked(f"the stream did not end ({view.ended}); see stream.deadline")
    kinds = ", ".join(sorted(view.profile.stream.terminal))
    return Fail(f"the stream closed after {len(stream.events)} event(s) without a terminal event ({kinds})")


@check("stream.outcome")
def _outcome(view: StepView, param: Any) -> Outcome:
    spec = view.profile.stream
    if param == "error-or-5xx" and view.final is not None and (view.final.status or 0) >= 500:
        return Pass(f"refused with {view.final.status} before streaming")
    stream = _stream(view)
    if isinstance(stream, NotChecked):
        return stream
    if stream.terminal is None:
        return NotChecked("no terminal event; see stream.terminal")
    kind = stream.terminal_kind
    if param == "any":
        return Pass(f"ended with '{kind}'")
    wanted = spec.done if param in (True, "done") else spec.error
    if kind in wanted:
        return Pass()
    return Fail(f"the terminal event is '{kind}'; expected {' or '.join(sorted(wanted))}", stream.terminal)


@check("stream.after-terminal")
def _after_terminal(view: StepView, param: Any) -> Outcome:
    stream = _stream(view)
    if isinstance(stream, NotChecked):
        return stream
    if stream.terminal is None:
        return NotChecked("no terminal event")
    spec = view.profile.stream
    # What the grammar lets follow the terminal event (spec.after_terminal), in its order, then the sentinel.
    matcher = spec.grammar.matcher()
    in_order = all(  # if not, stream.grammar says so, and the order after the terminal is not judged again
        matcher.step(item.kind or "?")
        for item in stream.events[: stream.terminal + 1]
        if not (item.kind is None and item.problem.startswith("data is"))
    )
    sentinel_seen = False
    for position in range(stream.terminal + 1, len(stream.events)):
        item = stream.events[position]
        if item.kind == SENTINEL or (item.kind in spec.done and item.event.data == "[DONE]"):
            sentinel_seen = True
            continue
        if not sentinel_seen and item.kind in spec.after_terminal and (matcher.step(item.kind) or not in_order):
            pattern = spec.after_terminal_when.get(item.kind)
            if pattern is None or re.search(pattern, stream.text, re.IGNORECASE):
                continue
            return Fail(
                f"event {position} ('{item.kind}') follows the terminal event, but the answer does not match "
                f"{pattern!r} (it may follow only such an answer): {stream.text[:80]!r}",
                position,
            )
        allowed = " or ".join(f"'{k}'" for k in sorted(spec.after_terminal)) + " (as the grammar allows) or "
        return Fail(
            f"event {position} ('{item.kind or item.event.data[:40]}') follows the terminal event; only "
            f"{allowed if spec.after_terminal else ''}a `[DONE]` sentinel may",
            position,
        )
    if view.ended == "open-after-terminal":
        grace = view.timing.close_grace_s
        return Fail(f"the response stayed open more than {grace:g} s after the terminal event")
    return Pass()


def field_problem(rule: str, value: Any, joined: str) -> str | None:
    if rule == "present":
        return None
    if rule in ("string", "text"):
        return None if isinstance(value, str) else f"is {value!r}, not a string"
    if rule == "word":  # one whitespace-delimited word, itself without whitespace (a `words` join)
        if not isinstance(value, str):
            return f"is {value!r}, not a string"
        return None if value and value.split() == [value] else f"is {value!r}, not one word without whitespace"
    if rule in ("integer", "counter"):
        return None if isinstance(value, int) and not isinstance(value, bool) else f"is {value!r}, not an integer"
    if rule == "object":
        return None if isinstance(value, dict) else f"is {value!r}, not an object"
    if rule == "list":
        return None if isinstance(value, list) else f"is {value!r}, not a list"
    if rule == "uuid":
        try:
            uuid.UUID(str(value))
        except ValueError:
            return f"is {value!r}, not a UUID"
        return None if isinstance(value, str) else f"is {value!r}, not a UUID string"
    if rule == "iso8601":
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return f"is {value!r}, not an ISO-8601 time"
        return None
    if rule == "joined-text":
        return None if value == joined else f"is {str(value)[:60]!r}, not the text joined from the chunks"
    return f"has an unknown rule {rule!r}"


@check("stream.fields")
def _fields(view: StepView, param: Any) -> Outcome:
    stream = _stream(view)
    if isinstance(stream, NotChecked):
        return stream
    rules_by_kind = view.profile.stream.fields
    counters: dict[tuple[str, str], int] = {}
    for position, item in enumerate(stream.events):
        rules = rules_by_kind.get(item.kind or "")
        if not rules or not isinstance(item.payload, dict):
            continue
        for path, rule in rules.items():
            try:
                value = json_path(item.payload, path)
            except KeyError:
                return Fail(f"event {position} '{item.kind}' has no `{path}`", position)
            if rule == "counter":
                expected = counters.get((item.kind or "", path), 0)
                if value != expected:
                    return Fail(f"event {position} '{item.kind}' has {path} {value!r}; expected {expected}", position)
                counters[(item.kind or "", path)] = expected + 1
                continue
            problem = field_problem(rule, value, stream.text)
            if problem:
                return Fail(f"event {position} '{item.kind}': `{path}` {problem}", position)
    return Pass()


@check("stream.text")
def _text(view: StepView, param: Any) -> Outcome:
    stream = _stream(view)
    if isinstance(stream, NotChecked):
        return stream
    answer = view.answer()
    if answer is None:
        return NotChecked("the mock's journal has no answer for this request")
    # A `words` join: the words joined with one space, against the answer's words so joined; the joined
    # text itself is not normalised, so whitespace inside a word shows (stream.fields judges each word).
    words = view.profile.stream.join == "words"
    got, want = (stream.text, normalize(answer)) if words else (stream.text, answer)
    if param == "prefix" or view.ended == "aborted":
        if want.startswith(got):
            return Pass()
        return Fail(f"the text is not a prefix of the LLM's answer: {_first_difference(got, want)}")
    if got == want:
        return Pass()
    event = _event_of_difference(view, stream, got, want)
    return Fail(f"the text differs from the LLM's answer: {_first_difference(got, want)}", event)


def _first_difference(got: str, want: str) -> str:
    i = next((k for k, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
    return f"at character {i}: got {got[max(0, i - 20) : i + 20]!r}, the LLM said {want[max(0, i - 20) : i + 20]!r}"


def _event_of_difference(view: StepView, stream: StreamView, got: str, want: str) -> int | None:
    """The text event in which the joined text first leaves the answer."""
    spec = view.profile.stream
    pieces: list[str] = []
    for position in stream.text_events:
        payload = stream.events[position].payload
        piece = field_value(payload, spec.text_field)
        pieces.append(piece if isinstance(piece, str) else "")
        so_far = " ".join(pieces) if spec.join == "words" else "".join(pieces)
        if not want.startswith(so_far):
            return position
    return None


@check("stream.first-event")
def _first_event(view: StepView, param: Any) -> Outcome:
    stream = _stream(view)
    if isinstance(stream, NotChecked):
        return stream
    limit = float(param) if isinstance(param, (int, float)) and param is not True else view.timing.first_event_s
    first = stream.first_time()
    if first is None:
        return Fail(f"no event arrived (ended: {view.ended})")
    if first > limit:
        return Fail(f"the first event came after {first:.3f} s (limit {limit:g} s)", 0)
    return Pass(f"{first * 1000:.1f} ms")


@check("stream.max-gap")
def _max_gap(view: StepView, param: Any) -> Outcome:
    """No silence between two reads exceeds the LLM's own longest silence for this request (its TTFT or
    a write gap, from the journal) by more than the allowed slack (`param` seconds, or the timing's)."""
    if param is False:
        return NotChecked("the LLM falls silent for good here on purpose: no gap to judge")
    slack = float(param) if isinstance(param, (int, float)) and param is not True else view.timing.max_gap_s
    times = [t for _, _, t in view.reads]
    if view.stream is None or len(times) < 2:
        return NotChecked("fewer than two reads")
    achieved = ((view.journal[-1] if view.journal else {}).get("achieved")) or {}
    silences = [achieved.get("ttft_ms") or 0.0, *(achieved.get("itl_ms") or ())]
    llm_s = max(silences) / 1000
    limit = llm_s + slack
    gaps = [(b - a, i + 1) for i, (a, b) in enumerate(itertools.pairwise(times))]
    worst, read = max(gaps)
    if worst > limit:
        event = next((p for p, item in enumerate(view.stream.events) if item.event.read >= read), None)
        return Fail(
            f"{worst:.3f} s of silence before read {read} (limit {limit:g} s: the LLM's longest silence "
            f"{llm_s:.3f} s, plus {slack:g} s)",
            event,
        )
    return Pass(f"largest gap {worst * 1000:.1f} ms")


@check("stream.deadline")
def _deadline(view: StepView, param: Any) -> Outcome:
    if view.ended == "deadline":
        seen = len(view.stream.events) if view.stream else 0
        return Fail(f"no end within {view.timing.deadline_s:g} s ({seen} event(s) seen, then silence or a trickle)")
    if view.ended.startswith("error"):
        return Fail(f"the stream broke off: {view.ended}")
    return Pass()


@check("stream.incremental")
def _incremental(view: StepView, param: Any) -> Outcome:
    """The LLM's longest pause mid-answer (its write times, in the mock's journal) shows in the stream:
    the token events before it arrive at least `param` (a share, 0.5 by default) of it before those
    after it. A backend that collects the answer and then sends it shows no pause; one that batches
    what arrived together still shows it."""
    stream = _stream(view)
    if isinstance(stream, NotChecked):
        return stream
    share = float(param) if param is not True else 0.5
    entry = view.journal[-1] if view.journal else None
    gaps = ((entry or {}).get("achieved") or {}).get("itl_ms") or []
    if not gaps:
        return NotChecked("the mock's journal has no write times for this request")
    pause, at = max((gap, i + 1) for i, gap in enumerate(gaps))
    pause_s = pause / 1000
    if pause_s < 0.5:
        return NotChecked(f"the LLM's longest pause was {pause:.0f} ms: too short to tell a buffered stream")
    if at < 2 or len(gaps) + 1 - at < 2:
        return NotChecked(f"the LLM's pause came after chunk {at} of {len(gaps) + 1}: too near an end to judge")
    times = [stream.events[p].event.time for p in stream.text_events]
    if len(times) < 2:
        return NotChecked("fewer than two token events")
    shown, where = max((b - a, i + 1) for i, (a, b) in enumerate(itertools.pairwise(times)))
    if shown < share * pause_s:
        return Fail(
            f"the LLM paused {pause_s:.2f} s after chunk {at} of {len(gaps) + 1}, but no two of the "
            f"{len(times)} token events are more than {shown * 1000:.0f} ms apart: the answer was held back",
            stream.text_events[-1],
        )
    return Pass(f"the LLM's {pause_s:.2f} s pause shows as {shown:.2f} s before token event {where}")


@check("stream.heartbeat")
def _heartbeat(view: StepView, param: Any) -> Outcome:
    stream = _stream(view)
    if isinstance(stream, NotChecked):
        return stream
    interval = float(view.settings["heartbeat_s"])
    limit = heartbeat_tolerance_s(view.settings)  # well below the silence the scenario arranges
    kinds = view.profile.stream.heartbeat_kinds
    beats = [c.time for c in stream.comments] + [i.event.time for i in stream.events if i.kind in kinds]
    if not beats:
        return Fail(f"no heartbeat (comment or {', '.join(sorted(kinds)) or 'heartbeat event'}) in a silent stretch")
    signals = sorted(beats + [i.event.time for i in stream.events])
    end = view.end_time if view.end_time is not None else signals[-1]
    worst = max((b - a for a, b in zip(signals, [*signals[1:], end], strict=False)), default=0.0)
    if worst > limit:
        return Fail(f"{worst:.2f} s without a heartbeat (interval {interval:g} s)")
    return Pass(f"{len(beats)} heartbeat(s), longest silence {worst:.2f} s")


# -- the upstream side (the mock's journal) ---------------------------------------------------------


def _llm_messages(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(role, text) of an OpenAI-, Anthropic- or Gemini-shaped request body, system turns left out."""
    body = entry.get("body") or {}
    out: list[tuple[str, str]] = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        out.append((message.get("role", ""), content or ""))
    for message in body.get("contents") or []:
        text = "".join(part.get("text", "") for part in message.get("parts", []) if isinstance(part, dict))
        out.append(("assistant" if message.get("role") == "model" else message.get("role", "user"), text))
    return [(role, text) for role, text in out if role not in ("system", "developer")]


def _expected_history(earlier: list[Turn]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for turn in earlier:
        out.append(("user", turn.message))
        if turn.answer is not None and not turn.partial:
            out.append(("assistant", turn.answer))
    return out


def _contains_in_order(haystack: list[tuple[str, str]], needles: list[tuple[str, str]]) -> int | None:
    """Index in `needles` of the first one not found (in order) in `haystack`; None if all are."""
    position = 0
    for n, (role, text) in enumerate(needles):
        while position < len(haystack):
            got_role, got_text = haystack[position]
            position += 1
            if got_role == role and normalize(text) in normalize(got_text):
                break
        else:
            return n
    return None


@check("turn.continuity")
def _continuity(view: StepView, param: Any) -> Outcome:
    if not view.journal:
        return NotChecked("the step made no LLM request")
    if not view.earlier:
        return NotChecked("no earlier turn in this conversation")
    sent = _llm_messages(view.journal[-1])
    expected = [*_expected_history(view.earlier), ("user", view.message or "")]
    missing = _contains_in_order(sent, expected)
    if missing is None:
        return Pass()
    role, text = expected[missing]
    return Fail(
        f"the LLM request lacks (or misorders) the earlier {role} message {text[:60]!r}; "
        f"it carried {len(sent)} message(s)"
    )


@check("turn.window")
def _window(view: StepView, param: Any) -> Outcome:
    if not view.journal:
        return NotChecked("the step made no LLM request")
    window = int(view.settings.get("history_window", "10"))
    history = _expected_history(view.earlier)
    expected = [*history[-window:], ("user", view.message or "")]
    sent = _llm_messages(view.journal[-1])
    if len(sent) != len(expected):
        return Fail(f"the LLM got {len(sent)} message(s); expected the last {window} of the history plus the new one")
    for (role, text), (got_role, got_text) in zip(expected, sent, strict=True):
        if role != got_role or normalize(text) not in normalize(got_text):
            return Fail(f"the LLM request does not hold the last {window} messages in order (at {text[:40]!r})")
    return Pass()


@check("turn.non-stream")
def _non_stream(view: StepView, param: Any) -> Outcome:
    answer = view.answer()
    body = view.body_json()
    if answer is None or view.operation is None or view.operation.text is None:
        return NotChecked("no answer to compare")
    try:
        text = json_path(body, view.operation.text)
    except KeyError:
        return Fail(f"the answer has no `{view.operation.text}`")
    if text == answer or (view.profile.stream.join == "words" and normalize(str(text)) == normalize(answer)):
        return Pass()
    return Fail(f"the answer differs from the LLM's: {_first_difference(str(text), answer)}")


@check("cache.hit")
def _cache_hit(view: StepView, param: Any) -> Outcome:
    header = view.header("x-cache")
    if view.journal:
        return Fail(f"the repeated request made {len(view.journal)} LLM request(s) (X-Cache: {header})")
    if (header or "").upper() != "HIT":
        return Fail(f"X-Cache is {header!r} on a repeated request")
    return Pass()


@check("cache.key")
def _cache_key(view: StepView, param: Any) -> Outcome:
    header = view.header("x-cache")
    if not view.journal or (header or "").upper() == "HIT":
        return Fail(f"a different conversation was answered from the cache (X-Cache: {header}, no LLM request)")
    return Pass()


@check("cache.faster")
def _cache_faster(view: StepView, param: Any) -> Outcome:
    stream = _stream(view)
    if isinstance(stream, NotChecked):
        return stream
    if view.journal or (view.header("x-cache") or "").upper() != "HIT":
        return NotChecked("not a cache hit (see cache.hit)")
    first, slow = stream.first_time(), float(param)
    if first is None:
        return NotChecked("no event")
    if first > slow / 2:
        return Fail(f"the cached answer's first event took {first * 1000:.0f} ms; the LLM's took over {slow:g} s")
    return Pass(f"{first * 1000:.1f} ms")


@check("abort.upstream-cancelled")
def _cancelled(view: StepView, param: Any) -> Outcome:
    if view.ended != "aborted":
        return NotChecked("the client did not stop the stream early")
    if not view.journal:
        return NotChecked("no LLM request seen")
    entry = view.journal[-1]
    outcome = entry.get("outcome")
    if outcome == "client_closed":
        return Pass()
    duration = (entry.get("achieved") or {}).get("duration_ms")
    stopped = view.stopped_at
    finished = None if duration is None else entry.get("time", 0.0) + duration / 1000
    if outcome != "in_progress" and finished is not None and stopped is not None and finished <= stopped:
        return NotChecked("the LLM had finished its answer before the client left")
    return Fail(f"the LLM request was still open after the client left (journal outcome: {outcome})")


# -- stored history -----------------------------------------------------------------------------------


def _history(view: StepView) -> list[tuple[str, str]] | Fail | NotChecked:
    if view.operation is None or view.operation.messages is None:
        return NotChecked("no history operation")
    if view.final is None or view.final.status == 404:
        return []
    try:
        items = json_path(view.body_json(), view.operation.messages)
    except KeyError:
        return Fail(f"the history answer has no `{view.operation.messages}`")
    if not isinstance(items, list):
        return Fail("the history is not a list")
    op = view.operation
    return [(str(m.get(op.role_field, "")), str(m.get(op.content_field, ""))) for m in items if isinstance(m, dict)]


def _nothing_stored(view: StepView) -> Outcome:
    if not view.refused:
        return NotChecked("no bad request was refused earlier in the scenario")
    history = _history(view)
    if not isinstance(history, list):
        return history
    for role, text in history:
        stored = next((m for m in view.refused if m in text), None)
        if stored is not None:
            return Fail(f"the history holds a refused request's message ({role}: {stored!r})")
    return Pass(f"none of the {len(view.refused)} refused messages is stored")


@check("history.content")
def _history_content(view: StepView, param: Any) -> Outcome:
    history = _history(view)
    if not isinstance(history, list):
        return history
    expected = _expected_history(view.earlier)
    complete = [t for t in view.earlier if not t.partial]
    if len(complete) != len(view.earlier):
        history = [
            m for m in history if m[0] == "user" or any(normalize(m[1]) == normalize(t.answer or "") for t in complete)
        ]
    got = [(role, normalize(text)) for role, text in history]
    want = [(role, normalize(text)) for role, text in expected]
    if got == want:
        return Pass()
    return Fail(f"the history holds {_show(got)}; expected {_show(want)}")


def _show(messages: list[tuple[str, str]]) -> str:
    return "[" + ", ".join(f"{role}: {text[:24]!r}" for role, text in messages) + "]"


@check("history.delete")
def _history_delete(view: StepView, param: Any) -> Outcome:
    history = _history(view)
    if not isinstance(history, list):
        return history
    return Pass() if not history else Fail(f"after the delete the history still holds {len(history)} message(s)")


@check("history.partial")
def _history_partial(view: StepView, param: Any) -> Outcome:
    history = _history(view)
    if not isinstance(history, list):
        return history
    partial = next((t for t in reversed(view.earlier) if t.partial), None)
    if partial is None or partial.answer is None:
        return NotChecked("no stopped stream before this step")
    assistants = [text for role, text in history if role == "assistant"]
    if not assistants:
        return Fail("nothing was stored for the stopped answer")
    stored, received, answer = normalize(assistants[-1]), normalize(partial.received), normalize(partial.answer)
    if stored.startswith(received) and answer.startswith(stored):
        return Pass()
    return Fail(f"the stored answer {stored[:60]!r} is not what was streamed so far ({received[:60]!r}...)")
