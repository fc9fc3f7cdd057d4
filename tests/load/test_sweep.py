"""The saturation sweep's judgement, on made-up step figures: where the client saturated, where the
target did, and why; the step counts; a step's figures read from a load-run document; the report."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re

import pytest

from loadtests import LoadSettings, UsageError
from loadtests._sweep import Criteria, Step, judge, run_sweep, stream_counts, sweep_document
from reports.__main__ import main as reports_main
from reports.sweep import SweepError, build_view, render_sweep


def step(streams: int, *, per_stream: float = 40.0, cpu: float = 20.0, lag: float = 1.0, itl: float = 25.0,
         ttft: float = 60.0, failed: int = 0, requests: int = 100) -> Step:  # fmt: skip
    return Step(streams=streams, events_per_s=per_stream * streams, requests=requests, failed=failed,
                cpu_mean=cpu * 0.8, cpu_max=cpu, loop_lag_p90_ms=lag, loop_lag_p99_ms=lag * 2,
                ttft_p50_ms=ttft / 2, ttft_p99_ms=ttft, itl_p50_ms=itl / 1.5, itl_p99_ms=itl,
                headroom=1 - cpu / 90)  # fmt: skip


def test_the_target_saturates_first_when_its_latency_grows_while_the_client_has_headroom():
    steps = [step(100), step(200, itl=30.0), step(300, itl=70.0, cpu=50.0), step(400, cpu=95.0, itl=90.0)]
    j = judge(steps)
    assert (j.target.streams, j.target.step) == (300, 2)
    assert j.target.reasons == ("ITL p99 70.0 ms, 2.8x the first step's 25.0 ms",)
    assert (j.client.streams, j.client.step) == (400, 3) and "CPU reached 95%" in j.client.reasons[0]
    assert j.verdict.startswith("the target saturated first, at 300 streams")
    assert "the client saturated later, at 400 streams" in j.verdict


def test_the_client_saturating_first_hides_the_target():
    # At 300 streams the client is saturated; the latency it measures there is not the target's.
    steps = [step(100), step(200, lag=4.0), step(300, lag=25.0, itl=80.0), step(400, itl=90.0)]
    j = judge(steps)
    assert j.client.streams == 300 and "event-loop lag p90 25.0 ms" in j.client.reasons[0]
    assert not j.target.reached and "below 300 streams" in j.target.note
    assert j.per_step[2]["target"]  # degraded there, but not counted against the target
    assert j.verdict.startswith("the client saturated first, at 300 streams")


@pytest.mark.parametrize(
    ("later", "reason"),
    [
        (step(200, per_stream=25.0), "events/s per stream 25.0, 62% of the first step's 40.0"),
        (step(200, ttft=400.0), "TTFT p99 400.0 ms, 6.7x the first step's 60.0 ms"),
        (step(200, failed=10, requests=100), "10% of streams failed (limit 5%)"),
    ],
)
def test_each_way_a_target_degrades(later, reason):
    j = judge([step(100), later])
    assert j.target.streams == 200 and j.target.reasons == (reason,)


def test_small_changes_and_tiny_latencies_are_no_saturation():
    # ITL p99 from 1 ms to 3 ms is three times, but 2 ms is noise (the floor); 20% fewer events per
    # stream is within bounds.
    steps = [step(10, itl=1.0, ttft=2.0), step(20, itl=3.0, ttft=5.0, per_stream=32.0)]
    j = judge(steps)
    assert not j.target.reached and not j.client.reached
    assert j.verdict == "neither saturated up to 20 streams (headroom 78% at the last step)"


def test_the_criteria_are_parameters():
    steps = [step(100), step(200, itl=40.0)]
    assert not judge(steps).target.reached
    assert judge(steps, Criteria(latency_factor=1.5)).target.streams == 200
    assert judge([step(100, cpu=70.0)], Criteria(cpu_limit=60.0)).client.streams == 100
    with pytest.raises(UsageError):
        Criteria(latency_factor=1.0)
    with pytest.raises(UsageError):
        Criteria(per_stream_drop=1.5)


def test_a_client_saturated_at_the_first_step_tells_nothing_of_the_target():
    j = judge([step(1000, cpu=99.0), step(2000, cpu=99.0, itl=200.0)])
    assert j.client.step == 0 and not j.target.reached
    assert "cannot be judged" in j.target.note and "nothing can be told of the target" in j.verdict


def test_a_target_failing_from_the_first_step_is_saturated_there():
    j = judge([step(100, failed=30, requests=100), step(200, failed=60, requests=100)])
    assert (j.target.streams, j.target.reasons) == (100, ("30% of streams failed (limit 5%)",))


def test_one_step_has_no_baseline_and_no_steps_is_an_error():
    j = judge([step(50)])
    assert not j.target.reached and "single step" in j.target.note
    with pytest.raises(ValueError):
        judge([])


def test_stream_counts_are_bounded():
    assert stream_counts(100, 500, 200) == [100, 300, 500]
    assert stream_counts(100, 450, 200) == [100, 300, 450]  # the last step is the --to figure
    assert stream_counts(5, 5, 1) == [5]
    for bad in ((0, 10, 1), (10, 5, 1), (1, 10, 0), (1, 10_000, 1)):
        with pytest.raises(UsageError):
            stream_counts(*bad)


def _result(events_per_s: float, itl_p99: float, *, cpu: tuple[float, float] = (30.0, 40.0)) -> dict:
    """The parts of a load-run document a step reads."""
    process = {"process": "p", "events": 1, "events_per_s": events_per_s, "headroom": 0.6,
               "cpu_percent": {"mean": cpu[0], "max": cpu[1], "samples": 2},
               "loop_lag_ms": {"p50": 0.2, "p90": 0.5, "p99": 1.5, "max": 2.0}}  # fmt: skip
    return {
        "run": {"id": "r", "tool": "loadtests test"},
        "validity": {"valid": True},
        "totals": {"requests": 20, "failed": 1},
        "metrics": {"ttft_ms": {"p50": 50.0, "p99": 70.0}, "itl_ms": {"p50": 20.0, "p99": itl_p99}},
        "capacity": {"events_per_s": events_per_s, "headroom": 0.6, "processes": [process, {**process, "process": "q",
                     "cpu_percent": {"mean": 10.0, "max": 12.0, "samples": 2}}]},
    }  # fmt: skip


def test_a_step_reads_its_figures_from_the_load_run_document():
    s = Step.of_result(40, _result(1600.0, 30.0))
    assert (s.streams, s.events_per_s, s.events_per_stream_s) == (40, 1600.0, 40.0)
    assert (s.cpu_mean, s.cpu_max) == (20.0, 40.0)  # mean of the processes' means, the highest max
    assert (s.loop_lag_p90_ms, s.itl_p99_ms, s.ttft_p50_ms, s.failed_share) == (0.5, 30.0, 50.0, 0.05)


def test_the_sweep_stops_where_the_client_saturated_and_its_document_renders():
    planned = [10, 20, 30, 40]
    figures = {10: (400.0, 25.0, (20.0, 25.0)), 20: (800.0, 70.0, (40.0, 45.0)), 30: (1100.0, 80.0, (85.0, 96.0))}
    asked = []

    def run(target, settings, workers, *, quiet):
        asked.append((settings.users, settings.shape, settings.run_time_s, settings.json_path, workers, quiet))
        rate, itl, cpu = figures[settings.users]
        return _result(rate, itl, cpu=cpu)

    doc = run_sweep("http://127.0.0.1:9", LoadSettings(json_path="x.json"), planned, 2.0, workers=2, run=run)
    assert asked == [(n, "closed", 2.0, None, 2, True) for n in (10, 20, 30)]  # 40 never ran
    findings = doc["findings"]
    assert findings["target"]["streams"] == 20 and findings["client"]["streams"] == 30
    assert [row["streams"] for row in doc["steps"]] == [10, 20, 30]
    assert doc["run"]["planned_streams"] == planned and doc["kind"] == "load-sweep"
    view = build_view(doc)
    assert [row.marks for row in view.steps] == [(), ("target",), ("client",)]
    page = render_sweep(doc)
    assert 'data-saturated="target"' in page and 'data-saturated="client"' in page
    assert "the target saturated at 20 streams" in page


def test_the_sweep_page_escapes_and_refuses_other_documents():
    steps = [step(1), step(2, itl=90.0)]
    doc = sweep_document("http://127.0.0.1:9", LoadSettings(profile="<b>x</b>"), steps, [{}, {}], judge(steps),
                         Criteria(), step_s=1.0, workers=0, started_at=0.0, planned=[1, 2])  # fmt: skip
    page = render_sweep(doc)
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    broken = copy.deepcopy(doc)
    broken["kind"] = "load-run"
    with pytest.raises(SweepError):
        build_view(broken)


def test_reports_renders_a_saved_sweep_and_refuses_a_load_run(tmp_path, capsys):
    steps = [step(1), step(2, itl=90.0)]
    doc = sweep_document("http://127.0.0.1:9", LoadSettings(), steps, [{}, {}], judge(steps), Criteria(),
                         step_s=1.0, workers=0, started_at=0.0, planned=[1, 2])  # fmt: skip
    saved = tmp_path / "sweep.json"
    saved.write_text(json.dumps(doc), encoding="utf-8")
    assert reports_main(["sweep", str(saved)]) == 0
    assert "the target saturated at 2 streams" in (tmp_path / "sweep.html").read_text()
    saved.write_text(json.dumps({"kind": "load-run"}), encoding="utf-8")
    assert reports_main(["sweep", str(saved)]) == 2
    assert "not a sweep result" in capsys.readouterr().err


def test_the_sweep_chart_carries_every_step_and_the_page_runs_only_its_own_scripts():
    steps = [step(10), step(20, itl=60.0), step(30, itl=90.0)]
    doc = sweep_document("http://127.0.0.1:9", LoadSettings(), steps, [{}] * 3, judge(steps), Criteria(),
                         step_s=1.0, workers=0, started_at=0.0, planned=[10, 20, 30])  # fmt: skip
    chart = build_view(doc).chart
    assert chart["data"] == [[10, 20, 30], [400.0, 800.0, 1200.0], [25.0, 60.0, 90.0], [60.0, 60.0, 60.0]]
    page = render_sweep(doc)
    block = re.search(r'<script type="application/json" id="chart-sweep-data">(.*?)</script>', page, re.S)
    assert json.loads(block.group(1))["data"] == chart["data"]
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert len(scripts) == 3 and "uPlot" in scripts[0] and "chartsRendered" in scripts[1]
    hashes = {f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts}
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1)
    assert set(re.search(r"script-src ([^;]*)", csp).group(1).split()) == hashes
