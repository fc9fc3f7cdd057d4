"""Expected verdicts of an independent backend, and the one comparison every such test makes.

Each backend under tests/independent/ has an `expected.yaml`: the run settings it needs, its real MUST
defects (found by reading it against contracts.md and by hand, never from the suite), and the suite's
known gaps on it (`suite_false_alarms`, `suite_misses`, each with its reason). The suite's failed MUST
checks must be exactly the defects, the known gaps aside (printed, xfail-style, not asserted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from contracts import load_profile
from scenarios import Credentials, RunConfig, RunResult, library


def load_expected(path: Path) -> dict[str, Any]:
    expected = yaml.safe_load(path.read_text(encoding="utf-8"))
    defects = set(expected["defects"])
    misses, false_alarms = set(expected.get("suite_misses") or {}), set(expected.get("suite_false_alarms") or {})
    assert misses <= defects, f"{path}: a miss is a real defect the suite does not report: list it under defects"
    assert not false_alarms & defects, f"{path}: a false alarm is a failure that is not a real defect"
    return expected


def run_config(expected: dict[str, Any], target: str, mock: str, secret: str | None = None) -> RunConfig:
    """The whole library on the backend, told the settings its expected.yaml gives."""
    return RunConfig(
        target=target,
        profile=load_profile(expected["profile"]),
        mock=mock,
        scenarios=library(),
        settings={name: str(value) for name, value in expected["settings"].items()},
        credentials=Credentials(secret=secret),
    )


def assert_verdicts(result: RunResult, expected: dict[str, Any]) -> None:
    """No scenario errors; the failed MUST checks are exactly the real defects, known gaps aside."""
    errors = [f"{s.name}: {s.reason}" for s in result.scenarios if s.verdict == "error"]
    assert not errors, f"scenarios that could not run: {errors}"
    failed = {check.check for _, check in result.must_failures}
    false_alarms, misses = dict(expected.get("suite_false_alarms") or {}), dict(expected.get("suite_misses") or {})
    for check, reason in sorted(false_alarms.items()):
        seen = "still raised" if check in failed else "no longer raised"
        print(f"known suite false alarm {check} ({seen}): {' '.join(str(reason).split())}")
    for check, reason in sorted(misses.items()):
        seen = "now caught" if check in failed else "still missed"
        print(f"known suite miss {check} ({seen}): {' '.join(str(reason).split())}")
    detail = "\n".join(f"  {name}: {check.check}: {check.message}" for name, check in result.must_failures)
    judged, wanted = failed - set(false_alarms) - set(misses), set(expected["defects"]) - set(misses)
    assert judged == wanted, (
        f"unexpected MUST failures {sorted(judged - wanted)}, missing {sorted(wanted - judged)}\n{detail or '  none'}"
    )
