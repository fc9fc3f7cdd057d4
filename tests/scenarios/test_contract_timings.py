"""Time comes from the run, never from a constant (issue 15 §2).

The reference server started with the contract's own heartbeat (30 s) and a 120 s upstream timeout
passes the heartbeat and stall scenarios on all five profiles when the run is told those values and
given the budget to wait them out; with the default budget the same run reports both "not checked"
and names the flag that would judge them. The derivation itself is pure and tested on numbers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from contracts import contract_profiles
from mockllm import start_mock
from scenarios import RunResult, library, reference_config, run, start_reference_for
from scenarios._scenarios import Timing
from scenarios._timing import cancel_wait_s, client_timeout_s, pause_of, stream_timing

SLOW = {"heartbeat_s": "30", "upstream_timeout_s": "120"}
SCENARIOS = ("heartbeat", "upstream-stall")


def test_deadlines_derive_from_the_targets_timings() -> None:
    slow = stream_timing(Timing(), SLOW)
    assert (slow.first_event_s, slow.deadline_s) == (152.0, 302.0)  # 120 + 30 + 2 s of slack; once more
    fast = stream_timing(Timing(), {"heartbeat_s": "0.5", "upstream_timeout_s": "5"}, pause_of("stall-after=3,for=4"))
    assert (fast.first_event_s, fast.deadline_s) == (11.5, 17.0)  # 5 + 0.5 + the 4 s pause + 2; + 5.5
    assert stream_timing(Timing(deadline_s=9.0), SLOW).deadline_s == 9.0  # a scenario's own value stands
    assert stream_timing(Timing(), SLOW, judges_upstream_timeout=True).deadline_s == 152.0  # the stall itself
    assert cancel_wait_s(SLOW) == 32.0
    assert client_timeout_s(SLOW, 130.0) > slow.deadline_s + 120.0


@pytest.fixture(scope="module")
def slow_reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with (
        start_mock(seed=5, ttft_ms=5, itl_ms=2) as mock,
        start_reference_for(tmp_path_factory.mktemp("slow"), mock.url, settings=SLOW) as reference,
    ):
        yield mock.url, reference.url


def _runs(mock: str, target: str, budget_s: float) -> list[RunResult]:
    scenarios = [s for s in library() if s.name in SCENARIOS]

    async def all_profiles() -> list[RunResult]:
        configs = []
        for name in contract_profiles():
            config = reference_config(mock, target, name)
            config.scenarios, config.settings, config.budget_s = scenarios, {**config.settings, **SLOW}, budget_s
            configs.append(config)
        return list(await asyncio.gather(*(run(c) for c in configs)))

    return asyncio.run(all_profiles())


def test_the_contract_default_heartbeat_and_a_long_upstream_timeout_are_judged(slow_reference) -> None:
    mock, target = slow_reference
    verdicts = {}
    for result in _runs(mock, target, budget_s=125.0):
        for scenario in result.scenarios:
            for check in scenario.checks:
                verdicts[result.profile, scenario.name, check.check] = (check.verdict, check.message)
    for profile in contract_profiles():
        for scenario, check in (
            ("heartbeat", "stream.heartbeat"),
            ("upstream-stall", "stream.outcome"),
            ("upstream-stall", "stream.deadline"),
        ):
            verdict = verdicts.get((profile, scenario, check))
            assert verdict and verdict[0] == "passed", f"{profile} {scenario} {check}: {verdict}"


def test_a_budget_too_short_says_which_flag_would_judge_them(slow_reference) -> None:
    mock, target = slow_reference
    result = _runs(mock, target, budget_s=30.0)[0]
    for scenario in result.scenarios:
        assert scenario.verdict == "not_checked", (scenario.name, scenario.verdict)
        assert "--budget-s " in scenario.reason, scenario.reason
