"""Contract-stream mode, the pure core: a contract profile read as the API the mock serves when it is
the upstream of a proxy or gateway (seed 000's NestJS layer in front of a FastAPI agent).

Everything comes from the profile's data (`contracts.Profile`), never from its name:

- which calls to serve: every call of every operation, grouped by method and path, each group given
  a role: `stream` (a call marked `stream: true`), `message` (a call of the `stream` operation that
  carries `{message}` before its stream call: the message of a two-call profile), `send` (an
  operation with a `text:` answer: a non-streamed answer), `history` (an operation with `messages:`)
  or `answer` (anything else: an answer built from the call's `answer:` and `capture:` rules);
- where a request's variables are: its path, the query parameters and JSON body fields whose
  templates hold `{name}` (a template such as `"conformance {marker}"` is matched as a pattern);
- which events a stream carries: the shortest run of the grammar's other kinds before the first
  text event (`session`, `connected`, `conversationId`), one text kind, one done kind, one error kind,
  each checked against the grammar once, here, so a profile the mock cannot follow is refused whole
  with the reason (`ContractError`) rather than answered with a stream its own suite would fail.

A two-call profile (the message is posted first, the stream opened after: start-stream,
conversation-events) keeps the message under the variable that both calls know (`session`,
`conversation`); `_conversations` holds it until the stream call takes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from contracts import FIELD_RULES, Operation, Profile, StreamSpec, load_profile
from contracts import Call as ProfileCall

from ._contract_events import EventKinds, Values, check_events, event_kinds, rule_value, set_path
from ._errors import ContractError, RequestError

Role = Literal["stream", "message", "send", "history", "answer"]
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\??)\}")


@dataclass(frozen=True, slots=True)
class Served:
    """One method and path the mock answers for a profile, the role it plays and the profile's calls
    on it (operation, call), the stream operation's first."""

    method: str
    path: str
    role: Role
    calls: tuple[tuple[Operation, ProfileCall], ...]

    @property
    def operation(self) -> Operation:
        return self.calls[0][0]

    @property
    def call(self) -> ProfileCall:
        return self.calls[0][1]


@dataclass(frozen=True)
class ContractSpec:
    """A profile compiled for serving: its routes, its events, where its stream finds the message."""

    profile: Profile
    kinds: EventKinds
    served: tuple[Served, ...]
    # A two-call profile: the variable the message call and the stream call share (None: one call)
    stream_key: str | None
    message_at: str  # where a request carries the message, for error texts ("body field `message`")
    client_ids: bool  # a message under an unknown id makes that conversation (else 404)

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def stream(self) -> StreamSpec:
        return self.profile.stream


def load_contract(name_or_path: str) -> ContractSpec:
    """A registered contract's name or a profile file, compiled for serving; ContractError (or the
    profile loader's SpecError) says why not."""
    return compile_contract(load_profile(name_or_path))


def compile_contract(profile: Profile) -> ContractSpec:
    """The profile as the mock serves it, or a ContractError saying what the mock cannot follow."""
    kinds = event_kinds(profile.name, profile.stream)
    check_events(profile.name, profile.stream, kinds)
    stream_op = profile.operations["stream"]
    stream_index = stream_op.stream_call
    assert stream_index is not None  # parse_profile refuses a stream operation without one
    stream_call = stream_op.calls[stream_index]
    message_calls = [c for c in stream_op.calls[:stream_index] if "message" in _names(c)]
    if "message" in _names(stream_call):
        key, message_call = None, stream_call
    elif message_calls:
        message_call = message_calls[-1]
        key = _shared_key(profile.name, stream_call, message_call)
    else:
        raise ContractError(
            profile.name,
            "its `stream` operation carries no {message}, neither in the stream call nor in a call before it: "
            "the mock would not know what the stream answers",
        )
    return ContractSpec(
        profile=profile,
        kinds=kinds,
        served=_served(profile, stream_op, message_call),
        stream_key=key,
        message_at=_message_at(message_call),
        client_ids=profile.has("client_ids"),
    )


def _names(call: ProfileCall) -> set[str]:
    return _names_of([call.path, dict(call.query), call.json])


def _names_of(value: Any) -> set[str]:
    return {m.group(1) for m in _PLACEHOLDER.finditer(str(value))}


def _captured(call: ProfileCall) -> set[str]:
    return set(call.capture)


def _shared_key(profile: str, stream_call: ProfileCall, message_call: ProfileCall) -> str:
    """The variable the stream call names that the message call knows (sent or answered)."""
    shared = sorted(stream_call.required_names & (_names(message_call) | _captured(message_call)))
    if not shared:
        raise ContractError(
            profile,
            f"its stream call {stream_call.method} {stream_call.path} names no variable that the message call "
            f"{message_call.method} {message_call.path} sends or answers: the stream cannot be matched to its message",
        )
    return "conversation" if "conversation" in shared else shared[0]


def _message_at(call: ProfileCall) -> str:
    for key, template in dict(call.query).items():
        if "message" in _names_of(template):
            return f"query parameter `{key}`"
    if isinstance(call.json, Mapping):
        for key, template in call.json.items():
            if "message" in _names_of(template):
                return f"body field `{key}`"
    return f"{call.method} {call.path}"


def _served(profile: Profile, stream_op: Operation, message_call: ProfileCall) -> tuple[Served, ...]:
    """Every method and path of the profile, once, with its role (see the module doc)."""
    groups: dict[tuple[str, str], list[tuple[Operation, ProfileCall]]] = {}
    for operation in (stream_op, *(op for op in profile.operations.values() if op is not stream_op)):
        for call in operation.calls:
            if "?}" in call.path:
                raise ContractError(profile.name, f"optional variables in a path are not served: {call.path}")
            groups.setdefault((call.method, call.path), []).append((operation, call))
    out = []
    for (method, path), calls in groups.items():
        streams = [(op, c) for op, c in calls if c.stream]
        role: Role
        if streams:
            role, calls = "stream", streams
        elif any(c is message_call for _, c in calls):
            role = "message"
        elif any(op.text is not None for op, _ in calls):
            role, calls = "send", [(op, c) for op, c in calls if op.text is not None]
        elif any(op.messages is not None for op, _ in calls):
            role, calls = "history", [(op, c) for op, c in calls if op.messages is not None]
        else:
            role = "answer"
        out.append(Served(method, path, role, tuple(calls)))
    return tuple(out)


# -- a request's variables ---------------------------------------------------------------------------


def request_variables(
    call: ProfileCall, path_params: Mapping[str, str], query: Mapping[str, str], body: Any
) -> dict[str, Any]:
    """The variables a request gives where its call's templates put them: the path's `{name}`
    segments, query parameters and JSON body fields (a null or absent one is not given)."""
    found: dict[str, Any] = dict(path_params)
    for key, template in dict(call.query).items():
        if key in query:
            _match(template, query[key], found)
    if call.json is not None:
        _match(call.json, body, found)
    return found


def _match(template: Any, value: Any, out: dict[str, Any]) -> None:
    if value is None:
        return
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole:
            out[whole.group(1)] = value
        elif "{" in template and isinstance(value, str):
            found = _pattern(template).fullmatch(value)
            if found:
                out.update({k: v for k, v in found.groupdict().items() if v is not None})
    elif isinstance(template, Mapping) and isinstance(value, Mapping):
        for key, item in template.items():
            if key in value:
                _match(item, value[key], out)


def _pattern(template: str) -> re.Pattern[str]:
    """`conformance {marker}` as a regex whose groups are the variables."""
    parts, at, seen = [], 0, set()
    for placeholder in _PLACEHOLDER.finditer(template):
        parts.append(re.escape(template[at : placeholder.start()]))
        name = placeholder.group(1)
        parts.append(f"(?P<{name}>.*?)" if name not in seen else ".*?")
        seen.add(name)
        at = placeholder.end()
    parts.append(re.escape(template[at:]))
    return re.compile("".join(parts), re.DOTALL)


def choose_call(served: Served, variables: Mapping[str, Any]) -> tuple[Operation, ProfileCall]:
    """The most specific of the route's calls whose required variables the request gives
    (`POST /api/sessions` with a `session_id`: `reopen`, without one: `open`)."""
    usable = [(op, c) for op, c in served.calls if c.required_names <= set(variables)]
    if not usable:
        first = served.call
        missing = sorted(first.required_names - set(variables))
        raise RequestError(missing[0], f"{served.method} {served.path}: the request lacks {', '.join(missing)}")
    return max(usable, key=lambda item: len(item[1].required_names))


# -- answers built from rules ------------------------------------------------------------------------


def answer_body(
    call: ProfileCall,
    variables: Mapping[str, Any],
    values: Values,
    *,
    items_at: str | None = None,
    items: list[dict[str, Any]] | None = None,
    text_at: str | None = None,
    text: str = "",
) -> Any:
    """A call's JSON answer from its `answer:` rules and `capture:` paths: a rule's value, an exact
    value rendered with the request's variables (left out when it names one the request lacks), the
    captured variables at their paths, the answer text at `text_at`, the list `items` at `items_at`
    with each item's `*` rules filled in."""
    rules = dict(call.answer)
    root: Any = [] if items_at == "" or any(p.startswith("*") for p in rules) else {}
    if items_at is not None:
        prefix = "*." if items_at == "" else f"{items_at}.*."
        listed = []
        for item in items or []:
            filled = dict(item)
            for path, rule in rules.items():
                if path.startswith(prefix):
                    _fill(filled, path[len(prefix) :], rule, variables, values)
            listed.append(filled)
        if items_at == "":
            return listed
        set_path(root, items_at, listed, replace=True)
    if isinstance(root, list):
        return root
    for path, rule in rules.items():
        if "*" not in path.split("."):
            _fill(root, path, rule, variables, values)
    for variable, path in call.capture.items():
        if variable in variables and path:
            set_path(root, path, variables[variable], replace=True)
    if text_at:
        set_path(root, text_at, text, replace=True)
    return root


def _fill(document: dict[str, Any], path: str, rule: Any, variables: Mapping[str, Any], values: Values) -> None:
    if isinstance(rule, str) and rule in FIELD_RULES:
        set_path(document, path, rule_value(rule, values))
        return
    value = _render(rule, variables)
    if value is not _MISSING:
        set_path(document, path, value)


_MISSING = object()


def _render(template: Any, variables: Mapping[str, Any]) -> Any:
    """An exact value with `{name}` filled in, or _MISSING when it names a variable not given."""
    if not isinstance(template, str):
        return template
    whole = _PLACEHOLDER.fullmatch(template)
    if whole:
        return variables.get(whole.group(1), _MISSING)
    if any(m.group(1) not in variables for m in _PLACEHOLDER.finditer(template)):
        return _MISSING
    return _PLACEHOLDER.sub(lambda m: str(variables[m.group(1)]), template)
