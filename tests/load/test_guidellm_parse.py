"""bench._guidellm: reading a real GuideLLM report, the scenario it is given, the local tokenizer, the subprocess edge.

GuideLLM itself is not run here (its venv is 6 GB and a run takes a minute); a stand-in script plays
its command line to test what we do around it: files in, report out, failures and timeouts.
"""

from __future__ import annotations

import json
import stat
import sys
import time
from pathlib import Path

import pytest
from faker import Faker

from bench._guidellm import (
    GuideLLMError,
    guidellm_available,
    parse_guidellm_report,
    run_guidellm,
    scenario,
    tokenizer_json,
)
from mockllm import PRETOKEN_PATTERN as _PRETOKEN
from mockllm import tokenize

SAMPLE = Path(__file__).resolve().parents[2] / "bench" / "guidellm_sample.json"


@pytest.fixture
def report() -> dict:
    return json.loads(SAMPLE.read_text())


def test_parse_reads_successful_latencies_counts_and_version(report: dict) -> None:
    summary = parse_guidellm_report(report)

    assert summary["ttft_ms"]["p50"] == pytest.approx(330.3096294403076)
    assert summary["ttft_ms"]["p99"] == pytest.approx(4245.92399597168)
    assert summary["ttft_ms"]["count"] == 291  # successful requests only
    assert summary["itl_ms"]["p50"] == pytest.approx(21.194170391748823)
    assert summary["tpot_ms"]["p99"] == pytest.approx(77.34696194529533)
    assert summary["tpot_ms"]["count"] == 291 * 64  # weighted by output tokens
    assert (summary["requests"], summary["completed"], summary["errors"], summary["incomplete"]) == (313, 291, 2, 20)
    assert summary["version"] == "0.8.1"
    assert summary["duration_s"] == 15.0
    assert summary["concurrency_mean"] == pytest.approx(51.362508376439415)
    assert summary["warnings"] == ["p95 root dispatch delay was 5.128s over 313 samples (threshold 0.200s)."]


def test_parse_keeps_guidellm_names_apart(report: dict) -> None:
    """GuideLLM's TPOT includes TTFT, its ITL does not: swapping them would pass unnoticed otherwise."""
    summary = parse_guidellm_report(report)
    assert summary["itl_ms"]["mean"] < summary["tpot_ms"]["mean"]


def test_parse_gives_none_for_an_empty_distribution(report: dict) -> None:
    successful = report["benchmarks"][0]["metrics"]["time_to_first_token_ms"]["successful"]
    successful.update(count=0, mean=0.0, percentiles=dict.fromkeys(successful["percentiles"], 0.0))

    assert parse_guidellm_report(report)["ttft_ms"] == {
        "p50": None,
        "p90": None,
        "p95": None,
        "p99": None,
        "mean": None,
        "count": 0,
    }


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: r.update(benchmarks=r["benchmarks"] * 2), "expected one benchmark"),
        (lambda r: r.pop("benchmarks"), "missing 'benchmarks'"),
        (lambda r: r["benchmarks"][0]["metrics"].pop("inter_token_latency_ms"), "inter_token_latency_ms"),
    ],
)
def test_parse_refuses_what_is_not_one_benchmark(report: dict, damage, message: str) -> None:
    damage(report)
    with pytest.raises(GuideLLMError, match=message):
        parse_guidellm_report(report)


def test_scenario_stops_on_requests_for_an_int_and_seconds_for_a_float() -> None:
    paths = {"tokenizer": "/w/tokenizer", "report": "/w/report.json"}
    by_count = scenario("http://127.0.0.1:1", 10, 200, 64, 128, **paths)["spec"]
    by_time = scenario("http://127.0.0.1:1", 10, 20.0, 64, 128, **paths)["spec"]

    assert by_count["constraints"] == [{"kind": "max_requests", "count": 200}]
    assert by_time["constraints"] == [{"kind": "max_duration", "seconds": 20.0}]
    assert by_count["profile"] == {"kind": "concurrent", "streams": 10}
    assert by_count["data"] == [{"kind": "synthetic_text", "prompt_tokens": 128, "output_tokens": 64}]
    assert (by_count["tokenizer"]["model"], by_count["outputs"][0]["path"]) == ("/w/tokenizer", "/w/report.json")
    for bad in (True, 0, -1.0, "20"):
        with pytest.raises((TypeError, ValueError)):
            scenario("http://127.0.0.1:1", 10, bad, 64, 128, **paths)


def test_tokenizer_has_one_token_for_every_mock_token_of_faker_prose() -> None:
    """GuideLLM cuts prompts with this tokenizer; each vocabulary miss would cost extra byte tokens."""
    tok = tokenizer_json()
    vocab = tok["model"]["vocab"]
    assert tok["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] == _PRETOKEN.pattern
    faker = Faker()
    faker.seed_instance(7)
    # GuideLLM's prompts: a counter prefix, then Faker's text.
    text = "".join(f"1 {i * 37} m0 " + faker.text(max_nb_chars=600) for i in range(50))
    missing = {piece for piece in tokenize(text) if piece not in vocab}
    assert not missing
    assert len(set(vocab.values())) == len(vocab)


# --- the subprocess edge, with a stand-in for the guidellm command ---------------------------------------


def _stand_in(tmp_path: Path, body: str) -> str:
    script = tmp_path / "guidellm"
    script.write_text(f"#!{sys.executable}\nimport json, sys, time\nfrom pathlib import Path\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_run_passes_the_scenario_and_reads_the_report_it_names(tmp_path: Path) -> None:
    exe = _stand_in(
        tmp_path,
        f"spec = json.loads(Path(sys.argv[3]).read_text())['spec']\n"
        f"assert Path(spec['tokenizer']['model'], 'tokenizer.json').is_file()\n"
        f"Path(spec['outputs'][0]['path']).write_text(Path({str(SAMPLE)!r}).read_text())",
    )
    result = run_guidellm("http://127.0.0.1:9", 100, 15.0, 64, 128, tmp_path / "work", executable=exe)

    assert result["errors"] == 2
    assert result["command"][:3] == [exe, "run", "--scenario"]
    written = json.loads((tmp_path / "work" / "scenario.json").read_text())["spec"]
    assert written["backend"]["target"] == "http://127.0.0.1:9"


def test_run_reports_the_log_tail_when_guidellm_fails(tmp_path: Path) -> None:
    exe = _stand_in(tmp_path, "print('RuntimeError: Backend validation request failed.'); sys.exit(1)")
    with pytest.raises(GuideLLMError, match="exited with 1: RuntimeError: Backend validation request failed"):
        run_guidellm("http://127.0.0.1:9", 10, 100, 64, 128, tmp_path / "work", executable=exe)


def test_run_ends_guidellm_at_its_timeout(tmp_path: Path) -> None:
    exe = _stand_in(tmp_path, "print('started', flush=True); time.sleep(60)")
    started = time.monotonic()
    with pytest.raises(GuideLLMError, match="timed out after 1 s; started"):
        run_guidellm("http://127.0.0.1:9", 10, 100, 64, 128, tmp_path / "work", executable=exe, timeout_s=1.0)
    assert time.monotonic() - started < 30


def test_available_prefers_the_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exe = _stand_in(tmp_path, "")
    monkeypatch.setenv("GUIDELLM", exe)
    assert guidellm_available() == exe
