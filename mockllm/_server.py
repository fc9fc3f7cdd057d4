"""The mock LLM server: routes, the chat path (plan, schedule, play, journal) and the admin API.

State that depends on arrival order (the journal, armed faults, schedule counters, the number of
active streams) lives here at the edge; everything a response carries is decided by the pure
planner from the config and the request.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from array import array
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any
from urllib.parse import parse_qsl

from ._answers import ProseAnswer, warm_up
from ._arrivals import ArrivalQueue
from ._config import MockConfig, merge, parse_config
from ._errors import ConfigError, RequestError
from ._faults import Fault, FaultSyntaxError, Match, parse_fault, parse_match
from ._http import ClientGone, Connection, HttpServer, Request
from ._journal import Journal, RawBody, redact
from ._metrics import Achieved, Metrics
from ._plan import Plan, plan_response, rng_for
from ._request import ChatRequest, request_seed
from ._wire import HttpResponse, WireSchedule, body_schedule, immediate, stream_schedule
from .dialects import DIALECTS, Call, Dialect, Encoding

JSON_HEADERS = (("content-type", "application/json"),)
AdminHandler = Callable[[Call], Awaitable[HttpResponse] | HttpResponse]


def json_response(status: int, value: Any) -> HttpResponse:
    return HttpResponse(status, JSON_HEADERS, json.dumps(value, ensure_ascii=False).encode())


def admin_error(status: int, message: str, **extra: Any) -> HttpResponse:
    return json_response(status, {"error": {"message": message, **extra}})


@dataclass(slots=True)
class ArmedFault:
    """A fault armed through the admin API for the next `remaining` matching requests."""

    id: int
    fault: Fault
    match: Match
    remaining: int | None  # None: every matching request until disarmed

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "fault": self.fault.spec,
            "match": self.match.to_config(),
            "remaining": self.remaining,
        }


class _Claimed:
    """Several dialects on one route (e.g. `GET /v1/models`, OpenAI's and the google-genai SDK's):
    the first whose `claim(call)` holds serves it, else the one that registered without a claim."""

    def __init__(self, default: Any = None) -> None:
        self.claims: list[tuple[Callable[[Call], bool], Any]] = []
        self.default = default

    def add(self, target: Any, claim: Callable[[Call], bool] | None) -> None:
        if claim is None:
            self.default = target
        else:
            self.claims.append((claim, target))

    def pick(self, call: Call) -> Any:
        for claim, target in self.claims:
            if claim(call):
                return target
        return self.default


class _Routes:
    """Exact paths in a dict, `{name}` patterns as regexes: (method, path) -> (handler, params)."""

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str], Any] = {}
        self._patterns: dict[tuple[str, str], tuple[re.Pattern[str], Any]] = {}

    def add(self, method: str, path: str, target: Any, claim: Callable[[Call], bool] | None = None) -> None:
        key, exact = (method, path), "{" not in path
        current = self._exact.get(key) if exact else self._patterns.get(key, (None, None))[1]
        if claim is not None or isinstance(current, _Claimed):
            shared = current if isinstance(current, _Claimed) else _Claimed(default=current)
            shared.add(target, claim)
            target = shared
        if exact:
            self._exact[key] = target
        else:
            regex = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(path))
            self._patterns[key] = (re.compile(regex + "$"), target)

    def find(self, method: str, path: str) -> tuple[Any, dict[str, str]] | None:
        target = self._exact.get((method, path))
        if target is not None:
            return target, {}
        for (route_method, _), (regex, target) in self._patterns.items():
            found = regex.match(path)
            if found and route_method == method:
                return target, found.groupdict()
        return None

    def allows(self, path: str) -> bool:
        return any(p == path for _, p in self._exact) or any(r.match(path) for r, _ in self._patterns.values())


class MockServer:
    """The application: give it a config mapping, `start()` it, and it serves every dialect."""

    def __init__(self, raw_config: dict[str, Any] | None = None) -> None:
        self._startup_raw = raw_config or {}
        self.config: MockConfig = parse_config(self._startup_raw)
        self.journal = Journal(self.config.journal_max_entries)
        self.metrics = Metrics()
        self.active_streams = 0
        self._armed: list[ArmedFault] = []
        self._armed_ids = 0
        self._rule_counts: list[int] = [0] * len(self.config.fault_rules)
        self._started = time.time()
        self._http = HttpServer(self._handle)
        self._arrivals = ArrivalQueue()
        self._routes = _Routes()
        for dialect in DIALECTS:
            for method, path in dialect.chat_routes:
                self._routes.add(method, path, dialect)
            for method, path, name, *claim in dialect.extra_routes:
                # An optional fourth item names the dialect's `claim(call)` for a route it shares.
                self._routes.add(method, path, (dialect, getattr(dialect, name)), *(getattr(dialect, c) for c in claim))
        admin: list[tuple[str, str, AdminHandler]] = [
            ("GET", "/health", lambda call: json_response(200, {"status": "ok"})),
            ("GET", "/metrics", self._metrics),
            ("GET", "/_mock/config", lambda call: json_response(200, self.config.to_dict())),
            ("PUT", "/_mock/config", self._replace_config),
            ("PATCH", "/_mock/config", self._patch_config),
            (
                "GET",
                "/_mock/faults",
                lambda call: json_response(200, {"faults": [a.to_dict() for a in self._armed]}),
            ),
            ("POST", "/_mock/faults", self._arm_fault),
            ("DELETE", "/_mock/faults", self._disarm_faults),
            ("GET", "/_mock/journal", self._read_journal),
            (
                "DELETE",
                "/_mock/journal",
                lambda call: json_response(200, {"cleared": self.journal.clear()}),
            ),
            ("POST", "/_mock/reset", self._reset),
            ("GET", "/_mock/stats", self._stats),
        ]
        for method, path, handler in admin:
            self._routes.add(method, path, handler)

    @property
    def idle(self) -> bool:
        """No chat request is being prepared or answered: a pause now delays no one."""
        return self.active_streams == 0 and not self._arrivals.busy

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; return the bound port (useful with port 0)."""
        # Build the prose sentence pool now, not inside the first request's TTFT.
        default = self.config.default_answer
        warm_up(default.multibyte if isinstance(default, ProseAnswer) else 0.0)
        return await self._http.start(host, port)

    async def close(self) -> None:
        await self._http.close()

    # -- dispatch ---------------------------------------------------------------------------------

    async def _handle(self, request: Request, conn: Connection) -> None:
        found = self._routes.find(request.method, request.path)
        call = Call(
            method=request.method,
            path=request.path,
            query=dict(parse_qsl(request.query)) if request.query else {},
            headers=request.headers,
            body=request.body,
            path_params=found[1] if found else {},
        )
        if found is None:
            status = 405 if self._routes.allows(request.path) else 404
            message = f"{request.method} {request.path} is not served by the mock"
            await conn.play(immediate(admin_error(status, message)), request.arrival)
            return
        target = found[0]
        if isinstance(target, _Claimed):
            target = target.pick(call)
        if isinstance(target, tuple):  # a dialect's own endpoint, e.g. GET /v1/models
            response = target[1](call, self.config)
        elif callable(target):
            response = target(call)
            if asyncio.iscoroutine(response):
                response = await response
        else:
            await self._chat(target, call, request, conn)
            return
        await conn.play(immediate(response), request.arrival)

    # -- the chat path ----------------------------------------------------------------------------

    async def _chat(self, dialect: Dialect, call: Call, request: Request, conn: Connection) -> None:
        entry, schedule = await self._arrivals.run(self._prepare, dialect, call)
        if entry.get("outcome") == "rejected":
            await conn.play(schedule, request.arrival)
            return
        outcome = "completed"
        sent = array("d")  # when each write went out: compact, and nothing for the collector to scan
        self.active_streams += 1
        try:
            await conn.play(schedule, request.arrival, sent)
            if schedule.end == "abort":
                outcome = "disconnected"
            elif schedule.status != 200:
                outcome = "http_error"
        except (ClientGone, asyncio.CancelledError):
            outcome = "client_closed"
            if not conn.is_open:
                return  # the finally block records it; the connection is gone, nothing to raise into
            raise
        finally:
            self.active_streams -= 1
            self._record(entry, dialect.name, outcome, schedule, request.arrival, sent)
            if self.idle:  # the last stream of a burst: no one is kept waiting now
                self.metrics.catch_up()

    def _prepare(self, dialect: Dialect, call: Call) -> tuple[dict[str, Any], WireSchedule]:
        """The journal entry and the wire schedule of one chat request: all its work before play."""
        config = self.config
        entry = self.journal.open(
            {
                "time": time.time(),
                "method": call.method,
                "path": call.path,
                "dialect": dialect.name,
                "headers": redact(call.headers),
                "body": RawBody(call.body),
                "outcome": "in_progress",
            }
        )
        try:
            chat, options = dialect.parse(call)
            fault, fault_source = self._choose_fault(config, chat, call)
        except RequestError as err:
            entry.update(outcome="rejected", status=err.status, error=err.message, param=err.param)
            self.metrics.record(dialect.name, "rejected")
            return entry, immediate(dialect.error(err.status, err.message, param=err.param, call=call))
        plan = plan_response(config, chat, fault=fault, active_streams=self.active_streams)
        schedule = self._schedule(dialect, plan, chat, call, options)
        entry.update(
            prompt=chat.prompt,
            model=chat.model,
            stream=chat.stream,
            status=schedule.status,
            seed=plan.seed,
            answer=plan.answer,
            fault=fault.spec if fault else None,
            fault_source=fault_source,
            planned=plan,  # rendered when the journal is read, not on the way to the first token
        )
        return entry, schedule

    def _schedule(self, dialect: Dialect, plan: Plan, chat: ChatRequest, call: Call, options: Any) -> WireSchedule:
        ident = f"mock{plan.seed:016x}"
        enc = Encoding(
            request=chat,
            call=call,
            ident=ident,
            created=1_700_000_000 + plan.seed % 100_000_000,  # from the seed: same request, same bytes
            options=options,
        )
        request_id = (("x-request-id", "req_" + ident),)
        fault = plan.fault
        if fault is not None and fault.kind == "http":
            error = dialect.error(fault.status, retry_after=fault.retry_after, call=call)
            return immediate(HttpResponse(error.status, error.headers + request_id, error.body))
        rng = rng_for(plan.seed, "wire") if fault is not None and fault.kind == "fragment" else None
        if chat.stream:
            frames = dialect.stream_frames(plan, enc)
            headers = dialect.stream_headers if frames.headers is None else frames.headers
            return stream_schedule(plan, frames, headers + request_id, rng)
        ok = dialect.response(plan, enc)
        failed = dialect.error(500, call=call)
        return body_schedule(
            plan,
            HttpResponse(ok.status, ok.headers + request_id, ok.body),
            HttpResponse(failed.status, failed.headers + request_id, failed.body),
            rng,
        )

    def _choose_fault(self, config: MockConfig, chat: ChatRequest, call: Call) -> tuple[Fault | None, str | None]:
        """The fault for this request: the `x-mock-fault` header, else an armed fault, else a
        configured schedule."""
        spec = call.headers.get("x-mock-fault")
        if spec:
            try:
                return parse_fault(spec), "header"
            except FaultSyntaxError as err:
                raise RequestError("x-mock-fault", str(err)) from None
        if not self._armed and not config.fault_rules:
            return None, None
        prompt, model, turn = chat.prompt, chat.model, chat.turn
        for armed in self._armed:
            if armed.match.matches(prompt, model, turn, call.path):
                if armed.remaining is not None:
                    armed.remaining -= 1
                    if armed.remaining == 0:
                        self._armed.remove(armed)
                return armed.fault, f"armed:{armed.id}"
        seed = None
        for i, rule in enumerate(config.fault_rules):
            if not rule.match.matches(prompt, model, turn, call.path):
                continue
            self._rule_counts[i] += 1
            if seed is None:
                seed = request_seed(config.seed, chat)
            if rule.applies(self._rule_counts[i], prompt, model, turn, rng_for(seed, f"fault:{i}")):
                return rule.fault, f"config:{i}"
        return None, None

    def _record(
        self,
        entry: dict[str, Any],
        dialect: str,
        outcome: str,
        schedule: WireSchedule,
        arrival: float,
        sent: Sequence[float],
    ) -> None:
        """Fill in what was achieved: once per response, off the per-token path."""
        achieved = Achieved(arrival, sent, schedule.offsets, schedule.content, perf_counter())
        entry["outcome"] = outcome
        entry["achieved"] = achieved  # rendered when the journal is read
        self.metrics.record(dialect, outcome, achieved)

    # -- admin API --------------------------------------------------------------------------------

    def _metrics(self, call: Call) -> HttpResponse:
        body = self.metrics.render(self.active_streams).encode()
        return HttpResponse(200, (("content-type", "text/plain; version=0.0.4"),), body)

    def _replace_config(self, call: Call) -> HttpResponse:
        """PUT: the startup config with this mapping merged over it."""
        return self._apply_config(call, lambda body: merge(self._startup_raw, body))

    def _patch_config(self, call: Call) -> HttpResponse:
        """PATCH: the config in force with this mapping merged over it."""
        return self._apply_config(call, lambda body: merge(self.config.to_dict(), body))

    def _apply_config(self, call: Call, build: Callable[[dict[str, Any]], dict[str, Any]]) -> HttpResponse:
        try:
            body = call.json_object()
            new = parse_config(build(body))
        except RequestError as err:
            return admin_error(400, err.message)
        except ConfigError as err:
            return admin_error(400, str(err), key=err.key)
        self._install(new)
        return json_response(200, new.to_dict())

    def _install(self, config: MockConfig) -> None:
        if len(config.fault_rules) != len(self._rule_counts) or config.fault_rules != self.config.fault_rules:
            self._rule_counts = [0] * len(config.fault_rules)
        self.config = config
        self.journal.resize(config.journal_max_entries)

    def _arm_fault(self, call: Call) -> HttpResponse:
        """POST {fault: SPEC, match?: {contains, regex, model, turn, path}, count?: N (default 1)}."""
        try:
            body = call.json_object()
            unknown = sorted(set(body) - {"fault", "match", "count"})
            if unknown:
                raise ConfigError(unknown[0], "unknown field; use fault, match, count")
            if not isinstance(body.get("fault"), str | int):
                raise ConfigError("fault", "required: a fault spec such as '429' or 'error-after=3'")
            try:
                fault = parse_fault(str(body["fault"]))
            except FaultSyntaxError as err:
                raise ConfigError("fault", str(err)) from None
            match = parse_match(body.get("match"), "match")
            count = body.get("count", 1)
            if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
                raise ConfigError("count", f"expected a whole number >= 1 or null (every request), got {count!r}")
        except RequestError as err:
            return admin_error(400, err.message)
        except ConfigError as err:
            return admin_error(400, str(err), key=err.key)
        self._armed_ids += 1
        armed = ArmedFault(self._armed_ids, fault, match, count)
        self._armed.append(armed)
        return json_response(201, armed.to_dict())

    def _disarm_faults(self, call: Call) -> HttpResponse:
        count = len(self._armed)
        self._armed.clear()
        return json_response(200, {"disarmed": count})

    def _read_journal(self, call: Call) -> HttpResponse:
        """GET ?prompt_contains=&model=&path=&outcome=&since_id=&limit="""
        query = dict(call.query)
        filters: dict[str, Any] = {}
        for name in ("prompt_contains", "model", "path", "outcome"):
            if name in query:
                filters[name] = query.pop(name)
        for name in ("since_id", "limit"):
            if name in query:
                raw = query.pop(name)
                if not raw.isdigit():
                    return admin_error(400, f"query parameter {name!r} must be a whole number, got {raw!r}")
                filters[name] = int(raw)
        if query:
            return admin_error(400, f"unknown query parameter {sorted(query)[0]!r}")
        return json_response(200, {"entries": self.journal.query(**filters)})

    def _reset(self, call: Call) -> HttpResponse:
        """Back to the startup state: config, journal, armed faults, schedule counters, metrics."""
        self._install(parse_config(self._startup_raw))
        self._rule_counts = [0] * len(self.config.fault_rules)
        self.journal.clear()
        self._armed.clear()
        self.metrics = Metrics()
        return json_response(200, {"reset": True})

    def _stats(self, call: Call) -> HttpResponse:
        by_outcome: dict[str, int] = {}
        for (_, outcome), count in self.metrics.requests.items():
            by_outcome[outcome] = by_outcome.get(outcome, 0) + count
        return json_response(
            200,
            {
                "requests": sum(by_outcome.values()),
                "by_outcome": by_outcome,
                "active_streams": self.active_streams,
                "journal_entries": len(self.journal),
                "armed_faults": len(self._armed),
                "uptime_s": time.time() - self._started,
            },
        )
