"""A foreign backend in ten minutes: the settings a run uses, a profile that extends a contract, a clean console.

A team with its own backend asks the suite what it assumes (`python -m scenarios settings`), writes a
profile that differs from a built-in contract in one call (`extends:`), and runs the suite again and
again against one mock without warnings or a growing mock config.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import warnings
from pathlib import Path

import jwt
import pytest

from contracts import DEFAULT_SETTINGS, SETTINGS, SpecError, extend_profile, load_profile, mint_token
from mockllm import MockLLMClient
from scenarios import RunConfig, library, print_summary, run, setting_rows
from scenarios.__main__ import main
from scenarios._runner import MOCK_RULES, with_mock_rules


def _write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- python -m scenarios settings ---------------------------------------------------------------------


def test_the_settings_command_lists_every_setting_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settings", "sessions"]) == 0
    out = capsys.readouterr().out
    assert "--setting NAME=VALUE" in out
    for setting in SETTINGS.values():
        if setting.name == "rate_limit":
            assert "rate_limit = 100/60  (the profile's)" in out  # sessions.yaml's own value wins
        elif setting.name == "message_limit":
            assert "message_limit = 2000  (the profile's)" in out  # contracts.md §1 states the limit
        elif setting.default is None:
            assert f"{setting.name}: not set" in out
        else:
            assert f"{setting.name} = {setting.default}  (default)" in out
        assert setting.meaning.split()[0] in out
    assert re.search(r"scenarios: (.*, )?heartbeat\b", out) and re.search(r"scenarios: (.*, )?rate-limit\b", out)


def test_default_settings_are_the_tables_defaults() -> None:
    """The runner and the load users read DEFAULT_SETTINGS; it is derived from the one table."""
    assert {s.name: s.default for s in SETTINGS.values() if s.default is not None} == DEFAULT_SETTINGS
    assert [*DEFAULT_SETTINGS] == [*SETTINGS][: len(DEFAULT_SETTINGS)]  # the table lists those with a default first
    assert not {"rate_limit", "message_limit", "malformed_id_status"} & set(DEFAULT_SETTINGS)  # no default: unset


def test_a_setting_without_a_value_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settings", "start-stream"]) == 0  # start-stream has no rate limit
    assert "rate_limit: not set" in capsys.readouterr().out


def test_the_settings_of_a_profile_file_show_its_own_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = _write(tmp_path, "mine.yaml", "extends: sessions\nname: mine\nsettings: {warmup_s: '3'}\n")
    assert main(["settings", mine]) == 0
    out = capsys.readouterr().out
    assert "warmup_s = 3  (profile-specific)" in out
    assert "rate_limit = 100/60  (the profile's)" in out  # settings merge key by key


def test_rows_name_the_calls_that_use_a_setting() -> None:
    rows = {row.name: row for row in setting_rows(load_profile("query-stream"), library())}
    assert "stream" in rows["project_id"].operations
    assert "history-window" in rows["history_window"].scenarios


def test_the_settings_of_an_unknown_profile_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settings", "no-such-profile"]) == 2
    assert "no-such-profile" in capsys.readouterr().err


# -- extends: -----------------------------------------------------------------------------------------


def test_a_profile_that_changes_one_calls_status_keeps_the_rest_of_its_base(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "mine.yaml",
        "extends: sessions\nname: mine\noperations:\n  stream:\n    calls:\n      - status: [200, 201]\n",
    )
    mine, base = load_profile(path), load_profile("sessions")
    assert (mine.name, mine.source) == ("mine", path)
    for f in dataclasses.fields(base):
        if f.name not in ("name", "source", "operations"):
            assert getattr(mine, f.name) == getattr(base, f.name), f.name
    assert mine.operations.keys() == base.operations.keys()
    for name, operation in base.operations.items():
        if name != "stream":
            assert mine.operations[name] == operation, name
    stream = base.operations["stream"]
    assert mine.operations["stream"] == dataclasses.replace(
        stream, calls=(dataclasses.replace(stream.calls[0], status=(200, 201)), *stream.calls[1:])
    )


def test_extends_merges_stream_keys_and_removes_with_null(tmp_path: Path) -> None:
    _write(tmp_path, "base.yaml", "extends: sessions\nname: base\nstream: {sentinel: null}\n")
    path = _write(
        tmp_path,
        "mine.yaml",
        "extends: base.yaml\nname: mine\nauth: bearer\noperations: {health: null, stream: {calls: [{}, {method: GET,"
        " path: /api/again}]}}\n",
    )
    mine, sessions = load_profile(path), load_profile("sessions")
    assert mine.stream == dataclasses.replace(sessions.stream, sentinel=None)  # through the chain
    assert mine.auth == "bearer" and "health" not in mine.operations
    calls = mine.operations["stream"].calls
    assert calls[0] == sessions.operations["stream"].calls[0] and calls[1].path == "/api/again"


def test_a_cycle_of_extends_is_refused(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.yaml", "extends: b.yaml\nname: a\n")
    _write(tmp_path, "b.yaml", "extends: a.yaml\nname: b\n")
    with pytest.raises(SpecError, match=r"extends: a cycle of extends: a.yaml -> b.yaml -> a.yaml") as caught:
        load_profile(a)
    assert caught.value.path == "extends"


def test_a_profile_cannot_extend_itself(tmp_path: Path) -> None:
    path = _write(tmp_path, "self.yaml", "extends: self.yaml\nname: self\n")
    with pytest.raises(SpecError, match="cycle"):
        load_profile(path)


def test_an_unknown_base_is_refused_with_the_file_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "mine.yaml", "extends: sesions\nname: mine\n")
    with pytest.raises(SpecError) as caught:
        load_profile(path)
    assert str(caught.value).startswith(f"{path}: extends: 'sesions' is neither a contract (sessions,")


@pytest.mark.parametrize(
    ("text", "named", "says"),
    [
        ("extends: sessions\nsummary: no name\n", "name", "required field is missing"),
        (
            "extends: sessions\nname: x\noperations: {stream: {calls: {status: 201}}}\n",
            "operations.stream.calls",
            "list",
        ),
        ("extends: sessions\nname: x\noperations: {stream: {calls: [7]}}\n", "operations.stream.calls[0]", "mapping"),
        (
            "extends: sessions\nname: x\noperations: {stream: {calls: [{status: ok}]}}\n",
            "operations.stream.calls[0].status",
            "expected",
        ),
        ("extends: sessions\nname: x\nstreem: {}\n", "streem", "unknown field"),
        ("extends: [sessions]\nname: x\n", "extends", "expected a string"),
    ],
)
def test_a_wrong_extending_file_names_the_field(tmp_path: Path, text: str, named: str, says: str) -> None:
    path = _write(tmp_path, "mine.yaml", text)
    with pytest.raises(SpecError) as caught:
        load_profile(path)
    assert f"{path}: {named}: " in str(caught.value) and says in str(caught.value)


def test_the_merge_is_a_pure_function_of_two_mappings() -> None:
    base = {"name": "b", "levels": {"a": "MUST"}, "operations": {"x": {"calls": [{"path": "/a"}, {"path": "/b"}]}}}
    override = {
        "extends": "b",
        "name": "m",
        "levels": {"c": "SHOULD"},
        "operations": {"x": {"calls": [{"path": "/c"}]}},
    }
    assert extend_profile(base, override, "m.yaml") == {
        "name": "m",
        "levels": {"a": "MUST", "c": "SHOULD"},
        "operations": {"x": {"calls": [{"path": "/c"}, {"path": "/b"}]}},
    }
    assert base["operations"]["x"]["calls"][0] == {"path": "/a"}  # the base is not changed


# -- a clean console ----------------------------------------------------------------------------------


def test_a_short_secret_mints_without_a_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jwt.encode({"sub": "u"}, "short", algorithm="HS256")
        assert caught, "PyJWT no longer warns about short HMAC keys: this test proves nothing"
        caught.clear()
        token = mint_token("short", "u")
        assert caught == []
        warnings.warn("still heard", UserWarning, stacklevel=1)  # the filter is back as it was
        assert [str(w.message) for w in caught] == ["still heard"]
        warnings.simplefilter("ignore")
        assert jwt.decode(token, "short", algorithms=["HS256"])["sub"] == "u"


def test_the_runs_rules_go_first_once() -> None:
    theirs = {"match": {"contains": "weather"}, "answer": {"fixed": "Sunny."}}
    # the mock answers its config with every answer spelled out: the run's rules in another form
    spelled = [{"match": r["match"], "answer": {"spelled": "out"}} for r in MOCK_RULES]
    assert with_mock_rules([theirs]) == [*MOCK_RULES, theirs]
    assert with_mock_rules([*spelled, theirs]) is None
    assert with_mock_rules([theirs, *spelled]) == [*MOCK_RULES, theirs]


async def test_repeated_runs_against_one_mock_leave_the_same_rules(mockllm: MockLLMClient) -> None:
    mockllm.patch_config({"answers": {"rules": [{"match": {"contains": "weather"}, "answer": {"fixed": "Sunny."}}]}})
    config = RunConfig(
        target="http://127.0.0.1:9", profile=load_profile("sessions"), mock=mockllm.base_url, scenarios=[]
    )
    matches = []
    for _ in range(3):
        await run(config)
        matches.append([rule["match"] for rule in mockllm.config()["answers"]["rules"]])
    expected = [*(rule["match"] for rule in MOCK_RULES), {"contains": "weather"}]
    assert matches == [expected] * 3


def test_a_wait_over_the_budget_is_not_checked_and_says_which_flag_would_judge_it(
    mockllm: MockLLMClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """The contract's own 10-minute session is past a 30 s budget: the run says so, and how to judge it."""
    scenario = next(s for s in library() if s.name == "session-expiry")
    config = RunConfig(target="http://127.0.0.1:9", profile=load_profile("start-stream"), mock=mockllm.base_url,
                       scenarios=[scenario], budget_s=30)  # fmt: skip
    result = asyncio.run(run(config))
    (judged,) = result.scenarios
    assert judged.verdict == "not_checked"
    assert "over the run's budget of 30 s (--budget-s 6" in judged.reason
    print_summary(result)
    assert f"not checked session-expiry: {judged.reason}" in capsys.readouterr().out
