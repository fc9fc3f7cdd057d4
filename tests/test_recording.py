"""`mockllm record` and `recordings:` replay, over real servers on loopback.

The mock is its own upstream here: recorded through the recorder (a `mockllm record` process), every
dialect's answer must reach the client byte for byte as a direct request gets it, land in one file
named by the request's key with no secret in it, and come back from a second mock with another
seed, byte for byte and at the recorded pace. The reference server's upstream calls are recorded
and replayed the same way.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import httpx
import pytest
import yaml

from mockllm import ConfigError, MockLLMClient, ServerProcess, parse_config, start_listening, start_mock
from mockllm._recording import (
    SseSplitter,
    load_recording,
    load_recordings,
    recording_name,
    request_key,
    request_match,
)
from mockllm._replay import TEXT_OF, load_transcript

BEARER = "sk-test-123"
ANTHROPIC_KEY = "sk-ant-test-456"
GOOGLE_KEY = "AIzaSyTestKey1234567890"
PROMPT_SECRET = "sk-proj-abcdef1234567"
SECRETS = (BEARER, ANTHROPIC_KEY, GOOGLE_KEY, PROMPT_SECRET)
PACE_TOLERANCE_MS = 15.0  # each replayed event within this of its recorded time (a loaded 2-core machine)


@dataclass(frozen=True)
class Case:
    """One request: its dialect, path with query, JSON body and headers."""

    dialect: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def bare_path(self) -> str:
        return self.path.partition("?")[0]

    @property
    def query(self) -> str:
        return self.path.partition("?")[2]

    @property
    def content(self) -> bytes:
        return json.dumps(self.body).encode()

    @property
    def key(self) -> str:
        return request_key(self.dialect, "POST", self.bare_path, self.content, self.query)

    @property
    def file_name(self) -> str:
        model = request_match(self.dialect, "POST", self.bare_path, self.content, self.query)["model"]
        return recording_name(self.dialect, model, self.key)


def _openai_chat(text: str, stream: bool) -> tuple[str, dict[str, Any], dict[str, str]]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "stream": stream}
    return "/v1/chat/completions", body, {"authorization": f"Bearer {BEARER}"}


def _openai_responses(text: str, stream: bool) -> tuple[str, dict[str, Any], dict[str, str]]:
    body = {"model": "gpt-4o-mini", "input": text, "stream": stream}
    return "/v1/responses", body, {"authorization": f"Bearer {BEARER}"}


def _anthropic(text: str, stream: bool) -> tuple[str, dict[str, Any], dict[str, str]]:
    body = {
        "model": "claude-test",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
        "stream": stream,
    }
    return "/v1/messages", body, {"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"}


def _gemini(text: str, stream: bool) -> tuple[str, dict[str, Any], dict[str, str]]:
    method = "streamGenerateContent?alt=sse&" if stream else "generateContent?"
    body = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    return f"/v1beta/models/gemini-test:{method}key={GOOGLE_KEY}", body, {"x-goog-api-key": GOOGLE_KEY}


REQUESTS = {
    "openai-chat": _openai_chat,
    "openai-responses": _openai_responses,
    "anthropic-messages": _anthropic,
    "gemini": _gemini,
}
"""Per dialect, a request with the credentials a real client sends (the Gemini key also in `?key=`)."""


def case(dialect: str, stream: bool, prompt: str) -> Case:
    """A request in `dialect`, with an API key pasted in its prompt too."""
    return Case(dialect, *REQUESTS[dialect](f"{prompt} (my key is {PROMPT_SECRET})", stream))


CASES = {
    f"{dialect}-{'stream' if stream else 'body'}": case(dialect, stream, f"Tell me about SSE, {dialect} {stream}")
    for dialect in REQUESTS
    for stream in (True, False)
}


def post(base_url: str, request: Case, **headers: str) -> httpx.Response:
    return httpx.post(
        base_url + request.path, content=request.content, headers={**request.headers, **headers}, timeout=30
    )


def record_command(upstream: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "mockllm", "record", "--upstream", upstream, "--out", str(out), "--port", "0"]


# -- fixtures: the mock upstream, the recorder in front of it, a replaying mock ----------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[ServerProcess]:
    """The mock as the provider, slow enough that a replay's pace is measurable."""
    with start_mock("--answer-tokens", "12", seed=7, ttft_ms=100, itl_ms=20) as mock:
        yield mock


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recordings")


@pytest.fixture(scope="module")
def recorder(upstream: ServerProcess, out_dir: Path) -> Iterator[ServerProcess]:
    with start_listening(record_command(upstream.url, out_dir)) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def recorded(upstream: ServerProcess, recorder: ServerProcess) -> dict[str, tuple[httpx.Response, httpx.Response]]:
    """Every case through the recorder and directly, at once: (recorded, direct) responses."""
    with ThreadPoolExecutor(len(CASES) * 2) as pool:
        through = {name: pool.submit(post, recorder.url, request) for name, request in CASES.items()}
        direct = {name: pool.submit(post, upstream.url, request) for name, request in CASES.items()}
        return {name: (through[name].result(), direct[name].result()) for name in CASES}


@pytest.fixture(scope="module")
def replay(recorded: Any, out_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A mock with another seed and no delay of its own, answering from the recordings."""
    config = tmp_path_factory.mktemp("replay") / "mock.yaml"
    config.write_text(yaml.safe_dump({"recordings": {"dir": str(out_dir)}}))
    with start_mock("--config", str(config), seed=99, ttft_ms=0, itl_ms=0) as mock:
        yield mock


# -- recording -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_the_client_gets_the_upstream_bytes_and_one_file_is_written_named_by_the_key(
    name: str, recorded: Any, out_dir: Path
) -> None:
    through, direct = recorded[name]
    assert through.status_code == direct.status_code == 200, through.text
    assert through.content == direct.content and through.content
    assert through.headers["content-type"] == direct.headers["content-type"]
    request = CASES[name]
    path = out_dir / request.file_name
    assert path.exists(), sorted(p.name for p in out_dir.iterdir())
    recording = load_recording(path)
    assert recording is not None and recording.complete and recording.status == 200
    assert recording.key == request.key and recording.match["model"] in request.file_name
    assert recording.body == direct.content  # the frames are the bytes, exactly
    assert recording.framing == ("sse" if "stream" in name else "body")
    assert [frame.at_ms for frame in recording.frames] == sorted(frame.at_ms for frame in recording.frames)
    if recording.framing == "sse":  # the mock's pace: a TTFT of 100 ms, then 20 ms apart
        times = [frame.at_ms for frame in recording.frames]
        assert times[-1] - times[0] >= 150, times


def test_the_recorder_prints_each_file_and_only_files_named_by_key(recorded: Any, recorder: ServerProcess) -> None:
    output = recorder.output()
    for request in CASES.values():
        assert request.file_name in output
    assert all(line.startswith(("recorded ", "mockllm record listening")) for line in output.splitlines() if line)


def test_no_secret_is_written_and_credentials_are_not_in_the_key(recorded: Any, out_dir: Path) -> None:
    files = sorted(out_dir.glob("*.jsonl"))
    assert len(files) >= len(CASES)
    for path in files:
        text = path.read_text()
        for secret in SECRETS:
            assert secret not in text, f"{secret} in {path.name}"
        header = json.loads(text.splitlines()[0])
        names = {name for name, _ in header["headers"] + header["request_headers"]}
        assert not names & {"authorization", "x-api-key", "x-goog-api-key", "set-cookie", "cookie"}
        assert "[redacted]" in json.dumps(header["match"]["body"])  # the pasted key, replaced
        assert "key" not in header["match"].get("query", {})
    # The same request with other credentials is the same recording.
    request = CASES["gemini-stream"]
    other = request_key("gemini", "POST", request.bare_path, request.content, "alt=sse&key=AIzaSyOther0000000000")
    assert other == request.key


def test_recording_again_overwrites_and_another_prompt_adds_a_file(
    recorder: ServerProcess, out_dir: Path, recorded: Any
) -> None:
    first, second = case("openai-chat", False, "again one"), case("openai-chat", False, "again two")
    assert post(recorder.url, first).status_code == 200
    before = {path.name: path.stat().st_mtime_ns for path in out_dir.glob("*.jsonl")}
    assert first.file_name in before
    assert post(recorder.url, first).status_code == 200
    after = {path.name: path.stat().st_mtime_ns for path in out_dir.glob("*.jsonl")}
    assert set(after) == set(before) and after[first.file_name] > before[first.file_name]
    assert post(recorder.url, second).status_code == 200
    added = {path.name for path in out_dir.glob("*.jsonl")} - set(after)
    assert added == {second.file_name} != {first.file_name}
    assert not list(out_dir.glob("*.tmp"))  # written atomically: no temporary file is left


def test_other_paths_are_forwarded_and_not_recorded(
    upstream: ServerProcess, recorder: ServerProcess, out_dir: Path
) -> None:
    before = sorted(out_dir.iterdir())
    through = httpx.get(f"{recorder.url}/v1/models", headers={"authorization": f"Bearer {BEARER}"}, timeout=10)
    assert through.status_code == 200 and through.content == httpx.get(f"{upstream.url}/v1/models").content
    count = {"model": "claude-test", "messages": [{"role": "user", "content": "count me"}]}
    through = httpx.post(f"{recorder.url}/v1/messages/count_tokens", json=count, timeout=10)
    assert (
        through.status_code == 200
        and through.json() == httpx.post(f"{upstream.url}/v1/messages/count_tokens", json=count).json()
    )
    assert sorted(out_dir.iterdir()) == before


def test_a_streamed_recording_loads_as_a_replay_transcript(recorded: Any, out_dir: Path) -> None:
    for name in ("openai-chat-stream", "anthropic-messages-stream", "gemini-stream", "openai-responses-stream"):
        request = CASES[name]
        direct = recorded[name][1].content
        texts = []
        for raw in SseSplitter().feed(direct):
            event, data = _event(raw)
            try:
                payload = json.loads(data)
            except ValueError:
                continue
            texts.append(TEXT_OF[request.dialect](event, payload) or "")
        transcript = load_transcript(str(out_dir / request.file_name), "answers.default.replay.transcript")
        assert transcript.dialect == request.dialect and transcript.text == "".join(texts) != ""


def _event(raw: bytes) -> tuple[str | None, str]:
    from mockllm._recording import parse_event

    return parse_event(raw)


# -- replay --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_a_mock_with_another_seed_replays_the_recording_byte_for_byte(
    name: str, recorded: Any, replay: ServerProcess
) -> None:
    request = CASES[name]
    direct = recorded[name][1]
    again = post(replay.url, request)
    assert again.status_code == 200
    assert again.content == direct.content
    assert again.headers["content-type"] == direct.headers["content-type"]
    assert again.headers.get("x-request-id") == direct.headers.get("x-request-id")  # the recorded one
    marker = f"{request.dialect} {'stream' in name}"
    with MockLLMClient(replay.url) as admin:
        entries = [e for e in admin.journal(prompt_contains=marker) if e.get("recording") == request.file_name]
    assert entries and entries[-1]["outcome"] == "completed"


def test_without_recordings_the_other_seed_gives_other_bytes(recorded: Any, replay: ServerProcess) -> None:
    """The control: the replay's bytes come from the file, not from a plan that happens to agree."""
    request = case("openai-chat", False, "never recorded")
    assert post(replay.url, request).content != recorded["openai-chat-body"][1].content


def replay_arrivals(base_url: str, request: Case) -> tuple[bytes, list[float]]:
    """The body a client reads and when each of its events came (ms since the request was sent)."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        client.get("/v1/models")  # the connection is open: time the answer, not the handshake
        splitter, arrivals, body = SseSplitter(), [], b""
        start = perf_counter()
        with client.stream("POST", request.path, content=request.content, headers=request.headers) as response:
            for chunk in response.iter_raw():
                now = (perf_counter() - start) * 1000.0
                body += chunk
                arrivals += [now] * len(splitter.feed(chunk))
    return body, arrivals


PACE_ATTEMPTS = 5


@pytest.mark.parametrize("name", ["openai-chat-stream", "anthropic-messages-stream", "gemini-stream"])
def test_a_replay_keeps_the_recorded_pace(name: str, recorded: Any, replay: ServerProcess, out_dir: Path) -> None:
    """Each event is due at its recorded `at_ms` (the plan, exactly), never comes before it, and
    comes within the tolerance of it. A machine starved for CPU makes a write late, never early: the
    best of a few replays is the one that measures the mock rather than the machine."""
    request = CASES[name]
    recording = load_recording(out_dir / request.file_name)
    assert recording is not None
    recorded_ms = [frame.at_ms for frame in recording.frames]
    worst: list[float] = []
    for _ in range(PACE_ATTEMPTS):
        body, arrivals = replay_arrivals(replay.url, request)
        assert body == recording.body and len(arrivals) == len(recorded_ms)
        early = [(due, at) for due, at in zip(recorded_ms, arrivals, strict=True) if at < due - 1.0]
        assert not early, f"events before their recorded time (recorded ms, replayed ms): {early}"
        worst.append(max(at - due for due, at in zip(recorded_ms, arrivals, strict=True)))
        if worst[-1] <= PACE_TOLERANCE_MS:
            break
    assert min(worst) <= PACE_TOLERANCE_MS, f"the latest event of each replay, ms after its recorded time: {worst}"
    with MockLLMClient(replay.url) as admin:
        entry = [e for e in admin.journal() if e.get("recording") == request.file_name][-1]
    assert entry["planned"]["offsets_ms"] == pytest.approx(recorded_ms, abs=1e-6)


def read_until_cut(base_url: str, request: Case, **headers: str) -> tuple[bytes, bool]:
    """The body bytes a client gets, and whether the stream was cut before its end."""
    body = b""
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST", base_url + request.path, content=request.content, headers={**request.headers, **headers}
        ) as response,
    ):
        try:
            for chunk in response.iter_raw():
                body += chunk
        except httpx.RemoteProtocolError:
            return body, True
    return body, False


def test_a_fault_applies_to_a_replay(replay: ServerProcess, out_dir: Path) -> None:
    request = CASES["openai-chat-stream"]
    recording = load_recording(out_dir / request.file_name)
    assert recording is not None
    body, cut = read_until_cut(replay.url, request, **{"x-mock-fault": "disconnect-after=3"})
    assert cut and body == b"".join(frame.raw for frame in recording.frames[:3])
    body, cut = read_until_cut(replay.url, request, **{"x-mock-fault": "error-after=2"})
    prefix = b"".join(frame.raw for frame in recording.frames[:2])
    assert not cut and body.startswith(prefix) and b'"error"' in body[len(prefix) :]
    assert post(replay.url, request, **{"x-mock-fault": "429"}).status_code == 429


def test_missing_error_answers_an_unrecorded_request_with_the_dialect_404(replay: ServerProcess, out_dir: Path) -> None:
    with MockLLMClient(replay.url) as admin:
        config = admin.patch_config({"recordings": {"missing": "error"}})
        assert config["recordings"] == {"dir": str(out_dir), "missing": "error"}
        try:
            unrecorded = case("anthropic-messages", True, "not recorded anywhere")
            answer = post(replay.url, unrecorded)
            assert answer.status_code == 404
            assert answer.json()["type"] == "error" and "no recording" in answer.json()["error"]["message"]
            assert post(replay.url, CASES["anthropic-messages-stream"]).status_code == 200  # a recorded one still is
        finally:
            admin.patch_config({"recordings": {"missing": "plan"}})
        assert post(replay.url, unrecorded).status_code == 200  # `plan`: answered as usual


def test_an_answer_cut_upstream_is_recorded_incomplete_and_replayed_cut(
    recorder: ServerProcess, replay: ServerProcess, out_dir: Path
) -> None:
    request = case("openai-chat", True, "cut me short")
    body, cut = read_until_cut(recorder.url, request, **{"x-mock-fault": "disconnect-after=4"})
    assert cut and body
    recording = load_recording(out_dir / request.file_name)
    assert recording is not None and not recording.complete and recording.body == body
    with MockLLMClient(replay.url) as admin:
        admin.patch_config({"recordings": {"missing": "error"}})  # re-reads the directory
        try:
            again, cut_again = read_until_cut(replay.url, request)
        finally:
            admin.patch_config({"recordings": {"missing": "plan"}})
    assert cut_again and again == body


def test_a_json_array_stream_is_recorded_as_reads_and_replayed_byte_for_byte(
    upstream: ServerProcess, recorder: ServerProcess, replay: ServerProcess, out_dir: Path
) -> None:
    """Gemini's `streamGenerateContent` without `alt=sse`: one JSON array, chunked, no SSE events."""
    request = case("gemini", True, "an array stream")
    request = Case(request.dialect, request.path.replace("alt=sse&", ""), request.body, request.headers)
    through, direct = post(recorder.url, request), post(upstream.url, request)
    assert through.status_code == 200 and through.content == direct.content and direct.content.startswith(b"[")
    recording = load_recording(out_dir / request.file_name)
    assert recording is not None and recording.framing == "reads" and len(recording.frames) > 2
    assert recording.body == direct.content and "query" not in recording.match  # `key=` is all it had
    with MockLLMClient(replay.url) as admin:
        admin.patch_config({"recordings": {"missing": "plan"}})  # re-reads the directory
        again = post(replay.url, request)
        (entry,) = [e for e in admin.journal(prompt_contains="an array stream") if e.get("recording")]
    assert again.status_code == 200 and again.content == direct.content
    texts = [part["text"] for item in json.loads(direct.content) for part in item["candidates"][0]["content"]["parts"]]
    assert entry["answer"] == "".join(texts) != ""


def test_a_client_that_leaves_mid_answer_leaves_an_incomplete_recording(recorder: ServerProcess, out_dir: Path) -> None:
    request = case("anthropic-messages", True, "leaving early")
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", recorder.url + request.path, content=request.content, headers=request.headers) as answer,
    ):
        first = next(answer.iter_raw())
    path = out_dir / request.file_name
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    recording = load_recording(path)
    assert recording is not None and not recording.complete and recording.body.startswith(first)


def test_an_unreachable_upstream_is_a_502_and_no_recording(tmp_path: Path) -> None:
    with start_listening(record_command(f"http://127.0.0.1:{free_port()}", tmp_path)) as proxy:
        answer = post(proxy.url, case("openai-chat", False, "nobody home"))
    assert answer.status_code == 502 and "upstream" in answer.json()["error"]["message"]
    assert not list(tmp_path.iterdir())


# -- the config and the file format ----------------------------------------------------------------


def write_recording(folder: Path, lines: list[Any]) -> Path:
    path = folder / "bad.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


GOOD_HEADER = {
    "transcript": "mockllm/1",
    "dialect": "openai-chat",
    "recording": 1,
    "key": "0" * 64,
    "match": {},
    "status": 200,
    "headers": [["content-type", "text/event-stream"]],
}


@pytest.mark.parametrize(
    ("lines", "line", "problem"),
    [
        ([GOOD_HEADER, {"at_ms": 5, "data": "{}", "raw": "data: {}\n\n"}, {"at_ms": 4, "raw": "x"}], 3, '"at_ms"'),
        ([GOOD_HEADER, "not json"], 2, "not a JSON object"),
        ([{**GOOD_HEADER, "dialect": "cohere"}], 1, '"dialect"'),
        ([{**GOOD_HEADER, "key": "abc"}], 1, '"key"'),
        ([{**GOOD_HEADER, "status": 99}], 1, '"status"'),
        ([{**GOOD_HEADER, "transcript": "v0"}], 1, '"transcript"'),
        ([GOOD_HEADER, {"at_ms": 1, "event": 3, "raw": "data: x\n\n", "data": "x"}], 2, '"event"'),
        ([GOOD_HEADER, {"at_ms": 1, "raw_b64": "!!"}], 2, "base64"),
    ],
)
def test_a_bad_recording_is_a_config_error_naming_file_and_line(
    tmp_path: Path, lines: list[Any], line: int, problem: str
) -> None:
    path = write_recording(tmp_path, lines)
    with pytest.raises(ConfigError) as err:
        parse_config({"recordings": {"dir": str(tmp_path)}})
    assert err.value.key == "recordings.dir"
    assert f"{path}:{line}:" in str(err.value) and problem in str(err.value)


def test_the_recordings_section_is_checked_and_round_trips(tmp_path: Path) -> None:
    (tmp_path / "transcript.jsonl").write_text('{"transcript": "mockllm/1", "dialect": "openai-chat"}\n')
    config = parse_config({"recordings": {"dir": str(tmp_path), "missing": "error"}})
    assert config.recordings is not None and len(config.recordings) == 0  # a plain transcript is not a recording
    assert config.to_dict()["recordings"] == {"dir": str(tmp_path), "missing": "error"}
    assert parse_config(config.to_dict()) == config
    assert "recordings" not in parse_config({}).to_dict()
    assert load_recordings(tmp_path).find("openai-chat", "POST", "/v1/chat/completions", b"{}") is None
    for raw, key in [
        ({"dir": str(tmp_path / "none")}, "recordings.dir"),
        ({"dir": ""}, "recordings.dir"),
        ({"dir": str(tmp_path), "missing": "ignore"}, "recordings.missing"),
        ({"dir": str(tmp_path), "speed": 2}, "recordings.speed"),
    ]:
        with pytest.raises(ConfigError) as err:
            parse_config({"recordings": raw})
        assert err.value.key == key


def test_the_key_ignores_what_does_not_change_the_answer() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    key = request_key("openai-chat", "POST", "/v1/chat/completions", json.dumps(body).encode())
    same = [
        json.dumps(body, indent=2, sort_keys=True).encode(),  # whitespace and key order
        json.dumps({**body, "user": "run-1", "metadata": {"run": 2}, "store": True}).encode(),  # per-run fields
    ]
    for other in same:
        assert request_key("openai-chat", "POST", "/v1/chat/completions", other) == key
    assert request_key("openai-chat", "POST", "/v1/chat/completions?key=AIzaSySecret123456", json.dumps(body).encode())
    different = [
        ("openai-chat", "/v1/chat/completions", {**body, "stream": False}, None),
        ("openai-chat", "/v1/chat/completions", {**body, "stream_options": {"include_usage": True}}, None),
        ("openai-chat", "/v1/chat/completions", {**body, "model": "n"}, None),
        ("openai-completions", "/v1/chat/completions", body, None),
        ("openai-chat", "/v1/chat/completions", body, "alt=sse"),
    ]
    for dialect, path, changed, query in different:
        assert request_key(dialect, "POST", path, json.dumps(changed).encode(), query) != key
    name = recording_name("gemini", "models/gemini 2.0:flash", key)
    assert name == f"gemini-gemini_2.0_flash-{key[:16]}.jsonl"


def test_the_splitter_keeps_every_byte_whatever_the_reads() -> None:
    stream = b": ping\n\nevent: a\r\ndata: 1\r\n\r\n\ndata: 2\ndata: 3\n\ndata: tail"
    for size in (1, 2, 3, 7, len(stream)):
        splitter, events = SseSplitter(), []
        for start in range(0, len(stream), size):
            events += splitter.feed(stream[start : start + size])
        assert events == [b": ping\n\n", b"event: a\r\ndata: 1\r\n\r\n", b"\ndata: 2\ndata: 3\n\n"]
        assert splitter.rest() == b"data: tail"
    assert _event(b"event: a\r\ndata: 1\r\n\r\n") == ("a", "1") and _event(b"\ndata: 2\ndata: 3\n\n") == (None, "2\n3")


# -- the reference server's upstream calls -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RefServer:
    """`python -m reference_server` serving `start-stream` against the LLM at `llm_base_url`."""

    def __init__(self, llm_base_url: str, workdir: Path) -> None:
        settings = {
            "jwt_secret": "test-secret-of-at-least-32-bytes-for-hs256",
            "llm_base_url": llm_base_url,
            "llm_api_key": BEARER,
            "llm_timeout_s": 5.0,
            "profiles": ["start-stream"],
        }
        (workdir / "settings.yaml").write_text(yaml.safe_dump(settings))
        self.base_url = f"http://127.0.0.1:{free_port()}"
        command = [sys.executable, "-m", "reference_server", "--config", "settings.yaml"]
        command += ["--port", self.base_url.rsplit(":", 1)[1]]
        env = {k: v for k, v in os.environ.items() if not k.startswith("REFSERVER_")}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        self.log = workdir / "server.log"
        with self.log.open("w") as sink:
            self.process = subprocess.Popen(command, cwd=workdir, stdout=sink, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.base_url}/schema/openapi.json", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the reference server did not start:\n{self.log.read_text()}")

    def turn(self, prompt: str) -> list[str]:
        """One chat turn: the tokens it streams."""
        with httpx.Client(base_url=self.base_url, timeout=20) as http:
            started = http.post("/chat/start", json={"prompt": prompt, "modelId": "mock-model", "userId": "u-1"})
            assert started.status_code == 200, started.text
            tokens = []
            with http.stream("GET", "/chat/stream", params={"sessionId": started.json()["sessionId"]}) as response:
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        event = json.loads(line[5:])
                        assert event.get("type") != "error", event
                        if event.get("type") == "token":
                            tokens.append(event["content"])
            return tokens

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def test_the_reference_servers_upstream_calls_are_recorded_and_replay(upstream: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "refserver-recordings"
    with start_listening(record_command(upstream.url, out)) as proxy:
        (tmp_path / "a").mkdir()
        server = RefServer(f"{proxy.url}/v1", tmp_path / "a")
        try:
            recorded_tokens = server.turn("What is SSE?")
        finally:
            server.stop()
    assert recorded_tokens
    (file,) = out.glob("*.jsonl")
    assert file.name.startswith("openai-chat-mock-model-") and BEARER not in file.read_text()
    recording = load_recording(file)
    assert recording is not None and recording.complete and recording.framing == "sse"
    config = tmp_path / "replay.yaml"
    config.write_text(yaml.safe_dump({"recordings": {"dir": str(out), "missing": "error"}}))
    with start_mock("--config", str(config), seed=1234, ttft_ms=0, itl_ms=0) as replaying:
        (tmp_path / "b").mkdir()
        server = RefServer(f"{replaying.url}/v1", tmp_path / "b")
        try:
            replayed_tokens = server.turn("What is SSE?")
        finally:
            server.stop()
        with MockLLMClient(replaying.url) as admin:
            (entry,) = admin.journal(prompt_contains="What is SSE?")
    assert replayed_tokens == recorded_tokens
    assert entry["recording"] == file.name and entry["outcome"] == "completed"


# -- the command line --------------------------------------------------------------------------------


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mockllm", *args], capture_output=True, text=True, timeout=60)


def test_record_help_and_clear_errors(tmp_path: Path) -> None:
    shown = run("record", "--help")
    assert shown.returncode == 0 and "--upstream" in shown.stdout and "--out" in shown.stdout
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    failed = run("record", "--upstream", "http://127.0.0.1:9", "--out", str(blocker / "sub"), "--port", "0")
    assert failed.returncode == 2 and "cannot write recordings to" in failed.stderr and str(blocker) in failed.stderr
    failed = run("record", "--upstream", "ftp://example.com", "--out", str(tmp_path), "--port", "0")
    assert failed.returncode == 2 and "--upstream 'ftp://example.com'" in failed.stderr
    assert run("record", "--out", str(tmp_path)).returncode == 2  # --upstream is required
