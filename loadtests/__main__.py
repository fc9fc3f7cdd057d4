"""Command line: `python -m loadtests run | selftest | list`.

`run` starts Locust (`_runner.run_locust`: headless; with `--workers N`, a master and N worker
processes on loopback), waits for it, and prints the run's headline figures from the result
document it wrote. Exit 0 when the run completed with no failed stream, 1 when streams failed or the
client was saturated (the figures are not valid), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from contracts import SpecError

from ._config import LoadSettings, UsageError, builtin_profiles, resolve_profile
from ._runner import run_locust, summary
from ._selftest import add_selftest
from ._shapes import builtin_shapes, load_shape


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True, help="the implementation's base URL (loopback only)")
    parser.add_argument(
        "--profile",
        default="openai-chat",
        help=f"a contract profile or mock dialect ({', '.join(builtin_profiles())}) or a YAML file",
    )
    parser.add_argument("--shape", default="closed", help=f"a load shape ({', '.join(builtin_shapes())}) or a file")
    parser.add_argument(
        "--users", type=int, help="users (closed loop) or the user pool (open loop); default: the shape's"
    )
    parser.add_argument("--rate", type=float, help="open loop: arrivals per second; default: the shape's")
    parser.add_argument("--run-time", type=float, dest="run_time_s", help="seconds; default: the shape's")
    parser.add_argument("--mock", help="the mock LLM behind the target (sampled texts are checked in its journal)")
    parser.add_argument("--workers", type=int, default=0, help="Locust worker processes (0: one local process)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--turns", type=int, default=1, help="turns per conversation")
    parser.add_argument("--think-s", type=float, default=0.0, help="think time between a conversation's turns")
    parser.add_argument("--max-tokens", type=int, default=64, help="answer length asked of a mock dialect")
    parser.add_argument("--check-every", type=int, default=10, help="check every Nth stream's text (0: never)")
    parser.add_argument("--jwt-secret", help="HS256 secret to mint each user's token (profiles with auth)")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="a template variable of the profile (model, project ...)")  # fmt: skip
    parser.add_argument("--slo-ttft-ms", type=float)
    parser.add_argument("--slo-tpot-ms", type=float)
    parser.add_argument("--slo-e2e-ms", type=float)
    parser.add_argument("--json", dest="json_path", help="write the result document here")
    parser.add_argument("--html", dest="html_path", help="write the HTML report here")
    parser.add_argument("--parts-dir", help="each process also writes the figures it measured here")
    parser.add_argument("--trace-dir", help="each process also writes every stream's TTFT and gaps here (JSON lines)")
    parser.add_argument("--stream-timeout-s", type=float, default=120.0)


def settings_of(args: argparse.Namespace) -> LoadSettings:
    variables = {}
    for item in args.var:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise UsageError(f"--var: expected NAME=VALUE, got {item!r}")
        variables[name] = value
    settings = LoadSettings(
        profile=args.profile, shape=args.shape, users=args.users, rate=args.rate, run_time_s=args.run_time_s,
        seed=args.seed, mock=args.mock, turns=args.turns, think_s=args.think_s, max_tokens=args.max_tokens,
        check_every=args.check_every, jwt_secret=args.jwt_secret, variables=variables,
        slo_ttft_ms=args.slo_ttft_ms, slo_tpot_ms=args.slo_tpot_ms, slo_e2e_ms=args.slo_e2e_ms,
        json_path=args.json_path, html_path=args.html_path, parts_dir=args.parts_dir, trace_dir=args.trace_dir,
        stream_timeout_s=args.stream_timeout_s,
    )  # fmt: skip
    try:
        settings.load_profile()
        settings.load_shape()
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    if settings.turns < 1:
        raise UsageError("--turns: must be at least 1")
    return settings


def _run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    result = run_locust(args.target, settings, args.workers)
    print(summary(result))
    for path in (args.json_path, args.html_path):
        if path:
            print(path)
    return 0 if result["totals"]["failed"] == 0 and result["validity"]["valid"] else 1


def _list(args: argparse.Namespace) -> int:
    for name in builtin_profiles():
        print(f"profile {name:20} {resolve_profile(name).summary}")
    for name in builtin_shapes():
        shape = load_shape(name, users=None, rate=None, run_time_s=None)
        print(f"shape   {name:20} {shape.loop} loop, {shape.run_time_s:g} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtests", description="Load chat/SSE backends with Locust.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a load test")
    add_run_options(run)
    run.set_defaults(handler=_run)
    listing = commands.add_parser("list", help="the built-in profiles and shapes")
    listing.set_defaults(handler=_list)
    add_selftest(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"loadtests: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
