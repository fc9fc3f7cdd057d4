"""Contract profiles: one YAML file per contract, mapping abstract operations to concrete HTTP.

A scenario says "open a conversation, stream a turn, read the history"; the profile says which
requests that takes on this API, which events its streams carry, in what order (`grammar`), how
the answer text is joined, and what the API can do (`capabilities`). A team describes its own API
in the same format and runs the whole library on it, or loads it with the load harness. See
contracts/profiles/*.yaml (the five contracts) and contracts/dialects/*.yaml (the mock's dialects).

A profile file may start from another: `extends: sessions` (a registered contract's name, or a
file's path relative to the extending file) and then give only what differs, so a team whose API
differs from a contract in one call need not copy (and keep in step with) the whole contract.
`name:` is still required. The merge (`extend_profile`, pure, over the two mappings):

- `summary`, `auth`, `capabilities` replace the base's; `levels` and `settings` merge key by key;
- `stream:` keys replace the base's stream keys one by one (`text:` as a whole);
- `operations:` merge operation by operation; within one the keys replace the base's, except
  `calls:`, where item i is a mapping of just the fields that change in the base's call i (a shorter
  list keeps the base's other calls; items past the base's end are new calls);
- a null anywhere in that merge removes the base's entry (an operation, a stream key, a call's field).

The base may extend another in turn; a cycle is an error, and every error names the file and field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from ._catalog import CATALOG
from ._grammar import Grammar, GrammarError
from ._registry import contract_profiles, profile_file
from ._spec import Spec, SpecError, read_yaml
from ._template import names_in

AUTH_KINDS = ("none", "bearer", "bearer-or-query")
FIELD_RULES = (
    "string", "text", "word", "integer", "counter", "iso8601", "uuid", "object", "list", "joined-text", "present",
)  # fmt: skip
# Variables a profile's templates may use; scenarios and captures add their own.
BASE_VARIABLES = frozenset({"message", "conversation", "user", "model", "project", "session", "marker"})
Join = Literal["concat", "words"]
_PROFILE_KEYS = ("name", "summary", "auth", "capabilities", "levels", "settings", "stream", "operations")
_STREAM_KEYS = (
    "grammar", "kind_field", "kinds", "done", "error", "text", "sentinel", "fields", "heartbeat", "captures", "usage",
    "after_terminal", "after_terminal_when",
)  # fmt: skip


REQUEST_RULES = ("text", "string", "uuid")
"""A declared request field's kind: `text` a message (a non-empty string), `string` any string (an id
of no stated form), `uuid` a UUID string; `?` after it (`string?`) makes the field optional."""


@dataclass(frozen=True)
class RequestField:
    """One request field the contract declares: its name, its kind (`REQUEST_RULES`), whether required."""

    name: str
    rule: str
    required: bool = True


@dataclass(frozen=True)
class Call:
    """One HTTP request of an operation."""

    method: str
    path: str
    query: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    auth: bool = True  # send the user's credentials (when the profile has auth)
    stream: bool = False  # this response is the operation's event stream
    status: tuple[int, ...] = (200,)  # the statuses that mean success (judged as `api.status`, a MUST)
    # The one of them the contract expects; another success status is a SHOULD deviation
    # (`api.status-preferred`). A POST stream call without `status:` gets (200, 201); one whose
    # statuses hold 200 prefers 200.
    preferred_status: int | None = None
    capture: Mapping[str, str] = field(default_factory=dict)  # variable -> JSON path of the answer
    # JSON path (`*`: every list item) -> field rule or exact value (a template): the answer's fields
    # that the contract gives, judged as `api.json` on every successful call
    answer: Mapping[str, Any] = field(default_factory=dict)
    # The request fields the contract declares for this call (a JSON body's keys or query parameters):
    # what bad input the conformance run derives for it (each required one missing, a wrong type, ...)
    request: Mapping[str, RequestField] = field(default_factory=dict)

    @property
    def required_names(self) -> set[str]:
        """Variables the call cannot do without (`{name}`, not `{name?}`)."""
        text = str([self.path, dict(self.query), dict(self.headers), self.json])
        return names_in(text) - set(re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*)\?\}", text))


@dataclass(frozen=True)
class Operation:
    """An abstract operation (`stream`, `send`, `history` ...) as a sequence of calls."""

    name: str
    calls: tuple[Call, ...]
    text: str | None = None  # `send`: the JSON path of the answer text
    messages: str | None = None  # `history`: the JSON path of the message list
    role_field: str = "role"
    content_field: str = "content"

    @property
    def stream_call(self) -> int | None:
        return next((i for i, call in enumerate(self.calls) if call.stream), None)


@dataclass(frozen=True)
class KindRule:
    """How to recognise an event kind in a profile whose events carry no type field."""

    kind: str
    data: str | None = None  # the data is exactly this (e.g. `[DONE]`)
    has: str | None = None  # the JSON object has this field


@dataclass(frozen=True)
class StreamSpec:
    """What a profile's streams look like."""

    grammar: Grammar
    kind_field: str | None
    kinds: tuple[KindRule, ...]
    done: frozenset[str]
    error: frozenset[str]
    text_kinds: frozenset[str]
    text_field: str
    join: Join
    sentinel: str | None  # may follow the terminal event (e.g. `[DONE]`)
    fields: Mapping[str, Mapping[str, str]]  # kind -> dotted field -> rule
    heartbeat_kinds: frozenset[str]
    captures: Mapping[str, tuple[str, str]]  # variable -> (kind, field)
    usage: tuple[frozenset[str], str] | None = None  # (kinds, dotted field) of the API's output-token count
    # Kinds the grammar lets follow the terminal event (conversation-events: `system` after `llm_complete`)
    after_terminal: frozenset[str] = frozenset()
    # Of those, the kinds that may follow only an answer whose text matches a pattern (case-insensitive):
    # conversation-events' `system` only after an answer that mentions a bet or odds
    after_terminal_when: Mapping[str, str] = field(default_factory=dict)

    @property
    def terminal(self) -> frozenset[str]:
        return self.done | self.error

    def join_text(self, pieces: list[str]) -> str:
        """The answer text of a stream's text pieces, as the profile's join rule has it."""
        return " ".join(pieces) if self.join == "words" else "".join(pieces)


def normalize(text: str) -> str:
    """Whitespace-insensitive form, for a `words` join and for stored histories."""
    return " ".join(text.split())


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    auth: str
    capabilities: frozenset[str]
    levels: Mapping[str, str]
    settings: Mapping[str, str]  # defaults the run may override with --setting
    stream: StreamSpec
    operations: Mapping[str, Operation]
    source: str = ""

    def has(self, need: str) -> bool:
        """A scenario's requirement: an operation of that name or a capability."""
        return need in self.operations or need in self.capabilities or (need == "auth" and self.auth != "none")

    def level(self, check: str) -> str:
        return self.levels.get(check) or CATALOG[check].level


@cache
def load_profile(name_or_path: str) -> Profile:
    """A registered contract profile by name, or a profile file by path (its `extends:` resolved)."""
    path = profile_file(name_or_path)
    if path is None:
        path = Path(name_or_path)
        if not path.is_file():
            known = ", ".join(contract_profiles())
            raise SpecError(name_or_path, "", f"no such profile file, and not a built-in profile ({known})")
    return parse_profile(_profile_data(path, ()), str(path))


def _profile_data(path: Path, chain: tuple[Path, ...]) -> Any:
    """The mapping of a profile file with its `extends:` chain merged in (the I/O of the loader).

    Each base is also parsed on its own first, so a mistake in a base is named in the base's file."""
    data = read_yaml(path)
    if not isinstance(data, dict) or "extends" not in data:
        return data
    source = str(path)
    chain = (*chain, path.resolve())
    extends = Spec(data, source).get("extends", str)
    base = _base_file(extends, path)
    if base is None:
        known = ", ".join(contract_profiles())
        raise SpecError(
            source, "extends", f"{extends!r} is neither a contract ({known}) nor a file ({path.parent / extends})"
        )
    if base.resolve() in chain:
        cycle = " -> ".join(p.name for p in (*chain, base.resolve()))
        raise SpecError(source, "extends", f"a cycle of extends: {cycle}")
    base_data = _profile_data(base, chain)
    parse_profile(base_data, str(base))
    return extend_profile(base_data, data, source)


def _base_file(extends: str, path: Path) -> Path | None:
    """The file `extends:` names: a registered contract first, else a path relative to `path`."""
    registered = profile_file(extends)
    if registered is not None:
        return registered
    relative = path.parent / extends
    return relative if relative.is_file() else None


def extend_profile(base: Mapping[str, Any], override: Any, source: str) -> dict[str, Any]:
    """The profile mapping `override` (a file that says `extends:`) makes of `base` (see the module doc)."""
    spec = Spec(override, source)
    spec.only("extends", *_PROFILE_KEYS)
    spec.get("name", str)  # the extending file names the profile it makes
    out = dict(base)
    for key, value in override.items():
        if key in ("levels", "settings", "stream"):
            out[key] = _merged(base.get(key), spec.get(key, dict, {}))
        elif key == "operations":
            out[key] = _operations(base.get(key) or {}, spec.sub(key, {}))
        elif key != "extends":
            out[key] = value
    return out


def _merged(base: Any, override: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with each key of `override` replacing its own; a null removes the key."""
    out = dict(base) if isinstance(base, dict) else {}
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _operations(base: Mapping[str, Any], override: Spec) -> dict[str, Any]:
    """The base's operations with the override's merged in by name: a new one whole, a null removes one."""
    out = dict(base)
    for name, value in override.data.items():
        if value is None or name not in base or not isinstance(base[name], dict):
            out = _merged(out, {name: value})
            continue
        operation = Spec(value, override.source, f"{override.path}.{name}")
        merged = _merged(base[name], {k: v for k, v in value.items() if k != "calls"})
        if "calls" in value:
            merged["calls"] = _calls(base[name].get("calls") or [], operation)
        out[name] = merged
    return out


def _calls(base: list[Any], operation: Spec) -> list[Any]:
    """The base's calls with item i of the override's `calls:` merged over call i, field by field."""
    calls = list(base)
    for i, change in enumerate(operation.get("calls", list)):
        Spec(change, operation.source, f"{operation.path}.calls[{i}]")  # a mapping, or an error naming it
        if i < len(calls) and isinstance(calls[i], dict):
            calls[i] = _merged(calls[i], change)
        else:
            calls.append(change)
    return calls


def parse_profile(data: Any, source: str) -> Profile:
    spec = Spec(data, source)
    if "extends" in spec.data:
        raise spec.error("extends", "only a profile file may extend another (load_profile), or see extend_profile")
    spec.only(*_PROFILE_KEYS)
    auth = spec.get("auth", str, "none")
    if auth not in AUTH_KINDS:
        raise spec.error("auth", f"expected one of {', '.join(AUTH_KINDS)}, got {auth!r}")
    levels = {}
    for check, level in spec.get("levels", dict, {}).items():
        if check not in CATALOG:
            raise spec.error(f"levels.{check}", "unknown check id (see contracts/checks.yaml)")
        if level not in ("MUST", "SHOULD"):
            raise spec.error(f"levels.{check}", f"expected MUST or SHOULD, got {level!r}")
        levels[check] = level
    stream = _stream(spec.sub("stream"))
    operations = {name: _operation(name, op) for name, op in spec.items("operations")}
    if "stream" not in operations:
        raise spec.error("operations", "a profile needs at least the `stream` operation")
    for name, op in operations.items():
        if op.name == "stream" and op.stream_call is None:
            raise spec.error(f"operations.{name}", "no call is marked `stream: true`")
    return Profile(
        name=spec.get("name", str),
        summary=spec.get("summary", str, ""),
        auth=auth,
        capabilities=frozenset(spec.strings("capabilities", ())),
        levels=levels,
        settings={str(k): str(v) for k, v in spec.get("settings", dict, {}).items()},
        stream=stream,
        operations=operations,
        source=source,
    )


def _stream(spec: Spec) -> StreamSpec:
    spec.only(*_STREAM_KEYS)
    try:
        grammar = Grammar.parse(spec.get("grammar", str))
    except GrammarError as err:
        raise spec.error("grammar", str(err)) from None
    kinds = []
    for i, raw in enumerate(spec.get("kinds", list, [])):
        rule = Spec(raw, spec.source, f"{spec.path}.kinds[{i}]")
        rule.only("kind", "data", "has")
        kinds.append(KindRule(rule.get("kind", str), rule.get("data", str, None), rule.get("has", str, None)))
    kind_field = spec.get("kind_field", str, None)
    if kind_field is None and not kinds:
        raise spec.error("kind_field", "give `kind_field` (the JSON field naming the event kind) or `kinds` rules")
    text = spec.sub("text")
    text.only("kinds", "field", "join")
    join = text.get("join", str, "concat")
    if join not in ("concat", "words"):
        raise text.error("join", f"expected concat or words, got {join!r}")
    fields: dict[str, dict[str, str]] = {}
    for kind, rules in spec.items("fields"):
        for name, rule in rules.data.items():
            if rule not in FIELD_RULES:
                raise rules.error(str(name), f"unknown rule {rule!r} (known: {', '.join(FIELD_RULES)})")
        fields[kind] = {str(k): str(v) for k, v in rules.data.items()}
    captures = {}
    for variable, where in spec.items("captures"):
        where.only("kind", "field")
        captures[variable] = (where.get("kind", str), where.get("field", str))
    usage = None
    if "usage" in spec.data:
        where = spec.sub("usage")
        where.only("kind", "field")
        usage = (frozenset(where.strings("kind")), where.get("field", str))
    done, error = frozenset(spec.strings("done")), frozenset(spec.strings("error"))
    text_kinds = frozenset(text.strings("kinds"))
    heartbeat = frozenset(spec.strings("heartbeat", ()))
    named = [("done", done), ("error", error), ("text.kinds", text_kinds), ("heartbeat", heartbeat)]
    if usage is not None:
        named.append(("usage.kind", usage[0]))
    for key, names in named:
        unknown = names - grammar.symbols
        if unknown:
            raise spec.error(key, f"{', '.join(sorted(unknown))} not in the grammar {grammar.text!r}")
    after_terminal = frozenset(spec.strings("after_terminal", ()))
    beyond = after_terminal - grammar.follows(done | error)
    if beyond:
        raise spec.error(
            "after_terminal",
            f"{', '.join(sorted(beyond))} cannot follow a terminal event ({', '.join(sorted(done | error))}) "
            f"in the grammar {grammar.text!r}",
        )
    when: dict[str, str] = {}
    for kind, pattern in spec.get("after_terminal_when", dict, {}).items():
        if kind not in after_terminal:
            raise spec.error(f"after_terminal_when.{kind}", f"{kind!r} is not in after_terminal")
        try:
            re.compile(str(pattern))
        except re.error as err:
            raise spec.error(f"after_terminal_when.{kind}", f"not a regular expression: {err}") from None
        when[str(kind)] = str(pattern)
    return StreamSpec(
        grammar=grammar,
        kind_field=kind_field,
        kinds=tuple(kinds),
        done=done,
        error=error,
        text_kinds=text_kinds,
        text_field=text.get("field", str),
        join=join,
        sentinel=spec.get("sentinel", str, None),
        fields=fields,
        heartbeat_kinds=heartbeat,
        captures=captures,
        usage=usage,
        after_terminal=after_terminal,
        after_terminal_when=when,
    )


def _operation(name: str, spec: Spec) -> Operation:
    spec.only("calls", "text", "messages", "role_field", "content_field")
    calls = []
    for i, raw in enumerate(spec.get("calls", list)):
        calls.append(_call(Spec(raw, spec.source, f"{spec.path}.calls[{i}]")))
    if not calls:
        raise spec.error("calls", "an operation needs at least one call")
    return Operation(
        name=name,
        calls=tuple(calls),
        text=spec.get("text", str, None),
        messages=spec.get("messages", str, None),
        role_field=spec.get("role_field", str, "role"),
        content_field=spec.get("content_field", str, "content"),
    )


def _call(spec: Spec) -> Call:
    spec.only(
        "method",
        "path",
        "query",
        "headers",
        "json",
        "auth",
        "stream",
        "status",
        "preferred_status",
        "capture",
        "answer",
        "request",
    )
    method = spec.get("method", str).upper()
    if method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        raise spec.error("method", f"unsupported HTTP method {method!r}")
    path = spec.get("path", str)
    if not path.startswith("/"):
        raise spec.error("path", f"must start with '/', got {path!r}")
    stream = spec.get("stream", bool, False)
    # contracts.md, common to all five: a POST that starts a stream answers 200, 201 tolerated (a SHOULD)
    posted_stream = stream and method == "POST" and "status" not in spec.data
    status = spec.get("status", (int, list), [200, 201] if posted_stream else 200)
    statuses = (status,) if isinstance(status, int) else tuple(status)
    if not all(isinstance(s, int) and 100 <= s <= 599 for s in statuses):
        raise spec.error("status", f"expected HTTP status codes, got {status!r}")
    preferred = spec.get("preferred_status", int, 200 if stream and method == "POST" and 200 in statuses else None)
    if preferred is not None and preferred not in statuses:
        raise spec.error("preferred_status", f"{preferred} is not one of the call's statuses {list(statuses)}")
    return Call(
        method=method,
        path=path,
        query=spec.get("query", dict, {}),
        headers={str(k): str(v) for k, v in spec.get("headers", dict, {}).items()},
        json=spec.data.get("json"),
        auth=spec.get("auth", bool, True),
        stream=stream,
        status=statuses,
        preferred_status=preferred,
        capture={str(k): str(v) for k, v in spec.get("capture", dict, {}).items()},
        answer=_answer(spec, stream),
        request=_request_fields(spec),
    )


def _request_fields(spec: Spec) -> dict[str, RequestField]:
    """`request: {message: text, session_id: string?}`: each a key of the call's `json:` or `query:`."""
    declared = spec.get("request", dict, {})
    body, query = spec.data.get("json"), spec.data.get("query") or {}
    present = set(body) if isinstance(body, dict) else set(query)
    out = {}
    for name, rule in declared.items():
        kind = str(rule).removesuffix("?")
        if kind not in REQUEST_RULES:
            raise spec.error(
                f"request.{name}", f"expected one of {', '.join(REQUEST_RULES)} (with ? if optional), got {rule!r}"
            )
        if name not in present:
            raise spec.error(f"request.{name}", "is in neither the call's `json:` nor its `query:`")
        out[str(name)] = RequestField(str(name), kind, required=not str(rule).endswith("?"))
    return out


def _answer(spec: Spec, stream: bool) -> dict[str, Any]:
    answer = spec.get("answer", dict, {})
    if answer and stream:
        raise spec.error("answer", "a stream call's events are described under `stream.fields`, not `answer`")
    for path, rule in answer.items():
        if not isinstance(path, str) or not path:
            raise spec.error("answer", f"expected JSON paths as keys, got {path!r}")
        if rule == "joined-text" or isinstance(rule, (dict, list)):
            rules = ", ".join(r for r in FIELD_RULES if r != "joined-text")
            raise spec.error(f"answer.{path}", f"expected a field rule ({rules}) or an exact value, got {rule!r}")
    return answer
