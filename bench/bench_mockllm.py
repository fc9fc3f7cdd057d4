"""Benchmark mockllm against raw-asyncio baselines, in one run, and print one table.

(a) events/s of one server process streaming with zero delay: mockllm vs the ``zero-delay``
    baseline (the ceiling of a Python asyncio server), and vs aimock's 84,000 events/s.
(b) TTFT and ITL seen by clients at 100, 500 and 1000 concurrent streams (TTFT 200 ms, ITL 50 ms,
    100 tokens): mockllm beside the ``deadline`` baseline, with pass/fail of the targets.
(c) the same for every dialect the mock has registered (each one's wire is its `StreamProbe`).

Each server runs pinned to CPU 0 (started by `mockllm.launcher`, its output in a log file that is
searched for trouble when it stops) and each load client (bench._stream_client) in its own process
pinned to CPU 1, so neither steals the other's core.  Both servers of a part stay up during that
part and are measured alternately, so slow drifts of a shared machine hit both alike.

    python -m bench.bench_mockllm [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench._runtime import available_cpus, pin_to_cpu, raise_nofile_limit
from bench._stream_client import mock_wires, percentiles
from mockllm import ServerProcess, start_listening, stop_process

Notes = dict[str, list[str]]  # server name -> what its logs and exit deserve a look for
ROOT = Path(__file__).resolve().parents[1]
SERVER_CPU, CLIENT_CPU = 0, 1
AIMOCK_EVENTS_PER_S = 84_000
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


QUICK = BenchPlan(conns=20, seconds=1.0, repeats=1, levels=(20,), tokens=20, latency_repeats=1, dialect_level=20)


class Server:
    """A server subprocess, started once it prints its URL, then pinned to the server core."""

    def __init__(self, name: str, argv: list[str], logdir: Path) -> None:
        self.name = name
        self._child: ServerProcess = start_listening(argv, logdir / f"{name}.log", cwd=ROOT)
        self.url = self._child.url
        pin_to_cpu(self._child.process.pid, SERVER_CPU)

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
def servers(specs: dict[str, list[str]], notes: Notes) -> Iterator[dict[str, Server]]:
    """Start every server (each listens when started), and always stop them (collecting notes)."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        started: dict[str, Server] = {}
        try:
            for name, argv in specs.items():
                started[name] = Server(name, argv, Path(tmp))
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


# (a) throughput ------------------------------------------------------------------------------


def measure_throughput(plan: BenchPlan, notes: Notes) -> dict[str, Any]:
    """Median events/s of each server over ``plan.repeats`` alternating runs."""
    specs = {
        "zero-delay baseline": baseline_argv("zero-delay", plan.zero_tokens, 0, 0),
        "mockllm": mockllm_argv(plan.zero_tokens, 0, 0),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in specs}
    args = ["--conns", str(plan.conns), "--seconds", str(plan.seconds)]
    with servers(specs, notes) as started:
        for _ in range(plan.repeats):
            for name, server in started.items():
                client_args = ["count", "--url", server.url, *args]
                runs[name].append(run_client(client_args, plan.seconds + CLIENT_SLACK_S))
    result = {name: _throughput_summary(name_runs) for name, name_runs in runs.items()}
    mock, base = result["mockllm"]["events_per_s"], result["zero-delay baseline"]["events_per_s"]
    result["ratio_vs_baseline"] = mock / base if base else None
    result["ratio_vs_aimock"] = mock / AIMOCK_EVENTS_PER_S
    return result


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


# report --------------------------------------------------------------------------------------


def render(plan: BenchPlan, report: dict[str, Any]) -> str:
    lines = [
        f"mockllm benchmark ({report['mode']}); server on CPU {SERVER_CPU}, client on CPU "
        f"{CLIENT_CPU}: {'pinned' if report['pinned'] else 'NOT pinned (affinity unavailable)'}",
        "load average (1 min) before / after: {:.2f} / {:.2f}".format(*report["loadavg"]),
        "",
        *(_render_part(_render_throughput, plan, report["throughput"]) if report["throughput"] else ["(a) skipped"]),
        "",
        *_render_part(_render_latency, plan, report["latency"]),
        "",
        *(_render_part(_render_dialects, plan, report["dialects"]) if report["dialects"] else ["(c) skipped"]),
    ]
    for name, server_notes in report["server_notes"].items():
        if server_notes:
            lines += ["", f"notes on {name}:", *(f"  {note}" for note in server_notes)]
    return "\n".join(lines)


def _render_part(render: Callable[[BenchPlan, Any], list[str]], plan: BenchPlan, result: Any) -> list[str]:
    if isinstance(result, dict) and "error" in result:
        return [f"{render.__name__.removeprefix('_render_')} part failed: {result['error']}"]
    return render(plan, result)


def _render_throughput(plan: BenchPlan, result: dict[str, Any]) -> list[str]:
    lines = [
        f"(a) zero-delay streaming, one server process: {plan.conns} connections x "
        f"{plan.seconds:g} s, {plan.zero_tokens} tokens/stream, median of {plan.repeats} run(s)",
        f"    {'server':<22}{'events/s':>12}{'runs':>28}{'events/stream':>15}{'failures':>10}",
    ]
    for name in ("zero-delay baseline", "mockllm"):
        r = result[name]
        runs = " ".join(f"{v:,.0f}" for v in r["runs_events_per_s"])
        per_stream = f"{r['events_per_stream']:.1f}" if r["events_per_stream"] else "-"
        rate, failures = r["events_per_s"], r["failures"]
        lines.append(f"    {name:<22}{rate:>12,.0f}{runs:>28}{per_stream:>15}{failures:>10}")
    ratio = result["ratio_vs_baseline"]
    lines.append(f"    mockllm / baseline = {ratio:.2f}" if ratio else "    baseline: no events")
    aimock = result["ratio_vs_aimock"]
    lines.append(f"    mockllm / aimock ({AIMOCK_EVENTS_PER_S:,} events/s) = {aimock:.2f}")
    return lines


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_mockllm", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny run, a smoke test")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument(
        "--levels", type=lambda text: tuple(int(v) for v in text.split(",")), help="concurrency levels, e.g. 1000"
    )
    parser.add_argument("--latency-only", action="store_true", help="skip the zero-delay throughput part")
    parser.add_argument("--openai-only", action="store_true", help="skip the other dialects' part")
    args = parser.parse_args(argv)
    raise_nofile_limit()  # inherited by every server and client started below
    plan = QUICK if args.quick else BenchPlan()
    if args.levels:
        plan = replace(plan, levels=args.levels)
    notes: Notes = {}
    load_before = os.getloadavg()[0]  # others' work on a shared machine skews every figure
    report: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "plan": asdict(plan),
        "pinned": can_pin(),
        "throughput": None if args.latency_only else _attempt(measure_throughput, plan, notes),
        "latency": _attempt(measure_latency, plan, notes),
        "dialects": None if args.openai_only else _attempt(measure_dialects, plan, notes),
        "server_notes": notes,
    }
    report["loadavg"] = [load_before, os.getloadavg()[0]]
    print(render(plan, report), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
