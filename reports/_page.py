"""What every report page is made with: the templates, the Content-Security-Policy, the vendored chart
library, the number formats, and the atomic write.

A page is one offline file. Its templates are autoescaped (every string a run carries is untrusted), and
its CSP runs only the inline scripts whose SHA-256 it lists, so a missed escape stays inert. The report
kinds (conformance, load, compare, index) build their view models and render them through `template`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.resources
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

UPLOT_VERSION = "1.6.32"  # reports/vendor/README.md says where it came from


# --- the Content-Security-Policy -------------------------------------------------------------


def csp_source(script: str) -> str:
    """The CSP source that allows exactly this inline script (its SHA-256), and no other."""
    digest = hashlib.sha256(str(script).encode("utf-8")).digest()
    return "'sha256-{}'".format(base64.b64encode(digest).decode("ascii"))


@jinja2.pass_context
def _csp_sources(context: jinja2.runtime.Context, page_script: str) -> markupsafe.Markup:
    """The CSP sources for the shared page script and every script the page lists in `extra_scripts`.

    The base template asks for `page_script|csp_source`; a page that inlines more scripts declares
    them in `extra_scripts` (and renders exactly those), so each one runs by its own hash and nothing else does.
    """
    scripts = [page_script, *context.get("extra_scripts", ())]
    return markupsafe.Markup(" ".join(csp_source(str(s)) for s in scripts))


# --- the templates ---------------------------------------------------------------------------


def code_spans(text: Any) -> markupsafe.Markup:
    """Text with `backticked` parts set as <code>, everything escaped (the load glossary's notation)."""
    parts = str(text).split("`")
    return markupsafe.Markup("").join(
        markupsafe.Markup("<code>{}</code>").format(part) if odd % 2 else markupsafe.escape(part)
        for odd, part in enumerate(parts)
    )


def _ms(value: Any) -> str:
    return "" if value is None else f"{float(value):.1f}"


def environment() -> jinja2.Environment:
    """The report templates (reports/templates/), autoescaped, with the filters the pages use."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["csp_source"] = _csp_sources
    env.filters["ms"] = _ms
    env.filters["code_spans"] = code_spans
    return env


_ENV = environment()


def template(name: str) -> jinja2.Template:
    """A report template from the shared environment."""
    return _ENV.get_template(name)


# --- the vendored chart library --------------------------------------------------------------


@functools.cache
def vendored() -> tuple[markupsafe.Markup, markupsafe.Markup]:
    """uPlot's script (its license prepended as a comment) and style, ready to inline; read once."""
    folder = importlib.resources.files("reports") / "vendor"
    license_text = (folder / "LICENSE").read_text(encoding="utf-8").strip()
    script = (folder / "uPlot.iife.min.js").read_text(encoding="utf-8")
    style = (folder / "uPlot.min.css").read_text(encoding="utf-8")
    for text, closer in ((script, "</script"), (style, "</style"), (license_text, "*/")):
        if closer in text.lower():
            raise RuntimeError(f"a vendored file contains {closer!r} and cannot be inlined")
    return markupsafe.Markup(f"/* uPlot {UPLOT_VERSION}\n{license_text}\n*/\n{script}"), markupsafe.Markup(style)


def render_chart_page(name: str, **context: Any) -> str:
    """A page template that charts with uPlot, rendered with the library inlined beside `context`."""
    script, style = vendored()
    return template(name).render(**context, uplot_js=script, uplot_css=style, uplot_version=UPLOT_VERSION)


# --- numbers as the tables show them ---------------------------------------------------------


def number(value: Any) -> float | None:
    """A finite number from the document, or None (a missing, null or malformed value shows as "—")."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def fmt(value: Any, unit: str = "ms") -> str:
    """A figure as the tables show it: latencies to the microsecond below 100 ms, counts whole."""
    n = number(value)
    if n is None:
        return "—"
    if unit == "ms":
        return f"{n:,.3f}" if abs(n) < 100 else f"{n:,.1f}"
    if n == int(n) and abs(n) < 1e15:
        return f"{int(n):,}"
    return f"{n:,.2f}" if abs(n) < 10 else f"{n:,.1f}"


def fmt_rate(value: Any) -> str:
    n = number(value)
    return "—" if n is None else (f"{n:,.2f}" if abs(n) < 10 else f"{n:,.1f}")


def fmt_share(value: float | None) -> str:
    if value is None:
        return "—"
    percent = 100 * value
    return f"{percent:.2f}%" if 0 < abs(percent) < 1 else f"{percent:.1f}%"


# --- writing ---------------------------------------------------------------------------------


def write_atomic(path: str | os.PathLike[str], text: str | bytes) -> Path:
    """Write `text` (a str as UTF-8, bytes as they are) through a temporary file in the same directory and
    `os.replace` it into place: a reader sees the old file or the new one; a failed write keeps the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text if isinstance(text, bytes) else text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)  # mkstemp makes it owner-only; a report is for sharing
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path
