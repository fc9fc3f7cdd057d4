"""A contract profile's stream events: which kinds a stream carries, and the payload of each from
the profile's field rules (`_contract_frames` makes a request's bytes of them).

Pure. The kinds are chosen from the grammar once per profile (`event_kinds`) and checked: every
event the mock would send is read back the way the conformance suite reads it (a kind field, a
`data:` rule, a `has:` rule) and must come out as the kind it was made for (`check_events`).
A text event's text and counter are marker strings (`TEXT_SLOT`, `COUNTER_SLOT`) where the frames
cut the encoded event once per request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts import Grammar, StreamSpec, field_value

from ._errors import ContractError
from ._jsonbytes import dumps

_HEAD_SEARCH_DEPTH = 4  # the longest run of other kinds tried before the first text event
# Private-use characters: they pass through JSON unescaped, and no answer or id carries them.
TEXT_SLOT = "\ue000mock-text\ue000"
COUNTER_SLOT = "\ue000mock-counter\ue000"
ERROR_TEXT = "The model failed while answering; please try again."


@dataclass(frozen=True, slots=True)
class EventKinds:
    """The kinds the mock's streams of a profile carry, in the order they come."""

    head: tuple[str, ...]  # before the first text event (sent on arrival)
    text: str
    done: str
    error: str


@dataclass(frozen=True, slots=True)
class Values:
    """What fills a field rule, in events and in answers, for one request."""

    model: str
    timestamp: str  # ISO 8601, from the request's seed (same request, same bytes)
    uuid: str  # the conversation's id when it is a UUID, else one from the seed
    tokens: int = 0  # the answer's completion tokens
    joined: str = ""  # the answer text as the client joins it
    error: str = ERROR_TEXT  # the text of an error event


def rule_value(rule: str, values: Values, *, error: bool = False) -> Any:
    """The value a field rule is given; a rule that names no particular value gets a plausible one
    (a string: the model's name, or in an error event its message)."""
    if rule in ("string", "text"):
        return values.error if error else (values.model if rule == "string" else "")
    if rule in ("word", "present"):
        return values.model
    if rule == "integer":
        return values.tokens
    if rule == "counter":
        return 0
    if rule == "iso8601":
        return values.timestamp
    if rule == "uuid":
        return values.uuid
    if rule == "object":
        return {}
    if rule == "list":
        return []
    if rule == "joined-text":
        return values.joined
    raise AssertionError(f"unknown field rule {rule!r}")  # parse_profile admits only FIELD_RULES


def set_path(document: dict[str, Any], path: str, value: Any, *, replace: bool = False) -> None:
    """Put `value` at a dotted path, making the mappings on the way; an existing value stays unless
    `replace` (so `metadata: object` and `metadata.model: string` make one object, in either order)."""
    *parents, last = path.split(".")
    current = document
    for part in parents:
        child = current.get(part)
        if not isinstance(child, dict):
            child = current[part] = {}
        current = child
    if replace or last not in current:
        current[last] = value


# -- which kinds ---------------------------------------------------------------------------------------


def event_kinds(profile: str, spec: StreamSpec) -> EventKinds:
    """Head, text, done and error kinds that make grammatical streams of any length, cut or not."""
    grammar = spec.grammar
    if not spec.text_kinds:
        raise ContractError(profile, "its stream has no text kinds (`text.kinds`): there is no answer to stream")
    if not spec.done or not spec.error:
        missing = "`done`" if not spec.done else "`error`"
        raise ContractError(profile, f"its stream has no {missing} kind: the mock could not end a stream so")
    text, done, error = sorted(spec.text_kinds)[0], sorted(spec.done)[0], sorted(spec.error)[0]
    others = sorted(grammar.symbols - spec.text_kinds - spec.terminal - spec.heartbeat_kinds - spec.after_terminal)
    head = _head(grammar, text, others)
    if head is None:
        raise ContractError(
            profile,
            f"no run of up to {_HEAD_SEARCH_DEPTH} of its other kinds ({', '.join(others) or 'none'}) lets a "
            f"{text!r} event follow in the grammar {grammar.text!r}",
        )
    for body, end in (((), done), ((text,), done), ((text, text), done), ((), error), ((text,), error)):
        sentence = [*head, *body, end]
        verdict = grammar.check(sentence)
        if not verdict.ok:
            problem = f"the stream {' '.join(sentence)} does not match its grammar: {verdict.message}"
            raise ContractError(profile, problem)
    return EventKinds(head, text, done, error)


def _head(grammar: Grammar, text: str, others: list[str]) -> tuple[str, ...] | None:
    """The shortest run of `others` after which a `text` event is allowed (breadth first)."""
    level: list[tuple[str, ...]] = [()]
    for _ in range(_HEAD_SEARCH_DEPTH + 1):
        following: list[tuple[str, ...]] = []
        for run in level:
            matcher = grammar.matcher()
            if all(matcher.step(kind) for kind in run):
                if text in matcher.expected:
                    return run
                following += [(*run, kind) for kind in others if kind in matcher.expected]
        level = following
    return None


# -- payloads ------------------------------------------------------------------------------------------


def payload(spec: StreamSpec, kind: str, values: Values, variables: Mapping[str, Any]) -> str | dict[str, Any]:
    """The data of one event of `kind`: a `data:` rule's exact text, else a JSON object with the kind
    field, the stream's captured variables, the text (a text kind) and every field rule of the kind."""
    for rule in spec.kinds:
        if rule.kind == kind and rule.data is not None:
            return rule.data
    out: dict[str, Any] = {}
    if spec.kind_field is not None:
        out[spec.kind_field] = kind
    for variable, (captured_kind, path) in spec.captures.items():
        if captured_kind == kind and variable in variables:
            set_path(out, path, variables[variable])
    text = kind in spec.text_kinds
    if text:
        set_path(out, spec.text_field, TEXT_SLOT)
    error = kind in spec.error
    for path, rule in spec.fields.get(kind, {}).items():
        set_path(out, path, COUNTER_SLOT if text and rule == "counter" else rule_value(rule, values, error=error))
    for rule in spec.kinds:
        if rule.kind == kind and rule.has is not None and field_value(out, rule.has) is None:
            set_path(out, rule.has, values.error if error else values.model)
    return out


def encode(data: str | dict[str, Any]) -> bytes:
    text = data.encode() if isinstance(data, str) else dumps(data)
    return b"data: " + text + b"\n\n"


def read_kind(spec: StreamSpec, data: str) -> str | None:
    """The kind a client reading by the profile sees in an event's data (as the conformance suite reads it)."""
    for rule in spec.kinds:
        if rule.data is not None and data == rule.data:
            return rule.kind
    try:
        value = json.loads(data)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    if spec.kind_field is not None and isinstance(value.get(spec.kind_field), str):
        return str(value[spec.kind_field])
    return next((r.kind for r in spec.kinds if r.has is not None and field_value(value, r.has) is not None), None)


def check_events(profile: str, spec: StreamSpec, kinds: EventKinds) -> None:
    """Every kind the mock sends reads back as itself, or a ContractError naming the one that does not."""
    values = Values(model="mock", timestamp="2023-11-14T22:13:20+00:00", uuid="00000000-0000-4000-8000-000000000000")
    variables = {name: values.uuid for name in spec.captures}
    for kind in (*kinds.head, kinds.text, kinds.done, kinds.error):
        data = encode(payload(spec, kind, values, variables)).decode()[len("data: ") : -2]
        data = data.replace(json.dumps(TEXT_SLOT, ensure_ascii=False), '"word"')
        data = data.replace(json.dumps(COUNTER_SLOT, ensure_ascii=False), "0")
        seen = read_kind(spec, data)
        if seen != kind:
            raise ContractError(
                profile, f"the mock's {kind!r} event {data} reads as {seen!r}: its kinds cannot be told apart"
            )
