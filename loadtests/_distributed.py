"""Distributed load: a Locust master on one host, its workers on others, and the load-target policy.

`python -m loadtests master` runs a headless Locust master bound where the workers can reach it
(port 5557 by default), waits for `--workers N` of them, runs the shape and writes the same result
document as `run`, with every worker's figures merged into it (each worker ships its `LoadStats`
with Locust's reports, `_locust`; at the end the master waits for every worker's last one,
`collect_final_reports`, which Locust alone would drop on a busy host). `python -m loadtests worker --master-host H`
becomes a Locust worker (the process is replaced, so signals reach Locust directly): it needs no
settings of its own, since the master sends its `--lt-*` options and the target with the spawn.
Both are sugar over Locust's own flags; `locust -f <loadtests/locustfile.py> --master ...` and
`--worker --master-host H` work the same (docs/distributed.md).

The policy: only loopback addresses are a load target. A worker loads whatever host its master
sends, so the check runs where load starts — on the master's command line, and in every Locust
process (local, master, worker) at test start, before a user is spawned (`refuse_unless_allowed`,
called from `_locust`). A team loading its own service opts in by name, per process:
`--allow-target HOST` here, or `LOADTESTS_ALLOW_TARGETS=HOST,HOST` in the environment. A worker never
takes the opt-in from its master: a master cannot point another host's workers anywhere they did not allow.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ._config import LoadSettings, UsageError
from ._runner import LOCUSTFILE, locust_options, loopback_only, summary

ALLOW_ENV = "LOADTESTS_ALLOW_TARGETS"
MASTER_PORT = 5557  # Locust's default
REFUSED_EXIT = 2  # a Locust process told to load a target outside the policy exits with this, before any user starts


def allowed_hosts(environ: Mapping[str, str] | None = None, extra: Iterable[str] = ()) -> frozenset[str]:
    """The hosts this process may load besides loopback: ALLOW_ENV's comma-separated list and `extra`.

    Each is a host name or an address exactly as it appears in the target URL (no scheme, port or
    wildcard): the opt-in names one service, it never widens to a network."""
    environ = os.environ if environ is None else environ
    names = [*environ.get(ALLOW_ENV, "").split(","), *extra]
    allowed = set()
    for raw in names:
        name = raw.strip().lower().removeprefix("[").removesuffix("]")
        if not name:
            continue
        if "/" in name or "*" in name or (":" in name and not _is_address(name)):
            raise UsageError(f"--allow-target / {ALLOW_ENV}: expected a host name or an address, got {raw.strip()!r}")
        allowed.add(name)
    return frozenset(allowed)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_target(url: str, allowed: frozenset[str]) -> None:
    """UsageError unless `url` is http:// to a loopback address or to a host named in `allowed`."""
    parts = urlsplit(url)
    if parts.scheme == "http" and parts.hostname and parts.hostname.lower() in allowed:
        return
    try:
        loopback_only(url)
    except UsageError as exc:
        if allowed or "not a loopback address" not in str(exc):
            raise
        raise UsageError(f"{exc} (to load your own service, name it: --allow-target HOST or {ALLOW_ENV})") from None


def refuse_unless_allowed(environment: Any) -> None:
    """At Locust's test start, in every process: exit before any user starts when the target (or the
    mock checked against) is outside this process's policy. A worker tells its master it leaves."""
    parsed = environment.parsed_options
    urls = [environment.host or "", *filter(None, [getattr(parsed, "lt_mock", None)])]
    try:
        allowed = allowed_hosts()
        for url in urls:
            check_target(url, allowed)
    except UsageError as exc:
        logging.getLogger("loadtests").critical("loadtests: refusing to start load: %s", exc)
        runner = environment.runner
        client = getattr(runner, "client", None)  # a worker's connection to its master
        if client is not None:
            from locust.rpc import Message  # only Locust processes get here

            client.send(Message("quit", None, runner.client_id))
        logging.shutdown()
        os._exit(REFUSED_EXIT)


FINAL_ASK, FINAL_REPORT = "loadtests_final_ask", "loadtests_final_report"
FINAL_WAIT_S = 15.0  # beyond --stop-timeout: a worker's last report, after its users ended their streams


def collect_final_reports(environment: Any, lost: Callable[[str], None]) -> None:
    """A master's test stop waits (bounded) for every worker's last report before the result is written.

    Locust's master quits half a second after it tells its workers to, and a worker sends its last
    report only once its users have ended their streams in flight: on a busy host, later than that,
    and that report, every stream since the one before, would be lost. So at test stop the master
    asks each worker to stop its users and report, and waits for the answers; the report goes through
    `worker_report`, the same as Locust's periodic ones. A worker that does not answer is `lost`."""
    import gevent  # only Locust processes get here

    runner = environment.runner
    pending: set[str] = set()

    def received(environment: Any, msg: Any, **_: Any) -> None:
        pending.discard(msg.node_id)
        environment.events.worker_report.fire(client_id=msg.node_id, data=msg.data)

    def ask(environment: Any, **_: Any) -> None:
        missing = {node.id for node in runner.clients.missing}
        pending.update(node.id for node in runner.clients.all if node.id not in missing)
        for node_id in sorted(pending):
            runner.send_message(FINAL_ASK, None, node_id)
        deadline = time.monotonic() + (environment.stop_timeout or 0.0) + FINAL_WAIT_S
        while pending and time.monotonic() < deadline:
            gevent.sleep(0.05)
        for node_id in sorted(pending):
            lost(f"worker {node_id} sent no last report within the wait: its last streams are missing")
        pending.clear()

    runner.register_message(FINAL_REPORT, received)
    environment.events.test_stop.add_listener(ask)


def answer_final_ask(environment: Any) -> None:
    """A worker's side of `collect_final_reports`: stop the users (they end their streams in flight,
    within --stop-timeout), then send the report Locust's own would carry."""
    runner = environment.runner

    def answer(environment: Any, msg: Any, **_: Any) -> None:
        runner.stop()
        data: dict[str, Any] = {}
        environment.events.report_to_master.fire(client_id=runner.client_id, data=data)
        runner.send_message(FINAL_REPORT, data)

    runner.register_message(FINAL_ASK, answer, concurrent=True)


def master_command(target: str, settings: LoadSettings, *, workers: int, bind_host: str, port: int,
                   wait_workers_s: int) -> list[str]:  # fmt: skip
    """The headless Locust master's command line: Locust's flags, then the run's settings as `--lt-*`."""
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", target, "--headless", "--only-summary",
            "--stop-timeout", "10", "--loglevel", "WARNING", "--master", "--master-bind-host", bind_host,
            "--master-bind-port", str(port), "--expect-workers", str(workers),
            "--expect-workers-max-wait", str(wait_workers_s), *locust_options(settings)]  # fmt: skip


def worker_command(master_host: str, port: int, processes: int = 1) -> list[str]:
    """A Locust worker's command line: its master's address is all it needs (`processes` > 1: Locust
    forks that many workers, one per core)."""
    if processes < 1:
        raise UsageError("--processes: must be at least 1")
    forks = ["--processes", str(processes)] if processes > 1 else []
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker", "--master-host", master_host,
            "--master-port", str(port), *forks]  # fmt: skip


def locust_environment(allowed: frozenset[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Locust child's environment: the opt-in passed on, and this source tree importable."""
    environ = dict(os.environ if environ is None else environ)
    if allowed:
        environ[ALLOW_ENV] = ",".join(sorted(allowed))
    source = str(LOCUSTFILE.parent.parent)
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [source, environ.get("PYTHONPATH")]))
    return environ


def run_master(
    target: str,
    settings: LoadSettings,
    *,
    workers: int,
    bind_host: str = "0.0.0.0",
    port: int = MASTER_PORT,
    wait_workers_s: int = 60,
    allow: Iterable[str] = (),
) -> dict[str, Any]:
    """Run a Locust master until the shape ends (bounded) and return the result document it wrote."""
    if workers < 1:
        raise UsageError("--workers: a master needs at least one worker")
    if wait_workers_s < 1:
        raise UsageError("--wait-workers-s: must be at least 1")
    if not settings.json_path:
        raise UsageError("--json: a master writes its result document there (on this host)")
    allowed = allowed_hosts(extra=allow)
    check_target(target, allowed)
    if settings.mock:
        check_target(settings.mock, allowed)
    path = Path(settings.json_path)
    path.unlink(missing_ok=True)  # a result left by an earlier run must not pass for this one's
    command = master_command(target, settings, workers=workers, bind_host=bind_host, port=port,
                             wait_workers_s=wait_workers_s)  # fmt: skip
    limit = wait_workers_s + settings.load_shape().run_time_s + settings.stream_timeout_s + 60
    # A SIGTERM (a supervisor stopping this command) goes on to Locust as SIGINT: it ends the run and
    # writes the result then, while a SIGTERM kills a Locust that runs a shape before its quit hooks run.
    # (SIGINT is reset in the child: a shell starts a background command with it ignored.)
    forward = threading.current_thread() is threading.main_thread()
    reset = (lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) if forward else None
    process = subprocess.Popen(command, env=locust_environment(allowed), preexec_fn=reset)
    previous = signal.signal(signal.SIGTERM, lambda *_: process.send_signal(signal.SIGINT)) if forward else None
    try:
        process.wait(timeout=limit)
    finally:
        if forward:
            signal.signal(signal.SIGTERM, previous)
        if process.poll() is None:
            process.kill()
            process.wait()
    if not path.is_file():
        raise RuntimeError(f"the Locust master ended (exit {process.returncode}) without writing {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def _master(args: argparse.Namespace, settings_of: Callable[[argparse.Namespace], LoadSettings]) -> int:
    settings = settings_of(args)
    result = run_master(args.target, settings, workers=args.workers, bind_host=args.bind_host, port=args.port,
                        wait_workers_s=args.wait_workers_s, allow=args.allow_target)  # fmt: skip
    print(summary(result))
    for path in (settings.json_path, settings.html_path):
        if path:
            print(path)
    if result["totals"]["requests"] == 0:
        print(f"loadtests: no stream ran (did {args.workers} worker(s) connect within {args.wait_workers_s} s?)",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0 if result["totals"]["failed"] == 0 and result["validity"]["valid"] else 1


def _worker(args: argparse.Namespace) -> int:
    allowed = allowed_hosts(extra=args.allow_target)
    command = worker_command(args.master_host, args.master_port, args.processes)
    sys.stdout.flush()
    os.execve(command[0], command, locust_environment(allowed))  # becomes the Locust worker: never returns


def add_distributed(
    commands: Any,
    add_run_options: Callable[[argparse.ArgumentParser], None],
    settings_of: Callable[[argparse.Namespace], LoadSettings],
) -> None:
    """Register `master` (the run's own options, from the CLI) and `worker`."""
    allow_help = f"a non-loopback host this process may load (repeatable; also {ALLOW_ENV}=HOST,HOST)"
    master = commands.add_parser(
        "master", conflict_handler="resolve", help="a Locust master for workers on other hosts: one merged result"
    )
    add_run_options(master)
    master.add_argument("--target", required=True, help="the target's base URL: loopback, or an --allow-target host")
    master.add_argument("--workers", type=int, required=True, help="the workers to wait for (`loadtests worker`)")
    master.add_argument("--json", dest="json_path", required=True, help="write the result document here")
    master.add_argument("--bind-host", default="0.0.0.0", help="the address workers reach this master at")
    master.add_argument("--port", type=int, default=MASTER_PORT, help="the master's port for its workers")
    master.add_argument("--wait-workers-s", type=int, default=60, help="give up when the workers are not all in")
    master.add_argument("--allow-target", action="append", default=[], metavar="HOST", help=allow_help)
    master.set_defaults(handler=lambda args: _master(args, settings_of))
    worker = commands.add_parser("worker", help="a Locust worker: loads what its master sends (policy permitting)")
    worker.add_argument("--master-host", required=True, help="the master's address")
    worker.add_argument("--master-port", type=int, default=MASTER_PORT)
    worker.add_argument("--processes", type=int, default=1, help="worker processes to fork (one per core)")
    worker.add_argument("--allow-target", action="append", default=[], metavar="HOST", help=allow_help)
    worker.set_defaults(handler=_worker)
