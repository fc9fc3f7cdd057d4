"""Capacity in every load result: events/s read, each client process's CPU, ceiling and headroom, and
whether the client itself was the bottleneck — from the stats, through the merge of workers, to the
result document, the command's summary and the HTML report."""

from __future__ import annotations

import copy

import pytest

from loadtests import build_result, summary
from loadtests._config import LoadSettings
from loadtests._stats import ClientFigures, LoadStats, capacity
from reports.load import build_view, render_load

MS = 1_000_000  # ns


def _process(name: str, cpu: list[float], events: int, lags_ms: list[float] = ()) -> LoadStats:
    """One client process's stats as it would ship them: CPU samples, loop-lag samples, events read."""
    stats = LoadStats(process=name)
    for value in cpu:
        stats.client_sample(cpu_percent=value)
    for lag in lags_ms:
        stats.client_sample(loop_lag_ns=int(lag * MS))
    stats.counters["events"] = events
    return stats


def test_one_process_ceiling_and_headroom_follow_its_cpu():
    stats = _process("solo", [30.0, 30.0], events=10_000, lags_ms=[0.5] * 50)
    cap = stats.capacity(10.0)
    assert cap["events"] == 10_000 and cap["events_per_s"] == 1000.0
    # 1,000 events/s at 30% of a core: about 3,000 events/s at the 90% limit, two thirds of it unused
    assert cap["ceiling_events_per_s"] == pytest.approx(3000.0)
    assert cap["headroom"] == pytest.approx(2 / 3, abs=1e-3)
    assert not cap["client_bound"] and "not the bottleneck" in cap["verdict"] and "67% headroom" in cap["verdict"]
    assert "90" in cap["basis"] and "mean CPU" in cap["basis"]
    (process,) = cap["processes"]
    assert process["process"] == "solo" and process["cpu_percent"] == {"mean": 30.0, "max": 30.0, "samples": 2}


@pytest.mark.parametrize(
    ("cpu", "lags_ms", "reason"),
    [
        ([60.0, 95.0], [0.5] * 50, "CPU reached 95%"),
        ([40.0, 40.0], [0.5] * 20 + [30.0] * 5, "event-loop lag p90 30"),  # sustained lag, not a one-off pause
    ],
)
def test_a_saturated_client_is_said_to_be_the_bottleneck(cpu, lags_ms, reason):
    cap = _process("busy", cpu, events=5_000, lags_ms=lags_ms).capacity(5.0)
    assert cap["client_bound"] and cap["processes"][0]["saturated"]
    assert "the client was the bottleneck" in cap["verdict"] and reason in cap["verdict"]


def test_a_single_long_pause_of_the_loop_is_not_saturation():
    cap = _process("spawn", [20.0], events=100, lags_ms=[0.5] * 60 + [120.0]).capacity(3.0)
    assert not cap["client_bound"]


def test_without_cpu_samples_the_headroom_is_unknown_not_invented():
    cap = _process("short", [], events=300).capacity(0.8)
    assert cap["ceiling_events_per_s"] is None and cap["headroom"] is None and not cap["client_bound"]
    assert "unknown" in cap["verdict"]


def test_workers_are_kept_apart_through_the_merge_and_summed():
    master = LoadStats(process="master")
    light, heavy = _process("w0", [20.0, 20.0], 2_000), _process("w1", [60.0, 60.0], 6_000)
    for part in (light, heavy):
        master.merge(part.take())
    assert light.counters["events"] == 0 and not light.clients  # take() starts afresh
    cap = master.capacity(2.0)
    by_name = {p["process"]: p for p in cap["processes"]}
    assert set(by_name) == {"w0", "w1"}  # the master read nothing and is not a client process
    assert by_name["w0"]["events_per_s"] == 1000.0 and by_name["w1"]["events_per_s"] == 3000.0
    assert by_name["w0"]["ceiling_events_per_s"] == pytest.approx(4500.0)
    assert by_name["w1"]["ceiling_events_per_s"] == pytest.approx(4500.0)
    assert cap["events_per_s"] == 4000.0 and cap["ceiling_events_per_s"] == pytest.approx(9000.0)
    assert cap["headroom"] == pytest.approx(1 - 4000 / 9000, abs=1e-3)
    # A second report from a worker adds to its own figures, not to a new process
    again = _process("w1", [60.0], 600)
    master.merge(again.take())
    assert master.capacity(2.0)["processes"][1]["events"] == 6_600


def test_a_merged_part_round_trips_with_its_processes():
    master = LoadStats(process="master")
    master.merge(_process("w0", [50.0], 100, [1.0]).take())
    copy_of = LoadStats(process="elsewhere")
    copy_of.merge(master.to_dict())  # what parts_dir writes and a later merge reads
    assert copy_of.capacity(1.0)["processes"] == master.capacity(1.0)["processes"]


def test_a_part_without_process_figures_counts_as_one_process():
    old = _process("old", [10.0], 50).to_dict()
    del old["clients"], old["process"]
    merged = LoadStats(process="m")
    merged.merge(old)
    (process,) = merged.capacity(1.0)["processes"]
    assert process["process"] == "unnamed" and process["events"] == 50 and process["cpu_percent"]["mean"] == 10.0


def test_a_process_that_read_nothing_leaves_the_others_ceiling_alone():
    figures = {"idle": ClientFigures([2, 10.0, 6.0], 0), "busy": ClientFigures([2, 80.0, 40.0], 4_000)}
    cap = capacity(figures, 2.0)
    assert cap["ceiling_events_per_s"] == pytest.approx(2000 * 90 / 40)


# --- the result document, the summary and the report -----------------------------------------


@pytest.fixture
def result() -> dict:
    settings = LoadSettings(users=4, run_time_s=2.0)
    master = LoadStats(process="master")
    master.merge(_process("w0", [30.0, 30.0], 3_000, [0.4] * 40).take())
    master.merge(_process("w1", [92.0, 97.0], 9_000, [0.4] * 40).take())
    return build_result(master, settings, target="http://127.0.0.1:1", shape=settings.load_shape(),
                        started_at=0.0, window_s=2.0, workers=2, tool="test")  # fmt: skip


def test_every_result_carries_capacity_and_the_summary_says_it(result):
    cap = result["capacity"]
    assert cap["events_per_s"] == 6000.0 and cap["client_bound"]
    text = summary(result)
    assert "capacity: 6,000 events/s read; the client was the bottleneck" in text
    assert "w1: 4,500 events/s" in text and "SATURATED: CPU reached 97%" in text
    assert "w0: 1,500 events/s, CPU mean 30.0% max 30.0%, headroom 67%" in text


def test_the_report_shows_capacity_per_process_and_marks_the_bottleneck(result):
    view = build_view(result)
    assert view.capacity is not None and view.capacity.client_bound
    assert [p.name for p in view.capacity.processes] == ["w0", "w1"]
    assert [p.saturated for p in view.capacity.processes] == [False, True]
    figure = next(f for f in view.figures if f.label == "client headroom")
    assert figure.bad and figure.note == "the client was the bottleneck"
    page = render_load(result)
    assert 'id="capacity"' in page and 'data-process="w1" class="over"' in page
    assert "the client was the bottleneck" in page


def test_a_report_of_a_result_without_capacity_still_renders(result):
    older = copy.deepcopy(result)
    del older["capacity"]
    assert build_view(older).capacity is None
    assert "carries no capacity section" in render_load(older)


def test_process_names_are_escaped_in_the_report(result):
    hostile = copy.deepcopy(result)
    hostile["capacity"]["processes"][0]["process"] = "<script>alert(1)</script>"
    page = render_load(hostile)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
