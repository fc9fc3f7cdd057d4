"""The dialect registry: a dialect is one module and one `register(...)` line, and nothing else.

A throw-away dialect, written to a module file of its own and registered with one line, is served
by a real in-process server (its chat route streamed, its own endpoint and a route it shares with
OpenAI by a claim), read back from a capture by the replay loader, benchmarked through its probe by
the benchmarks' stream client, and names its load profile; afterwards the five built-ins are all
there is again.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from bench._stream_client import run_latency, wires
from mockllm import MockServer, parse_config
from mockllm._replay import load_transcript
from mockllm.dialects import DIALECTS, Dialect, register, unregister
from mockllm.dialects.openai_chat import OpenAIChat

BUILTINS = ("openai-chat", "openai-responses", "openai-completions", "anthropic-messages", "gemini")

# The whole dialect: what a team adding a provider writes, and all it writes.
ECHO_MODULE = '''
"""A throw-away dialect: `POST /echo/v1/say {"say": TEXT}` streams `data: {"said": CHUNK}` events."""

from __future__ import annotations

import re
from pathlib import Path

from mockllm import ChatRequest, Message, RequestError
from mockllm.dialects import HttpResponse, Route, StreamFrames, StreamProbe, TextFrames, dumps

JSON = (("content-type", "application/json"),)


class Echo:
    name = "test-echo"
    stream_headers = (("content-type", "text/event-stream"),)
    load_profile = Path(__file__).with_name("echo-load.yaml")
    probe = StreamProbe("/echo/v1/say", lambda prompt: {"say": prompt}, re.compile(rb'"said":"(?!")'), b"data: [END]")

    def __init__(self):
        self.routes = (
            Route("POST", "/echo/v1/say"),
            Route("GET", "/echo/v1/voices", self.voices),
            Route("GET", "/v1/models", self.voices, self.claims),  # OpenAI's, unless the caller is ours
        )

    def parse(self, call):
        body = call.json_object()
        if not isinstance(body.get("say"), str):
            raise RequestError("say", "'say' must be a string")
        request = ChatRequest(model="echo", messages=(Message("user", body["say"]),), stream=body.get("stream", True))
        return request, {}

    def stream_frames(self, plan, enc):
        return StreamFrames(
            head=b"",
            head_on_arrival=False,
            chunks=TextFrames(b'data: {"said":', b"}\\n\\n", plan.chunks),
            tail=b"data: [END]\\n\\n",
            error=b'data: {"error":true}\\n\\n',
            malformed=b'data: {"said":"\\n\\n',
        )

    def response(self, plan, enc):
        return HttpResponse(200, JSON, dumps({"said": plan.answer}))

    def error(self, status, message=None, *, param=None, retry_after=None, call=None):
        return HttpResponse(status, JSON, dumps({"error": message or "echo error", "param": param}))

    def text_of(self, event, payload):
        return payload.get("said")

    def claims(self, call):
        return "x-echo" in call.headers

    def voices(self, call, config):
        return HttpResponse(200, JSON, dumps({"voices": list(config.models)}))
'''

CAPTURE = [
    {"transcript": "mockllm/1", "dialect": "test-echo", "note": "three chunks, a keep-alive and the end"},
    {"at_ms": 0.0, "data": json.dumps({"keepalive": True})},
    {"at_ms": 4.0, "data": json.dumps({"said": "Echo "})},
    {"at_ms": 6.0, "data": json.dumps({"said": "says "})},
    {"at_ms": 9.5, "data": json.dumps({"said": "hello."})},
    {"at_ms": 10.0, "data": "[END]"},
]


def _import_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def echo(tmp_path: Path) -> Iterator[Dialect]:
    """The throw-away dialect, imported from its own file and registered; unregistered after."""
    (tmp_path / "echo_dialect.py").write_text(ECHO_MODULE)
    (tmp_path / "echo-load.yaml").write_text("name: test-echo\n")
    module = _import_file(tmp_path / "echo_dialect.py")
    dialect = register(module.Echo())  # the one line
    try:
        yield dialect
    finally:
        unregister(dialect.name)
    assert DIALECTS.names() == BUILTINS


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    path = tmp_path / "echo-capture.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in CAPTURE))
    return path


def test_the_builtins_are_registered_in_order_with_unique_names_and_their_load_profiles() -> None:
    names = [dialect.name for dialect in DIALECTS]
    assert tuple(names) == BUILTINS == DIALECTS.names()
    assert len(set(names)) == len(names)
    for dialect in DIALECTS:
        assert dialect.load_profile is None or dialect.load_profile.is_file(), dialect.name
    profiles = {dialect.name: dialect.load_profile for dialect in DIALECTS}
    assert profiles["openai-completions"] is None
    assert [profiles[name].name for name in BUILTINS if profiles[name]] == [  # type: ignore[union-attr]
        "openai-chat.yaml",
        "openai-responses.yaml",
        "anthropic.yaml",
        "gemini.yaml",
    ]


def test_a_second_dialect_under_a_taken_name_is_refused_and_the_same_one_again_is_harmless() -> None:
    class Impostor(OpenAIChat):
        pass

    with pytest.raises(ValueError, match="'openai-chat' is registered already"):
        register(Impostor())
    assert register(DIALECTS[0]) is DIALECTS[0]
    assert DIALECTS.names() == BUILTINS


def test_a_route_served_twice_without_a_claim_is_refused_when_the_server_is_made(echo: Dialect) -> None:
    class Clash(OpenAIChat):
        name = "test-clash"  # its routes are OpenAI chat's, none of them claimed

    register(Clash())
    try:
        with pytest.raises(ValueError, match="POST /v1/chat/completions is served twice"):
            MockServer()
    finally:
        unregister("test-clash")


def test_its_captures_are_read_by_the_replay_loader(echo: Dialect, capture: Path) -> None:
    transcript = load_transcript(str(capture), "answers.default.replay")
    assert (transcript.dialect, transcript.chunks, transcript.at_ms) == (
        "test-echo",
        ("Echo ", "says ", "hello."),
        (4.0, 6.0, 9.5),
    )
    config = parse_config({"answers": {"default": {"replay": {"transcript": str(capture)}}}})
    assert config.to_dict()["answers"]["default"] == {"replay": {"transcript": str(capture), "speed": 1.0}}


def test_its_probe_is_a_benchmark_wire_and_its_load_profile_the_file_it_names(echo: Dialect, tmp_path: Path) -> None:
    assert wires()["test-echo"] is echo.probe
    assert list(wires())[: len(BUILTINS) + 1] == [*BUILTINS, "test-echo"]
    assert echo.load_profile == tmp_path / "echo-load.yaml"


async def test_a_real_server_serves_its_routes_and_the_stream_client_measures_its_stream(
    echo: Dialect, capture: Path
) -> None:
    config = {
        "seed": 5,
        "models": ["echo-1", "echo-2"],
        "timing": {"ttft_ms": 0, "itl_ms": 1},
        "answers": {"default": {"replay": {"transcript": str(capture), "speed": 10}}},
    }
    server = MockServer(config)
    port = await server.start("127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            async with client.stream("POST", "/echo/v1/say", json={"say": "who speaks?"}) as response:
                assert response.status_code == 200
                assert response.headers["content-type"] == "text/event-stream"
                body = (await response.aread()).decode()
            *chunks, end = [event for event in body.split("\n\n") if event]
            assert end == "data: [END]"
            assert [json.loads(chunk.removeprefix("data: "))["said"] for chunk in chunks] == [
                "Echo ",
                "says ",
                "hello.",
            ]
            (entry,) = (await client.get("/_mock/journal")).json()["entries"]
            assert (entry["dialect"], entry["path"], entry["prompt"], entry["outcome"]) == (
                "test-echo",
                "/echo/v1/say",
                "who speaks?",
                "completed",
            )
            refused = await client.post("/echo/v1/say", json={"say": 3})
            assert (refused.status_code, refused.json()) == (400, {"error": "'say' must be a string", "param": "say"})

            assert (await client.get("/echo/v1/voices")).json() == {"voices": ["echo-1", "echo-2"]}
            assert (await client.get("/v1/models", headers={"x-echo": "1"})).json() == {"voices": ["echo-1", "echo-2"]}
            openai = (await client.get("/v1/models")).json()  # no claim holds: OpenAI's list
            assert openai["object"] == "list" and [m["id"] for m in openai["data"]] == ["echo-1", "echo-2"]
            assert (await client.delete("/echo/v1/say")).status_code == 405

        measured = await run_latency(url, 4, 10.0, wires()["test-echo"])
        assert (measured["ok"], measured["failures"]) == (4, 0)
        assert measured["content_events_per_stream"] == {"3": 4}
    finally:
        await server.close()
