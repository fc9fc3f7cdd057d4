"""The mock under bad bodies and clients that leave (issue 16): every bad body gets a 4xx in its
route's own error shape naming the problem, the journal, config and stats stay readable after any
request, and every journal entry ends with an outcome. A real mock process on a loopback port."""

from __future__ import annotations

import copy
import json
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mockllm import MockLLMClient, ServerProcess, parse_config, start_mock
from mockllm.__main__ import build_parser, config_from_args

MAX_BODY = 300_000
DEEP = b"[" * 100_000 + b"]" * 100_000  # 200 KB: under the body limit, far over the depth limit

CHAT_BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {
        "model": "m",
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "q"}]}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 1,
        "stop": ["x"],
        "max_tokens": 5,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    },
    "/v1/responses": {
        "model": "m",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "q"}]}],
        "instructions": "be brief",
        "stream": True,
        "max_output_tokens": 5,
    },
    "/v1/completions": {"model": "m", "prompt": ["q"], "stream": True, "max_tokens": 5, "stop": "x"},
    "/v1/messages": {
        "model": "m",
        "max_tokens": 5,
        "system": [{"type": "text", "text": "s"}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}],
        "stream": True,
        "stop_sequences": ["x"],
    },
    "/v1/messages/count_tokens": {"model": "m", "system": "s", "messages": [{"role": "user", "content": "q"}]},
    "/v1beta/models/m:streamGenerateContent?alt=sse": {
        "contents": [{"role": "user", "parts": [{"text": "q"}]}],
        "systemInstruction": {"parts": [{"text": "s"}]},
        "generationConfig": {"maxOutputTokens": 5, "stopSequences": ["x"]},
    },
    "/v1beta/models/m:generateContent": {"contents": [{"role": "user", "parts": [{"text": "q"}]}]},
    "/v1beta/models/m:countTokens": {"contents": [{"role": "user", "parts": [{"text": "q"}]}]},
}
ADMIN_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "/_mock/config"): {"timing": {"ttft_ms": 5}},
    ("PUT", "/_mock/config"): {"seed": 3},
    ("POST", "/_mock/faults"): {"fault": "429", "match": {"contains": "never-sent"}, "count": 1},
}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with start_mock("--max-body-bytes", str(MAX_BODY), seed=3, ttft_ms=5, itl_ms=1) as mock:
        yield mock


@pytest.fixture
def mock(server: ServerProcess) -> Iterator[MockLLMClient]:
    with MockLLMClient(server.url) as client:
        client.reset()
        yield client


def error_message(path: str, response: httpx.Response) -> str:
    """The message of an error response, checked to be in the shape its route's provider uses."""
    body = response.json()
    if path.startswith("/v1beta/"):
        body = body[0] if isinstance(body, list) else body  # the array stream wraps its error
        assert body["error"]["code"] == response.status_code and body["error"]["status"], body
        return str(body["error"]["message"])
    if path.startswith("/v1/messages"):
        assert body["type"] == "error" and body["error"]["type"], body
        return str(body["error"]["message"])
    if path.startswith("/v1/"):
        assert body["error"]["type"] == "invalid_request_error", body
        return str(body["error"]["message"])
    return str(body["error"]["message"])  # the admin API's


def assert_readable(base: str) -> None:
    """The journal, config, stats and metrics all answer, and the journal holds no open entry."""
    for path in ("/_mock/journal", "/_mock/config", "/_mock/stats", "/metrics"):
        assert httpx.get(base + path, timeout=10).status_code == 200, path
    entries = httpx.get(base + "/_mock/journal", timeout=10).json()["entries"]
    assert all(entry["outcome"] != "in_progress" for entry in entries)


@pytest.mark.parametrize("path", list(CHAT_BODIES))
def test_deep_nesting_on_a_dialect_route_is_a_400_in_its_shape(mock: MockLLMClient, path: str) -> None:
    for body in (DEEP, b'{"model":"m","messages":' + DEEP + b"}"):
        response = httpx.post(mock.base_url + path, content=body, timeout=10)
        assert response.status_code == 400
        assert "deeper than 128 levels" in error_message(path, response)
    assert_readable(mock.base_url)
    if "count" not in path.lower():  # a chat route journals its request
        entries = mock.journal(path=path.split("?")[0])
        assert [entry["outcome"] for entry in entries] == ["rejected", "rejected"]
        assert "deeper than" in entries[0]["error"] and isinstance(entries[0]["body"], str)


@pytest.mark.parametrize(("method", "path"), [*ADMIN_BODIES, ("POST", "/_mock/refuse")])
def test_deep_nesting_on_the_admin_api_is_a_400_and_nothing_changes(
    mock: MockLLMClient, method: str, path: str
) -> None:
    before = mock.config()
    response = httpx.request(method, mock.base_url + path, content=b'{"timing":' + DEEP + b"}", timeout=10)
    assert response.status_code == 400 and "deeper than 128 levels" in error_message(path, response)
    assert mock.config() == before and mock.armed_faults() == []
    assert_readable(mock.base_url)


BAD_BODIES = {
    "invalid UTF-8": (b'{"model": "m\xff"}', 400, "not valid UTF-8: byte 0xff at offset 12"),
    "UTF-16": ('{"model": "m"}'.encode("utf-16"), 400, "not valid UTF-8"),
    "lone surrogate": (b'{"model": "\\ud800x"}', 400, "lone UTF-16 surrogate"),
    "NaN": (b'{"model": NaN}', 400, "NaN is not a JSON number"),
    "out-of-range float": (b'{"temperature": 1e999}', 400, "out of range"),
    "huge integer": (b'{"max_tokens": ' + b"9" * 5000 + b"}", 400, "not valid JSON"),
    "not JSON": (b"{model: m}", 400, "not valid JSON"),
    "top-level array": (b"[]", 400, "must be a JSON object, got an array"),
    "top-level string": (b'"hi"', 400, "must be a JSON object, got a string"),
    "top-level null": (b"null", 400, "must be a JSON object, got null"),
    "empty": (b"", 400, "empty"),
    "oversized": (b'{"model": "' + b"x" * MAX_BODY + b'"}', 413, f"over {MAX_BODY} bytes"),
}


@pytest.mark.parametrize("kind", list(BAD_BODIES))
def test_bad_bodies_of_every_shape_get_a_4xx_naming_the_problem_on_every_route(mock: MockLLMClient, kind: str) -> None:
    body, status, problem = BAD_BODIES[kind]
    targets = [("POST", path) for path in CHAT_BODIES] + list(ADMIN_BODIES)
    with httpx.Client(base_url=mock.base_url, timeout=10) as client:
        for method, path in targets:
            response = client.request(method, path, content=body)
            assert response.status_code == status, (method, path, response.text[:300])
            assert problem in error_message(path, response), (method, path)
    assert mock.armed_faults() == []
    assert_readable(mock.base_url)


@pytest.mark.parametrize(
    "path", ["/v1/models", "/v1beta/models", "/v1beta/models/m", "/_mock/journal", "/_mock/stats", "/health"]
)
def test_an_oversized_body_is_a_413_even_where_no_body_is_read(mock: MockLLMClient, path: str) -> None:
    response = httpx.request("GET", mock.base_url + path, content=b"x" * (MAX_BODY + 1), timeout=10)
    assert response.status_code == 413 and f"over {MAX_BODY} bytes" in error_message(path, response)
    assert httpx.get(mock.base_url + path, timeout=10).status_code == 200  # the next one is served


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from _paths(child, (*prefix, key))


def _replaced(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    out = copy.deepcopy(body)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


WRONG_TYPES: tuple[Any, ...] = (None, True, -1, 1.5, 10**30, "", "x", [], [None], ["x"], {}, {"type": 1}, [{}])


def test_wrong_json_types_anywhere_in_a_body_are_a_4xx_never_a_500(mock: MockLLMClient) -> None:
    """Every value of every route's body (the config in force included) replaced by each wrong type."""
    targets = {("POST", path): body for path, body in CHAT_BODIES.items()}
    targets |= ADMIN_BODIES
    targets[("PATCH", "/_mock/config")] = mock.config()
    failures = []
    with httpx.Client(base_url=mock.base_url, timeout=10) as client:
        for (method, path), body in targets.items():
            for where in _paths(body):
                for wrong in WRONG_TYPES:
                    response = client.request(method, path, content=json.dumps(_replaced(body, where, wrong)))
                    if response.status_code >= 500 and response.status_code != 529:
                        failures.append((method, path, where, wrong, response.status_code))
                    if method != "POST" or path == "/_mock/faults":
                        client.post("/_mock/reset")  # the next body is tried against the startup state
    assert failures == []
    assert_readable(mock.base_url)


def test_clients_that_reset_right_after_their_request_leave_client_closed_entries(
    mock: MockLLMClient, marker: str
) -> None:
    """A burst of clients that each send a request and leave at once with a RST, some while their
    request waits to be planned, some after it was planned but before its first write."""
    port = int(mock.base_url.rsplit(":", 1)[1])
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
    for i, sock in enumerate(sockets):
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": f"{marker} {i}"}], "stream": True})
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: mock\r\ncontent-type: application/json\r\n"
            b"x-mock-ttft-ms: 300\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body.encode())
        )
    time.sleep(0.05)  # the mock reads the burst and plans it in slices: the resets land meanwhile
    for sock in sockets:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST: a request not read by now is lost with it
    deadline = time.monotonic() + 5
    while True:
        entries = mock.journal(prompt_contains=marker)
        open_ = [entry for entry in entries if entry["outcome"] == "in_progress"]
        if (not open_ and mock.stats()["active_streams"] == 0) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert entries and open_ == []
    assert {entry["outcome"] for entry in entries} == {"client_closed"}
    assert all(entry["achieved"]["ttft_ms"] is None for entry in entries)  # no answer chunk went out
    assert mock.stats()["by_outcome"].get("client_closed") == len(entries)
    assert_readable(mock.base_url)


def test_limits_are_config_keys_and_flags_with_defaults_and_named_errors() -> None:
    defaults = parse_config({}).limits
    assert (defaults.max_header_bytes, defaults.max_headers, defaults.max_body_bytes) == (65536, 100, 16 * 2**20)
    assert (defaults.max_json_depth, defaults.header_timeout_s, defaults.idle_timeout_s) == (128, 10.0, 60.0)
    assert defaults.max_connections == 10_000
    assert parse_config({}).to_dict()["limits"] == defaults.to_config()  # the config shows its limits
    flags = ["serve", "--max-header-bytes", "8192", "--max-headers", "20", "--max-body-bytes", "4096"]
    flags += ["--max-json-depth", "8", "--header-timeout-s", "1.5", "--idle-timeout-s", "2", "--max-connections", "9"]
    raw = config_from_args(build_parser().parse_args(flags))
    config = parse_config(raw)
    assert config.limits.to_config() == {
        "max_header_bytes": 8192,
        "max_headers": 20,
        "max_body_bytes": 4096,
        "max_json_depth": 8,
        "header_timeout_s": 1.5,
        "idle_timeout_s": 2.0,
        "max_connections": 9,
    }
    assert parse_config(config.to_dict()) == config  # it parses back
    for bad in ({"max_json_depth": 10_000}, {"idle_timeout_s": 0}, {"max_headers": "9"}, {"nope": 1}):
        with pytest.raises(ValueError, match=r"limits\.(max_json_depth|idle_timeout_s|max_headers|nope)"):
            parse_config({"limits": bad})


def test_a_lower_depth_limit_set_at_run_time_applies_to_the_next_request(mock: MockLLMClient) -> None:
    nested = {"model": "m", "messages": [{"role": "user", "content": "q"}], "metadata": {"a": {"b": {"c": {}}}}}
    assert httpx.post(mock.openai_base_url + "/chat/completions", json=nested, timeout=10).status_code == 200
    mock.patch_config({"limits": {"max_json_depth": 3}})
    response = httpx.post(mock.openai_base_url + "/chat/completions", json=nested, timeout=10)
    assert response.status_code == 400 and "deeper than 3 levels" in error_message("/v1/", response)
    assert mock.config()["limits"]["max_json_depth"] == 3
