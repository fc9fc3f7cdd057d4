"""The mock's admin API: health, metrics, the config in force, armed faults, the journal, reset, stats,
and refusal windows (`POST /_mock/refuse {"for_s": S}`: the listener closes for S seconds at once).

One `Admin` per server, its routes `Route` records whose handlers answer a `Call` with an
`HttpResponse` at once. It owns the armed faults: the chat path reads the same list to pick a
request's fault. The config, journal and metrics it reads and changes belong to the server, reached
through the small `Administered` interface, so this module never imports the server. In a worker
of `mockllm serve --workers N`, these handlers answer for that worker alone, when the supervisor
asks it (`_workers` applies a change to every worker and merges what they read).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ._config import MockConfig, merge, parse_config
from ._errors import ConfigError, RequestError
from ._faults import MAX_REFUSE_S, Fault, FaultSyntaxError, Match, parse_fault, parse_match
from ._http import Refusal
from ._journal import Journal
from ._metrics import Metrics
from ._shared_state import Tally
from ._wire import HttpResponse
from .dialects import Call, Route

JSON_HEADERS = (("content-type", "application/json"),)
Respond = Callable[[Call], HttpResponse]


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

    def to_dict(self, remaining: int | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "fault": self.fault.spec,
            "match": self.match.to_config(),
            "remaining": remaining,
        }


class Administered(Protocol):
    """What the admin API reads and changes of the server it runs in."""

    config: MockConfig
    journal: Journal
    metrics: Metrics  # replaced on reset
    active_streams: int
    tally: Tally  # journal ids, schedule counters, what armed faults have left: shared by a mock's workers

    def install(self, config: MockConfig, *, restart_schedules: bool = False) -> None:
        """Put `config` in force; its fault schedules count from the start again when its rules
        differ from those in force, or when `restart_schedules`."""
        ...

    def refusal(self) -> Refusal:
        """The listener's refusal windows: the time left of the open one, how many were opened."""
        ...

    def refuse(self, seconds: float) -> None:
        """Stop accepting connections for `seconds`, then listen again on the same port."""
        ...


class Admin:
    """The admin endpoints of one server and the faults armed through them."""

    def __init__(self, server: Administered, startup_raw: dict[str, Any]) -> None:
        self._server = server
        self._startup_raw = startup_raw
        self.armed: list[ArmedFault] = []  # in arming order; the chat path takes the first that matches
        self._armed_ids = 0
        self._started = time.time()

    def routes(self) -> tuple[Route[Respond], ...]:
        return (
            Route("GET", "/health", lambda call: json_response(200, {"status": "ok"})),
            Route("GET", "/metrics", self._metrics),
            Route("GET", "/_mock/config", lambda call: json_response(200, self._server.config.to_dict())),
            Route("PUT", "/_mock/config", self._replace_config),
            Route("PATCH", "/_mock/config", self._patch_config),
            Route("GET", "/_mock/faults", self._list_faults),
            Route("POST", "/_mock/faults", self._arm_fault),
            Route("DELETE", "/_mock/faults", self._disarm_faults),
            Route("GET", "/_mock/journal", self._read_journal),
            Route("DELETE", "/_mock/journal", self._clear_journal),
            Route("POST", "/_mock/reset", self._reset),
            Route("GET", "/_mock/stats", self._stats),
            Route("POST", "/_mock/refuse", self._refuse),
        )

    def _metrics(self, call: Call) -> HttpResponse:
        refusal = self._server.refusal()
        body = self._server.metrics.render(self._server.active_streams, refusal.remaining_s, refusal.windows).encode()
        return HttpResponse(200, (("content-type", "text/plain; version=0.0.4"),), body)

    def _replace_config(self, call: Call) -> HttpResponse:
        """PUT: the startup config with this mapping merged over it."""
        return self._apply_config(call, lambda body: merge(self._startup_raw, body))

    def _patch_config(self, call: Call) -> HttpResponse:
        """PATCH: the config in force with this mapping merged over it."""
        return self._apply_config(call, lambda body: merge(self._server.config.to_dict(), body))

    def _apply_config(self, call: Call, build: Callable[[dict[str, Any]], dict[str, Any]]) -> HttpResponse:
        try:
            body = call.json_object()
            new = parse_config(build(body))
            self._server.tally.check(len(new.fault_rules))
        except RequestError as err:
            return admin_error(err.status, err.message)
        except ConfigError as err:
            return admin_error(400, str(err), key=err.key)
        self._server.install(new)
        return json_response(200, new.to_dict())

    def _live(self) -> list[tuple[ArmedFault, int | None]]:
        """The armed faults with requests left, and how many (other workers may have taken some)."""
        tally = self._server.tally
        found = [(armed, tally.remaining(armed.id, armed.remaining)) for armed in self.armed]
        return [(armed, left) for armed, left in found if left is None or left > 0]

    def _list_faults(self, call: Call) -> HttpResponse:
        return json_response(200, {"faults": [armed.to_dict(left) for armed, left in self._live()]})

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
            return admin_error(err.status, err.message)
        except ConfigError as err:
            return admin_error(400, str(err), key=err.key)
        self._armed_ids += 1
        armed = ArmedFault(self._armed_ids, fault, match, count)
        self._server.tally.arm(armed.id, count)
        self.armed.append(armed)
        return json_response(201, armed.to_dict(count))

    def _disarm_faults(self, call: Call) -> HttpResponse:
        count = len(self._live())
        self.armed.clear()
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
                if not (raw.isascii() and raw.isdigit()):  # "²".isdigit() too, which int() refuses
                    return admin_error(400, f"query parameter {name!r} must be a whole number, got {raw!r}")
                filters[name] = int(raw)
        if query:
            return admin_error(400, f"unknown query parameter {sorted(query)[0]!r}")
        floor = self._journal_floor()
        if floor > filters.get("since_id", 0):
            filters["since_id"] = floor
        return json_response(200, {"entries": self._server.journal.query(**filters)})

    def _journal_floor(self) -> int:
        """Entries at or below this id are past the journal's bound. Ids are given out one per entry,
        so the newest `max_entries` are those above it: a process's bounded journal holds no others,
        and the workers of one mock, each holding its own newest, together show exactly those."""
        server = self._server
        return max(0, server.tally.last_id - server.config.journal_max_entries)

    def _clear_journal(self, call: Call) -> HttpResponse:
        return json_response(200, {"cleared": self._server.journal.clear()})

    def _reset(self, call: Call) -> HttpResponse:
        """Back to the startup state: config, journal, armed faults, schedule counters, metrics."""
        server = self._server
        server.install(parse_config(self._startup_raw), restart_schedules=True)
        server.journal.clear()
        self.armed.clear()
        server.metrics = Metrics()
        return json_response(200, {"reset": True})

    def _stats(self, call: Call) -> HttpResponse:
        server = self._server
        refusal = server.refusal()
        by_outcome: dict[str, int] = {}
        for (_, outcome), count in server.metrics.requests.items():
            by_outcome[outcome] = by_outcome.get(outcome, 0) + count
        return json_response(
            200,
            {
                "requests": sum(by_outcome.values()),
                "by_outcome": by_outcome,
                "active_streams": server.active_streams,
                "journal_entries": server.journal.count_newer(self._journal_floor()),
                "armed_faults": len(self._live()),
                "uptime_s": time.time() - self._started,
                "refusing_s": refusal.remaining_s,
                "refusal_windows": refusal.windows,
            },
        )

    def _refuse(self, call: Call) -> HttpResponse:
        """POST {for_s: S}: refuse new connections for S seconds from now (this answer still goes out:
        its connection is open already). No request is needed to open the window, unlike `refuse,for=S`."""
        try:
            body = call.json_object()
        except RequestError as err:
            return admin_error(err.status, err.message)
        unknown = sorted(set(body) - {"for_s"})
        seconds = body.get("for_s")
        if unknown:
            return admin_error(400, f"unknown field {unknown[0]!r}; use for_s", key=unknown[0])
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= MAX_REFUSE_S:
            return admin_error(400, f"for_s: expected seconds, 0 < S <= {MAX_REFUSE_S:g}, got {seconds!r}", key="for_s")
        self._server.refuse(float(seconds))
        refusal = self._server.refusal()
        return json_response(200, {"refusing_s": refusal.remaining_s, "refusal_windows": refusal.windows})
