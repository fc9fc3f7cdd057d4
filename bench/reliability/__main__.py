"""`python -m bench.reliability [--short] [--only NAME ...]`: every scenario's table, then one verdict.

Exit status 1 when any property fails (a property that could not be checked in the budget is
listed, and does not fail the run; contracts.md: "not checked", never passed). A scenario that
raises is itself a failed property, so one broken server does not hide the other scenarios.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench._runtime import raise_nofile_limit

from . import abort_storm, auth, idle_connections, kill9, malformed, slow_reader
from ._common import FULL, SHORT, Outcome, Property, Sizes, render

Scenario = Callable[[Sizes, Path | None], Outcome]
SCENARIOS: dict[str, Scenario] = {
    "abort_storm": abort_storm.run,
    "slow_reader": slow_reader.run,
    "idle_connections": idle_connections.run,
    "malformed": malformed.run,
    "kill9": kill9.run,
    "auth": auth.run,
}


def run_one(name: str, sizes: Sizes) -> Outcome:
    """The scenario's outcome; an exception becomes a failed property named after it."""
    try:
        return SCENARIOS[name](sizes, None)
    except Exception as err:  # reported as the scenario's failure, with its traceback's tail
        tail = traceback.format_exc().strip().splitlines()[-3:]
        outcome = Outcome(f"{name}: did not run", ["error"], [[f"{type(err).__name__}: {err}"[:400]]])
        outcome.properties.append(Property(f"{name}: ran", False, " | ".join(tail)[:400], "ran"))
        return outcome


def verdict(outcomes: list[Outcome]) -> tuple[str, bool]:
    """The final line, and whether every property holds (or was not checked)."""
    props = [p for o in outcomes for p in o.properties]
    failed = [p for p in props if p.holds is False]
    unchecked = sum(p.holds is None for p in props)
    line = (
        f"reliability: {len(props)} properties, {sum(p.holds is True for p in props)} pass, {len(failed)} fail, "
        f"{unchecked} not checked -> {'FAIL' if failed else 'PASS'}"
    )
    return line, not failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the CI sizes (about a tenth of the full run)")
    parser.add_argument("--only", action="append", choices=list(SCENARIOS), help="run just this scenario (repeat)")
    args = parser.parse_args(argv)
    raise_nofile_limit()
    sizes = SHORT if args.short else FULL
    outcomes = []
    for name in args.only or list(SCENARIOS):
        start = time.perf_counter()
        outcome = run_one(name, sizes)
        print(render(outcome), f"\n    ({time.perf_counter() - start:.1f} s)\n", flush=True)
        outcomes.append(outcome)
    line, ok = verdict(outcomes)
    for outcome in outcomes:
        for p in outcome.failed:
            print(f"FAIL {p.name}: {p.measured}")
    print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
