"""The mock LLM server: one route table over every registered dialect and the admin API, and the
chat path (plan, schedule, play, journal).

A route is a `Route` record; the table maps a request's method and path to the routes on it in one
lookup, and every handler is called alike, `handler(call, request, conn)`: a dialect's chat route is
the chat path bound to that dialect, its other endpoints and the admin API's (`_admin`) answer at
once. State that depends on arrival order (the journal, schedule counters, the number of active
streams, the armed faults the admin API keeps) lives at this edge; everything a response carries
is decided by the pure planner from the config and the request. The counts among that state are
kept by a `Tally` (`_shared_state`): the process's own, or, for one of the workers of `mockllm serve
--workers N` (given its `Peers`), one shared with the other workers, whose admin calls then go to the
supervisor (`_workers`) to be answered for all of them.

With `contract:` in its config the server also serves that contract profile's calls as its agent
(`_contract_service`): its stream and send calls go through the same chat path as the dialects'.
The `reset` and `refuse` faults end a request before any byte; `refuse` then closes the listener
for a while (`HttpServer.refuse`).

Every journal entry ends with an outcome: a chat request's entry is opened when its handler starts
and closed in one `finally`, whether the client left while the request waited to be planned, after
it was planned but before its first write, or mid-stream (`client_closed`), or planning failed
(`internal_error`). A body over the size limit is answered 413 by every route in its own shape,
one the JSON decoder refuses (`_jsonbody`) 400.
"""

from __future__ import annotations

import asyncio
import re
import time
from array import array
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from time import perf_counter
from typing import Any, Protocol
from urllib.parse import parse_qsl

from ._admin import Admin, Respond, admin_error
from ._answers import ProseAnswer, warm_up
from ._arrivals import ArrivalQueue
from ._config import MockConfig, parse_config
from ._contract_service import ContractService
from ._conversations import Conversations
from ._errors import RequestError
from ._faults import Fault, FaultSyntaxError, parse_fault
from ._http import ClientGone, Connection, HttpServer, Refusal, Request
from ._journal import Journal, RawBody, redact
from ._metrics import Achieved, Metrics
from ._plan import Plan, plan_response, rng_for
from ._recorded_answers import replay_recording
from ._request import ChatRequest, request_seed
from ._shared_state import Tally
from ._wire import HttpResponse, WireSchedule, body_schedule, immediate, reset_schedule, stream_schedule
from .dialects import DIALECTS, Call, Dialect, Encoding, Route
from .dialects._base import HOOKS, RequestHooks

Handler = Callable[[Call, Request, Connection], Awaitable[None]]
# Admin calls a worker answers from its own state: the same in every worker once an admin call is over.
LOCAL_ADMIN = frozenset({("GET", "/health"), ("GET", "/_mock/config"), ("GET", "/_mock/faults")})


class Peers(Protocol):
    """The mock's other workers as one of them sees them (`mockllm serve --workers N`, `_workers`):
    the counts they share, the conversations they keep together, and the supervisor that turns an
    admin call into one view of them all."""

    tally: Tally

    def conversations(self) -> Conversations:
        """The conversation store every worker uses."""
        ...

    async def admin(self, method: str, path: str, query: str, body: bytes) -> HttpResponse:
        """An admin call answered for every worker (applied to each, or their state gathered)."""
        ...

    def refused(self, seconds: float) -> None:
        """A `refuse` fault closed this worker's listener: the others close theirs too."""
        ...


class _RouteTable:
    """Exact paths in a dict, `{name}` patterns as regexes: (method, path) -> the routes on it,
    those with a claim first (in the order they were added), the one without last."""

    def __init__(self, routes: Iterable[Route[Handler]]) -> None:
        self._exact: dict[tuple[str, str], tuple[Route[Handler], ...]] = {}
        self._patterns: dict[tuple[str, str], tuple[re.Pattern[str], tuple[Route[Handler], ...]]] = {}
        for route in routes:
            key = (route.method, route.path)
            if "{" not in route.path:
                self._exact[key] = _share(self._exact.get(key, ()), route)
            elif key in self._patterns:
                regex, shared = self._patterns[key]
                self._patterns[key] = (regex, _share(shared, route))
            else:
                regex = re.compile(re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(route.path)) + "$")
                self._patterns[key] = (regex, (route,))

    def find(self, method: str, path: str) -> tuple[tuple[Route[Handler], ...], dict[str, str]] | None:
        routes = self._exact.get((method, path))
        if routes is not None:
            return routes, {}
        for (route_method, _), (regex, routes) in self._patterns.items():
            found = regex.match(path)
            if found and route_method == method:
                return routes, found.groupdict()
        return None

    def allows(self, path: str) -> bool:
        return any(p == path for _, p in self._exact) or any(r.match(path) for r, _ in self._patterns.values())


def _share(routes: tuple[Route[Handler], ...], route: Route[Handler]) -> tuple[Route[Handler], ...]:
    """`route` among those on its path: the claimed ones in the order added, then the one without."""
    claimed = tuple(known for known in routes if known.claim is not None)
    default = tuple(known for known in routes if known.claim is None)
    if route.claim is not None:
        return (*claimed, route, *default)
    if default:
        raise ValueError(f"{route.method} {route.path} is served twice; give one of them a claim")
    return (*claimed, route)


class MockServer:
    """The application: give it a config mapping, `start()` it, and it serves every dialect
    registered when it was made."""

    def __init__(self, raw_config: dict[str, Any] | None = None, *, peers: Peers | None = None) -> None:
        startup_raw = raw_config or {}
        self.config: MockConfig = parse_config(startup_raw)
        self._peers = peers
        self.tally = peers.tally if peers is not None else Tally(len(self.config.fault_rules))
        self.tally.check(len(self.config.fault_rules))
        self.journal = Journal(self.config.journal_max_entries, self.tally.next_id)
        self.metrics = Metrics()
        self.active_streams = 0  # this process's; `tally.active_streams` counts every worker's
        self._admin = Admin(self, startup_raw)
        self._armed = self._admin.armed  # the same list: the chat path takes its faults from it
        self._http = HttpServer(self._handle, self.config.limits)
        self._http.reuse_port = peers is not None  # the other workers listen on the same port
        self._arrivals = ArrivalQueue()
        self._dialects = tuple(DIALECTS)  # those registered when the server was made
        self.contract: ContractService | None = None
        self._routes = self._route_table(self.config)

    def _route_table(self, config: MockConfig) -> _RouteTable:
        """Every dialect's routes, the contract's (when the config names one) and the admin API's."""
        routes: list[Route[Handler]] = []
        served: list[tuple[Dialect, Route[Any]]] = [(d, r) for d in self._dialects for r in d.routes]
        if config.contract_spec is None:
            self.contract = None
        else:
            store = self._peers.conversations() if self._peers is not None else None
            self.contract = ContractService(config.contract_spec, self._config, store)
        if self.contract is not None:
            served += [(endpoint or self.contract, route) for route, endpoint in self.contract.routes()]  # type: ignore[misc]
        for dialect, route in served:
            endpoint = route.handler
            if endpoint is None:
                handler: Handler = partial(self._chat, dialect)
            else:
                handler = self._answering(partial(self._endpoint, dialect, endpoint))
            routes.append(Route(route.method, route.path, handler, route.claim))
        self._admin_routes = {(route.method, route.path): route.handler for route in self._admin.routes()}
        for route in self._admin.routes():
            if self._peers is not None and (route.method, route.path) not in LOCAL_ADMIN:
                handler = self._forwarding
            else:
                handler = self._answering(partial(_admin_answer, route.handler))
            routes.append(Route(route.method, route.path, handler, route.claim))
        return _RouteTable(routes)

    async def _forwarding(self, call: Call, request: Request, conn: Connection) -> None:
        """An admin call of a worker: answered for all of them by the supervisor."""
        assert self._peers is not None  # only routed with peers
        try:
            call.check_size()
        except RequestError as err:
            response = admin_error(err.status, err.message)
        else:
            response = await self._peers.admin(call.method, call.path, request.query, call.body)
        await conn.play(immediate(response), request.arrival)

    def answer_admin(self, method: str, path: str, query: str, body: bytes) -> HttpResponse:
        """Answer an admin call from this process's own state (what the supervisor asks each worker)."""
        respond = self._admin_routes.get((method, path))
        if respond is None:
            return admin_error(404, f"{method} {path} is not an admin call")
        call = Call(
            method=method,
            path=path,
            query=dict(parse_qsl(query)) if query else {},
            headers={},
            body=body,
            path_params={},
            max_json_depth=self.config.limits.max_json_depth,
            strict=self.config.strict,
        )
        return _admin_answer(respond, call)

    def _config(self) -> MockConfig:
        return self.config

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

    def install(self, config: MockConfig, *, restart_schedules: bool = False) -> None:
        """Put `config` in force (the admin API's PUT, PATCH and reset); `restart_schedules` also
        starts the contract's conversations afresh, and another contract gets new routes."""
        if config.contract != self.config.contract:
            self._routes = self._route_table(config)
            if self.contract is not None:  # a store the workers share may hold the last contract's
                self.contract.conversations.clear()
        elif restart_schedules and self.contract is not None:
            self.contract.conversations.clear()
        if restart_schedules or config.fault_rules != self.config.fault_rules:
            self.tally.restart_rules(len(config.fault_rules))
        self.config = config
        self.journal.resize(config.journal_max_entries)
        self._http.limits = config.limits

    def refusal(self) -> Refusal:
        """The listener's refusal windows (the `refuse` fault, `POST /_mock/refuse`)."""
        return self._http.refusal()

    def refuse(self, seconds: float) -> None:
        """Stop accepting connections for `seconds`, then listen again on the same port."""
        self._http.refuse(seconds)

    def _refuse_everywhere(self, seconds: float) -> None:
        """The `refuse` fault: this listener and every other worker's."""
        self._http.refuse(seconds)
        if self._peers is not None:
            self._peers.refused(seconds)

    # -- dispatch ---------------------------------------------------------------------------------

    async def _handle(self, request: Request, conn: Connection) -> None:
        found = self._routes.find(request.method, request.path)
        if found is None:
            await self._not_served(request, conn)
            return
        routes, params = found
        call = Call(
            method=request.method,
            path=request.path,
            query=dict(parse_qsl(request.query)) if request.query else {},
            headers=request.headers,
            body=request.body,
            path_params=params,
            max_json_depth=self.config.limits.max_json_depth,
            body_over=request.body_over,
            strict=self.config.strict,
        )
        for route in routes:
            if route.claim is None or route.claim(call):
                await route.handler(call, request, conn)
                return
        await self._not_served(request, conn)  # every route here has a claim, and none holds

    async def _not_served(self, request: Request, conn: Connection) -> None:
        status = 405 if self._routes.allows(request.path) else 404
        message = f"{request.method} {request.path} is not served by the mock"
        await conn.play(immediate(admin_error(status, message)), request.arrival)

    def _answering(self, respond: Respond) -> Handler:
        """A handler that plays `respond(call)` at once."""

        async def handler(call: Call, request: Request, conn: Connection) -> None:
            await conn.play(immediate(respond(call)), request.arrival)

        return handler

    def _endpoint(
        self, dialect: Dialect, endpoint: Callable[[Call, MockConfig], HttpResponse], call: Call
    ) -> HttpResponse:
        try:
            call.check_size()  # an endpoint that reads no body answers an oversized one too
        except RequestError as err:
            return dialect.error(err.status, err.message, param=err.param, call=call)
        return endpoint(call, self.config)  # the config in force when the request came

    # -- the chat path ----------------------------------------------------------------------------

    async def _chat(self, dialect: Dialect, call: Call, request: Request, conn: Connection) -> None:
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
        prepared = _Prepared()
        outcome = "client_closed"  # unless the request gets further: it may leave at any await
        sent = array("d")  # when each write went out: compact, and nothing for the collector to scan
        streaming = False
        try:
            await self._arrivals.run(self._prepare, dialect, call, entry, prepared)
            schedule = prepared.schedule
            assert schedule is not None  # _prepare returned
            if prepared.rejected:
                await conn.play(schedule, request.arrival)
                return
            self.active_streams += 1
            self.tally.stream_began()
            streaming = True
            await conn.play(schedule, request.arrival, sent)
            if schedule.end == "abort":
                outcome = "disconnected"
            elif schedule.end == "reset":
                outcome = "reset"
            elif schedule.status != 200:
                outcome = "http_error"
            else:
                outcome = "completed"
        except (ClientGone, asyncio.CancelledError):
            outcome = "client_closed"
            if not conn.is_open:
                return  # the finally block records it; the connection is gone, nothing to raise into
            raise
        except Exception as err:  # a bug in planning or playing: the client gets a 500 (Connection._serve)
            outcome = "internal_error"
            entry.setdefault("error", f"{type(err).__name__}: {err}"[:1000])
            raise
        finally:
            if streaming:
                self.active_streams -= 1
                self.tally.stream_ended()
            if not prepared.rejected:  # a rejection was recorded as it was decided
                self._record(entry, dialect.name, outcome, prepared.schedule, request.arrival, sent)
            if prepared.hooks is not None:
                prepared.hooks.finished(outcome)
            plan: Plan | None = entry.get("planned")
            fault = plan.fault if plan is not None else None
            if fault is not None and fault.kind == "refuse" and fault.seconds:
                self._refuse_everywhere(fault.seconds)  # after the reset: this request's connection is gone first
            if self.idle:  # the last stream of a burst: no one is kept waiting now
                self.metrics.catch_up()

    def _prepare(self, dialect: Dialect, call: Call, entry: dict[str, Any], prepared: _Prepared) -> None:
        """Plan one chat request and fill in its journal entry and `prepared`: all its work before
        play, run by the arrival queue (so the caller, not a return value, holds what was made: a
        client that leaves meanwhile still has its entry closed)."""
        config = self.config
        try:
            call.check_size()
            chat, options = dialect.parse(call)
            fault, fault_source = self._choose_fault(config, chat, call)
        except RequestError as err:
            self._reject(dialect, call, entry, prepared, err)
            return
        if config.recordings is not None:  # a recorded answer, its bytes at their pace (see _recording)
            replayed = replay_recording(
                config.recordings, dialect, call, chat, options, fault, request_seed(config.seed, chat)
            )
            if replayed is not None:
                entry.update(fault=fault.spec if fault else None, fault_source=fault_source, **replayed.journal)
                prepared.schedule = replayed.schedule
                return
        try:
            plan = plan_response(config, chat, fault=fault, active_streams=self.tally.active_streams)
        except RequestError as err:  # what only planning finds: a tool's schema no value satisfies
            self._reject(dialect, call, entry, prepared, err)
            return
        hooks: RequestHooks | None = options.get(HOOKS)
        prepared.hooks = hooks
        extra: dict[str, Any] = {}
        if hooks is not None:
            plan, extra = hooks.planned(plan)
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
            **extra,
        )
        if chat.agent is not None or plan.blocks:
            entry["tool_calls"] = [
                {"id": dialect.tool_call_prefix + (block.call_id or ""), "name": block.name, "arguments": block.text}
                for block in plan.tool_calls
            ]
            entry["agent"] = chat.agent  # rendered when read: the tools offered, the results sent back
        prepared.schedule = schedule

    def _reject(
        self, dialect: Dialect, call: Call, entry: dict[str, Any], prepared: _Prepared, err: RequestError
    ) -> None:
        """The request refused with the dialect's error, its entry complete."""
        entry.update(outcome="rejected", status=err.status, error=err.message, param=err.param)
        if err.check is not None:
            entry["check"] = err.check  # the provider's rule the request broke
        self.metrics.record(dialect.name, "rejected")
        prepared.rejected = True
        prepared.schedule = immediate(dialect.error(err.status, err.message, param=err.param, call=call))

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
        if fault is not None and fault.kind in ("reset", "refuse"):
            return reset_schedule()
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
        for armed in tuple(self._armed):  # a copy: one taken up elsewhere is dropped on the way
            if armed.match.matches(prompt, model, turn, call.path):
                if armed.remaining is not None:
                    left = self.tally.take(armed.id, armed.remaining)  # across workers: exactly its count
                    if left <= 0:
                        self._armed.remove(armed)
                    if left < 0:  # taken up by other workers meanwhile
                        continue
                    armed.remaining = left
                return armed.fault, f"armed:{armed.id}"
        seed = None
        for i, rule in enumerate(config.fault_rules):
            if not rule.match.matches(prompt, model, turn, call.path):
                continue
            count = self.tally.count_rule(i)
            if seed is None:
                seed = request_seed(config.seed, chat)
            if rule.applies(count, prompt, model, turn, rng_for(seed, f"fault:{i}")):
                return rule.fault, f"config:{i}"
        return None, None

    def _record(
        self,
        entry: dict[str, Any],
        dialect: str,
        outcome: str,
        schedule: WireSchedule | None,
        arrival: float,
        sent: Sequence[float],
    ) -> None:
        """Fill in what was achieved: once per response, off the per-token path (`schedule` is None
        when the request ended before it was planned)."""
        offsets, content = (schedule.offsets, schedule.content) if schedule is not None else ((), ())
        achieved = Achieved(arrival, sent, offsets, content, perf_counter())
        entry["outcome"] = outcome
        entry["achieved"] = achieved  # rendered when the journal is read
        self.metrics.record(dialect, outcome, achieved)


@dataclass(slots=True)
class _Prepared:
    """What planning made of one chat request, held by its handler."""

    schedule: WireSchedule | None = None
    hooks: RequestHooks | None = None
    rejected: bool = False  # the schedule is the error response; the entry is complete


def _admin_answer(respond: Respond, call: Call) -> HttpResponse:
    """An admin endpoint's answer; 413 for a body over the size limit, whether or not it reads one."""
    try:
        call.check_size()
    except RequestError as err:
        return admin_error(err.status, err.message)
    return respond(call)
