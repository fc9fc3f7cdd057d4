"""A pre-flight for a backend nobody here wrote: `python -m scenarios probe --target URL --profile P --mock URL`.

Before a full run, a team wants to know the three things without which every verdict is noise: that
the profile's routes are where the profile says (a 404 on every call is a wrong base URL or a moved
route, not a hundred defects), that the credentials it was given are accepted, and that the
backend's LLM requests reach this mock (no journal entry: every text, continuity and fault check is
"not checked"). The probe sends a few calls through the ordinary runner (so they are rendered exactly
as a run renders them), reads the mock's journal for its own tag, and says what it found, which
settings a run assumes and which flags to pass. `assess` and `describe` are pure; `probe` is the edge.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from contracts import Profile

from ._results import ScenarioResult
from ._run_settings import SettingRow, setting_rows
from ._runner import RunConfig, effective_settings, run
from ._scenarios import Scenario, Step, Timing, library
from ._timing import client_timeout_s

# What a mock's base URL is for each dialect a backend may speak (what to tell its LLM client).
LLM_BASE_URLS = (
    "OpenAI-compatible SDKs: {mock}/v1",
    "Anthropic: {mock}",
    "Gemini: {mock} (as the API endpoint)",
)


@dataclass(frozen=True)
class Finding:
    """One thing the probe established: `ok` True (fine), False (fix it before a run), None (a note)."""

    ok: bool | None
    topic: str
    text: str


@dataclass
class ProbeReport:
    findings: list[Finding] = field(default_factory=list)
    command: str = ""  # the `python -m scenarios run ...` line to go on with

    @property
    def ok(self) -> bool:
        return all(f.ok is not False for f in self.findings)


def probe_scenario(profile: Profile, tag: str) -> Scenario:
    """Health (where the profile has it), one streamed turn as the test user, the same without a token."""
    steps = []
    if "health" in profile.operations:
        steps.append(Step(do="health"))
    message = f"[conformance:short] Probe {tag} {{marker}}"
    steps.append(Step(do="stream", variables={"message": message}, stream_checks=True))
    if profile.auth != "none":
        steps.append(Step(do="stream", variables={"message": message}, auth="none", expect={"auth.missing": True}))
    return Scenario(
        name="probe",
        summary="pre-flight: routes, credentials, LLM calls reaching the mock",
        tags=("probe",),
        requires=(),
        settings=(),
        mock_fault=None,
        mock_fault_count=1,
        timing=Timing(),
        steps=tuple(steps),
    )


async def probe(config: RunConfig, profile_arg: str) -> ProbeReport:
    """Run the probe scenario against the target, read the mock's journal for it, and assess.
    `profile_arg` is the profile as the user named it (a built-in name or a file), for the command."""
    tag = f"probe{uuid.uuid4().hex[:10]}"
    scenario = probe_scenario(config.profile, tag)
    result = await run(replace(config, scenarios=[scenario], progress=None))
    settings = effective_settings(config.profile, config.settings)
    async with httpx.AsyncClient(timeout=client_timeout_s(settings, config.budget_s)) as client:
        response = await client.get(f"{config.mock}/_mock/journal", params={"prompt_contains": tag})
        response.raise_for_status()
    return assess(config, scenario, result.scenarios[0], response.json()["entries"], profile_arg)


def assess(
    config: RunConfig, scenario: Scenario, result: ScenarioResult, journal: list[dict[str, Any]], profile_arg: str
) -> ProbeReport:
    """What the probe's exchanges and the journal entries it caused say about the target."""
    profile = config.profile
    report = ProbeReport()
    add = report.findings.append
    if result.verdict == "error":
        add(Finding(False, "target", f"{config.target}: {result.reason}"))
        return report
    # the user's streamed turn: its own calls and any conversation it had to open first
    turn = next(i for i, step in enumerate(scenario.steps) if step.do == "stream")
    user = [e for e in result.exchanges if e.step == turn]
    for exchange in result.exchanges:
        if exchange.status in (404, 405):
            add(
                Finding(
                    False,
                    "routes",
                    f"{exchange.method} {exchange.url} answered {exchange.status}: is {config.target} the base URL, "
                    "and is the route where the profile puts it? (a profile file with `extends: "
                    f"{profile.name}` changes one call's method, path or status)",
                )
            )
    if user and all(e.status not in (404, 405) for e in user):
        statuses = ", ".join(f"{e.method} {_path(e.url)} {e.status}" for e in user)
        add(Finding(True, "routes", f"the streamed turn's calls are served ({statuses})"))
    if profile.auth != "none":
        refused = [e for e in user if e.status in (401, 403)]
        if refused:
            add(
                Finding(
                    False,
                    "auth",
                    f"the test user's token was refused ({refused[0].status} on {refused[0].method} "
                    f"{_path(refused[0].url)}): pass the secret the backend verifies (--jwt-secret) or two tokens "
                    "(--token, --token2)",
                )
            )
        elif user:
            add(Finding(True, "auth", "the test user's token is accepted"))
        missing = next((c for c in result.checks if c.check == "auth.missing"), None)
        if missing is not None and missing.verdict == "failed":
            add(Finding(None, "auth", f"a call without a token was not refused: {missing.message}"))
    streamed = any(e.stream is not None for e in user)
    if journal:
        entry = journal[-1]
        add(
            Finding(
                True,
                "llm",
                f"the backend's LLM requests reach the mock ({entry.get('dialect')}, {entry.get('method')} "
                f"{entry.get('path')}, model {entry.get('model')!r})",
            )
        )
        if any("model" in c.required_names for op in profile.operations.values() for c in op.calls):
            add(Finding(None, "llm", "the profile's calls send a model id: tell the run one the test user may use "
                                     "(--setting allowed_model=...) and one it may not (forbidden_model)"))  # fmt: skip
    elif user and all(e.status is not None and 200 <= e.status < 300 for e in user):
        urls = "; ".join(u.format(mock=config.mock) for u in LLM_BASE_URLS)
        add(
            Finding(
                False,
                "llm",
                f"no LLM request with the probe's prompt reached the mock at {config.mock}: point the backend's "
                f"LLM client there ({urls}); without it the text, continuity and fault checks cannot be judged",
            )
        )
    if streamed:
        failed = [c for c in result.checks if c.verdict == "failed" and c.level == "MUST" and c.check != "auth.missing"]
        if failed:
            shown = "; ".join(f"{c.check}: {c.message}" for c in failed[:4])
            add(Finding(None, "stream", f"the probe's stream already fails {len(failed)} MUST check(s): {shown}"))
        else:
            add(Finding(True, "stream", "the probe's stream passes its stream checks"))
    report.command = suggested_command(config, profile_arg)
    return report


def _path(url: str) -> str:
    return httpx.URL(url).path


def suggested_command(config: RunConfig, profile_arg: str) -> str:
    """The run to go on with: the target, profile and mock, the credentials given, and every setting
    the profile's scenarios need or wait on, at the value the probe was told or the run would assume."""
    parts = [
        "python -m scenarios run",
        f"--target {config.target}",
        f"--profile {profile_arg}",
        f"--mock {config.mock}",
    ]
    if config.credentials.secret:
        parts.append('--jwt-secret "$JWT_SECRET"')
    elif config.credentials.tokens:
        parts.append('--token "$TOKEN1" --token2 "$TOKEN2"')
    for row in run_rows(config):
        value = config.settings.get(row.name, row.value)
        parts.append(f"--setting {row.name}={value if value is not None else 'VALUE'}")
    return " \\\n    ".join(parts)


def run_rows(config: RunConfig) -> list[SettingRow]:
    """The settings a run of the profile uses: those its scenarios need or its calls name."""
    return [row for row in setting_rows(config.profile, library()) if row.scenarios or row.operations]


def describe(report: ProbeReport, config: RunConfig) -> str:
    marks = {True: "ok  ", False: "FIX ", None: "note"}
    lines = [f"Probe of {config.target} as {config.profile.name}, LLM mock {config.mock}:"]
    lines += [f"  {marks[f.ok]} {f.topic:7} {f.text}" for f in report.findings]
    if report.command:
        lines += [
            "",
            "Settings a run assumes unless told (python -m scenarios settings " + config.profile.name + "):",
        ]
        lines += [
            f"  {row.name} = {config.settings.get(row.name, row.value)}"
            + ("" if row.name in config.settings else f"  ({'not set' if row.value is None else 'assumed'})")
            for row in run_rows(config)
        ]
        lines += ["", "Then:", "  " + report.command]
    return "\n".join(lines)
