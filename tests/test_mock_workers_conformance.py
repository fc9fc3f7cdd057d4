"""A conformance run against a 4-worker mock gives the same verdicts as against a 1-worker one.

The reference server is started over each mock; the scenario library runs on both through the same
`scenarios` API a user's run takes. The runner leans on every part of the mock's shared view: it
installs answer rules (config PATCH), arms faults for one scenario's marker (taken exactly their
count), reads the journal to judge what the server sent upstream (continuity, history, abort), and
opens a refusal window (`upstream-refused`). The reference server keeps its connections to the
upstream open, so its requests stay on a few workers while the runner's admin calls land on any.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mockllm import ServerProcess, start_mock
from scenarios import library, reference_config, run, start_reference_for

# What the mock's shared view is judged by: the journal (continuity, history), armed faults, refusal.
PROFILE = "sessions"
TAGS = {"session", "history", "continuity", "faults", "abort", "stream"}


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, tuple[str, str]]]:
    """workers -> (mock URL, reference server URL): a reference server over each mock, started side by side."""
    workdirs = {workers: tmp_path_factory.mktemp(f"conformance-{workers}") for workers in (1, 4)}
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(2) as pool:

        def mock(workers: int) -> ServerProcess:
            return start_mock(seed=3, ttft_ms=5, itl_ms=2, workers=workers, log=workdirs[workers] / "mock.log")

        mocks = {
            workers: stack.enter_context(server)
            for workers, server in zip(workdirs, pool.map(mock, workdirs), strict=True)
        }
        references = pool.map(lambda workers: start_reference_for(workdirs[workers], mocks[workers].url), workdirs)
        yield {
            workers: (mocks[workers].url, stack.enter_context(reference).url)
            for workers, reference in zip(workdirs, references, strict=True)
        }


def _verdicts(mock: str, target: str) -> dict[str, Any]:
    scenarios = [s for s in library() if TAGS & set(s.tags)]
    result = asyncio.run(run(dataclasses.replace(reference_config(mock, target, PROFILE), scenarios=scenarios)))
    errors = [f"{s.name}: {s.reason}" for s in result.scenarios if s.verdict == "error"]
    assert not errors, "\n".join(errors)
    assert result.ok, [f"{name}: {c.check}: {c.message}" for name, c in result.must_failures]
    return {s.name: (s.verdict, sorted((c.check, c.verdict) for c in s.checks)) for s in result.scenarios}


def test_four_workers_give_the_same_verdicts_as_one(targets: dict[int, tuple[str, str]]) -> None:
    one = _verdicts(*targets[1])
    four = _verdicts(*targets[4])
    passed = {name for name, (verdict, _) in four.items() if verdict == "passed"}
    assert {"continuity", "history", "delete", "upstream-error-midstream", "upstream-refused", "client-abort"} <= passed
    assert four == one
