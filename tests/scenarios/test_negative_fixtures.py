"""The suite proves itself: every deliberately broken implementation fails on exactly the check it
breaks, and every valid-but-unusual one passes everything (MUST and SHOULD alike), but for the one
SHOULD it declares it deviates from (`warns`: a tolerated choice, such as 201 for a POST stream).

All fixtures live in one host process (tests/scenarios/implementations.py) over one real mock LLM;
the whole library runs against each (fixture, profile) pair, the pairs side by side, and each pair
is one test item. The last item prints the kill rate and the false-alarm rate.

By default each fixture runs on its first profile (what CI affords on two cores);
`CONFORMANCE_FIXTURES=all` runs every (fixture, profile) pair the fixture table names.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from contracts import load_profile
from mockllm import start_mock
from scenarios import Credentials, RunConfig, RunResult, library, run
from tests.scenarios.implementations import IMPLEMENTATIONS, RUN_SETTINGS, Host, start_host

ALL_PAIRS = os.environ.get("CONFORMANCE_FIXTURES") == "all"
# Defects of these checks make a run wait out a limit (a deadline, a silence): they start first, so
# the other runs fill the time they wait.
WAITING_CHECKS = ("stream.deadline", "stream.first-event", "stream.max-gap", "stream.heartbeat")
CASES = sorted(
    (
        (impl.name, profile)
        for impl in IMPLEMENTATIONS.values()
        for profile in (impl.profiles if ALL_PAIRS else impl.profiles[:1])
    ),
    key=lambda case: IMPLEMENTATIONS[case[0]].breaks not in WAITING_CHECKS,
)
PARALLEL_RUNS = int(os.environ.get("CONFORMANCE_PARALLEL", "12"))  # library runs at once, each with its own concurrency


def _settings(profile: str) -> dict[str, str]:
    told = {k: v for k, v in RUN_SETTINGS.items() if k != "jwt_secret" and not k.startswith("rate_limit_")}
    limit = RUN_SETTINGS.get(f"rate_limit_{profile.replace('-', '_')}")
    return {**told, "rate_limit": limit} if limit else told


@pytest.fixture(scope="module")
def outcomes(mockllm_args: list[str]) -> Iterator[dict[tuple[str, str], RunResult]]:
    """Every (fixture, profile) run, done once, concurrently, against a mock of this module's own."""
    with start_mock(seed=5, ttft_ms=5, itl_ms=2) as mock:
        host: Host | None = None
        try:
            host = start_host(mock.url, warm=True)
            yield asyncio.run(_run_all(host.url, mock.url))
        finally:
            if host is not None:
                host.stop()


async def _run_all(host: str, mock: str) -> dict[tuple[str, str], RunResult]:
    gate = asyncio.Semaphore(PARALLEL_RUNS)
    scenarios = library()

    async def one(name: str, profile: str) -> RunResult:
        async with gate:
            return await run(
                RunConfig(
                    target=f"{host}/impl/{name}",
                    profile=load_profile(profile),
                    mock=mock,
                    scenarios=scenarios,
                    settings=_settings(profile),
                    credentials=Credentials(secret=RUN_SETTINGS["jwt_secret"]),
                    concurrency=4,
                )
            )

    results = dict(zip(CASES, await asyncio.gather(*(one(n, p) for n, p in CASES)), strict=True))
    # Side by side, a two-core machine can starve a run for seconds; a pair that missed is run once
    # more on its own, so a timing check fails for the fixture's defect, not for the test's load.
    for case, result in list(results.items()):
        if result.failed_checks() != _expected(case[0]):
            RERUN.append((case, _failures(result)))
            results[case] = await one(*case)
    return results


def _expected(name: str) -> set[str]:
    impl = IMPLEMENTATIONS[name]
    return {impl.breaks or impl.warns} - {None}


RERUN: list[tuple[tuple[str, str], list[str]]] = []  # (case, what its first run failed)


def _failures(result: RunResult) -> list[str]:
    return [
        f"{s.name}: {c.check} [{c.level}] step {c.step}: {c.message}"
        for s in result.scenarios
        for c in s.checks
        if c.verdict == "failed"
    ] + [f"{s.name}: harness error: {s.reason}" for s in result.scenarios if s.verdict == "error"]


@pytest.mark.parametrize(("name", "profile"), CASES, ids=[f"{n}@{p}" for n, p in CASES])
def test_fixture_fails_exactly_its_check(name: str, profile: str, outcomes: dict) -> None:
    result: RunResult = outcomes[(name, profile)]
    breaks = IMPLEMENTATIONS[name].breaks
    failed = result.failed_checks()
    errors = [s.name for s in result.scenarios if s.verdict == "error"]
    if breaks is None:
        warns = IMPLEMENTATIONS[name].warns
        assert failed == _expected(name) and not errors, (
            f"false alarm on a valid implementation (it may warn on {warns or 'nothing'}):\n"
            + "\n".join(_failures(result))
        )
        assert not result.must_failures, "a tolerated deviation failed a MUST"
    else:
        assert failed == {breaks} and not errors, f"expected only {breaks} to fail:\n" + "\n".join(_failures(result))


def test_kill_rate_and_false_alarm_rate(outcomes: dict) -> None:
    defects = [(n, p) for n, p in CASES if IMPLEMENTATIONS[n].breaks]
    valid = [(n, p) for n, p in CASES if not IMPLEMENTATIONS[n].breaks]
    killed = [c for c in defects if IMPLEMENTATIONS[c[0]].breaks in outcomes[c].failed_checks()]
    exact = [c for c in defects if outcomes[c].failed_checks() == {IMPLEMENTATIONS[c[0]].breaks}]
    alarms = [c for c in valid if outcomes[c].failed_checks() != _expected(c[0]) or outcomes[c].must_failures]
    checks = {IMPLEMENTATIONS[n].breaks for n, _ in defects}
    print(
        f"\nkill rate {len(killed)}/{len(defects)} (exactly the right check: {len(exact)}/{len(defects)}), "
        f"{len(checks)} distinct checks; false alarms {len(alarms)}/{len(valid)} valid (fixture, profile) runs; "
        f"rerun alone after a miss under load: {', '.join(f'{n}@{p}' for (n, p), _ in RERUN) or 'none'}"
    )
    for (name, profile), failures in RERUN:
        print(f"  {name}@{profile} first run: " + "; ".join(failures)[:400])
    assert len(killed) == len(defects) and not alarms
