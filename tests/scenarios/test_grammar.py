"""Event grammars: the five contract grammars, where a sequence breaks them, and bad grammar texts."""

from __future__ import annotations

import pytest

from contracts import Grammar, GrammarError, GrammarVerdict

SESSIONS = "session content* (done | error)"
CONVERSATIONS = "chunk* (done | error)"
START_STREAM = "token* (done | error)"
QUERY_STREAM = "conversationId token* (complete | error)"
CONVERSATION_EVENTS = "connected heartbeat* (llm_chunk | heartbeat)* (llm_complete system? | error)"

SYMBOLS = {
    SESSIONS: {"session", "content", "done", "error"},
    CONVERSATIONS: {"chunk", "done", "error"},
    START_STREAM: {"token", "done", "error"},
    QUERY_STREAM: {"conversationId", "token", "complete", "error"},
    CONVERSATION_EVENTS: {"connected", "heartbeat", "llm_chunk", "llm_complete", "system", "error"},
}

ACCEPTED = [
    (SESSIONS, "session done"),
    (SESSIONS, "session error"),
    (SESSIONS, "session content content content done"),
    (SESSIONS, "session content error"),
    (CONVERSATIONS, "done"),
    (CONVERSATIONS, "error"),
    (CONVERSATIONS, "chunk chunk done"),
    (START_STREAM, "done"),
    (START_STREAM, "token token token error"),
    (QUERY_STREAM, "conversationId complete"),
    (QUERY_STREAM, "conversationId token token complete"),
    (QUERY_STREAM, "conversationId error"),
    (CONVERSATION_EVENTS, "connected llm_complete"),
    (CONVERSATION_EVENTS, "connected error"),
    (CONVERSATION_EVENTS, "connected llm_complete system"),
    (CONVERSATION_EVENTS, "connected heartbeat heartbeat llm_chunk heartbeat llm_chunk llm_complete system"),
    (CONVERSATION_EVENTS, "connected llm_chunk llm_chunk error"),
    (CONVERSATION_EVENTS, "connected heartbeat error"),
]

# (grammar, events, position of the first bad event, what was allowed there)
REJECTED = [
    (SESSIONS, "content done", 0, {"session"}),
    (SESSIONS, "session session done", 1, {"content", "done", "error"}),
    (SESSIONS, "session content token done", 2, {"content", "done", "error"}),
    (SESSIONS, "session done content", 2, set()),
    (SESSIONS, "session error done", 2, set()),
    (CONVERSATIONS, "chunk chunk session", 2, {"chunk", "done", "error"}),
    (CONVERSATIONS, "done done", 1, set()),
    (START_STREAM, "token complete", 1, {"token", "done", "error"}),
    (START_STREAM, "error token", 1, set()),
    (QUERY_STREAM, "token complete", 0, {"conversationId"}),
    (QUERY_STREAM, "conversationId token done", 2, {"token", "complete", "error"}),
    (QUERY_STREAM, "conversationId conversationId", 1, {"token", "complete", "error"}),
    (CONVERSATION_EVENTS, "heartbeat connected", 0, {"connected"}),
    (CONVERSATION_EVENTS, "connected llm_chunk system", 2, {"llm_chunk", "heartbeat", "llm_complete", "error"}),
    (CONVERSATION_EVENTS, "connected llm_complete system system", 3, set()),
    (CONVERSATION_EVENTS, "connected llm_complete heartbeat", 2, {"system"}),
    (CONVERSATION_EVENTS, "connected error system", 2, set()),
    (CONVERSATION_EVENTS, "connected connected", 1, {"heartbeat", "llm_chunk", "llm_complete", "error"}),
]

# (grammar, events, what may still come) -- every event allowed, but the sentence is not whole
INCOMPLETE = [
    (SESSIONS, "", {"session"}),
    (SESSIONS, "session", {"content", "done", "error"}),
    (SESSIONS, "session content content", {"content", "done", "error"}),
    (CONVERSATIONS, "chunk", {"chunk", "done", "error"}),
    (START_STREAM, "", {"token", "done", "error"}),
    (QUERY_STREAM, "conversationId token", {"token", "complete", "error"}),
    (CONVERSATION_EVENTS, "connected heartbeat", {"heartbeat", "llm_chunk", "llm_complete", "error"}),
]


@pytest.mark.parametrize("text", SYMBOLS)
def test_contract_grammars_parse_with_their_symbols(text: str) -> None:
    grammar = Grammar.parse(text)
    assert grammar.text == text
    assert grammar.symbols == SYMBOLS[text]


@pytest.mark.parametrize(("text", "events"), ACCEPTED)
def test_accepted(text: str, events: str) -> None:
    verdict = Grammar.parse(text).check(events.split())
    assert verdict == GrammarVerdict(True, None, frozenset(), verdict.message)


@pytest.mark.parametrize(("text", "events", "position", "expected"), REJECTED)
def test_rejected_at_the_first_bad_event(text: str, events: str, position: int, expected: set[str]) -> None:
    symbols = events.split()
    verdict = Grammar.parse(text).check(symbols)
    assert (verdict.ok, verdict.position, verdict.expected) == (False, position, expected)
    assert verdict.message.startswith(f"event {position} {symbols[position]!r} is not allowed here; ")


@pytest.mark.parametrize(("text", "events", "expected"), INCOMPLETE)
def test_incomplete(text: str, events: str, expected: set[str]) -> None:
    verdict = Grammar.parse(text).check(events.split())
    assert (verdict.ok, verdict.position, verdict.expected) == (False, None, expected)
    assert verdict.message.startswith("the stream ended ")


def test_messages() -> None:
    sessions = Grammar.parse(SESSIONS)
    assert sessions.check(["session", "content", "content", "session"]).message == (
        "event 3 'session' is not allowed here; expected one of: content, done, error"
    )
    assert sessions.check(["session", "content"]).message == (
        "the stream ended after 'content'; expected one of: content, done, error"
    )
    assert sessions.check([]).message == "the stream ended before any event; expected session"
    assert sessions.check(["content"]).message == "event 0 'content' is not allowed here; expected session"
    assert sessions.check(["session", "done", "done"]).message == (
        "event 2 'done' is not allowed here; nothing may follow 'done'"
    )


# The matcher, one event at a time


def test_matcher_steps_and_reports_what_may_come_next() -> None:
    matcher = Grammar.parse(CONVERSATION_EVENTS).matcher()
    assert (matcher.accepting, matcher.expected) == (False, {"connected"})
    assert matcher.step("connected")
    assert matcher.expected == {"heartbeat", "llm_chunk", "llm_complete", "error"}
    assert matcher.step("heartbeat") and matcher.step("llm_chunk") and matcher.step("heartbeat")
    assert not matcher.accepting
    assert matcher.step("llm_complete")
    assert (matcher.accepting, matcher.expected) == (True, {"system"})  # a whole sentence that may go on
    assert matcher.step("system")
    assert (matcher.accepting, matcher.expected) == (True, frozenset())  # a dead end: only the end may come


def test_matcher_stays_dead_after_a_bad_event() -> None:
    matcher = Grammar.parse(SESSIONS).matcher()
    assert matcher.step("session")
    assert not matcher.step("session")
    assert (matcher.accepting, matcher.expected) == (False, frozenset())
    for symbol in ("content", "done"):  # both would have been fine before
        assert not matcher.step(symbol)
    assert not matcher.accepting


def test_symbol_not_in_the_grammar_is_not_allowed() -> None:
    matcher = Grammar.parse(START_STREAM).matcher()
    assert not matcher.step("message")
    verdict = Grammar.parse(START_STREAM).check(["token", "message"])
    assert (verdict.position, verdict.expected) == (1, {"token", "done", "error"})


def test_matchers_of_one_grammar_are_independent() -> None:
    grammar = Grammar.parse(SESSIONS)
    first, second = grammar.matcher(), grammar.matcher()
    assert first.step("session") and first.step("content")
    assert not second.step("content")
    assert first.step("done") and first.accepting
    assert not second.accepting


# Operators and precedence


@pytest.mark.parametrize(
    ("text", "events", "ok"),
    [
        ("a b | c", "c", True),
        ("a b | c", "a b", True),
        ("a b | c", "a c", False),  # | binds loosest: (a b) | c
        ("a+", "", False),
        ("a+", "a a a", True),
        ("a?", "", True),
        ("a?", "a a", False),
        ("a*", "", True),
        ("(a | b?) c", "c", True),  # one optional branch makes the alternation optional
        ("(a? | b) c", "c", True),
        ("(a | b) c", "c", False),
        ("(a b)+ c", "a b a b c", True),
        ("(a b)+ c", "a b a c", False),
        ("(a | b)* c?", "b a b", True),
        ("a (b | c)? d", "a d", True),
        ("a (b | c)? d", "a c d", True),
        ("a (b | c)? d", "a b c d", False),
        ("x-y _z9", "x-y _z9", True),
        ("a  |b|  c", "b", True),
    ],
)
def test_operators(text: str, events: str, ok: bool) -> None:
    assert Grammar.parse(text).check(events.split()).ok is ok


def test_rejected_where_an_ambiguous_prefix_runs_out() -> None:
    # After "a", both branches are alive; "c" breaks them both only at event 2.
    verdict = Grammar.parse("a b c | a d").check(["a", "b", "d"])
    assert (verdict.position, verdict.expected) == (2, {"c"})
    verdict = Grammar.parse("a b c | a b d").check(["a", "b", "e"])
    assert (verdict.position, verdict.expected) == (2, {"c", "d"})


def test_equal_texts_make_equal_grammars() -> None:
    assert Grammar.parse(SESSIONS) == Grammar.parse(SESSIONS)
    assert Grammar.parse(SESSIONS) != Grammar.parse(START_STREAM)


# Grammar texts that do not parse


@pytest.mark.parametrize(
    ("text", "column", "problem"),
    [
        ("session (done | error", 22, "expected ')'"),  # unbalanced: unclosed
        ("((a)", 5, "expected ')'"),
        ("session done)", 13, "unmatched ')'"),  # unbalanced: stray close
        ("a | | b", 5, "empty alternative: expected a name or '('"),
        ("a |", 4, "empty alternative: expected a name or '('"),
        ("(|a)", 2, "empty alternative: expected a name or '('"),
        ("(a|)", 4, "empty alternative: expected a name or '('"),
        ("()", 2, "empty alternative: expected a name or '('"),
        ("* a", 1, "'*' has nothing to repeat"),  # stray *
        ("a | +b", 5, "'+' has nothing to repeat"),
        ("(?)", 2, "'?' has nothing to repeat"),
        ("session content* (done, error)", 23, "unexpected character ','"),  # bad character
        ("a $", 3, "unexpected character '$'"),
        ("9lives", 1, "unexpected character '9'"),
        ("", 1, "expected a name or '('"),
        ("   ", 4, "expected a name or '('"),
    ],
)
def test_grammar_errors_name_the_column_and_the_problem(text: str, column: int, problem: str) -> None:
    with pytest.raises(GrammarError) as caught:
        Grammar.parse(text)
    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.column, error.grammar) == (column, text)
    first_line, quoted, pointer = str(error).split("\n")
    assert first_line.startswith(f"{problem} at column {column}")
    assert first_line.endswith(f"in grammar {text!r}")
    assert quoted == f"  {text}"
    assert pointer.index("^") - 2 == column - 1


def test_unclosed_parenthesis_names_where_it_opened() -> None:
    with pytest.raises(GrammarError, match=r"expected '\)' at column 22 to close the '\(' at column 9"):
        Grammar.parse("session (done | error")
