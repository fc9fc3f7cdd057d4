"""The index page of one run: its conformance reports (one per profile, with the verdict) and its load
reports (with headline figures), each linked by a path relative to the index file, so the folder can be
moved or attached to a CI run whole.

`scan` finds the JSON results under a folder (the I/O edge); `build_index` is pure; `write_index` writes.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._page import fmt, fmt_rate, fmt_share, template, write_atomic
from .conformance import build_view as conformance_view
from .conformance import write_conformance
from .load import KIND as LOAD_KIND
from .load import error_rate, is_valid, problems, write_load

CONFORMANCE, LOAD = "conformance", "load"


@dataclass(slots=True, frozen=True)
class Entry:
    """One result of the run and the HTML report rendered from it."""

    kind: str  # CONFORMANCE or LOAD
    report: Path
    result: Mapping[str, Any]
    source: Path | None = None  # the JSON result, when the entry came from a file


def kind_of(doc: Any) -> str | None:
    """CONFORMANCE for a conformance result (a 'scenarios' list and a 'profile'), LOAD for a load-run, else None."""
    if not isinstance(doc, Mapping):
        return None
    if doc.get("kind") == LOAD_KIND:
        return LOAD
    if isinstance(doc.get("scenarios"), list) and "profile" in doc:
        return CONFORMANCE
    return None


# --- the view model --------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class ConformanceRow:
    href: str
    path: str
    profile: str
    target: str
    started: str
    ok: bool
    counts: list[tuple[str, int]]
    must_failed: int


@dataclass(slots=True, frozen=True)
class LoadRow:
    href: str
    path: str
    run_id: str
    profile: str
    shape: str
    started: str
    valid: bool
    figures: list[tuple[str, str]]


@dataclass(slots=True)
class IndexView:
    title: str
    conformance: list[ConformanceRow]
    load: list[LoadRow]

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.conformance) and all(row.valid for row in self.load)


def relative_path(report: Path, index: Path) -> str:
    """The report's path relative to the index page's folder, with POSIX separators (as the page shows it)."""
    return Path(os.path.relpath(Path(report).resolve(), Path(index).resolve().parent)).as_posix()


def href(report: Path, index: Path) -> str:
    """The report's URL relative to the index page (percent-encoded)."""
    return urllib.parse.quote(relative_path(report, index))


def build_index(entries: Iterable[Entry], index: Path, title: str = "") -> IndexView:
    """The index page's content (pure): one row per entry, links relative to `index`."""
    rows: dict[str, list[Any]] = {kind: [] for kind in _ROWS}
    for entry in entries:
        rows[entry.kind].append(
            _ROWS[entry.kind](href(entry.report, index), relative_path(entry.report, index), entry.result)
        )
    rows[CONFORMANCE].sort(key=lambda row: (row.profile, row.started, row.href))
    rows[LOAD].sort(key=lambda row: (row.started, row.run_id, row.href))
    return IndexView(title=title or Path(index).resolve().parent.name, conformance=rows[CONFORMANCE], load=rows[LOAD])


def _conformance_row(link: str, path: str, result: Mapping[str, Any]) -> ConformanceRow:
    view = conformance_view(result)
    return ConformanceRow(
        href=link,
        path=path,
        profile=view.profile,
        target=view.target,
        started=view.started,
        ok=view.ok,
        counts=[(verdict, n) for verdict, n in view.scenario_counts if n],
        must_failed=view.must_failed,
    )


def _load_row(link: str, path: str, result: Mapping[str, Any]) -> LoadRow:
    run, totals = result.get("run") or {}, result.get("totals") or {}
    metrics = result.get("metrics") or {}
    ttft, itl = metrics.get("ttft_ms") or {}, metrics.get("itl_ms") or {}
    shape = run.get("shape") if isinstance(run.get("shape"), Mapping) else {}
    return LoadRow(
        href=link,
        path=path,
        run_id=str(run.get("id", "")),
        profile=str(run.get("profile", "")),
        shape=str(shape.get("name", "")),
        started=str(run.get("started_at", "")),
        valid=is_valid(result),
        figures=[
            ("requests", fmt(totals.get("requests"), "")),
            ("error rate", fmt_share(error_rate(totals))),
            ("TTFT p50 / p99 ms", f"{fmt(ttft.get('p50'))} / {fmt(ttft.get('p99'))}"),
            ("ITL p50 / p99 ms", f"{fmt(itl.get('p50'))} / {fmt(itl.get('p99'))}"),
            ("tok/s", fmt_rate(totals.get("token_rate"))),
            ("goodput req/s", fmt_rate(totals.get("goodput"))),
        ],
    )


_ROWS = {CONFORMANCE: _conformance_row, LOAD: _load_row}


def render_index(entries: Iterable[Entry], index: Path, title: str = "") -> str:
    return template("index.html.j2").render(index=build_index(entries, index, title))


def write_index(entries: Iterable[Entry], path: str | os.PathLike[str], title: str = "") -> Path:
    """Write the index page of `entries` to `path` atomically; links are relative to it."""
    path = Path(path)
    return write_atomic(path, render_index(entries, path, title))


# --- finding and rendering the results (I/O) -------------------------------------------------


class ResultError(ValueError):
    """A result under the folder is ours but cannot be rendered; the message names the file."""


def scan(directory: Path) -> tuple[list[Entry], list[str]]:
    """The results under `directory` (recursively), each with its report path (the JSON's name, .html).

    JSON files that are neither kind of result are skipped; ones that cannot be read are skipped with
    a warning (returned). A load-run result that is malformed raises ResultError.
    """
    entries, warnings = [], []
    for path in sorted(Path(directory).rglob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            warnings.append(f"skipped {path}: {exc}")
            continue
        kind = kind_of(doc)
        if kind == LOAD and (found := problems(doc)):
            raise ResultError(f"{path}: " + "; ".join(found))
        if kind:
            entries.append(Entry(kind, path.with_suffix(".html"), doc, path))
    return entries, warnings


_WRITERS = {CONFORMANCE: write_conformance, LOAD: write_load}


def ensure_reports(entries: Sequence[Entry]) -> list[Path]:
    """Render each entry's report that is missing or older than its JSON result; the paths written."""
    written = []
    for entry in entries:
        report = entry.report
        stale = entry.source is not None and report.exists() and report.stat().st_mtime < entry.source.stat().st_mtime
        if not report.exists() or stale:
            try:
                written.append(_WRITERS[entry.kind](entry.result, report))
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                raise ResultError(f"{entry.source or report}: cannot render its report: {exc}") from exc
    return written


def index_directory(directory: Path) -> tuple[Path, list[str]]:
    """Scan `directory`, render missing or stale reports, write `directory/index.html`: its path, and warnings.

    Raises ResultError when there is no result to index or one cannot be rendered.
    """
    entries, warnings = scan(directory)
    if not entries:
        raise ResultError(f"{directory}: no conformance or load results (*.json) found")
    ensure_reports(entries)
    return write_index(entries, Path(directory) / "index.html"), warnings
