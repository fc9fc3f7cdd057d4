"""Run scenarios against one implementation: the I/O shell around the pure checks.

For each scenario: a unique marker goes into every prompt, so the mock's journal entries of this
scenario are found among those of the scenarios running beside it; faults are armed at the mock
for that marker only; each step renders its operation's calls, sends them, reads streams read by
read, collects the journal entries the step caused, and hands all of it to the checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from time import perf_counter
from typing import Any
from urllib.parse import quote_plus, urlencode

import httpx

from contracts import DEFAULT_SETTINGS, SETTINGS, Call, Operation, Profile, TemplateError, json_path, render

from ._bad_input import BadInput, bad_inputs
from ._checks import CHECKS, STATUS_CHECKS, Fail, NotChecked, Pass, StepView, Turn, answer_problem, error_texts
from ._credentials import Credentials
from ._errors import UsageError
from ._results import CheckResult, Exchange, RunResult, ScenarioResult
from ._scenarios import Scenario, Step, Timing
from ._timing import (
    SLACK_S,
    cancel_wait_s,
    client_timeout_s,
    heartbeat_stall_s,
    heartbeat_tolerance_s,
    pause_of,
    stream_timing,
)
from ._transport import Request, StreamRead, send

# Answer rules the run puts first at the mock (so they win), keyed by tags only its prompts carry.
MOCK_RULES = [
    {"match": {"contains": "[conformance:multibyte]"}, "answer": {"prose": {"multibyte": 0.5}}},
    {"match": {"contains": "[conformance:short]"}, "answer": {"fixed": "Short answer."}},
    # An answer long enough that a pause after its first chunks leaves many to come (stream.incremental).
    {"match": {"contains": "[conformance:long]"}, "answer": {"prose": {"length_tokens": 80}}},
    # An answer that mentions a bet and odds (conversation-events may follow it with a `system` event).
    {
        "match": {"contains": "[conformance:bet]"},
        "answer": {"fixed": "A fair bet for Saturday: the odds are 2.5 to 1."},
    },
    # One that names neither ("better" is not a bet): conversation-events may not follow it with `system`.
    {
        "match": {"contains": "[conformance:better]"},
        "answer": {"fixed": "A better plan for Saturday: rest first, then decide."},
    },
]
STREAM_CHECKS = (
    "wire.framing", "wire.json", "stream.content-type", "stream.charset", "stream.cache-control",
    "stream.accel-buffering", "stream.grammar", "stream.terminal", "stream.after-terminal", "stream.fields",
    "stream.first-event", "stream.max-gap", "stream.deadline", "stream.outcome", "stream.text",
)  # fmt: skip
ABORTED_STREAM_CHECKS = (
    "wire.framing", "wire.json", "stream.content-type", "stream.charset", "stream.cache-control",
    "stream.accel-buffering", "stream.grammar", "stream.fields", "stream.first-event", "stream.text",
)  # fmt: skip
# A mock fault that takes the whole mock down for a while (`refuse,for=S`).
_TAKES_MOCK_DOWN = re.compile(r"\s*refuse\b")
# The checks whose pass means "the input was refused": a 404 or 405 passes them only where the same
# operation answered a valid request with success earlier in the scenario (a missing route refuses
# every request, and that is no validation).
REFUSAL_STATUS_CHECKS = ("validation.status", "validation.empty-message")


@dataclass
class RunConfig:
    target: str
    profile: Profile
    mock: str
    scenarios: list[Scenario]
    settings: dict[str, str] = field(default_factory=dict)
    credentials: Credentials = field(default_factory=Credentials)
    concurrency: int = 8
    budget_s: float = 30.0  # the longest a scenario may wait on purpose (expiries, heartbeats)
    baseline: Mapping[str, set[str]] = field(default_factory=dict)  # scenario -> checks expected to fail
    progress: Callable[[ScenarioResult, int, int], None] | None = None


def effective_settings(profile: Profile, given: Mapping[str, str]) -> dict[str, str]:
    return {**DEFAULT_SETTINGS, **profile.settings, **given}


async def run(config: RunConfig) -> RunResult:
    settings = effective_settings(config.profile, config.settings)
    result = RunResult(
        target=config.target,
        profile=config.profile.name,
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        settings=settings,
    )
    started = perf_counter()
    run_id = uuid.uuid4().hex[:6]
    limits = httpx.Limits(max_connections=config.concurrency * 4, max_keepalive_connections=config.concurrency * 2)
    timeout = httpx.Timeout(client_timeout_s(settings, config.budget_s))
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        await _install_mock_rules(client, config.mock)
        shared = [s for s in config.scenarios if not s.exclusive]
        exclusive = [s for s in config.scenarios if s.exclusive]
        gate = asyncio.Semaphore(config.concurrency)
        done = 0

        async def one(scenario: Scenario) -> ScenarioResult:
            nonlocal done
            async with gate:
                outcome = await ScenarioRun(config, settings, client, run_id, scenario).run()
            done += 1
            if config.progress:
                config.progress(outcome, done, len(config.scenarios))
            return outcome

        result.scenarios = list(await asyncio.gather(*(one(s) for s in shared)))
        for scenario in exclusive:
            result.scenarios.append(await one(scenario))
    order = {s.name: i for i, s in enumerate(config.scenarios)}
    result.scenarios.sort(key=lambda s: order.get(s.name, 0))
    result.duration_s = perf_counter() - started
    return result


async def _install_mock_rules(client: httpx.AsyncClient, mock: str) -> None:
    """Put the run's answer rules first at the mock, once.

    They are left there: other runs against the same mock may be using them, and they answer
    only prompts that carry their `[conformance:...]` tags, so the mock's own rules are unchanged
    for every other request.
    """
    try:
        response = await client.get(f"{mock}/_mock/config")
        response.raise_for_status()
    except httpx.HTTPError as err:
        raise UsageError(f"--mock {mock}: the mock LLM's admin API does not answer ({err})") from None
    rules = with_mock_rules(response.json().get("answers", {}).get("rules", []))
    if rules is not None:
        await client.patch(f"{mock}/_mock/config", json={"answers": {"rules": rules}})


def with_mock_rules(rules: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The mock's answer rules with the run's first, or None when they are first already.

    A rule is the run's by its `match` alone: the mock answers its config with every answer spelled
    out in full (`prose` with its default length), so comparing whole rules would never find the
    run's own again, and each run would add them once more."""
    ours = [rule["match"] for rule in MOCK_RULES]
    if [rule.get("match") for rule in rules[: len(ours)]] == ours:
        return None
    return MOCK_RULES + [rule for rule in rules if rule.get("match") not in ours]


@dataclass
class StepRun:
    """What executing one step's calls produced."""

    exchanges: list[Exchange] = field(default_factory=list)
    final: Exchange | None = None
    ok: bool = True  # every call answered one of its success statuses
    # a call answered no 2xx with content, so the calls after it were not made (a 2xx outside the
    # call's statuses is one `api.status` failure, and its answer is still read, judged and used)
    broken: bool = False
    problems: list[str] = field(default_factory=list)  # per call off its statuses: what it answered
    stream: StreamRead | None = None
    answers: list[str | None] = field(default_factory=list)  # per judged answer: what is wrong, or None
    # per successful call with a preferred status: the deviation from it (a SHOULD), or None
    preferred: list[str | None] = field(default_factory=list)


class ScenarioRun:
    """One scenario against the target: its variables, its conversation turns, its results."""

    def __init__(
        self, config: RunConfig, settings: dict[str, str], client: httpx.AsyncClient, run_id: str, scenario: Scenario
    ) -> None:
        self.config, self.settings, self.client, self.scenario = config, settings, client, scenario
        self.profile = config.profile
        self.marker = f"cf{uuid.uuid4().hex[:12]}"
        self.user, self.other = config.credentials.users(scenario.name, run_id)
        self.result = ScenarioResult(scenario.name, scenario.summary, list(scenario.tags))
        self.variables: dict[str, Any] = self._base_variables()
        self.turns: dict[str, list[Turn]] = {}
        self.journal_seen: set[int] = set()
        self.timing = self._timing()
        self._fresh_client: httpx.AsyncClient | None = None
        self._journal_all: list[dict[str, Any]] = []
        # operation -> the step in which every call of it answered success (the route exists)
        self.served: dict[str, int] = {}
        self.missed: dict[str, tuple[int, int | None]] = {}  # operation -> (step, status) of a valid call refused
        # (auth mode, text) of what earlier steps sent the LLM and what it answered: what another user's step
        # may not carry to the LLM (auth.isolation)
        self.said: list[tuple[str, str]] = []
        # bad-input messages the target refused: none may be stored (validation.no-side-effect, on a history read)
        self.refused: list[str] = []
        self._variant = ""  # the bad input the current step sends, if any

    def _base_variables(self) -> dict[str, Any]:
        s = self.settings
        return {
            "marker": self.marker,
            "user": self.user.user,
            "other_user": self.other.user,
            **{variable: s.get(setting.name) for setting in SETTINGS.values() for variable in setting.variables},
            "unknown_uuid": str(uuid.uuid4()),
            # One character over the limit the run was told (none: no limit, and none is sent).
            "long_message": f"{self.marker} " + "x" * int(s["message_limit"]) if s.get("message_limit") else None,
            # A silence well past the heartbeat check's tolerance, yet inside the upstream timeout.
            "heartbeat_stall_s": heartbeat_stall_s(s),
        }

    def _timing(self) -> Timing:
        fault = render(self.scenario.mock_fault, self.variables) if self.scenario.mock_fault else None
        self._pause_s = pause_of(fault)
        judges = "upstream_timeout_s" in self.scenario.settings
        return stream_timing(self.scenario.timing, self.settings, pause_of(fault), judges_upstream_timeout=judges)

    # -- the scenario ---------------------------------------------------------------------------------

    async def run(self) -> ScenarioResult:
        started = perf_counter()
        try:
            reason = self._not_applicable()
            if reason:
                self.result.verdict, self.result.reason = "not_applicable", reason
                return self.result
            unjudgeable = self._unjudgeable(self._planned_waits())
            if unjudgeable:
                self.result.verdict, self.result.reason = "not_checked", unjudgeable
                for check in sorted(self.scenario.checks):
                    self.result.checks.append(
                        CheckResult(check, self.profile.level(check), "not_checked", self.result.reason)
                    )
                return self.result
            if self.scenario.mock_fault:
                await self._arm(render(self.scenario.mock_fault, self.variables))
            for index, step in enumerate(self._expanded(self.scenario.steps)):
                await self._step(index, step)
            if self.scenario.mock_fault and _TAKES_MOCK_DOWN.match(self.scenario.mock_fault):
                await self._mock_back()
            self.result.settle()
        except (TemplateError, UsageError, KeyError) as err:
            self.result.verdict, self.result.reason = "error", f"{type(err).__name__}: {err}"
        except httpx.HTTPError as err:
            self.result.verdict, self.result.reason = "error", f"cannot reach the target or the mock: {err}"
        finally:
            if self._fresh_client is not None:
                await self._fresh_client.aclose()
            self.result.duration_ms = (perf_counter() - started) * 1000
        return self.result

    def _expanded(self, steps: tuple[Step, ...]) -> list[Step]:
        """The steps, each `input: derived` one as one step per bad input of its operation, its
        expectations fitted to the variant: the status check it names, the field it is about."""
        out: list[Step] = []
        for step in steps:
            if step.optional and step.do not in self.profile.operations:
                continue
            if not step.derived_input:
                out.append(step)
                continue
            body_text = f"Refuse this body {self.marker}"
            for number, variant in enumerate(bad_inputs(self.profile.operations[step.do], body_text), 1):
                expect = dict(step.expect)
                if "validation.status" in expect:
                    del expect["validation.status"]
                    expect[variant.status_check] = variant.status
                if "validation.names-field" in expect:
                    del expect["validation.names-field"]
                    if variant.field is not None:
                        expect["validation.names-field"] = variant.field
                text = body_text if variant.raw_body is not None else f"Refuse me ({number}) {self.marker}"
                out.append(replace(step, variables={**step.variables, "message": text}, expect=expect, variant=variant))
        return out

    def _not_applicable(self) -> str:
        missing = self.scenario.missing(self.profile)
        if missing:
            return f"the profile has no {', '.join(missing)}"
        unset = [name for name in self.scenario.settings if not self.settings.get(name)]
        if unset:
            return f"the run was not told {', '.join(unset)} (--setting)"
        if self.profile.auth != "none" and self.user.token is None:
            return "the profile needs credentials: --jwt-secret, or --token and --token2"
        if any(step.auth == "expired" for step in self.scenario.steps) and self.config.credentials.secret is None:
            return "an expired token is minted with the JWT secret (--jwt-secret)"
        return ""

    def _unjudgeable(self, waits: float) -> str:
        """Why this run cannot judge the scenario (too long a wait; no room for a silence)."""
        if waits > self.config.budget_s:
            return (
                f"needs {waits:g} s of waiting, over the run's budget of {self.config.budget_s:g} s "
                f"(--budget-s {math.ceil(waits)} judges it)"
            )
        if "heartbeat_s" in self.scenario.settings:
            tolerance = heartbeat_tolerance_s(self.settings)
            if self.variables["heartbeat_stall_s"] <= tolerance:
                room = math.ceil((tolerance + 1.0) / 0.8)
                return (
                    "upstream_timeout_s leaves no room for a silence longer than the heartbeat tolerance "
                    f"(a target whose upstream timeout is at least {room} s, told --setting upstream_timeout_s={room})"
                )
        return ""

    def _planned_waits(self) -> float:
        total = sum(self._wait_seconds(step) for step in self.scenario.steps if step.do == "wait")
        if "upstream_timeout_s" in self.scenario.settings:
            total += float(self.settings["upstream_timeout_s"])
        if self.scenario.mock_fault:
            total += pause_of(render(self.scenario.mock_fault, self.variables))
        return total

    def _wait_seconds(self, step: Step) -> float:
        base = step.wait_s if isinstance(step.wait_s, (int, float)) else float(self.settings[step.wait_s])
        return base * step.wait_factor + step.wait_extra_s

    async def _arm(self, fault: str) -> None:
        response = await self.client.post(
            f"{self.config.mock}/_mock/faults",
            json={"fault": fault, "match": {"contains": self.marker}, "count": self.scenario.mock_fault_count},
        )
        if response.status_code >= 400:
            raise UsageError(f"the mock refused fault {fault!r}: {response.text}")

    # -- a step ---------------------------------------------------------------------------------------

    async def _step(self, index: int, step: Step) -> None:
        self._variant = step.variant.label if step.variant is not None else ""
        if step.do == "wait":
            await asyncio.sleep(self._wait_seconds(step))
            return
        operation = self.profile.operations[step.do]
        variables = self._variables(step)
        opened_answers: list[str | None] = []
        if self._needs_conversation(operation, variables):
            opened = await self._calls(index, self.profile.operations["open"], step, variables, implicit=True)
            self.result.exchanges.extend(opened.exchanges)
            if opened.broken:
                self._record(
                    index, "api.status", Fail(f"opening a conversation failed: {opened.final and opened.final.status}")
                )
                return
            if not opened.ok:  # a 2xx off the call's statuses: one failure, and the step goes on
                self._record(index, "api.status", Fail(f"opening a conversation: {opened.problems[0]}"))
            variables = self._variables(step)
            opened_answers = opened.answers
        message = variables.get("message")
        conversation = variables.get("conversation")
        earlier = list(self.turns.get(str(conversation), [])) if conversation else []
        run = StepRun()
        for _ in range(self._repeat(step)):
            run = await self._calls(index, operation, step, variables)
            self.result.exchanges.extend(run.exchanges)
        run.answers[:0] = opened_answers
        aborted = run.stream is not None and run.stream.ended == "aborted"
        journal = await self._journal(settle=aborted)
        view = StepView(
            profile=self.profile,
            settings=self.settings,
            operation=operation,
            exchanges=run.exchanges,
            final=run.final,
            final_call_ok=run.ok,
            call_problem=run.problems[0] if run.problems else "",
            call_answered=run.final is not None and not run.broken,
            stream=run.stream.view if run.stream else None,
            ended=run.stream.ended if run.stream else "",
            end_time=run.stream.end_time if run.stream else None,
            stopped_at=run.stream.stopped_at if run.stream else None,
            reads=run.stream.reads if run.stream else [],
            issues=run.stream.issues if run.stream else [],
            journal=journal,
            journal_all=self._journal_all,
            earlier=earlier,
            message=message if isinstance(message, str) else None,
            timing=self.timing,
            variables=variables,
            leaks=self._leaks(),
            foreign=tuple(text for mode, text in self.said if mode != step.auth),
            refused=tuple(self.refused),
        )
        self._judge(index, step, view, run)
        self._remember_turn(view, run, message)
        if run.ok:
            self.served.setdefault(operation.name, index)
        elif step.expect.keys().isdisjoint(STATUS_CHECKS) and run.final is not None:
            self.missed.setdefault(operation.name, (index, run.final.status))  # a request meant to succeed
        refused = run.final is not None and run.final.status is not None and 400 <= run.final.status < 500
        if step.variant is not None and refused and isinstance(message, str) and _sent(message, run.exchanges):
            self.refused.append(message)
        if isinstance(message, str) and message.strip():
            self.said.append((step.auth, message))
        self.said += [(step.auth, entry["answer"]) for entry in journal if (entry.get("answer") or "").strip()]

    def _leaks(self) -> tuple[str, ...]:
        """What no error message may carry that this run knows: the mock's host:port (the target's LLM
        base URL is the mock), also as `localhost`, and the JWT secret."""
        mock = httpx.URL(self.config.mock)
        hosts = {mock.host, "localhost", "127.0.0.1"} if mock.host in ("127.0.0.1", "localhost") else {mock.host}
        port = mock.port or (443 if mock.scheme == "https" else 80)
        found = [f"{host}:{port}" for host in sorted(hosts)]
        secret = self.config.credentials.secret
        return (*found, secret) if secret else tuple(found)

    def _variables(self, step: Step) -> dict[str, Any]:
        """The scenario's variables with the step's own on top (a null one stays null: left out)."""
        own = {name: render(value, self.variables) for name, value in step.variables.items()}
        return {**self.variables, **own}

    def _repeat(self, step: Step) -> int:
        if isinstance(step.repeat, int):
            return step.repeat
        limit = self.settings["rate_limit"]
        match = re.fullmatch(r"\s*(\d+)\s*/\s*[\d.]+\s*", limit)
        if not match:
            raise UsageError(f"--setting rate_limit={limit!r}: expected N/SECONDS, e.g. 100/60")
        return int(match.group(1)) + 1

    def _needs_conversation(self, operation: Operation, variables: Mapping[str, Any]) -> bool:
        if operation.name == "open" or "open" not in self.profile.operations or variables.get("conversation"):
            return False
        return any("conversation" in call.required_names for call in operation.calls)

    async def _calls(
        self, index: int, operation: Operation, step: Step, variables: dict[str, Any], implicit: bool = False
    ) -> StepRun:
        out = StepRun()
        for number, call in enumerate(operation.calls):
            variant = step.variant if not implicit and step.variant and step.variant.call == number else None
            request = self._request(call, step if not implicit else Step(do="open"), variables, variant)
            exchange, stream = await send(
                self._client_for(step),
                request,
                step=index,
                operation=operation.name,
                stream=self.profile.stream if call.stream else None,
                timing=self.timing,
                abort_after=step.client.get("abort_after"),
                read_delay_s=float(step.client.get("read_delay_s", 0.0)),
            )
            out.exchanges.append(exchange)
            out.final, out.stream = exchange, stream
            if exchange.status not in call.status:
                out.ok = False
                statuses = " or ".join(str(s) for s in call.status)
                out.problems.append(f"{call.method} {call.path} answered {exchange.status}; expected {statuses}")
                # A 2xx with content is still the answer (an event stream is read whole): the status is
                # one deviation, judged once as api.status, and the rest is judged and used as usual.
                if exchange.status is None or not 200 <= exchange.status < 300 or exchange.status == 204:
                    out.broken = True
                    break
            elif call.preferred_status is not None:
                tolerated = f"{call.method} {call.path} answered {exchange.status}; {call.preferred_status} is expected"
                out.preferred.append(tolerated if exchange.status != call.preferred_status else None)
            if variant is not None:
                break  # the bad input was taken: that answer is the verdict (validation.status), not the calls after
            body = _json_body(exchange) if call.answer or call.capture else None
            if call.answer:
                out.answers.append(self._answer_problem(call, body, variables))
            self._capture(call, body, stream, variables)
        return out

    def _client_for(self, step: Step) -> httpx.AsyncClient:
        """The shared client, or one from its own loopback address (its own per-client rate limit)."""
        if not step.client.get("fresh_source"):
            return self.client
        if self._fresh_client is None:
            host = httpx.URL(self.config.target).host
            local = f"127.{uuid.uuid4().int % 250 + 1}.{uuid.uuid4().int % 250 + 1}.{uuid.uuid4().int % 250 + 2}"
            transport = httpx.AsyncHTTPTransport(local_address=local) if host.startswith("127.") else None
            timeout = httpx.Timeout(client_timeout_s(self.settings, self.config.budget_s))
            self._fresh_client = httpx.AsyncClient(timeout=timeout, transport=transport)
        return self._fresh_client

    def _request(self, call: Call, step: Step, variables: dict[str, Any], variant: BadInput | None = None) -> Request:
        path = render(call.path, variables)
        query = {k: v for k, v in render(dict(call.query), variables).items()}
        headers = render(dict(call.headers), variables)
        eventsource = bool(step.client.get("eventsource")) and call.stream
        if eventsource:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if call.auth and self.profile.auth != "none":
            token = self._token(step.auth)
            if token is not None and (step.auth == "query" or (eventsource and self.profile.auth == "bearer-or-query")):
                query["access_token"] = token
            elif token is not None and not eventsource:
                headers["Authorization"] = f"Bearer {token}"
        headers.update(render(dict(step.headers), variables))
        body = render(call.json, variables) if call.json is not None else None
        if isinstance(body, dict) and step.json_add:
            body = {**body, **render(dict(step.json_add), variables)}
        if variant is not None and variant.raw_body is None:
            if isinstance(body, dict):
                body = variant.apply(body)
            else:
                query = variant.apply(query)
        url = self.config.target.rstrip("/") + path
        if query:
            url += ("&" if "?" in url else "?") + urlencode({k: str(v) for k, v in query.items()})
        raw = variant.raw_body if variant is not None else None
        return Request(call.method, url, headers, body, call.json is not None, raw_body=raw)

    def _token(self, mode: str) -> str | None:
        if mode == "none":
            return None
        if mode == "invalid":
            return self.config.credentials.forged(self.user.user)
        if mode == "expired":
            return self.config.credentials.expired(self.user.user)
        if mode == "unsigned":
            return self.config.credentials.unsigned(self.user.user)
        return (self.other if mode == "other" else self.user).token

    @staticmethod
    def _answer_problem(call: Call, body: Any, variables: dict[str, Any]) -> str | None:
        """What is wrong with a successful call's JSON answer against the fields its profile gives."""
        if body is None:
            return f"{call.method} {call.path}: the answer is not JSON"
        problem = answer_problem(render(dict(call.answer), variables), body)
        return f"{call.method} {call.path}: the answer {problem}" if problem else None

    def _capture(self, call: Call, body: Any, stream: StreamRead | None, variables: dict[str, Any]) -> None:
        if call.capture and body is not None:
            for name, path in call.capture.items():
                with contextlib.suppress(KeyError):
                    variables[name] = self.variables[name] = json_path(body, path)
        if stream is not None and stream.view is not None:
            for name, (kind, path) in self.profile.stream.captures.items():
                for item in stream.view.events:
                    if item.kind == kind and isinstance(item.payload, dict):
                        with contextlib.suppress(KeyError):
                            variables[name] = self.variables[name] = json_path(item.payload, path)
                        break

    async def _read_mock(self, path: str, params: Mapping[str, str]) -> httpx.Response:
        """A GET of the mock's admin API. While the mock is down on purpose (a `refuse,for=S` fault: new
        connections refused for S seconds), it is tried again until the mock listens again."""
        until = perf_counter() + self._pause_s + SLACK_S
        while True:
            try:
                return await self.client.get(f"{self.config.mock}{path}", params=params)
            except httpx.ConnectError:
                if perf_counter() > until:
                    raise
                await asyncio.sleep(0.1)

    async def _mock_back(self) -> None:
        """Wait until the mock takes new connections again, so that what runs next finds it up."""
        until = perf_counter() + self._pause_s + SLACK_S
        while perf_counter() < until:
            try:
                async with httpx.AsyncClient(timeout=SLACK_S) as fresh:
                    await fresh.get(f"{self.config.mock}/_mock/stats")
                return
            except httpx.ConnectError:
                await asyncio.sleep(0.1)

    async def _journal(self, *, settle: bool) -> list[dict[str, Any]]:
        """The journal entries this step caused; waits for their final outcome when `settle`."""
        deadline = perf_counter() + (cancel_wait_s(self.settings) if settle else 0.5)
        while True:
            response = await self._read_mock("/_mock/journal", {"prompt_contains": self.marker})
            response.raise_for_status()
            entries = response.json()["entries"]
            new = [e for e in entries if e["id"] not in self.journal_seen]
            if not any(e.get("outcome") == "in_progress" for e in new) or perf_counter() > deadline:
                break
            await asyncio.sleep(0.05)
        self._journal_all = entries
        self.journal_seen.update(e["id"] for e in new)
        return new

    # -- judging ----------------------------------------------------------------------------------------

    def _judge(self, index: int, step: Step, view: StepView, run: StepRun) -> None:
        # An expectation may name a run setting (`{malformed_id_status?}`); one that renders to null
        # is the check's default.
        rendered = render(dict(step.expect), view.variables)
        expect = {name: rendered.get(name, True) for name in step.expect}
        status_check = next((c for c in expect if c in STATUS_CHECKS), "api.status")
        status_param = expect.get(status_check, True)
        unproven = self._route_unproven(status_check, view)
        if unproven:
            for name in [n for n in expect if n.startswith("validation.")]:
                self._record(index, name, NotChecked(unproven))
                del expect[name]
            status_ok = False
        else:
            status_ok = self._run_check(index, status_check, view, status_param)
        if status_ok and status_check != "api.status" and run.problems and not run.broken:
            # A 2xx off the call's statuses that the step's own status check let pass (a conversation made
            # under a client's id, a server still serving): the deviation is api.status's, once.
            self._record(index, "api.status", Fail(run.problems[0]))
        expected = STATUS_CHECKS[status_check] if status_param is True else status_param
        # A stream read (a 2xx) is judged whole where a 2xx is expected, or where the status check
        # passed it (conversation.unknown: a profile with client ids may make the conversation).
        if run.stream is not None and step.stream_checks and (_allows_success(expected) or status_ok):
            names = ABORTED_STREAM_CHECKS if run.stream.ended == "aborted" else STREAM_CHECKS
            for name in names:
                if name not in expect:
                    self._run_check(index, name, view, True)
        if run.answers and "api.json" not in expect:
            problems = [problem for problem in run.answers if problem]
            judged = f"{len(run.answers)} answer(s) have the contract's fields"
            self._record(index, "api.json", Fail(problems[0]) if problems else Pass(judged))
        if run.preferred and "api.status-preferred" not in expect:
            deviations = [deviation for deviation in run.preferred if deviation]
            self._record(index, "api.status-preferred", Fail(deviations[0]) if deviations else Pass())
        for name, param in expect.items():
            if name != status_check:
                self._run_check(index, name, view, param)
        if "errors.no-internals" not in expect and error_texts(view):
            self._run_check(index, "errors.no-internals", view, True)  # every error body and error event

    def _route_unproven(self, status_check: str, view: StepView) -> str:
        """Why a 404/405 refusal says nothing about the input: the route did not answer a valid request
        of this operation with success earlier in the scenario ("" if it did, or if the refusal is
        another status)."""
        final, operation = view.final, view.operation
        if status_check not in REFUSAL_STATUS_CHECKS or final is None or final.status not in (404, 405):
            return ""
        if operation is None or operation.name in self.served:
            return ""
        what = f"{final.method} {final.url} answered {final.status}"
        if operation.name in self.missed:
            step, status = self.missed[operation.name]
            return f"{what}, and {status} to a valid request too (step {step}): the route does not exist"
        return f"{what}, but no valid request of `{operation.name}` succeeded before it: a missing route answers so too"

    def _run_check(self, index: int, name: str, view: StepView, param: Any) -> bool:
        """Run one check and record its verdict; whether it passed."""
        outcome = CHECKS[name](view, param)
        self._record(index, name, outcome)
        return isinstance(outcome, Pass)

    def _record(self, index: int, name: str, outcome: Pass | Fail | NotChecked) -> None:
        level = self.profile.level(name)
        if self._variant:  # which bad input this step sent: each variant is its own step
            outcome = _labelled(outcome, self._variant)
        if isinstance(outcome, Pass):
            self.result.checks.append(CheckResult(name, level, "passed", outcome.message, index))
        elif isinstance(outcome, NotChecked):
            self.result.checks.append(CheckResult(name, level, "not_checked", outcome.reason, index))
        else:
            expected = name in self.config.baseline.get(self.scenario.name, set())
            verdict = "expected_failure" if expected else "failed"
            self.result.checks.append(CheckResult(name, level, verdict, outcome.message, index, outcome.event))

    def _remember_turn(self, view: StepView, run: StepRun, message: Any) -> None:
        operation = view.operation
        no_content = run.final is None or run.final.status == 204
        if operation is None or not isinstance(message, str) or run.broken or no_content:
            return
        if operation.stream_call is None and operation.text is None:
            return
        conversation = self.variables.get("conversation")
        if conversation is None:
            return
        answer = view.answer() if (view.journal or (view.header("x-cache") or "").upper() == "HIT") else None
        received = run.stream.view.text if run.stream and run.stream.view else ""
        partial = run.stream is not None and run.stream.ended == "aborted"
        failed = (
            run.stream is not None
            and run.stream.view is not None
            and run.stream.view.terminal_kind in self.profile.stream.error
        )
        if failed:
            return
        self.turns.setdefault(str(conversation), []).append(Turn(message, answer, received, partial))


def _sent(text: str, exchanges: list[Exchange]) -> bool:
    """The text went out in one of the requests (a variant may have replaced the message itself)."""
    return any(text in (e.request_body or "") or quote_plus(text) in e.url for e in exchanges)


def _labelled(outcome: Pass | Fail | NotChecked, label: str) -> Pass | Fail | NotChecked:
    if isinstance(outcome, NotChecked):
        return NotChecked(f"[{label}] {outcome.reason}")
    if isinstance(outcome, Fail):
        return Fail(f"[{label}] {outcome.message}", outcome.event)
    return Pass(f"[{label}] {outcome.message}".rstrip())


def _json_body(exchange: Exchange) -> Any:
    """A call's answer decoded once, for its captures and its answer rules; None if it is not JSON."""
    try:
        return json.loads(exchange.response_body or "")
    except ValueError:
        return None


def _allows_success(expected: Any) -> bool:
    """Whether a status expectation admits a 2xx answer (then a stream read gets the stream checks)."""
    if expected in ("success", "2xx"):
        return True
    if isinstance(expected, int):
        return 200 <= expected < 300
    if isinstance(expected, list):
        return any(_allows_success(e) for e in expected)
    return False
