"""Locust glue: the user class, the shape, and the event hooks that gather and merge the figures.

Importing this module imports Locust (which patches the process for gevent); only the locustfile
and the `run` command's Locust processes import it. Every `LoadSettings` field is a Locust option
`--lt-<field>` (so `locust -f loadtests/locustfile.py --lt-profile sessions` works, and Locust sends
the options to its workers). Each process measures its own streams into a `LoadStats`; a worker
ships what it gathered since its last report with Locust's own report, the master adds it, and the
master (or a lone local runner) writes the result document when Locust quits.
"""

from __future__ import annotations

import dataclasses
import gc
import inspect
import itertools
import json
import time
from pathlib import Path
from typing import Any

import gevent
import psutil
from locust import LoadTestShape, User, constant, events, task
from locust.runners import STATE_STOPPED, STATE_STOPPING, MasterRunner, WorkerRunner

from reports import write_load

from ._config import VERSION, LoadSettings, build_result, write_json
from ._connection import Connection, RequestFailed, Target, clock, encode_request
from ._distributed import answer_final_ask, collect_final_reports, refuse_unless_allowed
from ._measure import StreamResult, same_text
from ._session import ChatSession, LoadProfile
from ._shapes import Shape, arrivals, saturated
from ._stats import LoadStats

PROMPTS = (
    "Explain how a streamed answer reaches the browser.",
    "Write a short note about time to first token.",
    "Summarise what a load test measures, in a few sentences.",
    "Describe a conversation with three turns.",
)
# How long gevent runs loop callbacks (users resuming after `wait()`) before it polls the sockets
# again; it looks at the clock every 50 callbacks. Its default is 5 ms.
CALLBACK_SLICE_S = 0.001
_FIELDS = {f.name: f for f in dataclasses.fields(LoadSettings)}


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    for name in _FIELDS:
        flag = f"--lt-{name.replace('_', '-')}"
        parser.add_argument(flag, dest=f"lt_{name}", default=None, help=f"loadtests: {name} (see LoadSettings)")


def settings_from(options: Any) -> LoadSettings:
    """LoadSettings from Locust's parsed options (strings, or None where not given)."""
    given: dict[str, Any] = {}
    for name, spec in _FIELDS.items():
        raw = getattr(options, f"lt_{name}", None)
        if raw is None:
            continue
        kind = str(spec.type)
        if name == "variables":
            given[name] = json.loads(raw) if raw.startswith("{") else dict(kv.split("=", 1) for kv in raw.split(","))
        elif "int" in kind and "float" not in kind:
            given[name] = int(raw)
        elif "float" in kind:
            given[name] = float(raw)
        else:
            given[name] = raw
    return LoadSettings(**given)


class ProcessRun:
    """One process's part of the run: what to send, when, and where the figures go."""

    def __init__(self, environment: Any, settings: LoadSettings) -> None:
        self.environment = environment
        self.configure(settings)
        self.stats = LoadStats(time.time_ns() - clock(), settings.slo)
        self.shipped = LoadStats(self.stats.epoch_offset_ns, settings.slo)  # what this worker reported
        self.started_at = time.time()
        self.start_ns = clock()
        self.stop_ns: int | None = None
        self.users = itertools.count()
        self.turns = itertools.count()
        self._arrivals: Any = iter(())
        self.monitor: gevent.Greenlet | None = None
        self.workers = 1
        self.trace: list[str] = []  # JSON lines, kept only with --lt-trace-dir

    def configure(self, settings: LoadSettings) -> None:
        self.settings = settings
        self.shape: Shape = settings.load_shape()
        variables: dict[str, Any] = {"max_tokens": settings.max_tokens, **settings.variables}
        self.load = LoadProfile.of(settings.load_profile(), variables, jwt_secret=settings.jwt_secret,
                                   deadline_s=settings.stream_timeout_s)  # fmt: skip
        if hasattr(self, "stats"):  # a worker reconfigured by the master's options
            self.stats.slo = self.shipped.slo = settings.slo

    @property
    def worker_index(self) -> int:
        runner = self.environment.runner
        return runner.worker_index if isinstance(runner, WorkerRunner) else 0

    @property
    def worker_count(self) -> int:
        runner = self.environment.runner
        if isinstance(runner, WorkerRunner):
            return max(1, int(getattr(self.environment.parsed_options, "expect_workers", 1) or 1))
        return 1

    def begin(self) -> None:
        self.started_at, self.start_ns, self.stop_ns = time.time(), clock(), None
        runner = self.environment.runner
        self.workers = runner.worker_count if isinstance(runner, MasterRunner) else 1
        share = 1.0 / self.worker_count
        self._arrivals = arrivals(self.shape, seed=self.settings.seed, share=share, stream=self.worker_index)
        # Locust's Runner.stop() logs its caller through inspect.stack(), whose first call realpaths
        # every loaded module's file: 40-70 ms with the hub held just as the last streams are read
        # (late, and off Linux timed late). Made once here, before the first stream, it costs ~4 ms then.
        inspect.stack()
        # Locust and its imports leave ~10^5 long-lived objects; a full collection scanning them
        # all stalls every read for tens of ms. Frozen, they are never scanned again.
        gc.collect()
        gc.freeze()
        gevent.setswitchinterval(CALLBACK_SLICE_S)
        if self.monitor is None and not isinstance(self.environment.runner, MasterRunner):
            self.monitor = gevent.spawn(self._watch_client)

    def claim(self) -> int | None:
        """The next open-loop arrival for a free user: waits for its time; None when the schedule is over."""
        drop_after = int(self.settings.drop_after_s * 1e9)
        for offset in self._arrivals:
            t_sched = self.start_ns + int(offset * 1e9)
            now = clock()
            if now - t_sched > drop_after:
                self.stats.dropped(t_sched)
                continue
            if t_sched > now:
                gevent.sleep((t_sched - now) / 1e9)
            return t_sched
        return None

    def message(self, user: int) -> tuple[int, str, str]:
        """(turn number in this process, marker, message): the marker finds the turn in the mock's journal."""
        turn = next(self.turns)
        marker = f"lt{self.settings.seed}w{self.worker_index}u{user}t{turn}z"  # z: no marker is a prefix of another
        return turn, marker, f"{marker} {PROMPTS[turn % len(PROMPTS)]}"

    def record(self, result: StreamResult, *, scheduled: bool, name: str, marker: str) -> None:
        self.stats.add(result, scheduled=scheduled)
        if self.settings.trace_dir and result.ok and result.ttft is not None:
            line = {"marker": marker, "ttft_ns": result.ttft, "first_token_ns": result.token_times[0],
                    "gaps_ns": result.gaps}  # fmt: skip
            self.trace.append(json.dumps(line))
        fire = self.environment.events.request.fire
        e2e_ms = (result.t_end - result.t0) / 1e6 if result.t_end is not None else 0.0
        if result.ok:
            fire(request_type="SSE", name=name, response_time=e2e_ms, response_length=result.output_tokens,
                 exception=None, context={})  # fmt: skip
            if result.ttft is not None:
                fire(request_type="TTFT", name=name, response_time=result.ttft / 1e6, response_length=0,
                     exception=None, context={})  # fmt: skip
        else:
            failure = RequestFailed(result.error_kind or "protocol", result.error_detail[:300])
            fire(request_type="SSE", name=name, response_time=e2e_ms, response_length=0, exception=failure,
                 context={})  # fmt: skip

    def check_text(self, result: StreamResult, marker: str, connection: Connection) -> None:
        """Compare a sampled stream's text with the answer the mock planned for that request."""
        spec = self.load.rules.spec
        request = encode_request(connection.target, "GET", "/_mock/journal", {"prompt_contains": marker}, {}, None)
        try:
            connection.send(request)
            response, body = connection.receive(clock() + 10_000_000_000)
            entries = json.loads(body)["entries"] if response.status == 200 else []
        except (RequestFailed, ValueError, KeyError):
            entries = []
        if not entries:
            self.stats.error("journal", f"no journal entry at the mock for {marker!r}")
            return
        # The newest entry: the check runs right after the turn, before this conversation's next turn
        # (whose history repeats the marker); an earlier run with the same seed left older ones.
        answer = max(entries, key=lambda entry: entry["id"]).get("answer", "")
        matched = same_text(spec, result.text, answer)
        detail = "" if matched else f"{marker}: streamed {result.text[:80]!r}, the LLM said {answer[:80]!r}"
        self.stats.text_checked(matched, detail)

    def _watch_client(self) -> None:
        """Sample this process's CPU each second and its event-loop lag twenty times a second."""
        process = psutil.Process()
        process.cpu_percent(None)
        last_cpu = clock()
        while True:
            before = clock()
            gevent.sleep(0.05)
            after = clock()
            self.stats.client_sample(loop_lag_ns=max(0, after - before - 50_000_000))
            if after - last_cpu >= 1_000_000_000:
                self.stats.client_sample(cpu_percent=process.cpu_percent(None))
                last_cpu = after

    def finish(self) -> None:
        if self.stop_ns is None:
            self.stop_ns = clock()

    def write(self) -> dict[str, Any] | None:
        """The master (or a local runner) writes the result; a worker writes the part it shipped."""
        runner = self.environment.runner
        settings = self.settings
        if settings.trace_dir and not isinstance(runner, MasterRunner):
            trace = Path(settings.trace_dir) / f"trace-{self.worker_index}.jsonl"
            trace.parent.mkdir(parents=True, exist_ok=True)
            trace.write_text("".join(line + "\n" for line in self.trace), encoding="utf-8")
        if isinstance(runner, WorkerRunner):
            if settings.parts_dir:
                write_json(self.shipped.to_dict(), Path(settings.parts_dir) / f"worker-{self.worker_index}.json")
            return None
        stop = self.stop_ns or clock()
        window_s = min((stop - self.start_ns) / 1e9, self.shape.run_time_s)
        workers = self.workers
        result = build_result(self.stats, settings, target=self.environment.host or "", shape=self.shape,
                              started_at=self.started_at, window_s=window_s, workers=workers,
                              tool=f"loadtests {VERSION} (locust {_locust_version()})")  # fmt: skip
        if settings.parts_dir and isinstance(runner, MasterRunner):
            write_json(self.stats.to_dict(), Path(settings.parts_dir) / "master.json")
        if settings.json_path:
            write_json(result, settings.json_path)
        if settings.html_path:
            write_load(result, settings.html_path)
        return result


def _locust_version() -> str:
    import locust

    return locust.__version__


PROCESS: ProcessRun | None = None


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    global PROCESS
    PROCESS = ProcessRun(environment, settings_from(environment.parsed_options))
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        environment.events.worker_report.add_listener(lambda client_id, data: PROCESS.stats.merge(data["loadtests"]))
        collect_final_reports(environment, lambda detail: PROCESS.stats.error("worker-lost", detail))
    if isinstance(runner, WorkerRunner):

        def ship(client_id: str, data: dict[str, Any]) -> None:
            part = PROCESS.stats.take()
            PROCESS.shipped.merge(part)
            data["loadtests"] = part

        environment.events.report_to_master.add_listener(ship)
        answer_final_ask(environment)


@events.test_start.add_listener
def _test_start(environment: Any, **_: Any) -> None:
    refuse_unless_allowed(environment)  # the load-target policy, in every process, before a user starts
    if isinstance(environment.runner, WorkerRunner):
        PROCESS.configure(settings_from(environment.parsed_options))  # the master's options arrive with the spawn
    PROCESS.begin()


@events.test_stop.add_listener
def _test_stop(environment: Any, **_: Any) -> None:
    PROCESS.finish()


@events.quit.add_listener
def _quit(exit_code: int, **_: Any) -> None:
    PROCESS.write()


class ChatUser(User):
    """A user holding conversations with the target through the run's profile.

    Closed loop: it starts its next conversation as soon as the last ends. Open loop: it takes the
    next scheduled arrival, so a late start is counted (schedule lag) instead of silently shifting
    the schedule; an arrival no user could take in time is dropped and counted as failed.
    """

    wait_time = constant(0)

    def on_start(self) -> None:
        self.index = next(PROCESS.users)
        name = f"load-{PROCESS.settings.seed}-{PROCESS.worker_index}-{self.index}"
        self.session = ChatSession(PROCESS.load, Target.parse(self.host), name,
                                   timeout_s=PROCESS.settings.stream_timeout_s)  # fmt: skip
        self.mock = Connection(Target.parse(PROCESS.settings.mock)) if PROCESS.settings.mock else None

    def on_stop(self) -> None:
        self.session.close()
        if self.mock is not None:
            self.mock.close()

    @task
    def conversation(self) -> None:
        run = PROCESS
        open_loop = run.shape.loop == "open"
        t_sched = None
        if open_loop:
            t_sched = run.claim()
            if t_sched is None:  # the schedule is over: idle until the run stops
                gevent.sleep(1.0)
                return
        self.session.new_conversation()
        name = run.settings.profile
        for turn in range(run.settings.turns):
            if turn and self.environment.runner.state in (STATE_STOPPING, STATE_STOPPED):
                break  # the run is ending: finish the turn in flight, start no new one
            number, marker, message = run.message(self.index)
            try:
                result = self.session.turn(message, t_sched if turn == 0 else None)
            except gevent.GreenletExit:
                run.stats.interrupted()
                raise
            run.record(result, scheduled=open_loop and turn == 0, name=name, marker=marker)
            every = run.settings.check_every
            if result.ok and self.mock is not None and every and number % every == 0:
                run.check_text(result, marker, self.mock)
            if not result.ok:
                break
            if turn + 1 < run.settings.turns and run.settings.think_s:
                gevent.sleep(run.settings.think_s)


class YamlShape(LoadTestShape):
    """The run's shape file as Locust's shape: users over time (closed loop) or the open loop's user pool.

    A shape with `stop_at_saturation` ends the run once a finished step is found saturated (judged a
    few seconds after it ends, when the workers' reports of it have arrived).
    """

    judged = 0  # steps judged so far

    def tick(self) -> tuple[int, float] | None:
        shape = PROCESS.shape
        run_time = self.get_run_time()
        level = shape.level(run_time)
        if level is None:
            return None
        if shape.stop_at_saturation and self._saturated(shape, run_time):
            return None
        if shape.loop == "open":
            return shape.max_users, float(shape.max_users)
        users = max(1, round(level[0])) if level[0] > 0 else 0
        return users, float(max(users, 1) * 10)

    def _saturated(self, shape: Shape, run_time: float) -> bool:
        report_lag_s = 3.5
        while self.judged < len(shape.stages) - 1 and run_time >= shape.stages[self.judged].until_s + report_lag_s:
            stage = shape.stages[self.judged]
            begin = shape.stages[self.judged - 1].until_s if self.judged else 0.0
            self.judged += 1
            if saturated(stage.rate, PROCESS.stats.stage_rates(PROCESS.started_at, begin, stage.until_s)):
                return True
        return False
