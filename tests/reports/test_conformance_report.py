"""The conformance report: a run's dict in, one offline HTML page out.

The run is built from `scenarios._results` dataclasses, so the report reads exactly what
`RunResult.to_dict()` writes. Its stream has CRLF line ends (one CR and its LF in different reads),
a two-byte character split across reads, and markup in an event's data; a MUST check fails on
event 3. The last test opens the written page in headless Chromium and uses its filter.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest

from reports import render_conformance, write_conformance
from reports.__main__ import main
from reports.conformance import raw_view
from scenarios._results import CheckResult, Exchange, RunResult, ScenarioResult, StreamEvent, StreamRecord
from tests.chromium import CHROMIUM_ARGS, chromium_or_skip

SCRIPT = "<script>alert(1)</script>"
TARGET = "http://127.0.0.1:8123"
TOKEN = "abc.def.ghi-secret"
# (kind, bytes) in stream order; a row's index is its position, comments included.
BLOCKS = [
    ("session", b'data: {"type":"session","session_id":"s1"}\r\n\r\n'),
    ("comment", b": ping\r\n"),
    ("token", 'data: {"type":"token","content":"café"}\r\n\r\n'.encode()),
    ("token", ('data: {"type":"token","content":"' + SCRIPT + '"}\r\n\r\n').encode()),
    ("done", b'data: {"type":"done"}\r\n\r\n'),
]
RAW = b"".join(block for _, block in BLOCKS)
CR_LF_CUT = RAW.index(b"\r\n") + 1  # the first line's CR ends read 0, its LF starts read 1
E_ACUTE = RAW.index("é".encode())
READ_CUTS = [0, CR_LF_CUT, E_ACUTE + 1, RAW.index(b"<script>") + 3]  # the third cut splits é (C3|A9)
READ_MS = [5.0, 12.5, 20.25, 31.0]


def _stream() -> StreamRecord:
    ends = [*READ_CUTS[1:], len(RAW)]
    reads = [(start, end - start, ms) for start, end, ms in zip(READ_CUTS, ends, READ_MS, strict=True)]
    events, offset = [], 0
    for index, (kind, block) in enumerate(BLOCKS):
        end = offset + len(block)
        read = max(i for i, start in enumerate(READ_CUTS) if start < end)
        data = "" if kind == "comment" else block.decode()[len("data: ") :].strip()
        text = block.decode()[1:].strip() if kind == "comment" else data
        events.append(StreamEvent(index, kind, text, read, READ_MS[read], offset, end))
        offset = end
    issues = [{"code": "unknown-field", "severity": "warning", "message": "odd", "offset": 3, "read": 0}]
    return StreamRecord(raw=RAW, reads=reads, events=events, issues=issues, ended="closed")


def _run(*, failing_level: str = "MUST") -> dict:
    stream_exchange = Exchange(
        step=1,
        operation="chat-stream",
        method="POST",
        url=f"{TARGET}/api/chat/stream",
        request_headers={"Authorization": f"Bearer {TOKEN}", "Cookie": "sid=s3cr3t; a=b", "Content-Type": "text/json"},
        request_body='{"message": "hi"}',
        status=200,
        response_headers={"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"},
        elapsed_ms=33.0,
        stream=_stream(),
    )
    failing = ScenarioResult(
        name="stream-basic",
        summary="A streamed answer arrives token by token.",
        tags=["stream", "smoke"],
        checks=[
            CheckResult("stream.content-type", "MUST", "passed", step=1),
            CheckResult("stream.fields", failing_level, "failed", "content carries markup", step=1, event=3),  # type: ignore[arg-type]
            CheckResult("stream.max-gap", "SHOULD", "not_checked", "budget too short", step=1),
        ],
        exchanges=[stream_exchange],
        duration_ms=40.0,
    )
    health = Exchange(1, "health", "GET", f"{TARGET}/api/health", {}, None, 200, {}, '{"status":"healthy"}', 2.0)
    passing = ScenarioResult(
        name="health-ok",
        summary="Health answers.",
        tags=["smoke"],
        checks=[CheckResult("stream.content-type", "MUST", "passed", step=1)],
        exchanges=[health],
    )
    skipped = ScenarioResult("needs-auth", "Auth.", ["auth"], verdict="not_applicable", reason="no auth in profile")
    for scenario in (failing, passing, skipped):
        scenario.settle()
    run = RunResult(target=TARGET, profile="sessions", started="2025-01-02T03:04:05Z", duration_s=1.5)
    run.scenarios = [failing, passing, skipped]
    return run.to_dict()


@pytest.fixture(scope="module")
def html() -> str:
    return render_conformance(_run())


def _element(html: str, tag: str, element_id: str) -> str:
    match = re.search(rf'<{tag} id="{element_id}"[^>]*>.*?</{tag}>', html, re.S)
    assert match, f"no <{tag} id={element_id}>"
    return match.group(0)


def test_the_failed_check_labels_the_row_of_event_3(html):
    row = _element(html, "tr", "s0-x0-e3")
    assert "stream.fields" in row and "flagged" in row
    assert "stream.fields" not in _element(html, "tr", "s0-x0-e2")
    assert 'href="#s0-x0-e3"' in html  # the check's row links to it
    assert 'data-raw="s0-x0-e3-raw"' in row  # ... and it to its bytes, highlighted in the raw view
    assert re.search(r'<span class="hit" title="event 3: stream.fields" id="s0-x0-e3-raw">data: ', html)
    # The failed check comes before the passed one in the scenario's check table.
    assert html.index(">stream.fields</td>") < html.index(">stream.content-type</td>", html.index('id="s0"'))


def test_network_reads_are_marked_with_their_times(html):
    raw = re.search(r'<pre class="raw">(.*?)</pre>', html, re.S).group(1)
    assert re.findall(r'data-read="(\d+)"', raw) == ["0", "1", "2", "3"]
    for index, ms in enumerate(READ_MS):
        assert f'data-tick="#{index} +{ms:.1f}ms"' in raw
    assert 'class="read r-even"' in raw and 'class="read r-odd"' in raw
    # The CR ends read 0 and its LF starts read 1; each line end breaks the view after ␊.
    across = r'>␍</span></span><span class="read r-odd" data-read="1"[^>]*><span class="ctl"[^>]*>␊</span>\n'
    assert re.search(across, raw)
    # é is split between reads 1 and 2: shown whole, in read 1, marked split.
    split = re.search(r'<span class="char split" title="([^"]*)">é</span>', raw)
    assert split and f"bytes {E_ACUTE}-{E_ACUTE + 1}" in split.group(1)
    assert raw.count("␍") == RAW.count(b"\r") and raw.count("␊") == RAW.count(b"\n")
    assert '<span class="issue" title="unknown-field: odd">' in raw


def test_stream_text_is_escaped(html):
    assert "<script>alert" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 1  # the event's data
    assert html.count("alert(1)") >= 2  # also in the raw view
    assert html.count("<script") == 1  # the page's own script, nothing else


def test_no_remote_resources(html):
    assert TARGET in html  # the target is shown, as text
    remote = re.compile(r"""\b(?:src|href|action|poster|data|srcset)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", re.I)
    assert not remote.search(html)
    assert "url(" not in html and "@import" not in html
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html).group(1)
    assert "default-src 'none'" in csp


def test_the_policy_allows_exactly_the_page_script(html):
    script = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in html


def test_header_verdict_and_counts(html):
    assert '<div class="overall fail" id="overall">FAIL</div>' in html
    assert "1 MUST failed" in html and "failed 1" in html and "passed 1" in html and "not applicable 1" in html
    tally = re.search(r'<tr class="problem" data-check="stream.fields">.*?</tr>', html, re.S)
    assert tally and '<td class="num failed">1</td>' in tally.group(0) and 'href="#s0"' in tally.group(0)


def test_only_should_failures_leave_the_run_ok():
    html = render_conformance(_run(failing_level="SHOULD"))
    assert '<div class="overall ok" id="overall">OK</div>' in html
    assert 'data-verdict="warned"' in html


def test_a_harness_error_fails_the_run():
    run = _run(failing_level="SHOULD")
    run["scenarios"].append({"name": "broken", "summary": "", "tags": [], "verdict": "error", "reason": "refused"})
    assert '<div class="overall fail" id="overall">FAIL</div>' in render_conformance(run)


def test_failed_scenarios_start_open(html):
    assert re.search(r'<details class="section-item scenario problem" id="s0" data-verdict="failed" open>', html)
    assert re.search(r'<details class="section-item scenario passing" id="s1" data-verdict="passed">', html)
    assert "no auth in profile" in html


def test_credentials_are_masked(html):
    assert TOKEN not in html and "s3cr3t" not in html
    assert f"Bearer [redacted, {len(TOKEN)} chars]" in html and "[redacted, 15 chars]" in html


def test_a_long_stream_is_cut_with_a_note():
    run = _run()
    big = (b'data: {"type":"token","content":"' + b"x" * 90 + b'"}\n\n') * 1000  # ~125 KiB in 1000 reads
    size = len(big) // 1000
    stream = run["scenarios"][0]["exchanges"][0]["stream"]
    stream["raw"] = base64.b64encode(big).decode()
    stream["reads"] = [(i * size, size, float(i)) for i in range(1000)]
    html = render_conformance(run)
    assert f"Showing the first {64 * 1024} of {len(big)} bytes" in html
    raw = re.search(r'<pre class="raw">(.*?)</pre>', html, re.S).group(1)
    assert raw.count("x") < 64 * 1024 and raw.count("data-read=") == 64 * 1024 // size + 1


def test_raw_view_makes_invisible_bytes_visible():
    raw = "\ufeffa\x00b\rc\u200b".encode() + b"\xff"
    (read,) = raw_view(raw, [(0, len(raw), 1.0)])
    shown = "".join(p.text for p in read.pieces)
    assert shown == "BOMa␀b␍\nc⟨U+200B⟩\\xFF"
    assert [p.cls for p in read.pieces if p.cls] == ["ctl", "ctl", "ctl", "ctl", "bad"]


def test_bytes_before_the_first_read_are_still_shown():
    (orphan, first) = raw_view(b"abcdef", [(3, 3, 2.0)])
    assert (orphan.index, orphan.tick, first.index) == (None, "?", 0)
    assert "".join(p.text for p in orphan.pieces + first.pieces) == "abcdef"


def test_write_leaves_no_temp_file(tmp_path):
    run = _run()
    path = write_conformance(run, tmp_path / "out" / "report.html")
    assert path == tmp_path / "out" / "report.html"
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]
    assert path.read_text(encoding="utf-8") == render_conformance(run)


def test_cli_renders_a_saved_result(tmp_path, capsys):
    result = tmp_path / "result.json"
    result.write_text(json.dumps(_run()), encoding="utf-8")
    assert main(["conformance", str(result), "-o", str(tmp_path / "r.html")]) == 0
    assert "stream.fields" in (tmp_path / "r.html").read_text(encoding="utf-8")
    assert main(["conformance", str(result)]) == 0  # default: beside the result
    assert (tmp_path / "result.html").exists()
    result.write_text("{not json", encoding="utf-8")
    assert main(["conformance", str(result)]) == 2
    assert "cannot read" in capsys.readouterr().err


# --- in a real browser -------------------------------------------------------------------------


def test_in_chromium_failed_is_open_and_the_filter_hides_passed(tmp_path):
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    path = write_conformance(_run(), tmp_path / "report.html")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            problems: list[str] = []
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("request", lambda request: problems.append(request.url) if request.url != path.as_uri() else None)
            page.goto(path.as_uri())
            assert page.evaluate("document.getElementById('s0').open") is True
            assert page.evaluate("document.getElementById('s1').open") is False
            assert page.is_visible("#s1") and page.is_visible("#s2")

            page.click("button[data-filter=problems]")
            assert page.is_visible("#s0")
            assert not page.is_visible("#s1") and not page.is_visible("#s2")
            assert page.get_attribute("button[data-filter=problems]", "aria-pressed") == "true"

            page.click("button[data-filter=all]")
            assert page.is_visible("#s1") and page.is_visible("#s2")

            page.evaluate("document.getElementById('s0').open = false")
            page.evaluate("location.hash = '#s0-x0-e3'")  # a link to a flagged event opens its scenario
            page.wait_for_function("document.getElementById('s0').open")
            assert problems == []  # no script error, no CSP violation, no request but the page
        finally:
            browser.close()


def test_a_tallied_check_shows_its_rule_and_the_contract_sentences_it_cites(html):
    tally = re.search(r'<tr class="problem" data-check="stream.fields">.*?</tr>', html, re.S)
    cell = re.search(r'<td class="mono" title="([^"]*)">stream.fields</td>', tally.group(0))
    assert cell and cell.group(1).startswith("Every event carries the fields the profile names")
    assert "contracts.md, 1. `sessions` — session API with POST streaming (seed 000): \u201c" in cell.group(1)
