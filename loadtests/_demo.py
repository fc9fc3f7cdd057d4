"""`python -m loadtests demo`: the whole harness on embedded defaults, in about a minute.

It starts the mock LLM and the reference server on loopback, runs the conformance library on all
five contract profiles, then a 30-second load test (multi-turn conversations with think time, on a
second reference server whose rate limits are out of the way, over a mock with realistic token
timing), writes every report and an index page linking them, and prints where the index is.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path
from typing import Any

from mockllm.pytest_plugin import stop_process
from scenarios._launch import REFERENCE_SECRET, mock_and_reference, start_mock, start_reference

from ._config import LoadSettings

LOAD_PROFILE = "conversations"
ALL_PROFILES = ("sessions", "conversations", "start-stream", "query-stream", "conversation-events")


def add_demo(commands: Any) -> None:
    parser = commands.add_parser("demo", help="mock + reference server + conformance on 5 profiles + a load test")
    parser.add_argument("--out", type=Path, default=Path("reports-out"), help="where the reports go")
    parser.add_argument("--load-seconds", type=float, default=30.0)
    parser.add_argument("--users", type=int, default=20)
    parser.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from reports.index import index_directory
    from scenarios.__main__ import conform_reference

    from .__main__ import run_locust, summary

    out: Path = args.out
    print("== conformance: the scenario library on all five profiles of the reference server")
    with mock_and_reference() as (mock, target):
        conformant = conform_reference(mock, target, out / "conformance")
    print(f"\n== load: {args.users} users holding 3-turn conversations ({LOAD_PROFILE}) for {args.load_seconds:g} s")
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="loadtests-demo-")))
        mock_process, mock_url = start_mock(workdir, ttft_ms=250, itl_ms=15)
        stack.callback(stop_process, mock_process)
        limits = tuple(f"--rate-limit={name}=1000000/60" for name in ALL_PROFILES)
        server, server_url = start_reference(workdir, mock_url, extra=limits, name="load-reference")
        stack.callback(stop_process, server)
        settings = LoadSettings(profile=LOAD_PROFILE, shape="closed", users=args.users, run_time_s=args.load_seconds,
                                turns=3, think_s=0.5, mock=mock_url, check_every=5, jwt_secret=REFERENCE_SECRET,
                                slo_ttft_ms=500, slo_tpot_ms=50, json_path=str(out / "load" / "load.json"),
                                html_path=str(out / "load" / "load.html"))  # fmt: skip
        result = run_locust(server_url, settings, 0, quiet=True)
    print(summary(result))
    index, warnings = index_directory(out)
    for warning in warnings:
        print(f"warning: {warning}")
    print(f"\nindex of the reports: {index.resolve()}")
    loaded = result["totals"]["failed"] == 0
    return 0 if conformant and loaded else 1
