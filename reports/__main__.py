"""Command line: render saved results as HTML pages.

    python -m reports conformance RESULT.json [-o report.html]
    python -m reports load RESULT.json [-o report.html]
    python -m reports sweep SWEEP.json [-o sweep.html]
    python -m reports compare BASE.json NEW.json [-o compare.html] [--threshold 5] [--fail-on-regression]
    python -m reports index DIR

Exit codes: 0 written; 1 `compare --fail-on-regression` found a regression; 2 bad input (the message
names the file and the problem).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .compare import THRESHOLD, compare_runs, write_compare
from .conformance import write_conformance
from .index import ResultError, index_directory
from .load import problems, write_load
from .sweep import problems as sweep_problems
from .sweep import write_sweep


class InputError(Exception):
    """A result file that cannot be used; the message names it and says why."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reports", description="Render a saved result as an HTML page.")
    commands = parser.add_subparsers(dest="command", required=True)

    conformance = commands.add_parser("conformance", help="a conformance run (its JSON result)")
    conformance.add_argument("result", type=Path, help="the run's JSON result (RunResult.to_dict())")
    conformance.add_argument("-o", "--output", type=Path, help="HTML file to write (default: RESULT with .html)")
    conformance.set_defaults(handler=_conformance)

    load = commands.add_parser("load", help="a load run (its load-run JSON result)")
    load.add_argument("result", type=Path, help="the run's load-run JSON result")
    load.add_argument("-o", "--output", type=Path, help="HTML file to write (default: RESULT with .html)")
    load.set_defaults(handler=_load)

    sweep = commands.add_parser("sweep", help="a saturation sweep (its load-sweep JSON result)")
    sweep.add_argument("result", type=Path, help="the sweep's load-sweep JSON result")
    sweep.add_argument("-o", "--output", type=Path, help="HTML file to write (default: RESULT with .html)")
    sweep.set_defaults(handler=_sweep)

    compare = commands.add_parser("compare", help="two load runs: what got worse, by how much")
    compare.add_argument("base", type=Path, help="the earlier (reference) load-run JSON result")
    compare.add_argument("new", type=Path, help="the later load-run JSON result")
    compare.add_argument("-o", "--output", type=Path, help="HTML file to write (default: NEW-vs-BASE.html beside NEW)")
    compare.add_argument(
        "--threshold",
        type=float,
        default=100 * THRESHOLD,
        metavar="PERCENT",
        help=f"how much worse a figure must get to count as a regression (default {100 * THRESHOLD:g})",
    )
    compare.add_argument("--fail-on-regression", action="store_true", help="exit 1 when anything regressed")
    compare.set_defaults(handler=_compare)

    index = commands.add_parser("index", help="an index page linking every report of a run's folder")
    index.add_argument("directory", type=Path, help="folder holding the run's JSON results (searched recursively)")
    index.set_defaults(handler=_index)
    return parser


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc


def _read_load(path: Path) -> dict[str, Any]:
    doc = _read(path)
    found = problems(doc)
    if found:
        raise InputError(f"{path} is not a load-run result this reader can render: {'; '.join(found)}")
    return doc


def _conformance(args: argparse.Namespace) -> int:
    run = _read(args.result)
    if not isinstance(run, dict) or not isinstance(run.get("scenarios"), list):
        raise InputError(f"{args.result} is not a conformance result (no 'scenarios' list)")
    print(write_conformance(run, args.output or args.result.with_suffix(".html")))
    return 0


def _load(args: argparse.Namespace) -> int:
    print(write_load(_read_load(args.result), args.output or args.result.with_suffix(".html")))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    doc = _read(args.result)
    found = sweep_problems(doc)
    if found:
        raise InputError(f"{args.result} is not a sweep result this reader can render: {'; '.join(found)}")
    print(write_sweep(doc, args.output or args.result.with_suffix(".html")))
    return 0


def _compare(args: argparse.Namespace) -> int:
    base, new = _read_load(args.base), _read_load(args.new)
    if args.threshold < 0:
        raise InputError(f"--threshold must not be negative (got {args.threshold:g})")
    threshold = args.threshold / 100
    output = args.output or args.new.with_name(f"{args.new.stem}-vs-{args.base.stem}.html")
    print(write_compare(base, new, output, threshold=threshold))
    result = compare_runs(base, new, threshold=threshold)
    if result["regressed"]:
        worst = ", ".join(result["regressions"][:5])
        print(f"reports: {len(result['regressions'])} regressions (>= {args.threshold:g}%): {worst}", file=sys.stderr)
    return 1 if args.fail_on_regression and result["regressed"] else 0


def _index(args: argparse.Namespace) -> int:
    if not args.directory.is_dir():
        raise InputError(f"{args.directory} is not a directory")
    try:
        path, warnings = index_directory(args.directory)
    except ResultError as exc:
        raise InputError(str(exc)) from exc
    for warning in warnings:
        print(f"reports: {warning}", file=sys.stderr)
    print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except InputError as exc:
        print(f"reports: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
