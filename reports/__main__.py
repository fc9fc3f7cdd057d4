"""Command line: `python -m reports conformance RESULT.json -o report.html`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .conformance import write_conformance


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reports", description="Render a saved result as an HTML page.")
    commands = parser.add_subparsers(dest="command", required=True)
    conformance = commands.add_parser("conformance", help="a conformance run (its JSON result)")
    conformance.add_argument("result", type=Path, help="the run's JSON result (RunResult.to_dict())")
    conformance.add_argument("-o", "--output", type=Path, help="HTML file to write (default: RESULT with .html)")
    conformance.set_defaults(handler=_conformance)
    return parser


def _conformance(args: argparse.Namespace) -> int:
    try:
        run = json.loads(args.result.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        print(f"reports: cannot read {args.result}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(run, dict) or not isinstance(run.get("scenarios"), list):
        print(f"reports: {args.result} is not a conformance result (no 'scenarios' list)", file=sys.stderr)
        return 2
    path = write_conformance(run, args.output or args.result.with_suffix(".html"))
    print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
