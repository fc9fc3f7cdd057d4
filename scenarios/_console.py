"""What a conformance run prints: a line per scenario as it ends, and each run's summary."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from ._results import RunResult, ScenarioResult

_MARK = {
    "passed": "PASS",
    "failed": "FAIL",
    "warned": "WARN",
    "not_applicable": "n/a ",
    "not_checked": "skip",
    "error": "ERR ",
}


def print_progress(scenario: ScenarioResult, done: int, total: int) -> None:
    failed = [c.check for c in scenario.checks if c.verdict == "failed"]
    extra = f"  {', '.join(sorted(set(failed)))}" if failed else (f"  ({scenario.reason})" if scenario.reason else "")
    print(
        f"[{done:>3}/{total}] {_MARK[scenario.verdict]} {scenario.name} {scenario.duration_ms / 1000:.1f}s{extra}",
        file=sys.stderr,
    )


def print_summary(result: RunResult) -> None:
    counts = ", ".join(f"{n} {verdict}" for verdict, n in sorted(result.counts().items()))
    print(f"{result.profile} at {result.target}: {counts} in {result.duration_s:.1f} s")
    for scenario in result.scenarios:  # what this run could not judge, and what would judge it
        if scenario.verdict == "not_checked":
            print(f"  not checked {scenario.name}: {scenario.reason}")
    for scenario, check in result.must_failures:
        where = f" (step {check.step}" + (f", event {check.event})" if check.event is not None else ")")
        print(f"  FAIL {scenario}: {check.check}{where}: {check.message}")
    print("conformant: every MUST check passed" if result.ok else "NOT conformant")


def conformant(results: Iterable[RunResult]) -> bool:
    """Print each run's summary as it ends; whether every MUST check of every run passed."""
    ok = True
    for result in results:
        print_summary(result)
        ok = ok and result.ok
    return ok
