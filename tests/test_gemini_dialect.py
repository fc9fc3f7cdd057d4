"""The real `google-genai` SDK (and raw httpx) against the real mock: Gemini answers, usage, the
`alt=sse` and array stream shapes, and every fault's error type."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from google import genai
from google.genai import errors, types

from mockllm import ChatRequest, Message, MockLLMClient, ServerProcess, count_tokens, parse_config, plan_response
from mockllm._request import Overrides
from mockllm.dialects import Call, Encoding
from mockllm.dialects.gemini import Gemini, google_json, pretty_json

FAST = {"x-mock-ttft-ms": "0", "x-mock-itl-ms": "0", "x-mock-answer-tokens": "20"}
MODEL = "gemini-2.5-flash"
SYSTEM = "Be brief."
KEY = "sdk-secret-key"


@pytest.fixture(scope="module")
def gemini(mockllm_server: ServerProcess) -> Iterator[genai.Client]:
    """One SDK client for the module (building one costs 0.3 s of TLS setup); faults, timeouts and
    API versions go per request. No retries: the SDK's default without `retry_options`."""
    options = types.HttpOptions(base_url=mockllm_server.url, timeout=5000, headers=FAST)
    client = genai.Client(api_key=KEY, http_options=options)
    yield client
    client.close()


def per(
    fault: str | None = None, *, timeout_ms: int | None = None, api_version: str | None = None, **headers: str
) -> types.HttpOptions:
    """Per-request HTTP options. The SDK's own default API version is `v1` (older ones used `v1beta`)."""
    if fault:
        headers["x-mock-fault"] = fault
    return types.HttpOptions(headers=headers, timeout=timeout_ms, api_version=api_version)


def config(
    fault: str | None = None, *, timeout_ms: int | None = None, headers: dict[str, str] | None = None, **extra: Any
) -> types.GenerateContentConfig:
    options = per(fault, timeout_ms=timeout_ms, **(headers or {}))
    return types.GenerateContentConfig(system_instruction=SYSTEM, http_options=options, **extra)


def url(mockllm: MockLLMClient, method: str, model: str = MODEL, version: str = "v1beta") -> str:
    return f"{mockllm.base_url}/{version}/models/{model}:{method}"


def body(marker: str, **extra: Any) -> dict[str, Any]:
    """A request body as the SDK sends it for `ask(marker)`."""
    return {
        "contents": [{"role": "user", "parts": [{"text": f"Question {marker}"}]}],
        "systemInstruction": {"parts": [{"text": SYSTEM}], "role": "user"},
        **extra,
    }


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    """The JSON payloads of a CRLF-framed `alt=sse` body."""
    assert raw.endswith(b"\r\n\r\n")
    blocks = raw.split(b"\r\n\r\n")[:-1]
    assert all(block.startswith(b"data: ") and b"\n" not in block for block in blocks)
    return [json.loads(block.removeprefix(b"data: ")) for block in blocks]


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(part["text"] for e in events for part in e["candidates"][0]["content"]["parts"])


def ask(client: genai.Client, marker: str, **config_args: Any) -> types.GenerateContentResponse:
    return client.models.generate_content(model=MODEL, contents=f"Question {marker}", config=config(**config_args))


def stream(client: genai.Client, marker: str, seen: list[str], **config_args: Any) -> types.GenerateContentResponse:
    """Stream to the end: the texts go to `seen` as they come (kept when the stream fails), the
    last chunk is returned."""
    last = None
    for last in client.models.generate_content_stream(
        model=MODEL, contents=f"Question {marker}", config=config(**config_args)
    ):
        if last.text:
            seen.append(last.text)
    assert last is not None
    return last


# -- answers -------------------------------------------------------------------------------------


def test_streamed_text_equals_non_streamed_text_and_journal(
    mockllm: MockLLMClient, gemini: genai.Client, marker: str
) -> None:
    whole = ask(gemini, marker)
    seen: list[str] = []
    last = stream(gemini, marker, seen)
    text = whole.text
    assert text and "".join(seen) == text
    assert whole.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    for usage in (whole.usage_metadata, last.usage_metadata):
        assert usage.candidates_token_count == count_tokens(text) == 20
        assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    # two messages (system and user) at 3 framing tokens each, plus 3 priming the reply
    assert whole.usage_metadata.prompt_token_count == count_tokens(SYSTEM) + count_tokens(f"Question {marker}") + 9
    assert last.usage_metadata.prompt_token_count == whole.usage_metadata.prompt_token_count
    assert whole.model_version == MODEL and whole.response_id == last.response_id
    entries = mockllm.journal(prompt_contains=marker)
    assert [e["stream"] for e in entries] == [False, True]
    assert all(e["answer"] == text and e["outcome"] == "completed" and e["dialect"] == "gemini" for e in entries)
    assert entries[0]["prompt"] == f"{SYSTEM}\nQuestion {marker}"
    assert [e["path"] for e in entries] == [
        f"/v1/models/{MODEL}:generateContent",
        f"/v1/models/{MODEL}:streamGenerateContent",
    ]


def test_system_instruction_and_model_turns_map_like_openai_roles(
    mockllm: MockLLMClient, gemini: genai.Client, marker: str
) -> None:
    """The same conversation on the OpenAI route has the same seed, so the same answer: the system
    instruction became a system message, `user` stayed `user` and `model` became `assistant`."""
    contents = [
        types.Content(role="user", parts=[types.Part(text=f"Hi {marker}")]),
        types.Content(role="model", parts=[types.Part(text="Hello.")]),
        types.Content(role="user", parts=[types.Part(text="Again")]),
    ]
    answer = gemini.models.generate_content(model=MODEL, contents=contents, config=config())
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Hi {marker}"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Again"},
    ]
    openai = httpx.post(
        f"{mockllm.openai_base_url}/chat/completions", json={"model": MODEL, "messages": messages}, headers=FAST
    ).json()
    assert answer.text == openai["choices"][0]["message"]["content"]
    assert answer.usage_metadata.prompt_token_count == openai["usage"]["prompt_tokens"]
    assert len({e["seed"] for e in mockllm.journal(prompt_contains=marker)}) == 1


def test_max_output_tokens_finishes_with_max_tokens(gemini: genai.Client, marker: str) -> None:
    whole = ask(gemini, marker, max_output_tokens=7)
    assert whole.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert whole.usage_metadata.candidates_token_count == 7 == count_tokens(whole.text)
    finishes = [
        chunk.candidates[0].finish_reason
        for chunk in gemini.models.generate_content_stream(
            model=MODEL, contents=f"Question {marker}", config=config(max_output_tokens=7)
        )
    ]
    assert finishes[-1] == types.FinishReason.MAX_TOKENS and not any(finishes[:-1])


def test_v1beta_and_v1_routes_answer_alike(mockllm: MockLLMClient, gemini: genai.Client, marker: str) -> None:
    texts = {
        gemini.models.generate_content(
            model=MODEL, contents=f"Q {marker}", config=types.GenerateContentConfig(http_options=per(api_version=v))
        ).text
        for v in ("v1", "v1beta")
    }
    assert len(texts) == 1
    paths = [e["path"] for e in mockllm.journal(prompt_contains=marker)]
    assert paths == [f"/v1/models/{MODEL}:generateContent", f"/v1beta/models/{MODEL}:generateContent"]


def test_api_key_by_header_or_query_is_accepted_and_never_journaled(
    mockllm: MockLLMClient, gemini: genai.Client, marker: str
) -> None:
    ask(gemini, marker)  # the SDK sends the key as x-goog-api-key
    response = httpx.post(url(mockllm, "generateContent") + "?key=query-secret-key", json=body(marker), headers=FAST)
    assert response.status_code == 200
    response = httpx.post(url(mockllm, "generateContent"), json=body(marker), headers=FAST)
    assert response.status_code == 200, "a missing key is fine: the mock has no accounts"
    entries = mockllm.journal(prompt_contains=marker)
    assert len(entries) == 3 and all(e["outcome"] == "completed" for e in entries)
    assert entries[0]["headers"]["x-goog-api-key"] == "[redacted]"
    dumped = json.dumps(entries)
    assert KEY not in dumped and "query-secret-key" not in dumped


def test_models_list_get_and_count_tokens(mockllm: MockLLMClient, gemini: genai.Client, marker: str) -> None:
    # The SDK's default v1 shares GET /v1/models with OpenAI: the Gemini client's headers claim it.
    for version in ("v1", "v1beta"):
        config = {"http_options": per(api_version=version)}
        assert [m.name for m in gemini.models.list(config=config)] == [
            "models/mock-gpt",
            "models/gpt-4o-mini",
            "models/gpt-4o",
        ]
        model = gemini.models.get(model="any-name-at-all", config=config)
        assert model.name == "models/any-name-at-all" and model.input_token_limit and model.output_token_limit
    openai_list = httpx.get(f"{mockllm.base_url}/v1/models", headers={"authorization": "Bearer sk"}).json()
    assert openai_list["object"] == "list" and openai_list["data"][0]["id"] == "mock-gpt"
    openai_model = httpx.get(f"{mockllm.base_url}/v1/models/x", headers={"authorization": "Bearer sk"}).json()
    assert openai_model == {"id": "x", "object": "model", "created": 1_700_000_000, "owned_by": "mockllm"}
    keyed = httpx.get(f"{mockllm.base_url}/v1/models?key=k").json()
    assert keyed["models"][0]["name"] == "models/mock-gpt"
    contents = f"Question {marker}"
    counted = gemini.models.count_tokens(model=MODEL, contents=contents)
    answered = gemini.models.generate_content(model=MODEL, contents=contents)
    assert counted.total_tokens == answered.usage_metadata.prompt_token_count == count_tokens(contents) + 6
    wrapped = {"generateContentRequest": {"model": f"models/{MODEL}", **body(marker)}}
    response = httpx.post(url(mockllm, "countTokens"), json=wrapped)
    assert response.json()["totalTokens"] == ask(gemini, marker).usage_metadata.prompt_token_count
    response = httpx.post(url(mockllm, "countTokens"), json={"contents": []})
    assert response.status_code == 400 and response.json()["error"]["status"] == "INVALID_ARGUMENT"


# -- templates ---------------------------------------------------------------------------------


@pytest.mark.parametrize("max_tokens", [None, 5])
def test_templates_give_the_bytes_of_dumping_the_response(max_tokens: int | None) -> None:
    """Responses are filled templates; they must be byte for byte what dumping the dict gives."""
    messages = (Message("user", "Hi"),)
    request = ChatRequest(
        model="gemini-x", messages=messages, max_tokens=max_tokens, overrides=Overrides(multibyte=0.5)
    )
    plan = plan_response(parse_config({}), request)
    assert any(ord(ch) > 127 for ch in plan.answer)  # text the escape must leave as UTF-8
    finish = "MAX_TOKENS" if max_tokens else "STOP"

    def response(text: str, final: bool) -> dict[str, Any]:
        usage: dict[str, Any] = {"promptTokenCount": plan.prompt_tokens}
        candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
        if final:
            candidate["finishReason"] = finish
            usage["candidatesTokenCount"] = plan.completion_tokens
        candidate["index"] = 0
        usage["totalTokenCount"] = plan.prompt_tokens + (plan.completion_tokens if final else 0)
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": plan.prompt_tokens}]
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-x", "responseId": "mockid"}

    call = Call("POST", "/v1beta/models/gemini-x:generateContent", {}, {}, b"")
    dialect = Gemini()
    whole = dialect.response(plan, Encoding(request, call, "mockid", 0, {"sse": False}))
    assert whole.body == pretty_json(response(plan.answer, True)) + b"\n"
    sse = dialect.stream_frames(plan, Encoding(request, call, "mockid", 0, {"sse": True}))
    assert list(sse.chunks) == [b"data: " + google_json(response(c, False)) + b"\r\n\r\n" for c in plan.chunks]
    assert sse.tail == b"data: " + google_json(response("", True)) + b"\r\n\r\n"
    array = dialect.stream_frames(plan, Encoding(request, call, "mockid", 0, {"sse": False}))
    assert list(array.chunks) == [pretty_json(response(c, False)) + b"\n,\r\n" for c in plan.chunks]
    assert (
        array.head + b"".join(array.chunks) + array.tail
        == b"["
        + b"\n,\r\n".join([pretty_json(response(c, False)) for c in plan.chunks] + [pretty_json(response("", True))])
        + b"\n]"
    )


# -- raw bytes -----------------------------------------------------------------------------------


def test_alt_sse_frames_are_gemini_shaped(mockllm: MockLLMClient, marker: str) -> None:
    response = httpx.post(url(mockllm, "streamGenerateContent") + "?alt=sse", json=body(marker), headers=FAST)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["transfer-encoding"] == "chunked"
    raw = response.content
    assert b"[DONE]" not in raw
    assert raw.startswith(b'data: {"candidates": [{"content": {"parts": [{"text": ')  # Google's JSON spelling
    events = sse_events(raw)
    assert len(events) == 21  # one per chunk, then the finish
    assert {(e["modelVersion"], e["responseId"]) for e in events} == {(MODEL, events[0]["responseId"])}
    for event in events[:-1]:
        (candidate,) = event["candidates"]
        assert candidate["content"]["role"] == "model" and candidate["index"] == 0
        assert "finishReason" not in candidate and "candidatesTokenCount" not in event["usageMetadata"]
    final = events[-1]
    assert final["candidates"][0]["finishReason"] == "STOP"
    assert final["candidates"][0]["content"]["parts"] == [{"text": ""}]
    usage = final["usageMetadata"]
    assert usage["candidatesTokenCount"] == 20
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + 20
    assert text_of(events) == mockllm.journal(prompt_contains=marker)[0]["answer"]


def test_array_stream_is_one_json_array_with_the_same_text(mockllm: MockLLMClient, marker: str) -> None:
    sse = httpx.post(url(mockllm, "streamGenerateContent") + "?alt=sse", json=body(marker), headers=FAST)
    for query in ("", "?alt=json"):
        response = httpx.post(url(mockllm, "streamGenerateContent") + query, json=body(marker), headers=FAST)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json; charset=UTF-8"
        assert response.headers["transfer-encoding"] == "chunked"
        raw = response.content
        assert raw.startswith(b'[{\n  "candidates": [') and raw.endswith(b"}\n]")
        assert raw.count(b"}\n,\r\n{\n") == 20  # 21 elements, separated as the real API separates them
        assert json.loads(raw) == sse_events(sse.content)
    entries = mockllm.journal(prompt_contains=marker)
    assert len(entries) == 3 and len({e["answer"] for e in entries}) == 1


def test_non_streamed_body_is_pretty_printed(mockllm: MockLLMClient, marker: str) -> None:
    response = httpx.post(url(mockllm, "generateContent"), json=body(marker, generationConfig={"maxOutputTokens": 3}))
    assert response.headers["content-type"] == "application/json; charset=UTF-8"
    assert response.content.startswith(b'{\n  "candidates": [\n    {\n      "content": {')
    assert response.content.endswith(b"\n}\n")
    result = response.json()
    (candidate,) = result["candidates"]
    assert candidate["finishReason"] == "MAX_TOKENS" and candidate["content"]["role"] == "model"
    assert (
        count_tokens(candidate["content"]["parts"][0]["text"]) == 3 == result["usageMetadata"]["candidatesTokenCount"]
    )


@pytest.mark.parametrize(
    ("method", "query", "wrapped"),
    [
        ("streamGenerateContent", "", True),
        ("streamGenerateContent", "?alt=json", True),
        ("streamGenerateContent", "?alt=sse", False),
        ("generateContent", "", False),
    ],
)
def test_http_errors_are_wrapped_in_an_array_where_the_answer_would_be_one(
    mockllm: MockLLMClient, marker: str, method: str, query: str, wrapped: bool
) -> None:
    headers = {**FAST, "x-mock-fault": "429,retry-after=7"}
    response = httpx.post(url(mockllm, method) + query, json=body(marker), headers=headers)
    assert response.status_code == 429 and response.headers["retry-after"] == "7"
    data = response.json()
    if wrapped:
        assert response.content.startswith(b"[{") and isinstance(data, list) and len(data) == 1
        data = data[0]
    error = data["error"]
    assert (error["code"], error["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"} in error["details"]


def test_mid_stream_error_in_the_array_keeps_it_valid_json(mockllm: MockLLMClient, marker: str) -> None:
    headers = {**FAST, "x-mock-fault": "error-after=3"}
    response = httpx.post(url(mockllm, "streamGenerateContent"), json=body(marker), headers=headers)
    assert response.status_code == 200
    elements = json.loads(response.content)
    assert len(elements) == 4
    assert elements[-1] == {"error": {"code": 500, "message": elements[-1]["error"]["message"], "status": "INTERNAL"}}
    sse = httpx.post(url(mockllm, "streamGenerateContent") + "?alt=sse", json=body(marker), headers=headers)
    events = sse_events(sse.content)
    assert len(events) == 4 and events[-1] == elements[-1]


# -- faults through the SDK ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error", "status", "name"),
    [
        ("429", errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
        ("500", errors.ServerError, 500, "INTERNAL"),
        ("503", errors.ServerError, 503, "UNAVAILABLE"),
        ("529", errors.ServerError, 529, "UNKNOWN"),  # not a Google status: the SDK goes by the 5xx
        ("400", errors.ClientError, 400, "INVALID_ARGUMENT"),
        ("401", errors.ClientError, 401, "UNAUTHENTICATED"),
        ("403", errors.ClientError, 403, "PERMISSION_DENIED"),
        ("404", errors.ClientError, 404, "NOT_FOUND"),
        ("504", errors.ServerError, 504, "DEADLINE_EXCEEDED"),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
def test_http_faults_raise_the_sdk_error(
    mockllm: MockLLMClient,
    gemini: genai.Client,
    marker: str,
    fault: str,
    error: type[errors.APIError],
    status: int,
    name: str,
    streamed: bool,
) -> None:
    with pytest.raises(error) as caught:
        if streamed:
            stream(gemini, marker, [], fault=fault)
        else:
            ask(gemini, marker, fault=fault)
    assert (caught.value.code, caught.value.status) == (status, name)
    assert caught.value.message
    entries = mockllm.journal(prompt_contains=marker)
    assert [e["outcome"] for e in entries] == ["http_error"], "one attempt: the SDK does not retry by default"


def test_armed_fault_hits_once(mockllm: MockLLMClient, gemini: genai.Client, marker: str) -> None:
    mockllm.arm_fault("429", match={"contains": marker})
    with pytest.raises(errors.ClientError) as caught:
        ask(gemini, marker)
    assert caught.value.code == 429
    retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}  # the default wait
    assert caught.value.details["error"]["details"] == [retry]
    assert ask(gemini, marker).text


def test_error_after_n_is_a_server_error_mid_stream(mockllm: MockLLMClient, gemini: genai.Client, marker: str) -> None:
    seen: list[str] = []
    with pytest.raises(errors.ServerError) as caught:
        stream(gemini, marker, seen, fault="error-after=3")
    assert (caught.value.code, caught.value.status) == (500, "INTERNAL")  # in-band, after a 200
    assert len(seen) == 3
    assert mockllm.wait_for_journal(marker)[0]["outcome"] == "completed"


def test_disconnect_after_n_is_a_remote_protocol_error(
    mockllm: MockLLMClient, gemini: genai.Client, marker: str
) -> None:
    seen: list[str] = []
    # The SDK lets the transport's error through; it uses httpx2 when that is installed.
    with pytest.raises((httpx2.RemoteProtocolError, httpx.RemoteProtocolError)):
        stream(gemini, marker, seen, fault="disconnect-after=3")
    assert len(seen) == 3
    assert mockllm.wait_for_journal(marker)[0]["outcome"] == "disconnected"


def test_stall_is_a_read_timeout(mockllm: MockLLMClient, gemini: genai.Client, marker: str) -> None:
    seen: list[str] = []
    with pytest.raises((httpx2.ReadTimeout, httpx.ReadTimeout)):
        stream(gemini, marker, seen, fault="stall-after=2", timeout_ms=300)
    assert len(seen) == 2
    assert mockllm.wait_for_journal(marker)[0]["outcome"] == "client_closed"


def test_malformed_chunk_is_an_unknown_api_response_error(gemini: genai.Client, marker: str) -> None:
    seen: list[str] = []
    with pytest.raises(errors.UnknownApiResponseError):
        stream(gemini, marker, seen, fault="malformed-after=2")
    assert len(seen) == 2


def test_truncate_ends_the_stream_without_a_finish_reason(
    mockllm: MockLLMClient, gemini: genai.Client, marker: str
) -> None:
    seen: list[str] = []
    last = stream(gemini, marker, seen, fault="truncate")
    assert "".join(seen) == mockllm.journal(prompt_contains=marker)[0]["answer"]
    assert last.candidates[0].finish_reason is None and last.usage_metadata.candidates_token_count is None
    seen = []
    last = stream(gemini, marker, seen, fault="truncate-after=3")
    assert len(seen) == 3 and last.candidates[0].finish_reason is None


def test_fragmented_stream_splits_utf8_and_the_sdk_reassembles(
    mockllm: MockLLMClient, gemini: genai.Client, marker: str
) -> None:
    headers = {**FAST, "x-mock-fault": "fragment", "x-mock-multibyte": "0.5"}
    reads: list[bytes] = []
    address = url(mockllm, "streamGenerateContent") + "?alt=sse"
    with httpx.stream("POST", address, json=body(marker), headers=headers) as response:
        reads.extend(response.iter_raw())
    assert len(reads) > 20
    assert any(read and 0x80 <= read[0] <= 0xBF for read in reads), "no read starts inside a UTF-8 character"
    text = text_of(sse_events(b"".join(reads)))
    assert any(ord(ch) > 127 for ch in text)
    seen: list[str] = []
    last = stream(gemini, marker, seen, fault="fragment", headers={"x-mock-multibyte": "0.5"})
    assert "".join(seen) == text and last.candidates[0].finish_reason == types.FinishReason.STOP


# -- bad requests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        ({}, "contents"),
        ({"contents": []}, "contents"),
        ({"contents": ["hi"]}, "contents[0]"),
        ({"contents": [{"role": 5, "parts": [{"text": "x"}]}]}, "contents[0].role"),  # "assistant": gemini.role
        ({"contents": [{"role": "user"}]}, "contents[0].parts"),
        ({"contents": [{"parts": [{"text": 5}]}]}, "contents[0].parts[0].text"),
        ({"contents": [{"parts": [{"text": "x"}]}], "systemInstruction": 5}, "systemInstruction"),
        ({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": []}, "generationConfig"),
        ({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"maxOutputTokens": 0}},
         "generationConfig.maxOutputTokens"),
        ({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"temperature": 3}},
         "generationConfig.temperature"),
        ({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"topP": 1.5}}, "generationConfig.topP"),
        ({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"topK": 0}}, "generationConfig.topK"),
        ({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"candidateCount": 2}},
         "generationConfig.candidateCount"),
        ({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"stopSequences": ["a"] * 6}},
         "generationConfig.stopSequences"),
    ],
)  # fmt: skip
def test_bad_requests_name_the_field(mockllm: MockLLMClient, request_body: dict[str, Any], param: str) -> None:
    response = httpx.post(url(mockllm, "generateContent"), json=request_body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert param.split("[")[0] in error["message"]
    assert error["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": param, "description": error["message"]}],
        }
    ]


def test_bad_requests_through_the_sdk_and_other_rejections(
    mockllm: MockLLMClient, gemini: genai.Client, marker: str
) -> None:
    with pytest.raises(errors.ClientError) as caught:
        ask(gemini, marker, candidate_count=2)
    assert caught.value.code == 400 and "candidateCount" in caught.value.message
    violation = caught.value.details["error"]["details"][0]["fieldViolations"][0]
    assert violation["field"] == "generationConfig.candidateCount"
    response = httpx.post(url(mockllm, "generateContent"), content=b"{not json")
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    response = httpx.post(url(mockllm, "streamGenerateContent") + "?alt=xml", json=body(marker))
    assert response.status_code == 400
    assert response.json()[0]["error"]["details"][0]["fieldViolations"][0]["field"] == "alt"
    response = httpx.post(url(mockllm, "generateContent"), json=body(marker), headers={"x-mock-fault": "explode"})
    assert response.status_code == 400 and "explode" in response.json()["error"]["message"]
    assert mockllm.stats()["by_outcome"]["rejected"] == 4
