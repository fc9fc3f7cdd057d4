"""Profile and scenario files: the built-ins load, and every kind of mistake is named precisely."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml

from contracts import (
    CATALOG,
    PROFILE_DIR,
    SpecError,
    TemplateError,
    contract_profiles,
    load_profile,
    mint_token,
    parse_profile,
    render,
)
from scenarios import Credentials, library, parse_scenario
from scenarios._checks import answer_problem

SESSIONS = yaml.safe_load((PROFILE_DIR / "sessions.yaml").read_text())


def test_five_builtin_profiles_load() -> None:
    assert contract_profiles() == ("sessions", "conversations", "start-stream", "query-stream", "conversation-events")
    for name in contract_profiles():
        profile = load_profile(name)
        assert "stream" in profile.operations and profile.stream.terminal


def test_library_names_only_known_checks_and_every_profile_runs_most_of_it() -> None:
    scenarios = library()
    assert len({s.name for s in scenarios}) == len(scenarios) >= 30
    named = {check for s in scenarios for check in s.checks}
    assert named <= set(CATALOG)
    for name in contract_profiles():
        profile = load_profile(name)
        runnable = [s for s in scenarios if all(profile.has(need) for need in s.requires)]
        assert len(runnable) >= 15, name


def _broken(path: list[str], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(SESSIONS)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "named", "says"),
    [
        (["auth"], "oauth", "auth", "expected one of"),
        (["stream", "grammar"], "session (content", "stream.grammar", "column"),
        (["stream", "grammar"], ["session"], "stream.grammar", "expected a string"),
        (["stream", "done"], "finished", "stream.done", "not in the grammar"),
        (["stream", "text", "join"], "lines", "stream.text.join", "concat or words"),
        (["stream", "fields", "content", "index"], "countr", "stream.fields.content.index", "unknown rule"),
        (["operations", "stream", "calls", 0, "method"], "FETCH", "operations.stream.calls[0].method", "unsupported"),
        (["operations", "stream", "calls", 0, "path"], "api/chat", "operations.stream.calls[0].path", "start with"),
        (["operations", "stream", "calls", 0, "stream"], False, "operations.stream", "stream: true"),
        (["operations", "stream", "calls", 0, "colour"], "red", "operations.stream.calls[0].colour", "unknown field"),
        (
            ["operations", "history", "calls", 0, "answer", "history.*.content"],
            "joined-text",
            "operations.history.calls[0].answer.history.*.content",
            "expected a field rule",
        ),
        (["operations", "history", "calls", 0, "answer"], ["x"], "operations.history.calls[0].answer", "expected"),
        (
            ["operations", "stream", "calls", 0, "answer"],
            {"session_id": "string"},
            "operations.stream.calls[0].answer",
            "stream.fields",
        ),
        (["levels"], {"stream.nonsense": "MUST"}, "levels.stream.nonsense", "unknown check id"),
        (["levels"], {"stream.text": "MAY"}, "levels.stream.text", "MUST or SHOULD"),
        (["stream", "after_terminal_when"], {"done": "x"}, "stream.after_terminal_when.done", "not in after_terminal"),
        (["stream", "fields", "content", "content"], "words", "stream.fields.content.content", "unknown rule"),
        (
            ["operations", "stream", "calls", 0, "request"],
            {"message": "txt"},
            "operations.stream.calls[0].request.message",
            "expected one of text, string, uuid",
        ),
        (
            ["operations", "stream", "calls", 0, "request"],
            {"prompt": "text"},
            "operations.stream.calls[0].request.prompt",
            "neither the call's `json:` nor its `query:`",
        ),
    ],
)
def test_a_wrong_profile_names_the_field(path: list, value: Any, named: str, says: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_profile(_broken(path, value), "mine.yaml")
    assert f"mine.yaml: {named}:" in str(caught.value)
    assert says in str(caught.value)


def test_a_profile_without_stream_operation_is_refused() -> None:
    data = copy.deepcopy(SESSIONS)
    del data["operations"]["stream"]
    with pytest.raises(SpecError, match="operations: a profile needs at least the `stream` operation"):
        parse_profile(data, "mine.yaml")


GOOD_SCENARIO = {"name": "x", "steps": [{"do": "stream", "message": "hi {marker}", "expect": {"stream.text": True}}]}


@pytest.mark.parametrize(
    ("change", "named", "says"),
    [
        ({"steps": []}, "steps", "at least one step"),
        ({"stepz": []}, "stepz", "unknown field"),
        ({"steps": [{"do": "stream", "expect": {"stream.txt": True}}]}, "steps[0].expect.stream.txt", "unknown check"),
        ({"steps": [{"do": "stream", "auth": "root"}]}, "steps[0].auth", "expected one of"),
        ({"steps": [{"do": "stream", "client": {"abort": 1}}]}, "steps[0].client.abort", "unknown client option"),
        ({"steps": [{"do": "wait"}]}, "steps[0].seconds", "needs `seconds`"),
        ({"steps": [{"do": "stream", "repeat": 0}]}, "steps[0].repeat", "at least 1"),
        ({"timing": {"deadline_s": "soon"}}, "timing.deadline_s", "expected a number"),
        ({"mock": {"fault": 500}}, "mock.fault", "expected a string"),
        ({"steps": [{"do": "stream", "input": "random"}]}, "steps[0].input", "expected `derived`"),
    ],
)
def test_a_wrong_scenario_names_the_field(change: dict, named: str, says: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_scenario({**GOOD_SCENARIO, **change}, "s.yaml")
    assert f"s.yaml: {named}:" in str(caught.value) and says in str(caught.value)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"session_id": "s1", "history": [{"role": "user", "timestamp": "2025-11-02T10:30:00.000Z"}]}, None),
        ({"session_id": "s1", "history": []}, None),  # no message: nothing to judge per item
        ({"session_id": "s2", "history": []}, "`session_id` is 's2', expected 's1'"),
        ({"session_id": "s1"}, "has no `history`"),
        ({"session_id": "s1", "history": {}}, "`history` is {}, not a list"),
        (
            {"session_id": "s1", "history": [{"role": "user", "timestamp": "x"}, {"role": "a", "timestamp": "2025"}]},
            "`history.0.timestamp` is 'x', not an ISO-8601 time",
        ),
        (
            {"session_id": "s1", "history": [{"role": "user", "timestamp": "2025-11-02"}, {"timestamp": "2025-11-02"}]},
            "has no `history.1.role`",
        ),
    ],
)
def test_an_answer_is_judged_field_by_field_and_item_by_item(body: Any, problem: str | None) -> None:
    rules = {"session_id": "s1", "history": "list", "history.*.role": "string", "history.*.timestamp": "iso8601"}
    assert answer_problem(rules, body) == problem


def test_a_top_level_list_answer_is_judged_per_item() -> None:
    rules = {"*.role": "string", "*.createdAt": "present"}
    assert answer_problem(rules, [{"role": "user", "createdAt": 1}]) is None
    assert answer_problem(rules, [{"role": "user", "createdAt": 1}, {"role": 7}]) == "`1.role` is 7, not a string"


def test_every_profile_declares_the_answers_of_its_json_calls() -> None:
    """`api.json` is judged on every successful JSON call the contract gives fields for."""
    for name in contract_profiles():
        profile = load_profile(name)
        for operation in profile.operations.values():
            for call in operation.calls:
                if not call.stream:
                    assert call.answer, f"{name}: {operation.name} {call.method} {call.path} declares no answer"


def test_templates_keep_types_drop_nulls_and_name_unknown_variables() -> None:
    variables = {"n": 3, "conversation": None, "message": "hi"}
    assert render({"a": "{n}", "b": "x{n}", "c": "{conversation}", "d": "{missing?}"}, variables) == {"a": 3, "b": "x3"}
    with pytest.raises(TemplateError, match=r"unknown variable \{nope\}"):
        render("/api/{nope}", variables)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scenarios", *args], capture_output=True, text=True, timeout=60)


def test_cli_usage_errors_exit_2_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: mine\nauth: oauth\nstream: {}\noperations: {}\n")
    common = ["run", "--target", "http://127.0.0.1:9", "--mock", "http://127.0.0.1:9"]
    done = _cli(*common, "--profile", str(bad))
    assert done.returncode == 2 and "bad.yaml: auth: expected one of" in done.stderr
    done = _cli(*common, "--profile", "no-such-profile")
    assert done.returncode == 2 and "not a built-in profile" in done.stderr
    done = _cli(*common, "--profile", "sessions", "--setting", "heartbeat_s")
    assert done.returncode == 2 and "expected NAME=VALUE" in done.stderr
    done = _cli(*common, "--profile", "sessions", "--token", "a.b.c")
    assert done.returncode == 2 and "--token and --token2 go together" in done.stderr
    done = _cli(*common, "--profile", "sessions")  # nothing listens on port 9
    assert done.returncode == 2 and "the mock LLM's admin API does not answer" in done.stderr


def test_forged_tokens_are_what_they_claim() -> None:
    """The `auth: expired` and `auth: unsigned` steps send tokens an implementation must refuse."""
    secret = "s" * 40
    given = Credentials(secret=secret)
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(given.expired("alice"), secret, algorithms=["HS256"])
    assert jwt.decode(given.expired("alice"), secret, algorithms=["HS256"], options={"verify_exp": False})["sub"] == (
        "alice"
    )
    unsigned = given.unsigned("alice")
    assert jwt.get_unverified_header(unsigned)["alg"] == "none" and unsigned.endswith(".")
    with pytest.raises(jwt.InvalidTokenError):
        jwt.decode(unsigned, secret, algorithms=["HS256"])
    assert Credentials(tokens=(mint_token(secret, "a"), mint_token(secret, "b"))).expired("a") is None  # no secret
