"""Benchmark the reference server's overhead: TTFT and ITL through it versus straight from the mock.

One mock LLM (TTFT 200 ms, ITL 50 ms, 100 tokens) and one reference server in front of it (profile
`query-stream`, SQLite, JWT), both started by `mockllm.launcher` and pinned to CPU 0; the load client
(bench._stream_client) runs pinned to CPU 1 and keeps 200 streams open at every moment (200
closed-loop users, each streaming three times back to back, their first requests spread over one
stream's length: a steady load, not one burst, which would measure the queue of 200 simultaneous
arrivals instead of the server), alternately straight at the mock (`/v1/chat/completions`) and
through the reference server
(`GET /api/v1/ai/chat/stream`). Each figure is the median of `--repeats` runs. Targets: the
reference server adds at most 3 ms to TTFT p50 and 0.5 ms to ITL p50.

    python -m bench.bench_reference [--streams 200] [--repeats 3] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.bench_mockllm import (
    CLIENT_SLACK_S,
    Notes,
    _latency_summary,
    _median_run,
    can_pin,
    mockllm_argv,
    run_client,
    servers,
)
from contracts import mint_token

TTFT_MS, ITL_MS, TOKENS = 200, 50, 100
TARGET_TTFT_P50_MS, TARGET_ITL_P50_MS = 3.0, 0.5
JWT_SECRET = "bench-secret-of-at-least-32-bytes-long"
WARM_UP_STREAMS = 20
ROUNDS = 3


def reference_argv(mock_url: str, workdir: Path) -> list[str]:
    return [
        sys.executable, "-m", "reference_server", "--profile", "query-stream", "--port", "0",
        "--llm-base-url", f"{mock_url}/v1", "--jwt-secret", JWT_SECRET,
        "--database-url", f"sqlite+aiosqlite:///{workdir / 'bench.sqlite3'}",
    ]  # fmt: skip


def measure(streams: int, repeats: int, notes: Notes) -> dict[str, Any]:
    """Median TTFT/ITL percentiles of both paths over `repeats` alternating runs."""
    stream_s = (TTFT_MS + TOKENS * ITL_MS) / 1000
    timeout = stream_s + CLIENT_SLACK_S
    run_s = stream_s * (ROUNDS + 1) + timeout
    header = f"Authorization: Bearer {mint_token(JWT_SECRET, 'bench-user')}"
    with servers({"mockllm": mockllm_argv(TOKENS, TTFT_MS, ITL_MS)}, notes) as mock:
        mock_url = mock["mockllm"].url
        with (
            tempfile.TemporaryDirectory(prefix="bench-ref-") as tmp,
            servers({"reference_server": reference_argv(mock_url, Path(tmp))}, notes) as ref,
        ):
            paths = {
                    "mock direct": ["--url", mock_url, "--dialect", "openai-chat"],
                    "via reference_server": [
                        "--url", ref["reference_server"].url, "--dialect", "ref-query-stream", "--header", header,
                    ],
                }  # fmt: skip
            for args in paths.values():  # first streams of a fresh process run cold
                run_client(["latency", *args, "--streams", str(WARM_UP_STREAMS), "--timeout", str(timeout)],
                               timeout + CLIENT_SLACK_S)  # fmt: skip
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in paths}
            for _ in range(repeats):
                for name, args in paths.items():
                    load = ["--users", str(streams), "--rounds", str(ROUNDS), "--ramp-s", str(stream_s)]
                    raw = run_client(["users", *args, *load, "--timeout", str(timeout)], run_s)
                    runs[name].append(_latency_summary(raw))
    result: dict[str, Any] = {name: _median_run(name_runs) for name, name_runs in runs.items()}
    direct, via = result["mock direct"], result["via reference_server"]
    result["added_ms"] = {
        "ttft_p50": via["ttft_ms"]["p50"] - direct["ttft_ms"]["p50"],
        "ttft_p99": via["ttft_ms"]["p99"] - direct["ttft_ms"]["p99"],
        "itl_p50": via["itl_ms"]["p50"] - direct["itl_ms"]["p50"],
        "itl_p99": via["itl_ms"]["p99"] - direct["itl_ms"]["p99"],
    }
    result["checks"] = {
        "ttft_p50_added_at_most_3ms": result["added_ms"]["ttft_p50"] <= TARGET_TTFT_P50_MS,
        "itl_p50_added_at_most_0.5ms": result["added_ms"]["itl_p50"] <= TARGET_ITL_P50_MS,
        "no_failed_streams": via["failures"] == 0 and direct["failures"] == 0,
    }
    return result


def render(streams: int, repeats: int, result: dict[str, Any], notes: Notes) -> str:
    lines = [
        f"reference_server overhead: {streams} streams open at every moment ({streams} users x {ROUNDS} "
        "streams each), "
        f"mock TTFT {TTFT_MS} ms, ITL {ITL_MS} ms, {TOKENS} tokens;",
        f"    ms, nearest-rank percentiles, median of {repeats} alternating run(s)",
        f"    server on CPU 0, client on CPU 1: {'pinned' if can_pin() else 'NOT pinned (fewer than 2 CPUs)'}",
        f"    {'path':<24}{'ok':>11}{'TTFT p50':>10}{'TTFT p99':>10}{'ITL p50':>9}{'ITL p99':>9}",
    ]
    for name in ("mock direct", "via reference_server"):
        row = result[name]
        ttft, itl = row["ttft_ms"], row["itl_ms"]
        lines.append(
            f"    {name:<24}{row['ok']:>5}/{row['streams']:<5}{ttft['p50']:>10.2f}{ttft['p99']:>10.2f}"
            f"{itl['p50']:>9.2f}{itl['p99']:>9.2f}"
        )
    added = result["added_ms"]
    lines.append(
        f"    {'added by the server':<35}{added['ttft_p50']:>+10.2f}{added['ttft_p99']:>+10.2f}"
        f"{added['itl_p50']:>+9.2f}{added['itl_p99']:>+9.2f}"
    )
    lines.append("")
    for check, passed in result["checks"].items():
        lines.append(f"    {check:<40}{'PASS' if passed else 'FAIL'}")
    for name, items in notes.items():
        if items:
            lines.append(f"    note, {name}:")
            lines.extend(f"      {item}" for item in items)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_reference", description=__doc__)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20 streams, one run: a smoke test")
    parser.add_argument("--json", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    streams, repeats = (20, 1) if args.quick else (args.streams, args.repeats)
    if not 0 < streams <= 2000 or not 0 < repeats <= 10:
        parser.error("--streams must be in (0, 2000] and --repeats in (0, 10]")
    notes: Notes = {}
    result = measure(streams, repeats, notes)
    print(render(streams, repeats, result, notes))
    if args.json:
        Path(args.json).write_text(json.dumps({"streams": streams, "repeats": repeats, **result}, indent=1))


if __name__ == "__main__":
    main()
