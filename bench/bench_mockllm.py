"""Benchmark mockllm against aimock and raw-asyncio baselines, in one run, and print one table.

(a) cost: the server's own CPU time per event on a zero-delay stream, mockllm beside aimock (npm
    `@copilotkit/aimock`, installed into bench/.cache by `bench._aimock`) and the ``zero-delay``
    baseline (raw asyncio, a write per event); the same events per stream, counted by the client.
    Events per server-CPU-second (utime + stime of the server process from /proc, before and after
    each run), so a client that cannot keep up with either server does not flatten the ratio.
    Target: mockllm at least 1.5x aimock's (the figure of this run, never a copied one).
(b) TTFT and ITL seen by clients at 100, 500 and 1000 concurrent streams (TTFT 200 ms, ITL 50 ms,
    100 tokens): mockllm beside the ``deadline`` baseline, with pass/fail of the targets.
(c) the same for every dialect the mock has registered (each one's wire is its `StreamProbe`).
(d) memory: the server's RSS with 5,000 idle open streams (a long TTFT: the head is sent, the first
    token is far off) and after they close, three times over (flat: no growth from round to round
    once the journal, which keeps the last 10,000 requests, is full).
(e) cost per event (server CPU s per event) as the open streams grow from 100 to 5,000, at one
    offered event rate (each level's ITL is streams / rate), with the ITL the clients saw.
(f) scaling: zero-delay events/s and ITL p99 (1000 streams x 50 ms) for 1, 2 and 4 workers
    (`mockllm serve --workers N`; reported as not available where the flag is refused).

Each server runs pinned to CPU 0 (started by `mockllm.launcher`, its output in a log file that is
searched for trouble when it stops) and each load client (bench._stream_client) in its own process
pinned to CPU 1, so neither steals the other's core (part (f) leaves the workers unpinned). The
servers of a part stay up during that part and are measured alternately, so slow drifts of a shared
machine hit them alike.

    python -m bench.bench_mockllm [--quick] [--part cost,latency,dialects,memory,streams,workers] [--json PATH]

Each part is bounded in time (its runs are a fixed count of fixed-length client runs) and a part
that fails (a server that never listens, aimock that cannot be installed) is reported as such
without hiding the others.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench._aimock import AimockUnavailable, aimock_argv, install, write_config
from bench._runtime import available_cpus, cpu_seconds, pin_to_cpu, raise_nofile_limit, rss_kib
from bench._stream_client import mock_wires, percentiles
from mockllm import ServerProcess, start_listening, stop_process

Notes = dict[str, list[str]]  # server name -> what its logs and exit deserve a look for
ROOT = Path(__file__).resolve().parents[1]
SERVER_CPU, CLIENT_CPU = 0, 1
COST_TARGET = 1.5  # mockllm's events per server-CPU-second over aimock's (issue 18)
STOP_TIMEOUT_S = 5.0
CLIENT_SLACK_S = 30.0  # beyond the longest a client run should take
_LATENCY_COLUMNS = f"{'TTFT p50':>10}{'TTFT p99':>10}{'ITL p50':>9}{'ITL p99':>9}"
_SUSPICIOUS = re.compile(r"error|exception|traceback|reset|refused|warn|timeout", re.IGNORECASE)


@dataclass(frozen=True)
class BenchPlan:
    """Sizes of one benchmark run; ``--quick`` swaps in a smaller one for smoke tests."""

    conns: int = 50
    seconds: float = 5.0
    repeats: int = 3
    zero_tokens: int = 200
    levels: tuple[int, ...] = (100, 500, 1000)
    tokens: int = 100
    ttft_ms: int = 200
    itl_ms: int = 50
    latency_repeats: int = 3
    dialect_level: int = 500
    memory_streams: int = 5000
    memory_rounds: int = 3  # the journal (10,000 entries) is full by the third
    cost_levels: tuple[int, ...] = (100, 500, 1000, 2000, 5000)
    cost_tokens: int = 20
    cost_rate: int = 10_000  # events/s offered at every level of part (e)
    workers: tuple[int, ...] = (1, 2, 4)
    workers_level: int = 1000


QUICK = BenchPlan(
    conns=20,
    seconds=1.0,
    repeats=1,
    levels=(20,),
    tokens=20,
    latency_repeats=1,
    dialect_level=20,
    memory_streams=200,
    cost_levels=(50, 100),
    cost_tokens=10,
    cost_rate=2_000,
    workers=(1, 2),
    workers_level=50,
)
PARTS = ("cost", "latency", "dialects", "memory", "streams", "workers")


class Server:
    """A server subprocess, started once it prints its URL, then pinned to the server core."""

    def __init__(self, name: str, argv: list[str], logdir: Path, *, pin: bool = True) -> None:
        self.name = name
        self._child: ServerProcess = start_listening(argv, logdir / f"{name}.log", cwd=ROOT)
        self.url = self._child.url
        self.pid = self._child.process.pid
        if pin:
            pin_to_cpu(self.pid, SERVER_CPU)

    def stop(self) -> list[str]:
        """Stop the server and return what in its log deserves a look."""
        notes = []
        process = self._child.process
        if process.poll() is not None:
            notes.append(f"exited by itself with code {process.returncode} during the run")
        else:
            stop_process(process, STOP_TIMEOUT_S)
            if process.returncode == -signal.SIGKILL:
                notes.append("ignored SIGTERM, killed")
        lines = self._child.output().splitlines()
        flagged = [line for line in lines if _SUSPICIOUS.search(line)]
        if flagged:
            notes.append(f"{self._child.log.name}: {len(flagged)} of {len(lines)} lines flagged, e.g.:")
            notes.extend(f"    {line[:160]}" for line in flagged[:5])
        return notes


@contextlib.contextmanager
def servers(specs: dict[str, list[str]], notes: Notes, *, pin: bool = True) -> Iterator[dict[str, Server]]:
    """Start every server (each listens when started), and always stop them (collecting notes)."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        started: dict[str, Server] = {}
        try:
            for name, argv in specs.items():
                started[name] = Server(name, argv, Path(tmp), pin=pin)
            yield started
        finally:
            for name, server in started.items():
                notes.setdefault(name, []).extend(server.stop())


def can_pin() -> bool:
    """Whether server and client can each have a core of their own here."""
    return {SERVER_CPU, CLIENT_CPU} <= available_cpus()


def baseline_argv(kind: str, tokens: int, ttft_ms: int, itl_ms: int) -> list[str]:
    return [
        sys.executable, "-m", "bench._baselines", "--kind", kind, "--port", "0",
        "--tokens", str(tokens), "--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms),
    ]  # fmt: skip


def mockllm_argv(tokens: int, ttft_ms: int, itl_ms: int) -> list[str]:
    return [
        sys.executable, "-m", "mockllm", "serve", "--port", "0", "--seed", "1",
        "--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms), "--answer-tokens", str(tokens),
    ]  # fmt: skip


def run_client(args: list[str], timeout: float) -> dict[str, Any]:
    """Run one load client in its own process on the client core; return its JSON."""
    argv = [sys.executable, "-m", "bench._stream_client", *args]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pin_to_cpu(proc.pid, CLIENT_CPU)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"client {args[:3]} still running after {timeout:.0f} s") from None
    if proc.returncode:
        raise RuntimeError(f"client {args[:3]} failed: {err.decode(errors='replace')[-2000:]}")
    return json.loads(out)


# (a) cost per event ---------------------------------------------------------------------------


def measure_cost(plan: BenchPlan, notes: Notes) -> dict[str, Any]:
    """Events per server-CPU-second of each server, over ``plan.repeats`` alternating runs.

    The same zero-delay stream from each (``plan.zero_tokens`` content events between the same
    head and tail events), the same client, the server's CPU time read before and after each run.
    """
    try:
        cli = install()
    except AimockUnavailable as exc:
        raise RuntimeError(f"aimock not available: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="bench-aimock-") as tmp:
        specs = {
            "mockllm": mockllm_argv(plan.zero_tokens, 0, 0),
            "aimock": aimock_argv(cli, write_config(Path(tmp), plan.zero_tokens)),
            "zero-delay baseline": baseline_argv("zero-delay", plan.zero_tokens, 0, 0),
        }
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in specs}
        args = ["--conns", str(plan.conns), "--seconds", str(plan.seconds)]
        warm_up = ["--conns", str(plan.conns), "--seconds", str(min(1.0, plan.seconds))]
        with servers(specs, notes) as started:
            for server in started.values():  # a JIT to warm, first-request paths to take
                run_client(["count", "--url", server.url, *warm_up], CLIENT_SLACK_S)
            for _ in range(plan.repeats):
                for name, server in started.items():
                    runs[name].append(_costed_count(server, args, plan.seconds + CLIENT_SLACK_S))
    result: dict[str, Any] = {name: _cost_summary(name_runs) for name, name_runs in runs.items()}
    mock, aimock = result["mockllm"]["events_per_cpu_s"], result["aimock"]["events_per_cpu_s"]
    base = result["zero-delay baseline"]["events_per_cpu_s"]
    result["ratio_vs_aimock"] = mock / aimock if aimock else None
    result["ratio_vs_baseline"] = mock / base if base else None
    pairs = zip(runs["mockllm"], runs["aimock"], strict=True)
    paired = [m["events_per_cpu_s"] / a["events_per_cpu_s"] if a["events_per_cpu_s"] else 0.0 for m, a in pairs]
    result["paired_ratios_vs_aimock"] = paired
    per_stream = {result[name]["events_per_stream"] for name in ("mockllm", "aimock")}
    result["same_events_per_stream"] = len(per_stream) == 1 and None not in per_stream
    result["pass"] = bool(result["same_events_per_stream"] and (result["ratio_vs_aimock"] or 0) >= COST_TARGET)
    return result


def _costed_count(server: Server, args: list[str], timeout: float) -> dict[str, Any]:
    """One zero-delay count run against `server`, with the CPU time the server spent meanwhile."""
    before = cpu_seconds(server.pid)
    raw = run_client(["count", "--url", server.url, *args], timeout)
    raw["server_cpu_s"] = cpu_seconds(server.pid) - before
    raw["events_per_cpu_s"] = raw["events"] / raw["server_cpu_s"] if raw["server_cpu_s"] else 0.0
    return raw


def _cost_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs' figures; `events_per_stream` is over every finished stream (the servers are
    deterministic: a mean that differs between them means their streams do)."""
    summary = _throughput_summary(runs)
    summary.update(
        events_per_cpu_s=statistics.median(r["events_per_cpu_s"] for r in runs),
        runs_events_per_cpu_s=[r["events_per_cpu_s"] for r in runs],
        server_cpu_s=sum(r["server_cpu_s"] for r in runs),
        events=sum(r["events"] for r in runs),
        us_per_event=1e6 * sum(r["server_cpu_s"] for r in runs) / max(1, sum(r["events"] for r in runs)),
        server_cpu_share=sum(r["server_cpu_s"] for r in runs) / sum(r["seconds"] for r in runs),
    )
    return summary


def _throughput_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    events, streams = sum(r["stream_events"] for r in runs), sum(r["streams"] for r in runs)
    errors: dict[str, int] = {}
    for run in runs:
        for reason, count in run["errors"].items():
            errors[reason] = errors.get(reason, 0) + count
    return {
        "events_per_s": statistics.median(r["events_per_s"] for r in runs),
        "runs_events_per_s": [r["events_per_s"] for r in runs],
        "events_per_stream": events / streams if streams else None,
        "streams": streams,
        "failures": sum(errors.values()),
        "errors": errors,
    }


def _render_cost(plan: BenchPlan, result: dict[str, Any]) -> list[str]:
    lines = [
        f"(a) cost per event, zero-delay streams: {plan.conns} connections x {plan.seconds:g} s, "
        f"{plan.zero_tokens} tokens/stream, median of {plan.repeats} alternating run(s)",
        "    events per second of the server's own CPU time (utime+stime); wall events/s as the client saw them",
        f"    {'server':<22}{'ev/CPU-s':>11}{'us/event':>10}{'CPU share':>10}{'wall ev/s':>11}"
        f"{'ev/stream':>10}{'fail':>6}  runs (ev/CPU-s)",
    ]
    for name in ("mockllm", "aimock", "zero-delay baseline"):
        r = result[name]
        runs = " ".join(f"{v:,.0f}" for v in r["runs_events_per_cpu_s"])
        per_stream = f"{r['events_per_stream']:.1f}" if r["events_per_stream"] else "-"
        lines.append(
            f"    {name:<22}{r['events_per_cpu_s']:>11,.0f}{r['us_per_event']:>10.2f}{r['server_cpu_share']:>10.0%}"
            f"{r['events_per_s']:>11,.0f}{per_stream:>10}{r['failures']:>6}  {runs}"
        )
    ratio, paired = result["ratio_vs_aimock"], " ".join(f"{v:.2f}" for v in result["paired_ratios_vs_aimock"])
    same = "same events/stream" if result["same_events_per_stream"] else "EVENTS/STREAM DIFFER"
    verdict = "PASS" if result["pass"] else "FAIL"
    lines.append(
        f"    mockllm / aimock = {ratio:.2f} (target >= {COST_TARGET:g}: {verdict}; per run {paired}; {same})"
        if ratio
        else "    aimock: no events"
    )
    base = result["ratio_vs_baseline"]
    lines.append(f"    mockllm / zero-delay baseline = {base:.2f}" if base else "    baseline: no events")
    return lines


# (b) latency ---------------------------------------------------------------------------------


def measure_latency(plan: BenchPlan, notes: Notes) -> list[dict[str, Any]]:
    """TTFT/ITL percentiles of both servers at each concurrency level, plus target checks.

    Each level runs ``plan.latency_repeats`` times, the two servers alternating; each figure is the
    median over the runs, so one burst of a noisy neighbour's work does not decide a verdict.
    """
    specs = {
        "deadline baseline": baseline_argv("deadline", plan.tokens, plan.ttft_ms, plan.itl_ms),
        "mockllm": mockllm_argv(plan.tokens, plan.ttft_ms, plan.itl_ms),
    }
    stream_s = (plan.ttft_ms + plan.tokens * plan.itl_ms) / 1000
    timeout = stream_s + CLIENT_SLACK_S
    levels = []
    with servers(specs, notes) as started:
        for level in plan.levels:
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in started}
            for _ in range(plan.latency_repeats):
                for name, server in started.items():
                    args = ["latency", "--url", server.url, "--streams", str(level)]
                    raw = run_client([*args, "--timeout", str(timeout)], timeout + CLIENT_SLACK_S)
                    runs[name].append(_latency_summary(raw))
            row: dict[str, Any] = {"streams": level}
            row.update({name: _median_run(name_runs) for name, name_runs in runs.items()})
            row["checks"] = check_targets(row["mockllm"], row["deadline baseline"], plan.itl_ms)
            # A baseline that misses the target itself: the machine, not the mock, decided the run.
            row["baseline_itl_p50_delta_ms"] = row["deadline baseline"]["itl_ms"]["p50"] - plan.itl_ms
            levels.append(row)
    return levels


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts summed over the runs; each percentile the median of the runs' values."""
    errors: dict[str, int] = {}
    for run in runs:
        for reason, count in run["errors"].items():
            errors[reason] = errors.get(reason, 0) + count
    return {
        "ok": sum(r["ok"] for r in runs),
        "streams": sum(r["streams"] for r in runs),
        "failures": sum(r["failures"] for r in runs),
        "errors": errors,
        "content_events_per_stream": runs[0]["content_events_per_stream"],
        "ttft_ms": {q: statistics.median(r["ttft_ms"][q] for r in runs) for q in runs[0]["ttft_ms"]},
        "itl_ms": {q: statistics.median(r["itl_ms"][q] for r in runs) for q in runs[0]["itl_ms"]},
        "itl_samples": sum(r["itl_samples"] for r in runs),
        "runs": runs,
    }


def _latency_summary(raw: dict[str, Any]) -> dict[str, Any]:
    ttft = percentiles(t / 1e6 for t in raw["ttft_ns"])
    itl = percentiles(t / 1e6 for t in raw["itl_ns"])
    return {
        "ok": raw["ok"],
        "streams": raw["streams"],
        "failures": raw["failures"],
        "errors": raw["errors"],
        "content_events_per_stream": raw["content_events_per_stream"],
        "ttft_ms": ttft,
        "itl_ms": itl,
        "itl_samples": len(raw["itl_ns"]),
    }


def measure_dialects(plan: BenchPlan, notes: Notes) -> dict[str, Any]:
    """Every dialect the mock serves through the same client: zero-delay events/s, and TTFT/ITL at one level
    beside the deadline baseline (which speaks OpenAI chat; its figures are the machine's limit)."""
    level = plan.dialect_level
    specs = {
        "deadline baseline": baseline_argv("deadline", plan.tokens, plan.ttft_ms, plan.itl_ms),
        "mockllm": mockllm_argv(plan.tokens, plan.ttft_ms, plan.itl_ms),
        "mockllm zero-delay": mockllm_argv(plan.zero_tokens, 0, 0),
    }
    stream_s = (plan.ttft_ms + plan.tokens * plan.itl_ms) / 1000
    timeout = stream_s + CLIENT_SLACK_S
    result: dict[str, Any] = {"streams": level, "dialects": {}}
    with servers(specs, notes) as started:
        warm_up = ["latency", "--url", started["deadline baseline"].url, "--streams", "20", "--timeout", str(timeout)]
        run_client(warm_up, timeout + CLIENT_SLACK_S)  # a fresh process's first streams run cold
        args = ["latency", "--url", started["deadline baseline"].url, "--streams", str(level)]
        raw = run_client([*args, "--timeout", str(timeout)], timeout + CLIENT_SLACK_S)
        result["deadline baseline"] = _latency_summary(raw)
        for dialect in mock_wires():
            count = ["count", "--url", started["mockllm zero-delay"].url, "--dialect", dialect]
            counted = run_client([*count, "--conns", str(plan.conns), "--seconds", str(plan.seconds)], 60)
            args = ["latency", "--url", started["mockllm"].url, "--streams", str(level), "--dialect", dialect]
            raw = run_client([*args, "--timeout", str(timeout)], timeout + CLIENT_SLACK_S)
            latency = _latency_summary(raw)
            result["dialects"][dialect] = {
                "events_per_s": counted["events_per_s"],
                "count_failures": counted["failures"],
                "latency": latency,
                "checks": check_targets(latency, result["deadline baseline"], plan.itl_ms),
            }
    return result


def _render_dialects(plan: BenchPlan, result: dict[str, Any]) -> list[str]:
    ref = result["deadline baseline"]
    lines = [
        f"(c) every dialect, one run each: zero-delay events/s ({plan.conns} connections x {plan.seconds:g} s) and",
        f"    latency at {result['streams']} streams (TTFT {plan.ttft_ms} ms, ITL {plan.itl_ms} ms configured); ms",
        f"    {'dialect':<20}{'events/s':>10}{'ok':>11}" + _LATENCY_COLUMNS + "  targets",
        f"    {'deadline baseline':<20}{'':>10}{ref['ok']:>7}/{ref['streams']:<3}{ref['ttft_ms']['p50']:>10.2f}"
        f"{ref['ttft_ms']['p99']:>10.2f}{ref['itl_ms']['p50']:>9.2f}{ref['itl_ms']['p99']:>9.2f}",
    ]
    for name, row in result["dialects"].items():
        r = row["latency"]
        failed = [target for target, check in row["checks"].items() if not check["pass"]]
        lines.append(
            f"    {name:<20}{row['events_per_s']:>10,.0f}{r['ok']:>7}/{r['streams']:<3}{r['ttft_ms']['p50']:>10.2f}"
            f"{r['ttft_ms']['p99']:>10.2f}{r['itl_ms']['p50']:>9.2f}{r['itl_ms']['p99']:>9.2f}"
            f"  {'all pass' if not failed else 'FAIL: ' + ', '.join(failed)}"
        )
    return lines


def check_targets(mock: dict[str, Any], ref: dict[str, Any], itl_ms: float) -> dict[str, Any]:
    """The targets, each as pass/fail and the signed deviation in ms.

    A median must sit within the bound on either side (early is as wrong as late); a p99 is a
    tail bound, so only exceeding the reference's by more than the bound fails: on a noisy shared
    machine the reference's own tail spikes, and a mock that stays below it is no failure.
    """

    def within(value: float, target: float, bound: float) -> dict[str, Any]:
        return {"pass": abs(value - target) <= bound, "delta_ms": value - target}

    def at_most(value: float, target: float, bound: float) -> dict[str, Any]:
        return {"pass": value - target <= bound, "delta_ms": value - target}

    mock_itl, ref_itl = mock["itl_ms"], ref["itl_ms"]
    mock_ttft, ref_ttft = mock["ttft_ms"], ref["ttft_ms"]
    return {
        "itl_p50_within_1ms_of_configured": within(mock_itl["p50"], itl_ms, 1.0),
        "itl_p99_at_most_ref+5ms": at_most(mock_itl["p99"], ref_itl["p99"], 5.0),
        "ttft_p50_within_10ms_of_ref": within(mock_ttft["p50"], ref_ttft["p50"], 10.0),
        "ttft_p99_at_most_ref+10ms": at_most(mock_ttft["p99"], ref_ttft["p99"], 10.0),
        "no_failed_streams": {"pass": mock["failures"] == 0, "delta_ms": None},
    }


# (d) memory per open stream ----------------------------------------------------------------

IDLE_TTFT_MS = 600_000  # the first token far beyond the hold: every stream open and idle
SETTLE_S = 1.0  # after the client closed its streams, for the server to see every close
HOLD_TIMEOUT_S = 60.0


def measure_memory(plan: BenchPlan, notes: Notes) -> dict[str, Any]:
    """The server's RSS before, with ``plan.memory_streams`` idle streams open, and after they
    closed, ``plan.memory_rounds`` times over on one server (a leak grows from round to round)."""
    specs = {"mockllm": mockllm_argv(plan.tokens, IDLE_TTFT_MS, plan.itl_ms)}
    rounds = []
    with servers(specs, notes) as started:
        server = started["mockllm"]
        run_client(["count", "--url", server.url, "--conns", "4", "--seconds", "0.5"], CLIENT_SLACK_S)  # warm
        base = rss_kib(server.pid)
        for _ in range(plan.memory_rounds):
            before = rss_kib(server.pid)
            held, opened = _hold(server, plan.memory_streams)
            time.sleep(SETTLE_S)
            closed = rss_kib(server.pid)
            per_stream = (opened - before) / held["held"] if held["held"] else None
            rounds.append({"before_kib": before, "open_kib": opened, "closed_kib": closed, "held": held["held"],
                           "errors": held["errors"], "per_stream_kib": per_stream})  # fmt: skip
    return {"streams": plan.memory_streams, "base_kib": base, "rounds": rounds}


def _hold(server: Server, streams: int) -> tuple[dict[str, Any], int]:
    """Hold `streams` streams open on `server` from a client process; what it held and the server's
    RSS meanwhile."""
    argv = [sys.executable, "-m", "bench._stream_client", "hold", "--url", server.url]
    argv += ["--streams", str(streams), "--timeout", str(HOLD_TIMEOUT_S)]
    proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pin_to_cpu(proc.pid, CLIENT_CPU)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        ready, _, _ = select.select([proc.stdout], [], [], HOLD_TIMEOUT_S + CLIENT_SLACK_S)
        line = proc.stdout.readline() if ready else b""
        if not line:
            raise RuntimeError(f"hold client said nothing: {_stderr_tail(proc)}")
        held = json.loads(line)
        opened = rss_kib(server.pid)
        proc.stdin.write(b"close\n")
        proc.stdin.flush()
        proc.communicate(timeout=CLIENT_SLACK_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return held, opened


def _stderr_tail(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None:
        proc.kill()
    _, err = proc.communicate()
    return err.decode(errors="replace")[-2000:]


def _render_memory(plan: BenchPlan, result: dict[str, Any]) -> list[str]:
    mib = 1024
    lines = [
        f"(d) memory: server RSS with {result['streams']} idle open streams (first token {IDLE_TTFT_MS // 1000} s "
        f"away), then after they closed; started at {result['base_kib'] / mib:.1f} MiB",
        f"    {'round':>5}{'held':>7}{'before MiB':>12}{'open MiB':>10}{'closed MiB':>12}{'KiB/stream':>12}",
    ]
    for k, r in enumerate(result["rounds"], 1):
        per = f"{r['per_stream_kib']:.1f}" if r["per_stream_kib"] is not None else "-"
        lines.append(
            f"    {k:>5}{r['held']:>7}{r['before_kib'] / mib:>12.1f}{r['open_kib'] / mib:>10.1f}"
            f"{r['closed_kib'] / mib:>12.1f}{per:>12}" + (f"  errors: {r['errors']}" if r["errors"] else "")
        )
    return lines


# (e) cost per event as streams grow ---------------------------------------------------------

ARRIVAL_MS_PER_STREAM = 0.5  # TTFT per stream of a burst: its requests' planning, with room to spare


def measure_streams(plan: BenchPlan, notes: Notes) -> list[dict[str, Any]]:
    """Server CPU per event at each number of concurrent streams, the offered event rate the same
    at every level (ITL = streams / rate): what grows is only the number of open streams. The TTFT
    grows with the burst (``ARRIVAL_MS_PER_STREAM``), so that every request of it is planned before
    the first tokens are due and the ITL figures are the steady streams', not the burst's."""
    specs = {"mockllm": mockllm_argv(plan.cost_tokens, 0, 0)}
    rows = []
    with servers(specs, notes) as started:
        server = started["mockllm"]
        run_client(["count", "--url", server.url, "--conns", "4", "--seconds", "0.5"], CLIENT_SLACK_S)  # warm
        for level in plan.cost_levels:
            itl_ms = 1000.0 * level / plan.cost_rate
            ttft_ms = max(float(plan.ttft_ms), ARRIVAL_MS_PER_STREAM * level)
            timing = [f"x-mock-itl-ms: {itl_ms:g}", f"x-mock-ttft-ms: {ttft_ms:g}"]
            stream_s = (ttft_ms + itl_ms * plan.cost_tokens) / 1000
            timeout = stream_s + CLIENT_SLACK_S
            args = ["latency", "--url", server.url, "--streams", str(level), "--timeout", str(timeout)]
            args += [item for header in timing for item in ("--header", header)]
            before = cpu_seconds(server.pid)
            raw = run_client(args, timeout + CLIENT_SLACK_S)
            cpu = cpu_seconds(server.pid) - before
            summary = _latency_summary(raw)
            rows.append({"streams": level, "itl_ms_configured": itl_ms, "ttft_ms_configured": ttft_ms,
                         "events": raw["events"], "server_cpu_s": cpu,
                         "us_per_event": 1e6 * cpu / raw["events"] if raw["events"] else None,
                         "ok": summary["ok"], "failures": summary["failures"], "errors": summary["errors"],
                         "itl_ms": summary["itl_ms"]})  # fmt: skip
    return rows


def _render_streams(plan: BenchPlan, rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"(e) server CPU per event as streams grow: {plan.cost_tokens} tokens/stream, {plan.cost_rate:,} events/s "
        "offered at every level (ITL = streams / rate,",
        f"    TTFT = max({plan.ttft_ms}, {ARRIVAL_MS_PER_STREAM:g} x streams) ms); CPU of connection, request and plan "
        "included",
        f"    {'streams':>7}{'TTFT ms':>8}{'ITL ms':>8}{'ok':>12}{'events':>9}{'CPU s':>8}{'us/event':>10}"
        f"{'ITL p50':>9}{'ITL p99':>9}",
    ]
    for r in rows:
        per = f"{r['us_per_event']:.2f}" if r["us_per_event"] else "-"
        lines.append(
            f"    {r['streams']:>7}{r['ttft_ms_configured']:>8g}{r['itl_ms_configured']:>8g}"
            f"{r['ok']:>7}/{r['streams']:<4}{r['events']:>9}"
            f"{r['server_cpu_s']:>8.2f}{per:>10}{r['itl_ms']['p50']:>9.2f}{r['itl_ms']['p99']:>9.2f}"
            + (f"  errors: {r['errors']}" if r["errors"] else "")
        )
    return lines


# (f) scaling with workers -------------------------------------------------------------------


def measure_workers(plan: BenchPlan, notes: Notes) -> dict[str, Any]:
    """Zero-delay events/s and ITL p99 at ``plan.workers_level`` streams for each worker count;
    the workers unpinned (they are meant to spread over the cores), the client on its core."""
    stream_s = (plan.ttft_ms + plan.tokens * plan.itl_ms) / 1000
    timeout = stream_s + CLIENT_SLACK_S
    rows = []
    for workers in plan.workers:
        flag = ["--workers", str(workers)]
        specs = {
            "zero-delay": [*mockllm_argv(plan.zero_tokens, 0, 0), *flag],
            "timed": [*mockllm_argv(plan.tokens, plan.ttft_ms, plan.itl_ms), *flag],
        }
        try:
            with servers(specs, notes, pin=False) as started:
                zero, timed = started["zero-delay"], started["timed"]
                args = ["--conns", str(plan.conns), "--seconds", str(plan.seconds)]
                counted = _costed_count(zero, args, plan.seconds + CLIENT_SLACK_S)
                latency_args = ["latency", "--url", timed.url, "--streams", str(plan.workers_level)]
                raw = run_client([*latency_args, "--timeout", str(timeout)], timeout + CLIENT_SLACK_S)
        except RuntimeError as exc:  # StartError too: a server that refuses the flag exits at once
            if "--workers" in str(exc) or "unrecognized arguments" in str(exc):
                return {"available": False, "reason": "workers not available (mockllm serve refused --workers)"}
            raise
        latency = _latency_summary(raw)
        rows.append({"workers": workers, "events_per_s": counted["events_per_s"],
                     "events_per_cpu_s": counted["events_per_cpu_s"], "count_failures": counted["failures"],
                     "ok": latency["ok"], "streams": latency["streams"], "itl_ms": latency["itl_ms"],
                     "ttft_ms": latency["ttft_ms"]})  # fmt: skip
    return {"available": True, "rows": rows}


def _render_workers(plan: BenchPlan, result: dict[str, Any]) -> list[str]:
    head = "(f) scaling with workers (`mockllm serve --workers N`, unpinned)"
    if not result["available"]:
        return [f"{head}: {result['reason']}"]
    lines = [
        f"{head}: zero-delay events/s ({plan.conns} connections x {plan.seconds:g} s, client on CPU {CLIENT_CPU}),",
        f"    and ITL at {plan.workers_level} streams x {plan.itl_ms} ms; {os.cpu_count()} CPUs here",
        f"    {'workers':>7}{'events/s':>11}{'ev/CPU-s':>11}{'ok':>12}{'ITL p50':>9}{'ITL p99':>9}{'TTFT p99':>10}",
    ]
    for r in result["rows"]:
        lines.append(
            f"    {r['workers']:>7}{r['events_per_s']:>11,.0f}{r['events_per_cpu_s']:>11,.0f}"
            f"{r['ok']:>7}/{r['streams']:<4}{r['itl_ms']['p50']:>9.2f}{r['itl_ms']['p99']:>9.2f}{r['ttft_ms']['p99']:>10.2f}"
        )
    return lines


# report --------------------------------------------------------------------------------------


def render(plan: BenchPlan, report: dict[str, Any]) -> str:
    lines = [
        f"mockllm benchmark ({report['mode']}); server on CPU {SERVER_CPU}, client on CPU "
        f"{CLIENT_CPU}: {'pinned' if report['pinned'] else 'NOT pinned (affinity unavailable)'}",
        "load average (1 min) before / after: {:.2f} / {:.2f}".format(*report["loadavg"]),
        "",
    ]
    renderers: dict[str, Callable[[BenchPlan, Any], list[str]]] = {
        "cost": _render_cost,
        "latency": _render_latency,
        "dialects": _render_dialects,
        "memory": _render_memory,
        "streams": _render_streams,
        "workers": _render_workers,
    }
    for part, renderer in renderers.items():
        if report["parts"].get(part) is not None:
            lines += [*_render_part(renderer, plan, report["parts"][part]), ""]
    for name, server_notes in report["server_notes"].items():
        if server_notes:
            lines += ["", f"notes on {name}:", *(f"  {note}" for note in server_notes)]
    return "\n".join(lines)


def _render_part(render: Callable[[BenchPlan, Any], list[str]], plan: BenchPlan, result: Any) -> list[str]:
    if isinstance(result, dict) and "error" in result:
        return [f"({render.__name__.removeprefix('_render_')}) part failed: {result['error']}"]
    return render(plan, result)


def _render_latency(plan: BenchPlan, levels: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"(b) client-observed latency, configured TTFT {plan.ttft_ms} ms, ITL {plan.itl_ms} ms, "
        f"{plan.tokens} tokens/stream; all connections",
        "    opened first, then every request sent at once; ms, nearest-rank percentiles; each figure",
        f"    the median of {plan.latency_repeats} alternating run(s); [per-run TTFT p99 in brackets]",
        f"    {'streams':>7}  {'server':<20}{'ok':>11}" + _LATENCY_COLUMNS,
    ]
    for row in levels:
        for name in ("deadline baseline", "mockllm"):
            r = row[name]
            ok = f"{r['ok']}/{r['streams']}"
            spread = ", ".join(f"{run['ttft_ms']['p99']:.0f}" for run in r["runs"])
            lines.append(
                f"    {row['streams']:>7}  {name:<20}{ok:>11}{r['ttft_ms']['p50']:>10.2f}"
                f"{r['ttft_ms']['p99']:>10.2f}{r['itl_ms']['p50']:>9.2f}{r['itl_ms']['p99']:>9.2f}"
                f"  [{spread}]"
            )
    rule = "p50: |dev| <= bound; p99: dev <= bound"
    lines += ["", f"    mockllm targets, signed deviation in ms ({rule}):"]
    for row in levels:
        for target, check in row["checks"].items():
            delta = "" if check["delta_ms"] is None else f" ({check['delta_ms']:+.2f})"
            verdict = "PASS" if check["pass"] else "FAIL"
            lines.append(f"    {row['streams']:>7}  {target:<36}{verdict}{delta}")
        delta = row.get("baseline_itl_p50_delta_ms")
        if delta is not None and abs(delta) > 1.0:
            lines.append(
                f"    {row['streams']:>7}  (the deadline baseline's own ITL p50 is {delta:+.2f} ms off: the machine "
                "was too busy for these verdicts)"
            )
        for name in ("deadline baseline", "mockllm"):
            if row[name]["errors"]:
                lines.append(f"    {row['streams']:>7}  {name} errors: {row[name]['errors']}")
    return lines


def _attempt(part: Callable[[BenchPlan, Notes], Any], plan: BenchPlan, notes: Notes) -> Any:
    """Run one part; a failure (server that never listens, client crash) must not hide the other."""
    try:
        return part(plan, notes)
    except RuntimeError as exc:
        return {"error": str(exc)}


def _parts(text: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [part for part in chosen if part not in PARTS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"parts are {', '.join(PARTS)}; not {', '.join(unknown) or 'none'}")
    return chosen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_mockllm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny run, a smoke test")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--part", type=_parts, default=PARTS, help=f"comma-separated, of {','.join(PARTS)} (all)")
    parser.add_argument(
        "--levels", type=lambda text: tuple(int(v) for v in text.split(",")), help="concurrency levels, e.g. 1000"
    )
    parser.add_argument("--latency-only", action="store_true", help="skip the cost part (a)")
    parser.add_argument("--openai-only", action="store_true", help="skip the other dialects' part (c)")
    args = parser.parse_args(argv)
    raise_nofile_limit()  # inherited by every server and client started below
    plan = QUICK if args.quick else BenchPlan()
    if args.levels:
        plan = replace(plan, levels=args.levels)
    skipped = {"cost"} if args.latency_only else set()
    skipped |= {"dialects"} if args.openai_only else set()
    measures: dict[str, Callable[[BenchPlan, Notes], Any]] = {
        "cost": measure_cost,
        "latency": measure_latency,
        "dialects": measure_dialects,
        "memory": measure_memory,
        "streams": measure_streams,
        "workers": measure_workers,
    }
    notes: Notes = {}
    load_before = os.getloadavg()[0]  # others' work on a shared machine skews every figure
    parts: dict[str, Any] = {}
    for part in args.part:
        if part not in skipped:
            parts[part] = _attempt(measures[part], plan, notes)
    report: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "plan": asdict(plan),
        "pinned": can_pin(),
        "parts": parts,
        "server_notes": notes,
    }
    report["loadavg"] = [load_before, os.getloadavg()[0]]
    print(render(plan, report), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
