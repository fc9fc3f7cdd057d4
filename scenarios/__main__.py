"""`python -m scenarios run --target URL --profile NAME_OR_FILE --mock URL ...`

Also `python -m scenarios probe --target URL --profile P --mock URL ...`: a pre-flight (the routes
answer, the credentials are accepted, the backend's LLM calls reach the mock) that ends with the run
command to go on with; `settings NAME_OR_FILE`: every setting a run of that profile uses, with its
value unless told otherwise and its meaning; `list`: the library; `reference`: the harness's own proof.

Exit status: 0 when every MUST check passed, 1 when one failed (or a scenario could not run),
2 for a usage or configuration error (a bad profile or scenario file, a bad --setting, no mock).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import httpx

from contracts import SpecError, contract_profiles, load_profile, read_yaml
from reports import write_atomic, write_conformance

from ._console import conformant, print_progress, print_summary
from ._credentials import Credentials
from ._errors import UsageError
from ._junit import junit_xml
from ._probe import describe, probe
from ._reference_run import conform_reference, mock_and_reference
from ._results import RunResult
from ._run_settings import describe_settings
from ._runner import RunConfig, run
from ._scenarios import library, load_scenarios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scenarios", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    go = commands.add_parser("run", help="run the scenario library against an implementation")
    check = commands.add_parser("probe", help="pre-flight: routes, credentials, LLM calls reaching the mock")
    for command in (go, check):
        command.add_argument("--target", required=True, help="the implementation's base URL")
        command.add_argument(
            "--profile", required=True, help=f"a built-in profile ({', '.join(contract_profiles())}) or a file"
        )
        command.add_argument("--mock", required=True, help="the mock LLM the implementation calls")
        command.add_argument("--jwt-secret", help="the implementation's JWT secret (tokens are minted per scenario)")
        command.add_argument("--token", help="a token of one user (with --token2, instead of --jwt-secret)")
        command.add_argument("--token2", help="a token of another user")
        command.add_argument(
            "--setting", action="append", default=[], metavar="NAME=VALUE", help="what the target is configured with"
        )
    go.add_argument("--tag", action="append", default=[], help="run only scenarios with this tag (repeatable)")
    go.add_argument(
        "--scenarios",
        action="append",
        default=[],
        metavar="PATH",
        help="scenario files or directories instead of the library",
    )
    go.add_argument("--baseline", help="YAML {scenario: [check ids]} of failures expected on this target")
    go.add_argument("--concurrency", type=int, default=8)
    go.add_argument("--budget-s", type=float, default=30.0, help="longest deliberate wait of a scenario")
    go.add_argument("--junit", type=Path)
    go.add_argument("--json", type=Path)
    go.add_argument("--html", type=Path)
    go.add_argument("--quiet", action="store_true")
    commands.add_parser("list", help="list the scenario library and the built-in profiles")
    told = commands.add_parser("settings", help="the settings a run of a profile uses, their defaults and meaning")
    told.add_argument("profile", help=f"a built-in profile ({', '.join(contract_profiles())}) or a file")
    told.add_argument(
        "--scenarios", action="append", default=[], metavar="PATH", help="your scenario files instead of the library"
    )
    own = commands.add_parser("reference", help="start the mock and the reference server; run every profile")
    own.add_argument("--out", type=Path, default=Path("reports-out/conformance"), help="where the reports go")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            for scenario in library():
                print(f"{scenario.name:32} {scenario.summary}")
            print("profiles:", ", ".join(contract_profiles()))
            return 0
        if args.command == "settings":
            scenarios = load_scenarios(args.scenarios) if args.scenarios else library()
            print(describe_settings(load_profile(args.profile), scenarios))
            return 0
        if args.command == "reference":
            library()  # a broken library file is refused before any server starts
            return _reference(args.out)
        if args.command == "probe":
            return _probe(args)
        config = _config(args)
        result = asyncio.run(run(config))
    except (SpecError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _write_reports(args, result)
    print_summary(result)
    return 0 if result.ok else 1


def _reference(out: Path) -> int:
    """The library on every contract profile of our reference server: the harness's own proof."""
    with mock_and_reference() as (mock, target):
        ok = conformant(conform_reference(mock, target, out))
    print(f"reports: {out.resolve()}/<profile>.html")
    return 0 if ok else 1


def _probe(args: argparse.Namespace) -> int:
    args.scenarios, args.tag, args.concurrency, args.budget_s, args.baseline, args.quiet = [], [], 1, 30.0, None, True
    config = _config(args)
    try:
        report = asyncio.run(probe(config, args.profile))
    except httpx.HTTPError as err:
        raise UsageError(f"--mock {config.mock}: the mock LLM's admin API does not answer ({err})") from None
    print(describe(report, config))
    return 0 if report.ok else 1


def _config(args: argparse.Namespace) -> RunConfig:
    profile = load_profile(args.profile)
    settings = {}
    for item in args.setting:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--setting {item!r}: expected NAME=VALUE")
        settings[name.strip()] = value.strip()
    if (args.token is None) != (args.token2 is None):
        raise UsageError("--token and --token2 go together (two different users)")
    credentials = Credentials(secret=args.jwt_secret, tokens=(args.token, args.token2) if args.token else None)
    scenarios = load_scenarios(args.scenarios) if args.scenarios else library()
    if args.tag:
        scenarios = [s for s in scenarios if set(s.tags) & set(args.tag)]
        if not scenarios:
            raise UsageError(f"no scenario has the tag(s) {', '.join(args.tag)}")
    if args.concurrency < 1:
        raise UsageError("--concurrency: at least 1")
    return RunConfig(
        target=args.target.rstrip("/"),
        profile=profile,
        mock=args.mock.rstrip("/"),
        scenarios=scenarios,
        settings=settings,
        credentials=credentials,
        concurrency=args.concurrency,
        budget_s=args.budget_s,
        baseline=_baseline(args.baseline) if args.baseline else {},
        progress=None if args.quiet else print_progress,
    )


def _baseline(path: str) -> dict[str, set[str]]:
    data = read_yaml(Path(path))
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise SpecError(path, "", "expected a mapping of scenario name to a list of check ids")
    return {str(name): {str(c) for c in checks} for name, checks in data.items()}


def _write_reports(args: argparse.Namespace, result: RunResult) -> None:
    if args.junit:
        write_atomic(args.junit, junit_xml(result))
    if args.json:
        write_atomic(args.json, json.dumps(result.to_dict(), indent=1))
    if args.html:
        write_conformance(result.to_dict(), args.html)


if __name__ == "__main__":
    sys.exit(main())
