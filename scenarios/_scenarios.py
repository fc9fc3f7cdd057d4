"""Scenarios: YAML files written once against abstract operations, run on every fitting profile.

    name: upstream-error-midstream
    summary: An LLM error after 3 tokens becomes the profile's error event, then the end.
    tags: [faults]
    requires: [abort]              # operations or capabilities the profile must have
    mock: {fault: "error-after=3"} # armed at the mock for this scenario's requests only
    steps:
      - do: stream                 # an operation of the profile
        message: "Tell me about {marker}"
        expect:                    # check id -> its parameter (see _checks.py)
          stream.outcome: error
          stream.text: prefix

Every stream step also gets the stream checks of `_runner.STREAM_CHECKS`, unless it sets
`stream_checks: false` or the client stops it early. Their deadlines derive from the run's settings
(`_timing`); a scenario's `timing:` may fix any of them itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from contracts import CATALOG, Profile, Spec, SpecError, read_yaml

from ._bad_input import BadInput

LIBRARY_DIR = Path(__file__).parent / "library"
AUTH_MODES = ("user", "other", "none", "invalid", "expired", "unsigned", "query")
CLIENT_OPTIONS = ("abort_after", "read_delay_s", "eventsource", "fresh_source")


@dataclass(frozen=True)
class Timing:
    """A stream step's bounds; None: derived from the run's settings (`_timing.stream_timing`)."""

    first_event_s: float | None = None
    max_gap_s: float | None = None  # beyond the LLM's own longest silence for the request
    deadline_s: float | None = None
    close_grace_s: float = 2.0  # after the terminal event, the response must end within this


@dataclass(frozen=True)
class Step:
    do: str  # operation name, or `wait`
    variables: Mapping[str, Any] = field(default_factory=dict)  # `message`, `vars:` ...
    auth: str = "user"
    json_add: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    client: Mapping[str, Any] = field(default_factory=dict)
    expect: Mapping[str, Any] = field(default_factory=dict)
    stream_checks: bool = True
    wait_s: float | str = 0.0  # `wait` steps: seconds, or a setting's name (`session_ttl_s`)
    wait_factor: float = 1.0
    wait_extra_s: float = 0.0
    repeat: int | str = 1  # times to send the operation (checks see the last); `rate_limit`: its N + 1
    # `input: derived`: the step is sent once per bad input derived from the operation's declared
    # request fields (`_bad_input`), each judged by the step's `expect`; `variant` is one of them
    derived_input: bool = False
    variant: BadInput | None = None
    optional: bool = False  # left out where the profile lacks the operation (the scenario still runs)


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    tags: tuple[str, ...]
    requires: tuple[str, ...]
    settings: tuple[str, ...]  # run settings the scenario needs
    mock_fault: str | None
    mock_fault_count: int
    timing: Timing
    steps: tuple[Step, ...]
    exclusive: bool = False  # runs alone, after the others (it may disturb them)
    source: str = ""

    @property
    def checks(self) -> set[str]:
        return {check for step in self.steps for check in step.expect}

    def missing(self, profile: Profile) -> list[str]:
        """What the scenario needs that the profile lacks (operations, capabilities): not applicable there."""
        missing = [need for need in self.requires if not profile.has(need)]
        for step in self.steps:
            if step.optional and step.do not in profile.operations:
                continue
            if step.do != "wait" and step.do not in profile.operations and step.do not in missing:
                missing.append(step.do)
            elif (
                step.derived_input
                and step.do in profile.operations
                and not any(c.request for c in profile.operations[step.do].calls)
            ):
                missing.append(f"request fields declared for {step.do}")
        return missing


def library() -> list[Scenario]:
    """The built-in scenario library, in name order."""
    return [load_scenario(path) for path in sorted(LIBRARY_DIR.glob("*.yaml"))]


@cache
def load_scenario(path: Path) -> Scenario:
    return parse_scenario(read_yaml(path), str(path))


def load_scenarios(paths: list[str]) -> list[Scenario]:
    """Scenario files or directories of them."""
    out: list[Scenario] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            out.extend(load_scenario(p) for p in sorted(path.glob("*.yaml")))
        elif path.is_file():
            out.append(load_scenario(path))
        else:
            raise SpecError(name, "", "no such scenario file or directory")
    return out


def parse_scenario(data: Any, source: str) -> Scenario:
    spec = Spec(data, source)
    spec.only("name", "summary", "tags", "requires", "settings", "mock", "timing", "steps", "exclusive")
    mock = spec.sub("mock", {})
    mock.only("fault", "count")
    timing = spec.sub("timing", {})
    timing.only(*Timing.__dataclass_fields__)
    steps_raw = spec.get("steps", list)
    if not steps_raw:
        raise spec.error("steps", "a scenario needs at least one step")
    steps = tuple(_step(Spec(raw, source, f"steps[{i}]")) for i, raw in enumerate(steps_raw))
    return Scenario(
        name=spec.get("name", str),
        summary=spec.get("summary", str, ""),
        tags=spec.strings("tags", ()),
        requires=spec.strings("requires", ()),
        settings=spec.strings("settings", ()),
        mock_fault=mock.get("fault", str, None),
        mock_fault_count=mock.get("count", int, 1),
        timing=Timing(**{key: timing.get(key, float) for key in timing.data}),
        steps=steps,
        exclusive=spec.get("exclusive", bool, False),
        source=source,
    )


def _step(spec: Spec) -> Step:
    spec.only(
        "do", "message", "vars", "auth", "json_add", "headers", "client", "expect", "stream_checks",
        "seconds", "factor", "extra_s", "repeat", "input", "optional",
    )  # fmt: skip
    do = spec.get("do", str)
    variables = dict(spec.get("vars", dict, {}))
    if "message" in spec.data:
        variables["message"] = spec.data["message"]
    auth = spec.get("auth", str, "user")
    if auth not in AUTH_MODES:
        raise spec.error("auth", f"expected one of {', '.join(AUTH_MODES)}, got {auth!r}")
    client = spec.get("client", dict, {})
    for key in client:
        if key not in CLIENT_OPTIONS:
            raise spec.error(f"client.{key}", f"unknown client option (known: {', '.join(CLIENT_OPTIONS)})")
    expect = spec.get("expect", dict, {})
    for check in expect:
        if check not in CATALOG:
            raise spec.error(f"expect.{check}", "unknown check id (see contracts/checks.yaml)")
    derived = spec.get("input", str, "")
    if derived not in ("", "derived"):
        raise spec.error("input", f"expected `derived` (bad input from the profile's request fields), got {derived!r}")
    seconds = spec.get("seconds", (int, float, str), 0.0)
    if do == "wait" and not seconds:
        raise spec.error("seconds", "a `wait` step needs `seconds` (a number or a setting's name)")
    return Step(
        do=do,
        variables=variables,
        auth=auth,
        json_add=spec.get("json_add", dict, {}),
        headers={str(k): str(v) for k, v in spec.get("headers", dict, {}).items()},
        client=client,
        expect=expect,
        stream_checks=spec.get("stream_checks", bool, True),
        wait_s=seconds,
        wait_factor=spec.get("factor", float, 1.0),
        wait_extra_s=spec.get("extra_s", float, 0.0),
        repeat=_repeat(spec),
        derived_input=bool(derived),
        optional=spec.get("optional", bool, False),
    )


def _repeat(spec: Spec) -> int | str:
    repeat = spec.get("repeat", (int, str), 1)
    if isinstance(repeat, str) and repeat != "rate_limit":
        raise spec.error("repeat", f"expected a count or `rate_limit`, got {repeat!r}")
    if isinstance(repeat, int) and repeat < 1:
        raise spec.error("repeat", "expected at least 1")
    return repeat
