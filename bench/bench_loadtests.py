"""Benchmark the load client: its accuracy and capacity in one Locust process, beside GuideLLM.

For 100, 500 and 1000 concurrent streams against the mock (TTFT 200 ms, ITL 20 ms, 64 tokens per
answer), one Locust process of ours loads the mock and every stream it measured is paired with the
mock's own record of when it wrote each token (`python -m loadtests selftest` does the same once):
measured minus true for TTFT and for every gap, p50 and p99, with the events/s the client read and
its CPU. Capacity is the most events/s it read while both p50 errors stayed under 1 ms. Then the
same load is measured by GuideLLM (PyPI `guidellm`, when installed: see bench/_guidellm.py), whose
report gives only absolute figures (TTFT, and per-request ITL which is our TPOT), so its error is
its figure minus the configured one.

The mock (started by `mockllm.launcher`) runs pinned to CPU 0 and the load generator to CPU 1, so neither
steals the other's core.

    python -m bench.bench_loadtests [--streams 100,500,1000] [--seconds 15] [--no-guidellm] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._guidellm import GuideLLMError, guidellm_available, run_guidellm
from bench._runtime import available_cpus, pin_to_cpu, raise_nofile_limit
from loadtests import measure
from mockllm import start_mock

TTFT_MS, ITL_MS, TOKENS = 200.0, 20.0, 64
SERVER_CPU, CLIENT_CPU = 0, 1


def _fmt(value: float | None, width: int = 8, sign: bool = True) -> str:
    if value is None:
        return "-".rjust(width)
    return (f"{value:+.3f}" if sign else f"{value:.1f}").rjust(width)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="100,500,1000")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--no-guidellm", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.streams.split(",")]
    raise_nofile_limit()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-loadtests-") as scratch:
        workdir = Path(scratch)
        mock = start_mock(
            "--answer-tokens", "1000", ttft_ms=TTFT_MS, itl_ms=ITL_MS, log=workdir / "mockllm.log", cwd=workdir
        )
        url = mock.url
        pin_to_cpu(mock.process.pid, SERVER_CPU)
        if CLIENT_CPU in available_cpus():
            os.sched_setaffinity(0, {CLIENT_CPU})  # the Locust and GuideLLM processes inherit it
        try:
            for n in counts:
                ours = measure(url, users=n, run_time_s=args.seconds, max_tokens=TOKENS, workdir=workdir / f"ours-{n}")
                row: dict[str, Any] = {"streams": n, "ours": ours}
                if not args.no_guidellm and guidellm_available():
                    try:
                        theirs = run_guidellm(url, n, float(args.seconds), TOKENS, 128, workdir / f"guidellm-{n}",
                                              cpus={CLIENT_CPU} & available_cpus() or None)  # fmt: skip
                        row["guidellm"] = theirs
                    except GuideLLMError as exc:
                        row["guidellm_error"] = str(exc)[-300:]
                rows.append(row)
                print(f"  measured {n} streams", file=sys.stderr)
        finally:
            mock.stop()
    print(f"\nLoad client accuracy: mock TTFT {TTFT_MS:g} ms, ITL {ITL_MS:g} ms, {TOKENS} tokens per stream, "
          f"{args.seconds:g} s per run; errors are measured minus true, in ms")  # fmt: skip
    print(f"{'streams':>7} | {'events/s':>9} | {'TTFT p50':>8} {'TTFT p99':>8} | {'ITL p50':>8} {'ITL p99':>8} | "
          f"{'CPU max':>7} | {'paired':>7} | GuideLLM: TTFT p50/p99 - 200, ITL(TPOT) p50/p99 - 20")  # fmt: skip
    capacity = 0.0
    for row in rows:
        ours = row["ours"]
        e = ours["errors_ms"]
        cpu = ours["validity"]["client_cpu_percent"]["max"]
        within = (
            all(e[k] is not None and abs(e[k]) < 1.0 for k in ("ttft_p50", "itl_p50")) and ours["validity"]["valid"]
        )
        if within and ours["events_per_s"]:
            capacity = max(capacity, ours["events_per_s"])
        guide = row.get("guidellm")
        if guide:
            g = (f"{_fmt(guide['ttft_ms']['p50'] - TTFT_MS)} {_fmt(guide['ttft_ms']['p99'] - TTFT_MS)} | "
                 f"{_fmt(guide['itl_ms']['p50'] - ITL_MS)} {_fmt(guide['itl_ms']['p99'] - ITL_MS)} "
                 f"({guide.get('completed')} done, {guide.get('errors')} errors, "
                 f"mean concurrency {guide.get('concurrency_mean')})")  # fmt: skip
        else:
            g = row.get("guidellm_error", "not run (no guidellm executable)")[:120]
        print(f"{row['streams']:>7} | {_fmt(ours['events_per_s'], 9, False)} | {_fmt(e['ttft_p50'])} "
              f"{_fmt(e['ttft_p99'])} | {_fmt(e['itl_p50'])} {_fmt(e['itl_p99'])} | {cpu:>6}% | "
              f"{e['streams']:>7} | {g}")  # fmt: skip
    print(f"capacity of one Locust process (events/s read with both p50 errors under 1 ms): {capacity:,.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "capacity_events_per_s": capacity}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
