"""One stream measured read by read: the per-token hot path of the load client.

The client hands every network read to `StreamMeter.read` with the time it returned. The meter
splits the bytes into events, tells each event's kind by the contract profile (the same YAML the
conformance suite reads), steps the profile's grammar, and notes the time of every event that
carries answer text. `finish` turns that into a `StreamResult`: time to headers, to the first event,
TTFT (first event with non-empty text; a role-only or metadata event is not a token), every gap
between token events, TPOT over output tokens (the API's usage count where the profile names one,
else the tokenizer on the text, never the number of events), end to end to the last token and to the
close. A stream that breaks its grammar, ends without a terminal event or ends in the profile's
error event is a failure with a kind, never a fast success. Pure: times come in as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from contracts import EventSplitter, GrammarMatcher, StreamSpec, normalize
from mockllm import count_tokens

_loads = msgspec.json.Decoder().decode  # four times json.loads's speed; the hot path's largest cost
Path = tuple[tuple[str, int], ...]  # each step: (the key, its list index or -1)


def compile_path(dotted: str) -> Path:
    """A dotted path (`choices.0.delta.content`) laid out once, so a lookup parses no digits."""
    return tuple((key, int(key) if key.isdecimal() else -1) for key in dotted.split("."))


def get_path(payload: Any, path: Path) -> Any:
    """The value at a compiled dotted path, None when absent (a digit indexes a list, keys a dict)."""
    current = payload
    for key, index in path:
        kind = type(current)
        if kind is dict:
            current = current.get(key)
        elif kind is list and 0 <= index < len(current):
            current = current[index]
        else:
            return None
    return current


class StreamFailure(Exception):
    """The stream broke its contract; `kind` is one of the report's error kinds."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True, slots=True)
class StreamRules:
    """A profile's stream rules laid out for the hot path; built once per process."""

    spec: StreamSpec
    kind_field: str | None
    data_rules: dict[str, str]  # exact data -> kind (`[DONE]`)
    has_rules: tuple[tuple[Path, str], ...]  # (field path, kind), in the profile's order
    text_kinds: frozenset[str]
    text_only: frozenset[str]  # text kinds that are no capture's, usage's or terminal kind
    text_path: Path
    done: frozenset[str]
    error: frozenset[str]
    terminal: frozenset[str]
    sentinel: str | None
    usage: tuple[frozenset[str], Path] | None
    captures: dict[str, tuple[tuple[str, Path], ...]]  # kind -> ((variable, field path), ...)

    @classmethod
    def of(cls, spec: StreamSpec) -> StreamRules:
        return cls(
            spec=spec,
            kind_field=spec.kind_field,
            data_rules={rule.data: rule.kind for rule in spec.kinds if rule.data is not None},
            has_rules=tuple((compile_path(rule.has), rule.kind) for rule in spec.kinds if rule.has is not None),
            text_kinds=spec.text_kinds,
            text_only=spec.text_kinds
            - spec.terminal
            - {kind for kind, _ in spec.captures.values()}
            - (spec.usage[0] if spec.usage else frozenset()),
            text_path=compile_path(spec.text_field),
            done=spec.done,
            error=spec.error,
            terminal=spec.terminal,
            sentinel=spec.sentinel,
            usage=(spec.usage[0], compile_path(spec.usage[1])) if spec.usage else None,
            captures=_captures(spec),
        )

    def classify(self, data: str) -> tuple[str, Any]:
        """The event's kind and JSON payload; StreamFailure("protocol") when neither can be read."""
        kind = self.data_rules.get(data)
        if kind is not None:
            return kind, None
        if data == self.sentinel:
            return "", None
        try:
            payload = _loads(data)
        except (msgspec.DecodeError, UnicodeEncodeError):
            raise StreamFailure("protocol", f"event data is not JSON: {data[:80]!r}") from None
        if type(payload) is not dict:
            raise StreamFailure("protocol", f"event data is not a JSON object: {data[:80]!r}")
        if self.kind_field is not None:
            kind = payload.get(self.kind_field)
            if type(kind) is str:
                return kind, payload
        for path, kind in self.has_rules:
            # A one-key rule (`choices`, `error`) is one dict lookup: the payload is a dict.
            if (payload.get(path[0][0]) if len(path) == 1 else get_path(payload, path)) is not None:
                return kind, payload
        raise StreamFailure("protocol", f"cannot tell the event's kind: {data[:80]!r}")


def _captures(spec: StreamSpec) -> dict[str, tuple[tuple[str, Path], ...]]:
    by_kind: dict[str, list[tuple[str, Path]]] = {}
    for variable, (kind, path) in spec.captures.items():
        by_kind.setdefault(kind, []).append((variable, compile_path(path)))
    return {kind: tuple(pairs) for kind, pairs in by_kind.items()}


@dataclass(slots=True)
class StreamResult:
    """What one stream measured; times in nanoseconds on the client's monotonic clock."""

    t_sched: int  # when it was meant to start (== t0 in a closed loop)
    t0: int  # just before the request was sent
    t_headers: int | None = None
    t_first_event: int | None = None
    token_times: list[int] = field(default_factory=list)  # each event that carried answer text
    t_terminal: int | None = None
    t_end: int | None = None  # the body ended (or the failure was seen)
    events: int = 0
    text: str = ""
    output_tokens: int = 0
    usage_tokens: int | None = None  # the API's own count, when the profile names one
    tokenizer_tokens: int = 0
    error_kind: str | None = None
    error_detail: str = ""
    captured: dict[str, Any] = field(default_factory=dict)  # the profile's stream captures (a session id)

    @property
    def ok(self) -> bool:
        return self.error_kind is None

    @property
    def ttft(self) -> int | None:
        return self.token_times[0] - self.t0 if self.token_times else None

    @property
    def gaps(self) -> list[int]:
        times = self.token_times
        return [times[i] - times[i - 1] for i in range(1, len(times))]

    @property
    def tpot(self) -> float | None:
        """(t_last - t_first) / (N - 1) over output tokens; undefined for one token or none."""
        if len(self.token_times) < 1 or self.output_tokens <= 1:
            return None
        return (self.token_times[-1] - self.token_times[0]) / (self.output_tokens - 1)

    @property
    def e2e(self) -> int | None:
        return self.token_times[-1] - self.t0 if self.token_times else None

    @property
    def e2e_close(self) -> int | None:
        return None if self.t_end is None else self.t_end - self.t0


class StreamMeter:
    """Feed it one stream's body reads with their times; `finish` gives the `StreamResult`."""

    __slots__ = ("_grammar", "_pieces", "_result", "_rules", "_splitter", "_symbols", "_terminal_kind")

    def __init__(self, rules: StreamRules, t_sched: int, t0: int) -> None:
        self._rules = rules
        self._splitter = EventSplitter()
        self._grammar = GrammarMatcher(rules.spec.grammar)
        self._pieces: list[str] = []
        self._result = StreamResult(t_sched, t0)
        self._symbols = 0
        self._terminal_kind: str | None = None

    @property
    def result(self) -> StreamResult:
        return self._result

    def headers(self, t: int) -> None:
        self._result.t_headers = t

    def read(self, body: bytes, t: int) -> None:
        """One read's body bytes, arrived at `t`. Raises StreamFailure at the first broken rule."""
        events = self._splitter.feed(body)
        if not events:
            return
        rules, result = self._rules, self._result
        if result.t_first_event is None:
            result.t_first_event = t
        classify, step = rules.classify, self._grammar.step
        text_kinds, text_only, text_path, captures = rules.text_kinds, rules.text_only, rules.text_path, rules.captures
        for _, data in events:
            result.events += 1
            kind, payload = classify(data)
            if not kind:  # the sentinel after the terminal event
                if self._terminal_kind is None:
                    raise StreamFailure("grammar", f"{data!r} before the terminal event")
                continue
            self._symbols += 1
            if not step(kind):
                after = f"after the terminal {self._terminal_kind!r}" if self._terminal_kind else "here"
                raise StreamFailure("grammar", f"event {self._symbols} {kind!r} not allowed {after}")
            if kind in text_kinds:
                piece = get_path(payload, text_path)
                if type(piece) is str and piece:
                    self._pieces.append(piece)
                    result.token_times.append(t)
                if kind in text_only:  # nothing else to look for in it (worked out once per profile)
                    continue
            if kind in captures:
                for variable, path in captures[kind]:
                    value = get_path(payload, path)
                    if value is not None:
                        result.captured[variable] = value
            usage = rules.usage
            if usage is not None and kind in usage[0]:
                count = get_path(payload, usage[1])
                if type(count) is int:
                    result.usage_tokens = count
            if kind in rules.terminal:
                self._terminal_kind = kind
                result.t_terminal = t
                if kind in rules.error:
                    raise StreamFailure("error-event", f"the stream ended in {kind!r}: {data[:160]}")

    def finish(self, t: int) -> StreamResult:
        """The body ended at `t`: a stream without its terminal event is a failure."""
        result = self._result
        result.t_end = t
        if self._terminal_kind is None and result.error_kind is None:
            tail = self._splitter.pending
            detail = f"{len(tail)} bytes of an unfinished event" if tail else f"after {self._symbols} events"
            result.error_kind = "no-terminal"
            result.error_detail = f"the stream ended without a terminal event, {detail}"
        self._settle()
        return result

    def fail(self, t: int, failure: StreamFailure) -> StreamResult:
        result = self._result
        result.t_end = t
        result.error_kind, result.error_detail = failure.kind, failure.detail
        self._settle()
        return result

    def _settle(self) -> None:
        result = self._result
        spec = self._rules.spec
        result.text = " ".join(self._pieces) if spec.join == "words" else "".join(self._pieces)
        result.tokenizer_tokens = count_tokens(result.text)
        result.output_tokens = result.usage_tokens if result.usage_tokens is not None else result.tokenizer_tokens


def same_text(spec: StreamSpec, streamed: str, answer: str) -> bool:
    """The streamed text is the answer (whitespace-insensitive for a words join)."""
    if spec.join == "words":
        return normalize(streamed) == normalize(answer)
    return streamed == answer
