"""GuideLLM as an outside measuring instrument: run it against an OpenAI chat target and read its report.

GuideLLM (PyPI `guidellm`, written against 0.8.1) pulls torch and CUDA wheels (about 6 GB), so it lives
in a venv of its own and runs as a subprocess; nothing here imports it.  Its synthetic data needs a
Hugging Face tokenizer to cut prompts to length, and the hub is out of reach here, so we hand it a
local one (`tokenizer_json`) that cuts text exactly as mockllm counts it: "128 prompt tokens" then
means 128 to both, and the mock's usage shows 134 (its 3 + 3 chat-framing tokens on top).

What its report calls what (guidellm/schemas/base/request_stats.py, times from `time.time()`, so
wall clock; request start is stamped when httpx starts writing the request headers):

    TTFT = t_first_token - t_start                       one value per request
    ITL  = (t_last_token - t_first_token) / (N - 1)      per-request mean gap, weighted by N - 1
    TPOT = (t_last_token - t_start) / N                  TTFT included, weighted by N

N is the server's usage `completion_tokens`.  GuideLLM's ITL is what vLLM and this project call
TPOT; its TPOT has no counterpart here.  It records no single gap, so there is no pooled gap
distribution to compare with our ITL.  Percentiles are weighted nearest-rank over exact values.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Collection
from pathlib import Path
from typing import Any

from bench._runtime import available_cpus
from mockllm import MAX_PIECE_CHARS, PRETOKEN_PATTERN, tokenize

ENV_VAR = "GUIDELLM"
DEFAULT_EXECUTABLE = Path("/tmp/guidellm-venv/bin/guidellm")
STARTUP_ALLOWANCE_S = 180.0  # imports torch, then spawns its worker processes: ~30-60 s on 2 busy cores
REQUESTS_RUN_TIMEOUT_S = 600.0  # a run bounded by a request count has no duration to scale from
PERCENTILES = ("p50", "p90", "p95", "p99")

# Our name -> GuideLLM's metric; the names match, the definitions do not (see the module docstring).
METRICS = {
    "ttft_ms": "time_to_first_token_ms",
    "itl_ms": "inter_token_latency_ms",
    "tpot_ms": "time_per_output_token_ms",
}
# The hub must never be asked: offline, a lookup hangs on retries before it fails.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


class GuideLLMError(RuntimeError):
    """GuideLLM failed, timed out, or wrote a report we cannot read."""


def guidellm_available() -> str | None:
    """Path of a guidellm executable: $GUIDELLM, else the benchmark venv's, else PATH; None if absent."""
    for candidate in (os.environ.get(ENV_VAR), str(DEFAULT_EXECUTABLE)):
        if candidate and os.access(candidate, os.X_OK) and Path(candidate).is_file():
            return candidate
    return shutil.which("guidellm")


def run_guidellm(
    target_url: str,
    concurrency: int,
    requests_or_seconds: int | float,
    output_tokens: int,
    prompt_tokens: int,
    workdir: str | Path,
    *,
    model: str = "mock-gpt",
    worker_processes: int | None = None,
    cpus: Collection[int] | None = None,
    timeout_s: float | None = None,
    executable: str | None = None,
) -> dict[str, Any]:
    """Benchmark `target_url` at a fixed concurrency and return GuideLLM's figures (`parse_guidellm_report`).

    `requests_or_seconds`: an int stops after that many requests, a float after that many seconds
    of load (start-up not counted).  `worker_processes` defaults to the CPUs GuideLLM may use: its
    own default of 10 spawned processes costs half a minute of start-up on 2 cores.  `cpus` pins it
    (and its workers) so it does not share a core with the server under test.
    """
    exe = executable or guidellm_available()
    if exe is None:
        venv = DEFAULT_EXECUTABLE.parent.parent
        raise GuideLLMError(f"no guidellm executable: set ${ENV_VAR}, or `pip install guidellm` into {venv}")
    work = Path(workdir).resolve()
    tokenizer_dir = work / "tokenizer"
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    (tokenizer_dir / "tokenizer.json").write_text(json.dumps(tokenizer_json()))
    (tokenizer_dir / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG))
    report_path, log_path, scenario_path = work / "report.json", work / "guidellm.log", work / "scenario.json"
    report_path.unlink(missing_ok=True)
    spec = scenario(
        target_url,
        concurrency,
        requests_or_seconds,
        output_tokens,
        prompt_tokens,
        tokenizer=tokenizer_dir,
        report=report_path,
        model=model,
    )
    scenario_path.write_text(json.dumps(spec, indent=2))

    command = [exe, "run", "--scenario", str(scenario_path), "--disable-console-interactive"]
    workers = worker_processes or len(cpus or available_cpus()) or 1
    env = {**os.environ, **OFFLINE_ENV, "GUIDELLM__MAX_WORKER_PROCESSES": str(workers)}
    if timeout_s is None:
        timeout_s = STARTUP_ALLOWANCE_S + (
            2 * requests_or_seconds if isinstance(requests_or_seconds, float) else REQUESTS_RUN_TIMEOUT_S
        )
    with log_path.open("wb") as log:
        # Its own session, so a timeout can end GuideLLM and every worker it spawned, and nothing else.
        proc = subprocess.Popen(
            command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        if cpus:  # set before its workers are spawned (after its imports, seconds later): they inherit it
            with contextlib.suppress(OSError):
                os.sched_setaffinity(proc.pid, set(cpus))
        try:
            returncode = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _end_session(proc)
            raise GuideLLMError(f"guidellm timed out after {timeout_s:.0f} s; {_log_tail(log_path)}") from None
        except BaseException:  # e.g. Ctrl-C: leave no load generator running behind us
            _end_session(proc)
            raise
    if returncode != 0:
        raise GuideLLMError(f"guidellm exited with {returncode}: {_log_tail(log_path)}")
    try:
        data = json.loads(report_path.read_text())
    except (OSError, ValueError) as exc:
        raise GuideLLMError(f"guidellm wrote no readable report at {report_path}: {exc}") from exc
    return {**parse_guidellm_report(data), "command": command}


def scenario(
    target_url: str,
    concurrency: int,
    requests_or_seconds: int | float,
    output_tokens: int,
    prompt_tokens: int,
    *,
    tokenizer: str | Path,
    report: str | Path,
    model: str = "mock-gpt",
) -> dict[str, Any]:
    """The GuideLLM scenario file: one concurrent benchmark on fixed-length synthetic chat requests.

    A scenario file rather than flags: its `kind=...,key=value` flags cannot nest and are easy to
    misquote.  `tokenizer` is a directory holding `tokenizer.json`; `report` is the JSON report to write.
    """
    return {
        "metadata": {"name": "sse-chat-harness", "description": "fixed concurrency, fixed token counts"},
        "spec": {
            "backend": {
                "kind": "openai_http",
                "target": target_url,
                "model": model,
                "request_format": "/v1/chat/completions",
            },
            "profile": {"kind": "concurrent", "streams": concurrency},
            "constraints": [_stop_constraint(requests_or_seconds)],
            "tokenizer": {"kind": "huggingface_auto", "model": str(tokenizer)},
            # It asks for the output length as max_completion_tokens (+ ignore_eos); the mock cuts its
            # answer there, so the answer must be at least that long (mockllm --answer-tokens).
            "data": [{"kind": "synthetic_text", "prompt_tokens": prompt_tokens, "output_tokens": output_tokens}],
            "outputs": [{"kind": "json", "path": str(report)}],
        },
    }


def _stop_constraint(requests_or_seconds: int | float) -> dict[str, Any]:
    if isinstance(requests_or_seconds, bool) or not isinstance(requests_or_seconds, int | float):
        raise TypeError(f"requests_or_seconds: an int (requests) or a float (seconds), not {requests_or_seconds!r}")
    if requests_or_seconds <= 0:
        raise ValueError(f"requests_or_seconds must be > 0, got {requests_or_seconds!r}")
    if isinstance(requests_or_seconds, int):
        return {"kind": "max_requests", "count": requests_or_seconds}
    return {"kind": "max_duration", "seconds": requests_or_seconds}


def parse_guidellm_report(data: dict[str, Any]) -> dict[str, Any]:
    """Our summary of a GuideLLM JSON report holding one benchmark.

    Latencies are over successful requests only (errored ones stay out of them, as our reports
    keep them), in ms as GuideLLM wrote them; `count` is GuideLLM's weight total, so for ITL and
    TPOT it counts tokens, not requests.  `requests` counts every request GuideLLM started;
    `incomplete` ones were still streaming when the run stopped and were cancelled.
    """
    try:
        benchmarks = data["benchmarks"]
        if len(benchmarks) != 1:
            raise GuideLLMError(f"expected one benchmark in the report, found {len(benchmarks)}")
        metrics = benchmarks[0]["metrics"]
        totals = metrics["request_totals"]
        summary: dict[str, Any] = {
            ours: _distribution(metrics[theirs]["successful"]) for ours, theirs in METRICS.items()
        }
        summary.update(
            requests=totals["total"],
            completed=totals["successful"],
            errors=totals["errored"],
            incomplete=totals["incomplete"],
            duration_s=benchmarks[0]["duration"],
            # Below the asked concurrency, or with warnings, GuideLLM itself could not keep the load up.
            concurrency_mean=metrics["request_concurrency"]["successful"]["mean"],
            warnings=[warning["message"] for warning in benchmarks[0].get("warnings") or ()],
            version=data["metadata"]["guidellm_version"],
        )
    except (KeyError, TypeError, IndexError) as exc:
        raise GuideLLMError(f"not a GuideLLM benchmark report: missing {exc}") from exc
    return summary


def _distribution(summary: dict[str, Any]) -> dict[str, float | int | None]:
    if not summary["count"]:  # GuideLLM writes zeros, not nulls, for an empty distribution
        return dict.fromkeys((*PERCENTILES, "mean"), None) | {"count": 0}
    return {p: summary["percentiles"][p] for p in PERCENTILES} | {"mean": summary["mean"], "count": summary["count"]}


def _end_session(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " | ".join(line.strip() for line in text[-lines:]) or "empty log"


# --- a local tokenizer that counts as mockllm counts ------------------------------------------------

TOKENIZER_CONFIG = {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "<unk>", "model_max_length": 10**9}


def tokenizer_json() -> dict[str, Any]:
    """A Hugging Face `tokenizer.json` whose token boundaries are mockllm's.

    Two regex splits repeat mockllm's tokenizer (GPT-2-style pieces, then cuts of MAX_PIECE_CHARS
    characters); a BPE model with `ignore_merges` then maps each piece found in its vocabulary to
    one id.  The vocabulary holds every piece of Faker's English words, which is what GuideLLM's
    synthetic prompts are made of; any other piece falls back to one token per UTF-8 byte, so
    decoding always gives the text back, only the count can then drift.
    """
    vocab = {f"<0x{byte:02X}>": byte for byte in range(256)}
    vocab["<unk>"] = len(vocab)
    for piece in sorted(_vocabulary_pieces()):
        vocab.setdefault(piece, len(vocab))
    split = {"type": "Split", "behavior": "Isolated", "invert": False}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                split | {"pattern": {"Regex": PRETOKEN_PATTERN.pattern}},
                # Oniguruma (the tokenizers crate's regex engine) has no `(?s)`; `[\s\S]` is any character.
                split | {"pattern": {"Regex": rf"[\s\S]{{1,{MAX_PIECE_CHARS}}}"}},
            ],
        },
        "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": True,
            "ignore_merges": True,  # a piece in the vocabulary is one token, with no merges needed
            "vocab": vocab,
            "merges": [],
        },
    }


def _vocabulary_pieces() -> set[str]:
    from faker import Faker  # imported here: it takes a while and only a run needs it

    pieces = {"\n", "\n\n", " ", "  "}
    for word in Faker("en_US").get_words_list():
        for form in (word, word.capitalize(), " " + word, " " + word.capitalize()):
            pieces.update(tokenize(form))
    for number in range(1000):  # GuideLLM prefixes each prompt with counters: "1 334 m0 ..."
        pieces.update((str(number), f" {number}"))
    for code in range(33, 127):
        pieces.update((chr(code), " " + chr(code)))
    return pieces
