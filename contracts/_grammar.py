"""Event grammars: which sequences of event types a contract allows, checked one event at a time.

A grammar is a regular expression over event-type names, e.g. ``session content* (done | error)``:
names (``[A-Za-z_][A-Za-z0-9_-]*``) in sequence, ``|`` for alternatives (lowest precedence),
postfix ``*``, ``+`` and ``?``, and parentheses. It is compiled once into a position (Glushkov)
automaton, whose states are the name occurrences in the text; a matcher steps a set of them per
event, so a streaming check can stop at the first event that breaks the grammar and say which one
it was and what was allowed instead. The sets reached are cached per grammar, so matching many
streams against one grammar costs a dictionary look-up per event.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

_START = 0  # the automaton's start state; positions (name occurrences) are 1..n
_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_.-]*)|([|*+?()])|(\S))")


class GrammarError(ValueError):
    """A grammar text that does not parse; the message quotes it and points at the column."""

    def __init__(self, grammar: str, column: int, problem: str, detail: str = "") -> None:
        self.grammar = grammar
        self.column = column  # 1-based
        self.problem = problem
        pointer = " " * (column - 1) + "^"
        super().__init__(f"{problem} at column {column}{detail} in grammar {grammar!r}\n  {grammar}\n  {pointer}")


@dataclass(frozen=True, slots=True)
class _Fragment:
    """What the position construction needs of a sub-expression."""

    nullable: bool
    first: frozenset[int]
    last: frozenset[int]


class _Parser:
    """Recursive descent over the tokens, building the automaton's follow sets as it goes."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []  # (kind, text, 1-based column)
        for match in _TOKEN.finditer(text):
            name, operator, other = match.groups()
            column = match.start(match.lastindex or 0) + 1
            if other is not None:
                raise GrammarError(text, column, f"unexpected character {other!r}")
            self.tokens.append(("name", name, column) if name else (operator, operator, column))
        self.tokens.append(("end", "", len(text) + 1))
        self.at = 0
        self.symbols: list[str] = [""]  # the symbol of each position; the start state has none
        self.follow: list[set[int]] = [set()]

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.at]

    def fail(self, problem: str, detail: str = "") -> GrammarError:
        return GrammarError(self.text, self.peek()[2], problem, detail)

    def parse(self) -> _Fragment:
        if self.peek()[0] == "end":
            raise self.fail("expected a name or '('", ", found the end (the grammar is empty)")
        whole = self.alternation()
        kind, token, _ = self.peek()
        if kind == ")":
            raise self.fail("unmatched ')'")
        if kind != "end":  # unreachable with this syntax, kept as a guard
            raise self.fail(f"unexpected {token!r}")
        return whole

    def alternation(self) -> _Fragment:
        fragment = self.sequence()
        while self.peek()[0] == "|":
            self.at += 1
            other = self.sequence()
            fragment = _Fragment(
                fragment.nullable or other.nullable, fragment.first | other.first, fragment.last | other.last
            )
        return fragment

    def sequence(self) -> _Fragment:
        kind, token, _ = self.peek()
        if kind in ("|", ")", "end"):
            found = "the end" if kind == "end" else repr(token)
            raise self.fail("empty alternative: expected a name or '('", f", found {found}")
        fragment = self.repetition()
        while self.peek()[0] in ("name", "("):
            other = self.repetition()
            for position in fragment.last:
                self.follow[position] |= other.first
            fragment = _Fragment(
                fragment.nullable and other.nullable,
                fragment.first | other.first if fragment.nullable else fragment.first,
                other.last | fragment.last if other.nullable else other.last,
            )
        return fragment

    def repetition(self) -> _Fragment:
        fragment = self.atom()
        while self.peek()[0] in ("*", "+", "?"):
            kind = self.peek()[0]
            self.at += 1
            if kind in ("*", "+"):
                for position in fragment.last:
                    self.follow[position] |= fragment.first
            fragment = _Fragment(fragment.nullable or kind != "+", fragment.first, fragment.last)
        return fragment

    def atom(self) -> _Fragment:
        kind, token, column = self.peek()
        if kind == "name":
            self.at += 1
            position = len(self.symbols)
            self.symbols.append(token)
            self.follow.append(set())
            return _Fragment(False, frozenset({position}), frozenset({position}))
        if kind == "(":
            self.at += 1
            inner = self.alternation()
            if self.peek()[0] != ")":
                raise self.fail("expected ')'", f" to close the '(' at column {column}")
            self.at += 1
            return inner
        if kind in ("*", "+", "?"):
            raise self.fail(f"{token!r} has nothing to repeat")
        raise self.fail("expected a name or '('")  # unreachable: sequence() checks first


@dataclass(frozen=True)
class GrammarVerdict:
    ok: bool
    position: int | None  # index of the first symbol that broke the grammar; None if ok or merely incomplete
    expected: frozenset[str]  # what was allowed at `position` (or at the end, when incomplete)
    message: str


@dataclass(frozen=True)
class Grammar:
    text: str
    symbols: frozenset[str]
    _transitions: tuple[dict[str, frozenset[int]], ...] = field(repr=False, compare=False)
    _accepting: frozenset[int] = field(repr=False, compare=False)
    _positions: tuple[str, ...] = field(default=(), repr=False, compare=False)  # the symbol of each position
    # Subset-construction memo, filled lazily: (state set, symbol) -> next state set.
    _steps: dict[tuple[frozenset[int], str], frozenset[int]] = field(default_factory=dict, repr=False, compare=False)
    _expected: dict[frozenset[int], frozenset[str]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> Grammar:
        parser = _Parser(text)
        whole = parser.parse()
        parser.follow[_START] = set(whole.first)
        transitions = []
        for follow in parser.follow:
            by_symbol: dict[str, set[int]] = {}
            for position in follow:
                by_symbol.setdefault(parser.symbols[position], set()).add(position)
            transitions.append({symbol: frozenset(positions) for symbol, positions in by_symbol.items()})
        accepting = whole.last | {_START} if whole.nullable else whole.last
        return cls(
            text,
            frozenset(parser.symbols[1:]),
            tuple(transitions),
            frozenset(accepting),
            _positions=tuple(parser.symbols),
        )

    def follows(self, symbols: frozenset[str]) -> frozenset[str]:
        """The symbols that some sentence lets come right after one of `symbols` (after `llm_complete`
        in `... (llm_complete system? | error)`: `system`)."""
        found: set[str] = set()
        for position, symbol in enumerate(self._positions):
            if position != _START and symbol in symbols:
                found.update(self._transitions[position])
        return frozenset(found)

    def matcher(self) -> GrammarMatcher:
        return GrammarMatcher(self)

    def check(self, symbols: Sequence[str]) -> GrammarVerdict:
        """The verdict on a whole stream's event types: fine, broken at one event, or cut short."""
        matcher = self.matcher()
        for index, symbol in enumerate(symbols):
            allowed = matcher.expected
            if not matcher.step(symbol):
                # Nothing allowed: the previous event ended a sentence that cannot go on.
                instead = f"expected {_one_of(allowed)}" if allowed else f"nothing may follow {symbols[index - 1]!r}"
                message = f"event {index} {symbol!r} is not allowed here; {instead}"
                return GrammarVerdict(False, index, allowed, message)
        if matcher.accepting:
            return GrammarVerdict(True, None, frozenset(), f"{len(symbols)} events match {self.text!r}")
        after = f"after {symbols[-1]!r}" if symbols else "before any event"
        return GrammarVerdict(
            False, None, matcher.expected, f"the stream ended {after}; expected {_one_of(matcher.expected)}"
        )

    def _step(self, state: frozenset[int], symbol: str) -> frozenset[int]:
        key = (state, symbol)
        found = self._steps.get(key)
        if found is None:
            empty: frozenset[int] = frozenset()
            found = empty.union(*(self._transitions[position].get(symbol, empty) for position in state))
            self._steps[key] = found
        return found

    def _allowed(self, state: frozenset[int]) -> frozenset[str]:
        found = self._expected.get(state)
        if found is None:
            found = frozenset().union(*(self._transitions[position].keys() for position in state))
            self._expected[state] = found
        return found


class GrammarMatcher:
    """Steps through one stream's event types; dead (for good) after the first one not allowed."""

    __slots__ = ("_grammar", "_state")

    def __init__(self, grammar: Grammar) -> None:
        self._grammar = grammar
        self._state = frozenset({_START})

    def step(self, symbol: str) -> bool:
        """Take the next event type; False when no sentence of the grammar continues with it."""
        if not self._state:
            return False
        self._state = self._grammar._step(self._state, symbol)
        return bool(self._state)

    @property
    def accepting(self) -> bool:
        """The event types so far form a whole sentence of the grammar."""
        return not self._state.isdisjoint(self._grammar._accepting)

    @property
    def expected(self) -> frozenset[str]:
        """The event types that may come next (empty when dead, or when only the end may)."""
        return self._grammar._allowed(self._state)


def _one_of(names: frozenset[str]) -> str:
    if len(names) == 1:
        return next(iter(names))
    return "one of: " + ", ".join(sorted(names))
