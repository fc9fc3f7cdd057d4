"""Command line: `python -m loadtests run | sweep | selftest | list`.

`run` starts Locust (`_runner.run_locust`: headless; with `--workers N`, a master and N worker
processes on loopback), waits for it, and prints the run's headline figures from the result
document it wrote. Exit 0 when the run completed with no failed stream, 1 when streams failed or the
client was saturated (the figures are not valid), 2 for a usage error. `sweep` steps the streams up,
one run per step, and prints each step and where the client and the target saturated (`_sweep`);
exit 0 when every step ran, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

from contracts import SpecError
from reports import write_sweep

from ._config import LoadSettings, UsageError, builtin_profiles, resolve_profile, write_json
from ._distributed import add_distributed
from ._runner import loopback_only, run_locust, summary
from ._selftest import add_selftest
from ._shapes import builtin_shapes, load_shape
from ._sweep import Criteria, run_sweep, stream_counts, sweep_summary


def add_run_options(parser: argparse.ArgumentParser) -> None:
    add_target_options(parser)
    parser.add_argument("--shape", default="closed", help=f"a load shape ({', '.join(builtin_shapes())}) or a file")
    parser.add_argument(
        "--users", type=int, help="users (closed loop) or the user pool (open loop); default: the shape's"
    )
    parser.add_argument("--rate", type=float, help="open loop: arrivals per second; default: the shape's")
    parser.add_argument("--run-time", type=float, dest="run_time_s", help="seconds; default: the shape's")
    add_stream_options(parser)
    parser.add_argument("--json", dest="json_path", help="write the result document here")
    parser.add_argument("--html", dest="html_path", help="write the HTML report here")
    parser.add_argument("--parts-dir", help="each process also writes the figures it measured here")
    parser.add_argument("--trace-dir", help="each process also writes every stream's TTFT and gaps here (JSON lines)")


def add_target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True, help="the implementation's base URL (loopback only)")
    parser.add_argument(
        "--profile",
        default="openai-chat",
        help=f"a contract profile or mock dialect ({', '.join(builtin_profiles())}) or a YAML file",
    )


def add_stream_options(parser: argparse.ArgumentParser) -> None:
    """What each stream sends and how it is judged: the same for a run and for each step of a sweep."""
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


def add_sweep(commands: Any) -> None:
    sweep = commands.add_parser("sweep", help="step the streams up: where the client saturates, and the target")
    add_target_options(sweep)
    sweep.add_argument("--from", dest="first", type=int, required=True, help="streams at the first step")
    sweep.add_argument("--to", dest="last", type=int, required=True, help="streams at the last step")
    sweep.add_argument("--step", type=int, required=True, help="streams added at each step")
    sweep.add_argument("--step-time", type=float, default=10.0, dest="step_s", help="seconds per step (default 10)")
    add_stream_options(sweep)
    sweep.add_argument("--stop-at-target", action="store_true", help="end the sweep at the target's saturation")
    judged = sweep.add_argument_group("saturation criteria")
    defaults = Criteria()
    for flag, name, meaning in (
        ("--cpu-limit", "cpu_limit", "client: a process's CPU max reached this percent of one core"),
        ("--lag-limit-ms", "lag_limit_ms", "client: a process's event-loop lag p90 above this"),
        ("--latency-factor", "latency_factor", "target: ITL or TTFT p99 above this times the first step's"),
        ("--latency-floor-ms", "latency_floor_ms", "target: ... and at least this much above it"),
        ("--per-stream-drop", "per_stream_drop", "target: events/s per stream fell by this share of the first step's"),
        ("--failed-share", "failed_share", "target: more than this share of the streams failed"),
    ):
        judged.add_argument(flag, dest=name, type=float, default=getattr(defaults, name),
                            help=f"{meaning} (default {getattr(defaults, name):g})")  # fmt: skip
    sweep.add_argument("--json", dest="json_path", help="write the sweep document here")
    sweep.add_argument("--html", dest="html_path", help="write the sweep's HTML report here")
    sweep.add_argument("--steps-dir", help="keep each step's own result document and HTML report here")
    sweep.set_defaults(handler=_sweep, shape="closed", users=None, rate=None, run_time_s=None, parts_dir=None,
                       trace_dir=None)  # fmt: skip


def _sweep(args: argparse.Namespace) -> int:
    counts = stream_counts(args.first, args.last, args.step)
    criteria = Criteria(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Criteria)})
    settings = settings_of(args)
    loopback_only(args.target)
    print(f"sweep {settings.profile} @ {args.target}: {len(counts)} steps of {args.step_s:g} s, "
          f"{counts[0]}..{counts[-1]} streams", flush=True)  # fmt: skip
    document = run_sweep(args.target, settings, counts, args.step_s, workers=args.workers, criteria=criteria,
                         stop_at_target=args.stop_at_target, steps_dir=args.steps_dir,
                         progress=lambda line: print(line, flush=True))  # fmt: skip
    print(sweep_summary(document))
    if args.json_path:
        print(write_json(document, args.json_path))
    if args.html_path:
        print(write_sweep(document, args.html_path))
    return 0


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
    add_sweep(commands)
    add_distributed(commands, add_run_options, settings_of)
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
