"""A whole sweep against the real mock, configured to slow down under load: the target saturates
first, the client does not, the sweep stops there (`--stop-at-target`: a Locust start per step is
the cost of a step, so the test runs two of its three), and the JSON and HTML results say so."""

from __future__ import annotations

import json

from loadtests.__main__ import main
from mockllm import start_mock


def test_a_sweep_finds_the_mock_saturating_before_the_client(tmp_path, capsys):
    # On a shared machine a client process can wait for a core whatever its own load, which the
    # loop-lag rule rightly calls saturation (test_sweep.py tests it); here it is set out of the way.
    # Every stream's ITL grows with the streams open when it starts: x6 at 8 streams and beyond. At 1
    # stream the ITL is the configured 20 ms; at 5, about 3.5 times that; the client reads < 300 events/s.
    config = tmp_path / "slow.yaml"
    config.write_text("timing:\n  load: {max_streams: 8, itl_factor: 6.0}\n", encoding="utf-8")
    with start_mock("--config", str(config), ttft_ms=20, itl_ms=20, log=tmp_path / "mock.log") as mock:
        status = main(["sweep", "--target", mock.url, "--from", "1", "--to", "9", "--step", "4", "--step-time", "2",
                       "--max-tokens", "8", "--mock", mock.url, "--check-every", "2", "--stop-at-target",
                       "--lag-limit-ms", "100", "--steps-dir", str(tmp_path / "steps"),
                       "--json", str(tmp_path / "sweep.json"), "--html", str(tmp_path / "sweep.html")])  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0, out
    doc = json.loads((tmp_path / "sweep.json").read_text())
    steps, findings = doc["steps"], doc["findings"]
    assert [s["streams"] for s in steps] == [1, 5] and doc["run"]["planned_streams"] == [1, 5, 9]
    for s in steps:
        assert s["failed"] == 0 and s["events_per_s"] > 0 and s["capacity"]["events_per_s"] == s["events_per_s"]
        assert s["itl_p50_ms"] is not None and s["ttft_p99_ms"] is not None and s["cpu_max"] is not None
    # The mock's slow-down is real: at 5 streams each stream reads well under its 1-stream rate.
    assert steps[1]["events_per_stream_s"] < 0.6 * steps[0]["events_per_stream_s"]
    assert steps[1]["itl_p50_ms"] > 2 * steps[0]["itl_p50_ms"]
    assert findings["target"]["reached"] and findings["target"]["streams"] == 5, findings
    assert not findings["client"]["reached"], findings
    assert findings["verdict"].startswith("the target saturated first, at 5 streams")
    assert "the target saturated at 5 streams" in out and "the client did not saturate" in out
    kept = json.loads((tmp_path / "steps" / "step-02-5.json").read_text())  # each step's own whole result
    assert kept["kind"] == "load-run" and kept["capacity"] == steps[1]["capacity"]
    assert (tmp_path / "steps" / "step-01-1.html").is_file()
    page = (tmp_path / "sweep.html").read_text()
    assert 'data-saturated="target"' in page and "the target saturated at 5 streams" in page
