"""What every report page shares (`reports._page`): the atomic write, the CSP hashes, the number formats,
and the package's public face."""

from __future__ import annotations

import base64
import hashlib
import os
import stat

import pytest

import reports
from reports._page import csp_source, fmt, fmt_rate, fmt_share, template, vendored, write_atomic


def test_the_package_exports_its_renderers_and_the_writer():
    for name in reports.__all__:
        assert callable(getattr(reports, name)), name
    assert reports.write_atomic is write_atomic


@pytest.mark.parametrize(("content", "expected"), [("café\n", "café\n".encode()), (b"<x/>\r\n", b"<x/>\r\n")])
def test_write_atomic_writes_text_as_utf8_and_bytes_as_they_are(tmp_path, content, expected):
    path = write_atomic(str(tmp_path / "out" / "file"), content)
    assert path == tmp_path / "out" / "file"
    assert path.read_bytes() == expected
    assert [p.name for p in path.parent.iterdir()] == ["file"]  # no temp file left behind
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "report.html"
    path.write_text("old", encoding="utf-8")

    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, "new")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert path.read_text(encoding="utf-8") == "old"


def test_the_csp_lists_the_page_script_and_each_extra_script_by_hash():
    def sha(script: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"

    assert csp_source("alert(1)") == sha("alert(1)")
    env = template("_base.html.j2").environment
    assert env.from_string("{{ 'a()'|csp_source }}").render() == sha("a()")
    extra = env.from_string("{% set extra_scripts = ['b()', 'c()'] %}{{ 'a()'|csp_source }}")
    assert extra.render() == f"{sha('a()')} {sha('b()')} {sha('c()')}"


def test_the_vendored_chart_library_is_read_once_with_its_license():
    script, style = vendored()
    assert vendored() == (script, style) and vendored.cache_info().hits >= 1
    assert script.startswith("/* uPlot ") and "MIT" in script and ".uplot" in style


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (None, "ms", "—"),
        (True, "", "—"),
        (float("nan"), "ms", "—"),
        (12.3456, "ms", "12.346"),
        (1234.56, "ms", "1,234.6"),
        (1200, "", "1,200"),
        (2.5, "", "2.50"),
        (25.25, "", "25.2"),
    ],
)
def test_fmt(value, unit, shown):
    assert fmt(value, unit) == shown


def test_rates_and_shares():
    assert (fmt_rate(None), fmt_rate(3.14159), fmt_rate(31.4159)) == ("—", "3.14", "31.4")
    assert (fmt_share(None), fmt_share(0.0), fmt_share(0.005), fmt_share(0.25)) == ("—", "0.0%", "0.50%", "25.0%")
