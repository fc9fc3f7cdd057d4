"""What a conformance run found: plain data, written to JSON, JUnit XML and HTML as it is.

A scenario's verdict follows from its checks: `failed` when a MUST check failed, `warned` when
only SHOULD checks failed, `passed` when every check that ran passed, `not_applicable` when the
profile lacks what the scenario needs, `error` when the harness could not run it (a bad template,
an unreachable target). A check that could not be judged in the run's budget is `not_checked`,
never `passed`.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Level = Literal["MUST", "SHOULD"]
CheckVerdict = Literal["passed", "failed", "not_checked", "expected_failure"]
ScenarioVerdict = Literal["passed", "failed", "warned", "not_applicable", "not_checked", "error"]


@dataclass(slots=True)
class CheckResult:
    """One judged check: which, how strict, where (step, event), and why it failed."""

    check: str
    level: Level
    verdict: CheckVerdict
    message: str = ""
    step: int | None = None
    event: int | None = None  # index of the offending event in that step's stream


@dataclass(slots=True)
class StreamEvent:
    """One parsed event (or comment) of a stream, as the timeline shows it."""

    index: int
    kind: str  # the profile's event kind, "comment", or "?" when it could not be classified
    data: str
    read: int
    time_ms: float  # since the request was sent
    start: int
    end: int


@dataclass(slots=True)
class StreamRecord:
    """The wire view of one streamed response: bytes, reads, parsed events, wire issues."""

    raw: bytes = b""
    reads: list[tuple[int, int, float]] = field(default_factory=list)  # (offset, size, ms since request)
    events: list[StreamEvent] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)
    ended: str = ""  # "closed", "deadline", "aborted" (the client stopped), "error: ..."

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["raw"] = base64.b64encode(self.raw).decode("ascii")
        out["raw_text"] = self.raw.decode("utf-8", "replace")
        return out


@dataclass(slots=True)
class Exchange:
    """One HTTP request of a step and what came back."""

    step: int
    operation: str
    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str | None
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str | None = None  # None for a stream (see `stream`)
    elapsed_ms: float = 0.0
    stream: StreamRecord | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__slots__ if name != "stream"}  # type: ignore[attr-defined]
        out["stream"] = self.stream.to_dict() if self.stream else None
        return out


@dataclass(slots=True)
class ScenarioResult:
    name: str
    summary: str
    tags: list[str]
    verdict: ScenarioVerdict = "passed"
    reason: str = ""  # why not applicable, or the harness error
    checks: list[CheckResult] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    duration_ms: float = 0.0

    def settle(self) -> None:
        """Derive the verdict from the checks (unless already not applicable or an error)."""
        if self.verdict in ("not_applicable", "not_checked", "error"):
            return
        failed = [c for c in self.checks if c.verdict == "failed"]
        if any(c.level == "MUST" for c in failed):
            self.verdict = "failed"
        elif failed:
            self.verdict = "warned"
        else:
            self.verdict = "passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "tags": self.tags,
            "verdict": self.verdict,
            "reason": self.reason,
            "duration_ms": round(self.duration_ms, 3),
            "checks": [asdict(c) for c in self.checks],
            "exchanges": [e.to_dict() for e in self.exchanges],
        }


@dataclass(slots=True)
class RunResult:
    target: str
    profile: str
    started: str  # ISO-8601
    duration_s: float = 0.0
    settings: dict[str, str] = field(default_factory=dict)
    scenarios: list[ScenarioResult] = field(default_factory=list)

    @property
    def must_failures(self) -> list[tuple[str, CheckResult]]:
        return [(s.name, c) for s in self.scenarios for c in s.checks if c.verdict == "failed" and c.level == "MUST"]

    @property
    def ok(self) -> bool:
        """Every MUST check passed and no scenario hit a harness error."""
        return not self.must_failures and not any(s.verdict == "error" for s in self.scenarios)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for scenario in self.scenarios:
            out[scenario.verdict] = out.get(scenario.verdict, 0) + 1
        return out

    def failed_checks(self) -> set[str]:
        """The ids of the checks that failed anywhere in the run (MUST or SHOULD)."""
        return {c.check for s in self.scenarios for c in s.checks if c.verdict == "failed"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "profile": self.profile,
            "started": self.started,
            "duration_s": round(self.duration_s, 3),
            "settings": self.settings,
            "ok": self.ok,
            "counts": self.counts(),
            "scenarios": [s.to_dict() for s in self.scenarios],
        }
