"""Faults the mock injects, and the schedules that decide which request gets one.

One spec syntax serves the `x-mock-fault` header, the config file and the admin API:

    429 | 500 | 503 | 529 | any status 400-599   an HTTP error before the stream
        [,retry-after=S]                         (429 and 503 carry Retry-After)
    error-after=N        an in-band error event after N content chunks, then the end
    disconnect-after=N   the connection closes after N chunks, mid-body
    stall-after=N[,for=S]  silence after N chunks: for good, or for S seconds and then on
    malformed-after=N    a chunk that is not valid JSON after N chunks, then the rest
    truncate[-after=N]   the body ends cleanly after N chunks (all by default): no finish, no [DONE]
    fragment             a valid stream written in small pieces at odd byte offsets
    reset                the connection is reset (RST, SO_LINGER 0) once the request is read:
                         no status line, the client sees ECONNRESET
    refuse,for=S         the same reset, and the listener stops accepting for S seconds, then
                         listens again on the same port: new connections meanwhile get a real
                         ECONNREFUSED (an upstream that crashed and restarts)

Every fault but `refuse` is the matched request's own. A refused connection carries no request, so
nothing can be matched to it: `refuse` is instead triggered by a request it matches (that request's
connection is reset, as a crashing process resets it), and the window then refuses every new
connection, admin API included (connections already open are served on). `POST /_mock/refuse
{"for_s": S}` opens a window at once, with no request. Windows show in `GET /_mock/stats`
(`refusing_s`, `refusal_windows`) and `/metrics` (`mockllm_refusal_windows_total`).

Each parsed fault also says what it does on the wire (`Fault.effect`: a stall with `for=S` is a
pause), so the wire schedule plays the effect it is given and decides none itself.

Schedules (`when` in config) pick requests by a seeded probability, the first N, every k-th, or
a prompt pattern. The probability draw comes from the request's own seeded generator, so it
depends on the request and the seed, never on arrival order.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from ._errors import ConfigError

FaultKind = Literal["http", "error", "disconnect", "stall", "malformed", "truncate", "fragment", "reset", "refuse"]
"""What a spec names (`stall-after=N` and `stall-after=N,for=S` are both a stall)."""

FaultEffect = Literal[
    "http", "error", "disconnect", "stall", "pause", "malformed", "truncate", "fragment", "reset", "refuse"
]
"""What a fault does to the response: its kind, except that a stall with `for=S` is a pause (the
silence passes and the rest follows, later by S seconds); a stall is silence for good."""

_COUNTED: dict[str, FaultKind] = {
    "error-after": "error",
    "disconnect-after": "disconnect",
    "stall-after": "stall",
    "malformed-after": "malformed",
    "truncate-after": "truncate",
}
_OPTIONS: dict[FaultKind, frozenset[str]] = {
    "http": frozenset({"retry-after"}),
    "stall": frozenset({"for"}),
    "refuse": frozenset({"for"}),
}
MAX_REFUSE_S = 3600.0  # a window longer than an hour is a mistake, not a test

FAULT_SYNTAX = (
    "one of 429, 500, 503, 529 (or any status 400-599, optionally ',retry-after=S'), "
    "error-after=N, disconnect-after=N, stall-after=N[,for=S], malformed-after=N, "
    "truncate, truncate-after=N, fragment, reset, refuse,for=S"
)


class FaultSyntaxError(ValueError):
    """A fault spec does not parse; the message quotes it and shows the syntax."""


@dataclass(frozen=True, slots=True)
class Fault:
    """What goes wrong with one response: `kind` as the spec names it, `effect` as the wire plays it."""

    kind: FaultKind
    spec: str
    status: int = 0
    after: int | None = None  # content chunks sent before the fault; None: all of them
    seconds: float | None = None  # a stall's length (None: for good), a refusal window's
    retry_after: float | None = None
    effect: FaultEffect = field(init=False, repr=False, compare=False)  # from the fields above

    def __post_init__(self) -> None:
        paused = self.kind == "stall" and self.seconds is not None
        object.__setattr__(self, "effect", "pause" if paused else self.kind)


def parse_fault(spec: str) -> Fault:
    """Parse a fault spec such as `stall-after=3,for=2`."""
    text = spec.strip()
    head, *option_texts = [part.strip() for part in text.split(",")]
    name, _, value = head.partition("=")
    options: dict[str, float] = {}
    for option in option_texts:
        key, sep, raw = option.partition("=")
        if not sep:
            raise FaultSyntaxError(f"fault {spec!r}: option {option!r} needs a value; expected {FAULT_SYNTAX}")
        options[key.strip()] = _number(raw, spec, key.strip())

    if name.isascii() and name.isdigit():
        if value:
            raise FaultSyntaxError(f"fault {spec!r}: a status takes no '='; expected {FAULT_SYNTAX}")
        status = int(name)
        if not 400 <= status <= 599:
            raise FaultSyntaxError(f"fault {spec!r}: status must be 400-599")
        fault = Fault("http", text, status=status, retry_after=options.get("retry-after"))
    elif name in _COUNTED:
        if not value:
            raise FaultSyntaxError(f"fault {spec!r}: {name} needs a count, e.g. {name}=3")
        after = _number(value, spec, name)
        if after != int(after):
            raise FaultSyntaxError(f"fault {spec!r}: {name} takes a whole number")
        kind = _COUNTED[name]
        fault = Fault(kind, text, after=int(after), seconds=options.get("for"))
    elif name in ("truncate", "fragment", "reset") and not value:
        fault = Fault(name, text)  # type: ignore[arg-type]
    elif name == "refuse" and not value:
        seconds = options.get("for")
        if seconds is None or not 0 < seconds <= MAX_REFUSE_S:
            raise FaultSyntaxError(
                f"fault {spec!r}: refuse needs for=S, the seconds the listener stays closed (0 < S <= "
                f"{MAX_REFUSE_S:g}): a refusal for good would leave nothing to talk to, e.g. refuse,for=2"
            )
        fault = Fault("refuse", text, seconds=seconds)
    elif name in ("truncate", "fragment", "reset", "refuse"):
        raise FaultSyntaxError(f"unknown fault {spec!r}: {name} takes no '='; expected {FAULT_SYNTAX}")
    else:
        raise FaultSyntaxError(f"unknown fault {spec!r}; expected {FAULT_SYNTAX}")

    unknown = sorted(set(options) - _OPTIONS.get(fault.kind, frozenset()))
    if unknown:
        raise FaultSyntaxError(f"fault {spec!r}: unknown option {unknown[0]!r}")
    return fault


def _number(raw: str, spec: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise FaultSyntaxError(f"fault {spec!r}: {name} must be a number, got {raw!r}") from None
    if not 0 <= value < math.inf:
        raise FaultSyntaxError(f"fault {spec!r}: {name} must be >= 0 and finite, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class Match:
    """Which requests a rule applies to; every given condition must hold."""

    contains: str | None = None
    regex: re.Pattern[str] | None = None
    model: re.Pattern[str] | None = None
    turn: int | None = None
    path: str | None = None

    def matches(self, prompt: str, model: str, turn: int, path: str = "") -> bool:
        return (
            (self.contains is None or self.contains in prompt)
            and (self.regex is None or self.regex.search(prompt) is not None)
            and (self.model is None or self.model.fullmatch(model) is not None)
            and (self.turn is None or self.turn == turn)
            and (self.path is None or self.path == path)
        )

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.contains is not None:
            out["contains"] = self.contains
        if self.regex is not None:
            out["regex"] = self.regex.pattern
        if self.model is not None:
            out["model"] = self.model.pattern
        if self.turn is not None:
            out["turn"] = self.turn
        if self.path is not None:
            out["path"] = self.path
        return out


def parse_match(value: Any, key: str) -> Match:
    """Read a match rule: `{contains, regex, model (a regex, full match), turn, path}`."""
    if value is None:
        return Match()
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a mapping, got {value!r}")
    unknown = sorted(set(value) - {"contains", "regex", "model", "turn", "path"})
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", "unknown match field; use contains, regex, model, turn, path")
    for name in ("contains", "regex", "model", "path"):
        if name in value and not isinstance(value[name], str):
            raise ConfigError(f"{key}.{name}", f"expected a string, got {value[name]!r}")
    turn = value.get("turn")
    if turn is not None and (isinstance(turn, bool) or not isinstance(turn, int) or turn < 1):
        raise ConfigError(f"{key}.turn", f"expected a whole number >= 1, got {turn!r}")
    return Match(
        contains=value.get("contains"),
        regex=_compile(value.get("regex"), f"{key}.regex"),
        model=_compile(value.get("model"), f"{key}.model"),
        turn=turn,
        path=value.get("path"),
    )


def _compile(pattern: str | None, key: str) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ConfigError(key, f"invalid regex {pattern!r}: {err}") from None


@dataclass(frozen=True, slots=True)
class FaultRule:
    """A configured fault and the schedule that picks its requests."""

    fault: Fault
    match: Match = field(default_factory=Match)
    probability: float | None = None
    first: int | None = None
    every: int | None = None

    def applies(self, request_number: int, prompt: str, model: str, turn: int, rng: random.Random) -> bool:
        """`request_number` counts from 1 over requests this rule's match admits."""
        if self.first is not None and request_number > self.first:
            return False
        if self.every is not None and request_number % self.every != 0:
            return False
        return self.probability is None or rng.random() < self.probability

    def to_config(self) -> dict[str, Any]:
        when: dict[str, Any] = self.match.to_config()
        for name in ("probability", "first", "every"):
            if getattr(self, name) is not None:
                when[name] = getattr(self, name)
        return {"fault": self.fault.spec, "when": when}


def parse_fault_rule(value: Any, key: str) -> FaultRule:
    """Read `{fault: SPEC, when: {probability | first | every | contains | regex | model | turn}}`."""
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a mapping with 'fault' and 'when', got {value!r}")
    unknown = sorted(set(value) - {"fault", "when"})
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", "unknown field; use 'fault' and 'when'")
    if not isinstance(value.get("fault"), str | int):
        raise ConfigError(f"{key}.fault", f"required: a fault spec, {FAULT_SYNTAX}")
    try:
        fault = parse_fault(str(value["fault"]))
    except FaultSyntaxError as err:
        raise ConfigError(f"{key}.fault", str(err)) from None
    if not isinstance(value.get("when") or {}, dict):
        raise ConfigError(f"{key}.when", f"expected a mapping, got {value['when']!r}")
    when = dict(value.get("when") or {})
    schedule = {name: when.pop(name) for name in ("probability", "first", "every") if name in when}
    probability = schedule.get("probability")
    if probability is not None and (
        isinstance(probability, bool) or not isinstance(probability, int | float) or not 0 <= probability <= 1
    ):
        raise ConfigError(f"{key}.when.probability", f"expected a number in [0, 1], got {probability!r}")
    for name in ("first", "every"):
        count = schedule.get(name)
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ConfigError(f"{key}.when.{name}", f"expected a whole number >= 1, got {count!r}")
    return FaultRule(
        fault=fault,
        match=parse_match(when, f"{key}.when"),
        probability=probability,
        first=schedule.get("first"),
        every=schedule.get("every"),
    )
