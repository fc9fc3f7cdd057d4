"""The OpenAPI schema tells the truth: every status, media type, format, security rule and link, and
schemathesis finds no answer of the real server (over the real mock) that disagrees with it.

The schemathesis run here is bounded (`FUZZ_EXAMPLES` examples per operation, a hard timeout) so the
suite stays fast; `nox -s fuzz` runs this same test deeper (`REFSERVER_FUZZ_EXAMPLES`,
`REFSERVER_FUZZ_MAX_TIME`), with the stateful phase following the schema's links.

Checks: every schemathesis check but `use_after_free`. `DELETE /api/sessions/{id}` clears a
session's history and keeps the session (contracts.md §1: "the history is empty afterwards"; a
later turn under the same id continues it), so a 200 for its history after the DELETE is the
contract, not a stale resource.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

# A schema-valid request may still be refused for the state it meets, as the contract says: a stream
# session already streamed or expired is 410 (contracts.md §3), reached when the stateful phase
# follows the start -> stream link twice. positive_data_acceptance takes those as acceptance too.
POSITIVE_DATA_STATUSES = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "410", "429"]
"""
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "ensure_resource_availability",
    "ignored_auth",
    "object_level_authorization",
)
FUZZ_EXAMPLES = int(os.environ.get("REFSERVER_FUZZ_EXAMPLES", "8"))
FUZZ_MAX_TIME_S = int(os.environ.get("REFSERVER_FUZZ_MAX_TIME", "0"))  # 0: examples bound the run
FUZZ_TIMEOUT_S = 90 + FUZZ_MAX_TIME_S
# No rate limit in the way: a fuzzer sends thousands of requests (429 is documented where it applies).
FUZZ_SETTINGS = {"rate_limits": {"sessions": None, "conversations": None}, "heartbeat_s": 5.0}


@pytest.fixture(scope="module")
def fuzzed(start_refserver):
    return start_refserver(**FUZZ_SETTINGS)


@pytest.fixture(scope="module")
def schema(refserver):
    with refserver.client() as client:
        return client.get("/schema/openapi.json").json()


def operations(schema):
    for path, item in schema["paths"].items():
        for method, op in item.items():
            yield method.upper(), path, op


def op_of(schema, method, path):
    return schema["paths"][path][method.lower()]


def test_every_operation_documents_its_refusals_with_the_error_body(schema):
    for method, path, op in operations(schema):
        responses = op["responses"]
        for status in ("400", "431", "503"):
            assert status in responses, (method, path, status)
        if "requestBody" in op:
            assert "413" in responses, (method, path)
        for status, answer in responses.items():
            if status >= "400":
                assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert {"404", "410"} <= set(op_of(schema, "GET", "/chat/stream")["responses"])
    assert {"403", "404"} <= set(op_of(schema, "POST", "/chat/start")["responses"])
    assert "409" in op_of(schema, "GET", "/api/v1/chat/conversations/{conversation_id}/stream")["responses"]
    # conversations has its default limit; start-stream has none configured
    assert "429" in op_of(schema, "POST", "/chat/stream")["responses"]
    assert "429" not in op_of(schema, "POST", "/chat/start")["responses"]


def test_streams_are_event_streams_with_the_profile_event_schema(schema):
    streams = {
        ("POST", "/api/chat/stream"): "sessions",
        ("POST", "/chat/stream"): "conversations",
        ("GET", "/chat/stream"): "start-stream",
        ("GET", "/api/v1/ai/chat/stream"): "query-stream",
        ("GET", "/api/v1/chat/conversations/{conversation_id}/stream"): "conversation-events",
    }
    for (method, path), profile in streams.items():
        content = op_of(schema, method, path)["responses"]["200"]["content"]
        assert list(content) == ["text/event-stream"]
        assert content["text/event-stream"]["schema"] == {"$ref": f"#/components/schemas/{profile}-event"}
    event = schema["components"]["schemas"]["query-stream-event"]["properties"]["data"]["anyOf"][0]
    kinds = {variant["properties"]["type"]["const"] for variant in event["contentSchema"]["oneOf"]}
    assert kinds == {"conversationId", "token", "complete", "error"}


def test_security_formats_and_unknown_fields(schema):
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert op_of(schema, "POST", "/chat/conversation")["security"] == [{"bearer": []}]
    events = op_of(schema, "GET", "/api/v1/chat/conversations/{conversation_id}/stream")
    assert events["security"] == [{"bearer": []}, {"access_token": []}]
    assert schema["components"]["securitySchemes"]["access_token"] == {
        **schema["components"]["securitySchemes"]["access_token"],
        "in": "query",
        "name": "access_token",
    }
    assert "security" not in op_of(schema, "POST", "/chat/start")
    path_param = next(p for p in events["parameters"] if p["in"] == "path")
    assert path_param["schema"]["format"] == "uuid"
    query = {p["name"]: p for p in op_of(schema, "GET", "/api/v1/ai/chat/stream")["parameters"]}
    assert query["projectId"]["required"] and query["projectId"]["schema"]["format"] == "uuid"
    assert not query["conversationId"]["required"] and query["conversationId"]["schema"]["format"] == "uuid"
    created = op_of(schema, "POST", "/chat/conversation")["responses"]["201"]["content"]["application/json"]["schema"]
    assert created["properties"]["createdAt"]["format"] == "date-time"
    for method, path, op in operations(schema):
        if "requestBody" in op:
            ref = op["requestBody"]["content"]["application/json"]["schema"]
            ref = next((s for s in ref.get("oneOf", [ref]) if "$ref" in s), ref)
            body = schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]
            assert body["additionalProperties"] is False, (method, path)


def test_links_lead_from_a_start_to_its_stream(schema):
    start_links = op_of(schema, "POST", "/chat/start")["responses"]["200"]["links"].values()
    stream_id = op_of(schema, "GET", "/chat/stream")["operationId"]
    assert {"operationId": stream_id, "parameters": {"query.sessionId": "$response.body#/sessionId"}} in start_links
    created = op_of(schema, "POST", "/chat/conversation")["responses"]["201"]["links"].values()
    assert any(link.get("requestBody") == {"conversationId": "$response.body#/id"} for link in created)
    made = op_of(schema, "POST", "/api/v1/chat/conversations")["responses"]["201"]["links"].values()
    assert {link["parameters"]["path.conversation_id"] for link in made} == {"$response.body#/id"}


def test_options_allows_every_method_of_a_shared_path(refserver):
    with refserver.client() as client:
        answer = client.options("/chat/stream")
    assert set(answer.headers["allow"].split(", ")) == {"GET", "POST", "OPTIONS"}


def test_schemathesis_finds_no_disagreement(fuzzed, tmp_path):
    """The real server against its own schema: fails on any check's failure, or a run that tests nothing."""
    config = tmp_path / "schemathesis.toml"
    config.write_text(POSITIVE_DATA_STATUSES, encoding="utf-8")
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{fuzzed.base_url}/schema/openapi.json",
        "--header",
        f"Authorization: Bearer {fuzzed.token('fuzz-user')}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(FUZZ_EXAMPLES),
        "--workers",
        "2",
        "--request-timeout",
        "10",
        "--seed",
        os.environ.get("REFSERVER_FUZZ_SEED", "1"),
        "--no-color",
    ]
    if FUZZ_MAX_TIME_S:
        command += ["--max-time", str(FUZZ_MAX_TIME_S)]
    started = time.monotonic()
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=FUZZ_TIMEOUT_S,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
    )
    took = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"schemathesis exit {done.returncode} after {took:.0f} s:\n{output[-6000:]}"
    assert " passed" in output and "Tested: 16" in output, output[-3000:]
    print(f"schemathesis: {took:.1f} s; {[line for line in output.splitlines() if 'generated' in line]}")
