"""`python -m demo [--out DIR] [--load-seconds S] [--users N]`: the whole harness in about two minutes.

Conformance on every contract profile of the reference server, then a load test (multi-turn
conversations with think time, on a second reference server whose rate limits are out of the way,
over a mock with realistic token timing); every report and an index page. Exit 0 when every
profile was conformant and no load stream failed.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from contracts import contract_profiles
from loadtests import LoadSettings, run_locust, summary
from mockllm import start_mock
from reports import index_directory
from scenarios import REFERENCE_SECRET, conform_reference, conformant, mock_and_reference, start_reference_for

LOAD_PROFILE = "conversations"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports-out"), help="where the reports go")
    parser.add_argument("--load-seconds", type=float, default=30.0)
    parser.add_argument("--users", type=int, default=20)
    return parser


def run_demo(args: argparse.Namespace) -> int:
    out: Path = args.out
    print("== conformance: the scenario library on every contract profile of the reference server")
    with mock_and_reference() as (mock, target):
        all_conformant = conformant(conform_reference(mock, target, out / "conformance"))
    print(f"\n== load: {args.users} users holding 3-turn conversations ({LOAD_PROFILE}) for {args.load_seconds:g} s")
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="demo-load-")))
        mock_server = stack.enter_context(start_mock(ttft_ms=250, itl_ms=15, log=workdir / "mockllm.log"))
        limits = tuple(f"--rate-limit={name}=1000000/60" for name in contract_profiles())
        server = stack.enter_context(start_reference_for(workdir, mock_server.url, extra=limits, name="load-reference"))
        settings = LoadSettings(profile=LOAD_PROFILE, shape="closed", users=args.users, run_time_s=args.load_seconds,
                                turns=3, think_s=0.5, mock=mock_server.url, check_every=5, jwt_secret=REFERENCE_SECRET,
                                slo_ttft_ms=500, slo_tpot_ms=50, json_path=str(out / "load" / "load.json"),
                                html_path=str(out / "load" / "load.html"))  # fmt: skip
        result = run_locust(server.url, settings, 0, quiet=True)
    print(summary(result))
    index, warnings = index_directory(out)
    for warning in warnings:
        print(f"warning: {warning}")
    print(f"\nindex of the reports: {index.resolve()}")
    loaded = result["totals"]["failed"] == 0
    return 0 if all_conformant and loaded else 1


def main(argv: Sequence[str] | None = None) -> int:
    return run_demo(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
