"""The load report, the comparison of two load runs, and the index page of a run's reports.

The documents come from `load_run_sample.load_run`, a seeded simulation of a run written in the
load-run contract. The last tests open the pages in headless Chromium: every chart with data must be
drawn by the embedded uPlot (its canvas carries the series' colour, not just axes), a chart without
data must say so, and every link of the index page must lead to a file.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from load_run_sample import load_run

from reports.__main__ import main
from reports.compare import compare_runs, render_compare, write_compare
from reports.index import CONFORMANCE, LOAD, Entry, build_index, href, kind_of, write_index
from reports.load import (
    METRICS,
    STATS,
    LoadRunError,
    build_view,
    histogram_columns,
    json_script,
    render_load,
    timeline_columns,
    write_load,
)
from scenarios._results import CheckResult, RunResult, ScenarioResult
from tests.chromium import CHROMIUM_ARGS, chromium_or_skip

MARKUP = "</script><script>alert(1)</script>"


@pytest.fixture(scope="module")
def run() -> dict:
    return load_run()


@pytest.fixture(scope="module")
def html(run) -> str:
    return render_load(run)


def _hostile(run: dict) -> dict:
    """The run with markup in every string a person or a server could have put there."""
    doc = copy.deepcopy(run)
    doc["run"]["target"] = f"http://127.0.0.1:8100/{MARKUP}"
    doc["run"]["profile"] = f"<b>{MARKUP}"
    doc["run"]["shape"]["name"] = f"<img src=x onerror=alert(2)>{MARKUP}"
    doc["validity"] = {"valid": False, "reasons": [f"reason {MARKUP}"]}
    doc["errors"] = [{"kind": f"http-500{MARKUP}", "count": 3, "example": f"data: {MARKUP} & <!-- ]]>"}]
    doc["metrics"][f"custom{MARKUP}"] = {"count": 1, "p50": 1.0}
    return doc


# --- the view model ----------------------------------------------------------------------------


def test_the_percentile_table_has_every_metric_and_statistic(run):
    view = build_view(run)
    assert [row.key for row in view.percentiles] == list(METRICS)
    ttft = view.percentiles[0]
    assert ttft.label == "TTFT" and ttft.count == f"{run['metrics']['ttft_ms']['count']:,}"
    assert [cell.text for cell in ttft.cells] == [f"{run['metrics']['ttft_ms'][s]:,.1f}" for s in STATS]
    itl = next(row for row in view.percentiles if row.key == "itl_ms")
    assert itl.cells[0].text == f"{run['metrics']['itl_ms']['p50']:.3f}"  # below 100 ms: to the microsecond


def test_figures_over_their_slo_are_marked(run):
    ttft = build_view(run).percentiles[0]
    values = [run["metrics"]["ttft_ms"][s] for s in STATS]
    assert [cell.over_slo for cell in ttft.cells] == [v > 260.0 for v in values]
    assert any(cell.over_slo for cell in ttft.cells) and not all(cell.over_slo for cell in ttft.cells)
    assert ttft.slo == "≤ 260.0 ms"
    output_tokens = next(row for row in build_view(run).percentiles if row.key == "output_tokens")
    assert not any(cell.over_slo for cell in output_tokens.cells) and output_tokens.slo == ""


def test_a_valid_run_and_an_invalid_one(run, html):
    assert build_view(run).valid and '<div class="overall ok" id="overall">VALID</div>' in html
    invalid = load_run(valid=False)
    view = build_view(invalid)
    assert not view.valid and view.reasons == ["client CPU reached 97% (limit 90%)"]
    page = render_load(invalid)
    assert '<div class="overall fail" id="overall">INVALID</div>' in page
    assert "<li>client CPU reached 97% (limit 90%)</li>" in page


def test_a_stated_reason_or_a_missing_validity_makes_the_run_invalid(run):
    doc = copy.deepcopy(run)
    doc["validity"]["reasons"] = ["event-loop lag p99 40 ms"]  # "valid": true stays
    assert not build_view(doc).valid
    del doc["validity"]
    view = build_view(doc)
    assert not view.valid and view.reasons == ["the result carries no validity section"]


def test_totals_goodput_and_errors(run):
    view = build_view(run)
    figures = {f.label: f for f in view.figures}
    assert figures["requests"].value == "600" and figures["requests"].note == "590 completed, 10 failed"
    assert figures["error rate"].value == "1.7%" and figures["error rate"].bad
    assert figures["token rate"].value == f"{run['totals']['token_rate']:,.1f} tok/s"
    assert not figures["late / dropped"].bad
    shares = {s.cls: s.count for s in view.goodput.shares}
    good = run["totals"]["good"]
    assert shares == {"good": good, "missed": 590 - good, "failed": 10}
    assert view.goodput.slos == [("TTFT", "≤ 260.0 ms"), ("TPOT", "≤ 25.000 ms"), ("E2E (last token)", "≤ 30,000.0 ms")]
    assert [(e.kind, e.count, e.share) for e in view.errors] == [("http-500", "7", "1.2%"), ("grammar", "3", "0.50%")]


def test_errors_are_listed_most_frequent_first_whatever_the_order_in_the_file(run):
    doc = copy.deepcopy(run)
    doc["errors"].reverse()
    assert [e.kind for e in build_view(doc).errors] == ["http-500", "grammar"]


def test_histogram_columns_step_through_the_buckets():
    buckets = [[4.0, 6.0, 2], [0.0, 2.0, 5], "junk", [2.0, 4.0, 1], [10.0, 12.0, 3], [1.0, None, 9]]
    # Sorted by lower bound; the gap 6..10 drops to zero; the last bucket closes at its upper bound.
    assert histogram_columns(buckets) == [[0.0, 2.0, 4.0, 6.0, 10.0, 12.0], [5, 1, 2, 0, 3, 0]]
    assert histogram_columns([]) == [[], []]


def test_timeline_columns_are_in_time_order():
    rows = [{"t": 1, "active": 5, "tokens": 10}, {"t": 0, "active": 3}, {"active": 9}, "junk"]
    assert timeline_columns(rows, ("active", "tokens")) == [[0.0, 1.0], [3.0, 5.0], [None, 10.0]]


def test_charts_without_data_carry_a_message_and_no_data_block():
    doc = load_run(itl=False)
    view = build_view(doc)
    assert [c.key for c in view.charts if c.empty] == ["itl"] and view.drawn_charts == 3
    page = render_load(doc)
    assert 'id="chart-itl-data"' not in page and 'id="chart-ttft-data"' in page
    assert '<p class="chart-empty">No ITL samples in this run (no stream carried two token events).</p>' in page
    doc["timeline"] = []
    assert build_view(doc).drawn_charts == 1


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "a load-run result is a JSON object, not list"),
        ({"kind": "conformance"}, "'kind' is 'conformance', not 'load-run'"),
        ({"kind": "load-run", "version": 2, "run": {}, "totals": {}, "metrics": {}}, "'version' is 2"),
        ({"kind": "load-run", "version": 1, "run": {}, "totals": {}}, "'metrics' is missing"),
        ({"kind": "load-run", "version": 1, "run": {}, "totals": {}, "metrics": {"ttft_ms": 3}}, "'ttft_ms' is not"),
        ({"kind": "load-run", "version": 1, "run": {}, "totals": {}, "metrics": {}, "timeline": {}}, "'timeline'"),
    ],
)
def test_a_document_that_is_not_a_load_run_is_refused(doc, message):
    with pytest.raises(LoadRunError, match=re.escape(message)):
        render_load(doc)


def test_malformed_numbers_show_as_a_dash(run):
    doc = copy.deepcopy(run)
    doc["metrics"]["ttft_ms"].update({"p50": "fast", "p90": None, "p99": float("nan"), "max": True})
    cells = build_view(doc).percentiles[0].cells
    assert [cells[STATS.index(s)].text for s in ("p50", "p90", "p99", "max")] == ["—"] * 4


# --- escaping, offline, the policy --------------------------------------------------------------


def test_every_string_from_the_run_is_escaped(run):
    page = render_load(_hostile(run))
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>&lt;" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "reason &lt;/script&gt;" in page and "data: &lt;/script&gt;" in page
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert scripts.count("<script>") == 3  # the shared page script, uPlot, the chart script
    assert len(scripts) == 3 + build_view(run).drawn_charts  # and one JSON block per drawn chart


def test_json_blocks_cannot_be_broken_out_of():
    value = {"label": MARKUP, "more": "<!-- & \u2028 \u2029", "n": [1.5, float("inf")]}
    text = str(json_script(value))
    assert not set("<>&") & set(text) and "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == {**value, "n": [1.5, None]}


def test_chart_data_in_the_page_reads_back_as_the_view_has_it(run, html):
    for chart in build_view(run).charts:
        block = re.search(rf'<script type="application/json" id="chart-{chart.key}-data">(.*?)</script>', html, re.S)
        assert block and json.loads(block.group(1)) == chart.spec
        assert len(chart.spec["data"][0]) > 10


def test_no_remote_resources(html):
    remote = re.compile(r"""\b(?:src|href|action|poster|data|srcset)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", re.I)
    assert not remote.search(html)
    assert "url(" not in html and "@import" not in html
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html).group(1)
    assert "default-src 'none'" in csp and "connect-src" not in csp


def test_the_policy_allows_exactly_the_page_scripts(html):
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(scripts) == 3 and "uPlot" in scripts[0] and "chartsRendered" in scripts[1]
    hashes = {f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts}
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html).group(1)
    script_src = re.search(r"script-src ([^;]*)", csp).group(1).split()
    assert set(script_src) == hashes and len(script_src) == 3


def test_the_embedded_library_carries_its_license(html):
    assert "Copyright (c) 2022 Leon Sorokin" in html and "Permission is hereby granted" in html


# --- writing -----------------------------------------------------------------------------------


def test_write_leaves_no_temp_file(run, tmp_path):
    path = write_load(run, tmp_path / "out" / "load.html")
    assert path == tmp_path / "out" / "load.html"
    assert [p.name for p in path.parent.iterdir()] == ["load.html"]
    assert path.read_text(encoding="utf-8") == render_load(run)


# --- comparing two runs ------------------------------------------------------------------------


def _rows(result: dict) -> dict[str, dict]:
    return {row["key"]: row for row in result["rows"]}


def test_a_slower_run_is_marked_worse_and_a_faster_one_is_not(run):
    slower = _rows(compare_runs(run, load_run(slowdown=1.3)))
    ttft = slower["ttft_ms.p99"]
    assert ttft["worse"] and ttft["regression"] and ttft["delta"] > 0
    assert ttft["relative"] == pytest.approx(ttft["delta"] / ttft["base"])
    assert all(slower[f"{m}.p50"]["regression"] for m in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"))
    faster = _rows(compare_runs(run, load_run(slowdown=0.8)))
    assert not any(faster[f"ttft_ms.{s}"]["worse"] for s in STATS)
    assert faster["ttft_ms.p99"]["improved"] and not faster["ttft_ms.p99"]["regression"]


def test_lower_throughput_and_more_errors_are_worse(run):
    result = _rows(compare_runs(run, load_run(speedup=0.5, failed=30)))
    assert result["token_rate"]["regression"] and result["request_rate"]["regression"]
    assert result["token_rate"]["relative"] < 0 and result["error_rate"]["regression"]
    better = _rows(compare_runs(run, load_run(speedup=2.0, failed=0)))
    assert better["token_rate"]["improved"] and better["error_rate"]["improved"]
    assert not better["token_rate"]["worse"] and not better["goodput"]["worse"]


def test_errors_appearing_from_none_are_a_regression(run):
    clean = load_run(failed=0)
    row = _rows(compare_runs(clean, run))["error_rate"]
    assert row["base"] == 0 and row["relative"] is None and row["badness"] is None and row["regression"]


def test_the_threshold_separates_worse_from_regressed(run):
    new = copy.deepcopy(run)
    new["metrics"]["ttft_ms"]["p99"] = run["metrics"]["ttft_ms"]["p99"] * 1.03
    row = _rows(compare_runs(run, new))["ttft_ms.p99"]
    assert row["worse"] and not row["regression"] and row["relative"] == pytest.approx(0.03)
    assert _rows(compare_runs(run, new, threshold=0.02))["ttft_ms.p99"]["regression"]
    result = compare_runs(run, run)
    assert not result["regressed"] and result["worse"] == 0 and result["regressions"] == []


def test_regressions_come_first_worst_first(run):
    new = copy.deepcopy(run)
    new["metrics"]["itl_ms"]["p50"] *= 1.10
    new["metrics"]["ttft_ms"]["p90"] *= 1.50
    new["metrics"]["e2e_ms"]["max"] *= 1.02  # worse, under the threshold
    new["totals"]["token_rate"] *= 0.80
    result = compare_runs(run, new)
    keys = [row["key"] for row in result["rows"]]
    assert keys[:4] == ["ttft_ms.p90", "token_rate", "itl_ms.p50", "e2e_ms.max"]
    assert result["regressions"] == ["ttft_ms.p90", "token_rate", "itl_ms.p50"]
    json.dumps(result, allow_nan=False)  # plain data, fit for a JSON file


def test_output_tokens_and_missing_figures_are_never_judged(run):
    new = copy.deepcopy(run)
    new["metrics"]["output_tokens"]["p50"] *= 3
    new["metrics"]["ttft_ms"]["p99"] = None
    del new["metrics"]["headers_ms"]
    rows = _rows(compare_runs(run, new))
    assert rows["output_tokens.p50"]["delta"] > 0 and not rows["output_tokens.p50"]["worse"]
    assert rows["ttft_ms.p99"]["delta"] is None and not rows["ttft_ms.p99"]["worse"]
    assert rows["headers_ms.p50"]["new"] is None and not rows["headers_ms.p50"]["regression"]


def test_comparing_something_that_is_not_a_load_run_fails(run):
    with pytest.raises(LoadRunError, match="new: 'kind'"):
        compare_runs(run, {"kind": "other"})


def test_the_comparison_page_lists_the_worst_regression_first(run, tmp_path):
    slower = load_run(slowdown=1.3)
    expected = compare_runs(run, slower)
    page = write_compare(run, slower, tmp_path / "cmp.html").read_text(encoding="utf-8")
    assert '<div class="overall fail" id="overall">REGRESSED</div>' in page
    first = re.search(r'<tr class="v-(\w+)" data-key="([^"]+)"', page)
    assert first.groups() == ("regression", expected["rows"][0]["key"])
    assert f"{len(expected['regressions'])} regressions (≥ 5% worse)" in page
    same = render_compare(run, run)
    assert (
        '<div class="overall ok" id="overall">NO REGRESSION</div>' in same and 'data-verdict="regression"' not in same
    )


def test_the_comparison_page_escapes_and_warns(run):
    page = render_compare(run, _hostile(run))
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "the new run is marked invalid" in page and "the runs differ in target" in page


# --- the command line --------------------------------------------------------------------------


def _save(path: Path, doc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_cli_load(run, tmp_path, capsys):
    result = _save(tmp_path / "load.json", run)
    assert main(["load", str(result), "-o", str(tmp_path / "x.html")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "x.html")
    assert main(["load", str(result)]) == 0 and (tmp_path / "load.html").exists()
    result.write_text("{not json", encoding="utf-8")
    assert main(["load", str(result)]) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and str(result) in err
    _save(result, {"kind": "load-run", "version": 1, "run": {}, "totals": {}})
    assert main(["load", str(result)]) == 2
    err = capsys.readouterr().err
    assert str(result) in err and "'metrics' is missing" in err


def test_cli_compare_exit_codes(run, tmp_path, capsys):
    base = _save(tmp_path / "base.json", run)
    slower = _save(tmp_path / "slower.json", load_run(slowdown=1.3))
    out = tmp_path / "c.html"
    assert main(["compare", str(base), str(slower), "-o", str(out)]) == 0 and out.exists()
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out) and "regressions (>= 5%): " in captured.err
    assert main(["compare", str(base), str(slower), "-o", str(out), "--fail-on-regression"]) == 1
    assert main(["compare", str(base), str(base), "-o", str(out), "--fail-on-regression"]) == 0
    assert main(["compare", str(base), str(slower), "--threshold", "1000", "--fail-on-regression"]) == 0
    assert (tmp_path / "slower-vs-base.html").exists()
    assert main(["compare", str(base), str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_cli_conformance_still_works(tmp_path):
    result = _save(tmp_path / "conf.json", _conformance("sessions", ok=True))
    assert main(["conformance", str(result)]) == 0 and (tmp_path / "conf.html").exists()


# --- the index page ----------------------------------------------------------------------------


def _conformance(profile: str, *, ok: bool) -> dict:
    check = CheckResult("stream.fields", "MUST", "passed" if ok else "failed", "" if ok else "bad field", step=1)
    scenario = ScenarioResult("stream-basic", "A streamed answer.", ["stream"], checks=[check])
    scenario.settle()
    run = RunResult(target="http://127.0.0.1:8100", profile=profile, started="2026-11-22T10:00:00Z", duration_s=2.0)
    run.scenarios = [scenario]
    return run.to_dict()


def _run_folder(root: Path, run: dict) -> Path:
    _save(root / "conformance" / "sessions.json", _conformance("sessions", ok=True))
    _save(root / "conformance" / "openai chat.json", _conformance("openai-chat", ok=False))
    _save(root / "load" / "closed run.json", run)
    _save(root / "notes.json", {"something": "else"})
    (root / "broken.json").write_text("{", encoding="utf-8")
    return root


def test_kind_of_a_result():
    assert kind_of({"kind": "load-run"}) == LOAD
    assert kind_of({"scenarios": [], "profile": "p"}) == CONFORMANCE
    assert kind_of({"scenarios": []}) is None and kind_of([]) is None


def test_index_links_are_relative_to_the_index(run, tmp_path):
    index = tmp_path / "out" / "index.html"
    assert href(tmp_path / "out" / "load" / "a b.html", index) == "load/a%20b.html"
    assert href(tmp_path / "other" / "x.html", index) == "../other/x.html"
    entries = [
        Entry(CONFORMANCE, tmp_path / "out" / "c" / "s.html", _conformance("sessions", ok=True)),
        Entry(CONFORMANCE, tmp_path / "out" / "c" / "o.html", _conformance("openai-chat", ok=False)),
        Entry(LOAD, tmp_path / "out" / "l.html", run),
    ]
    view = build_index(entries, index)
    assert [(r.profile, r.ok, r.href) for r in view.conformance] == [
        ("openai-chat", False, "c/o.html"),
        ("sessions", True, "c/s.html"),
    ]
    (load_row,) = view.load
    assert load_row.href == "l.html" and load_row.valid and ("error rate", "1.7%") in load_row.figures
    assert not view.ok
    page = write_index(entries, index).read_text(encoding="utf-8")
    assert '<a href="c/o.html">' in page and '<a href="l.html">' in page and "1 conformance FAIL" in page


def test_cli_index_renders_the_reports_and_links_them(run, tmp_path, capsys):
    root = _run_folder(tmp_path / "run 1", run)
    assert main(["index", str(root)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(root / "index.html")
    assert "skipped" in captured.err and "broken.json" in captured.err
    page = (root / "index.html").read_text(encoding="utf-8")
    links = re.findall(r'<a href="([^"]+)">', page)
    assert sorted(links) == ["conformance/openai%20chat.html", "conformance/sessions.html", "load/closed%20run.html"]
    for link in links:
        assert (root / unquote(link)).is_file()
    assert not (root / "notes.html").exists()


def test_cli_index_refuses_bad_input(tmp_path, capsys):
    assert main(["index", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main(["index", str(tmp_path)]) == 2
    assert "no conformance or load results" in capsys.readouterr().err
    bad = _save(tmp_path / "bad.json", {"kind": "load-run", "version": 1, "run": {}, "totals": {}})
    assert main(["index", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "'metrics' is missing" in err


# --- in a real browser -------------------------------------------------------------------------


# For each chart: its canvas size, how many pixels carry any ink, and how many are (nearly) the colour of
# one of its series, which only a drawn series puts there (axes and labels are grey).
CANVAS_SCAN = """
() => Array.from(document.querySelectorAll(".chart[data-chart]")).map((el) => {
  const canvas = el.querySelector("canvas");
  if (!canvas) { return {key: el.dataset.chart, canvas: false, text: el.textContent.trim()}; }
  const spec = JSON.parse(document.getElementById("chart-" + el.dataset.chart + "-data").textContent);
  const rgb = (n) => [n >> 16, (n >> 8) & 255, n & 255];
  const colors = spec.series.map((s) => rgb(parseInt(s.color.slice(1), 16)));
  const near = (d, i, c) => Math.abs(d[i] - c[0]) + Math.abs(d[i + 1] - c[1]) + Math.abs(d[i + 2] - c[2]) < 60;
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let ink = 0, series = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] === 0) { continue; }
    ink += 1;
    if (data[i + 3] > 200 && colors.some((c) => near(data, i, c))) { series += 1; }
  }
  return {key: el.dataset.chart, canvas: true, width: canvas.width, height: canvas.height, ink: ink, series: series};
})
"""


@pytest.fixture(scope="module")
def browser():
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def _open(browser, path: Path, problems: list[str]):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", lambda request: problems.append(request.url) if not request.url.startswith("file:") else None)
    page.goto(path.as_uri())
    page.wait_for_function("document.body.dataset.chartsRendered !== undefined", timeout=10_000)
    return page


def test_in_chromium_every_chart_with_data_is_drawn(browser, run, tmp_path):
    path = write_load(run, tmp_path / "load.html")
    problems: list[str] = []
    page = _open(browser, path, problems)
    try:
        assert page.evaluate("document.body.dataset.chartsRendered") == str(build_view(run).drawn_charts) == "4"
        scans = page.evaluate(CANVAS_SCAN)
        assert [s["key"] for s in scans] == ["ttft", "itl", "throughput", "active"]
        for scan in scans:
            assert scan["canvas"] and scan["width"] >= 320 and scan["height"] >= 200, scan
            assert scan["ink"] > 2000 and scan["series"] > 200, scan  # the series itself, not only the axes
        assert page.is_visible("#reasons") is False  # a valid run lists no reasons
        assert problems == []  # no script error, no CSP violation, no request but the page
    finally:
        page.close()


def test_in_chromium_a_chart_without_data_says_so(browser, tmp_path):
    doc = load_run(itl=False, valid=False)
    path = write_load(doc, tmp_path / "load.html")
    problems: list[str] = []
    page = _open(browser, path, problems)
    try:
        assert page.evaluate("document.body.dataset.chartsRendered") == "3"
        scans = {s["key"]: s for s in page.evaluate(CANVAS_SCAN)}
        assert not scans["itl"]["canvas"] and scans["itl"]["text"].startswith("No ITL samples in this run")
        assert page.is_visible("#chart-itl .chart-empty")
        assert all(scans[key]["series"] > 200 for key in ("ttft", "throughput", "active"))
        assert page.inner_text("#overall") == "INVALID" and "client CPU reached 97%" in page.inner_text("#reasons")
        assert problems == []
    finally:
        page.close()


def test_in_chromium_the_index_links_lead_to_the_reports(browser, run, tmp_path):
    root = _run_folder(tmp_path / "run 1", run)
    assert main(["index", str(root)]) == 0
    problems: list[str] = []
    page = browser.new_page()
    page.on("pageerror", lambda error: problems.append(str(error)))
    try:
        page.goto((root / "index.html").as_uri())
        links = page.evaluate("Array.from(document.querySelectorAll('a[href]'), (a) => a.href)")
        assert len(links) == 3
        for link in links:
            assert link.startswith("file://") and Path(unquote(urlparse(link).path)).is_file(), link
        page.click("a[href^='load/']")
        page.wait_for_function("document.body.dataset.chartsRendered === '4'", timeout=10_000)
        assert problems == []
    finally:
        page.close()
