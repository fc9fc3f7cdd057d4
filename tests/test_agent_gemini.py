"""Gemini as an agent backend: function calls, thoughts, structured output and the API's request
checks, judged by the real `google-genai` SDK and by the raw bytes (`alt=sse` and the JSON array)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import jsonschema
import pytest
from google import genai
from google.genai import errors, types
from pydantic import BaseModel

from mockllm import MockLLMClient, ServerProcess, count_tokens
from mockllm._agent import sign
from mockllm.dialects._gemini_agent import _json_schema

FAST = {"x-mock-ttft-ms": "0", "x-mock-itl-ms": "0"}
MODEL = "gemini-2.5-flash"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "minLength": 2}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
# The same in Gemini's OpenAPI subset, as the SDK and REST users write it.
WEATHER_OPENAPI = {
    "type": "OBJECT",
    "properties": {"city": {"type": "STRING", "minLength": 2}, "unit": {"type": "STRING", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
}
TIME_SCHEMA = {
    "type": "object",
    "properties": {"zone": {"type": "string"}, "hours": {"type": "integer", "minimum": 0, "maximum": 23}},
    "required": ["zone", "hours"],
    "additionalProperties": False,
}
WEATHER = {"name": "get_weather", "description": "Weather in a city", "parameters": WEATHER_OPENAPI}
TIME = {"name": "get_time", "description": "Time in a zone", "parametersJsonSchema": TIME_SCHEMA}
TOOLS = [{"functionDeclarations": [WEATHER, TIME]}, {"googleSearch": {}}]
PARIS = {"city": "Paris", "unit": "c"}
CALL_PARIS = {"tool_call": {"name": "get_weather", "arguments": PARIS}}


@pytest.fixture(scope="module")
def gemini(mockllm_server: ServerProcess) -> Iterator[genai.Client]:
    options = types.HttpOptions(base_url=mockllm_server.url, timeout=5000, headers=FAST)
    client = genai.Client(api_key="sdk-key", http_options=options)
    yield client
    client.close()


def rule(mockllm: MockLLMClient, marker: str, answer: dict[str, Any], **match: Any) -> None:
    mockllm.patch_config({"answers": {"rules": [{"match": {"contains": marker, **match}, "answer": answer}]}})


def url(mockllm: MockLLMClient, method: str, model: str = MODEL, query: str = "") -> str:
    return f"{mockllm.base_url}/v1beta/models/{model}:{method}{query}"


def body(marker: str, text: str = "What is the weather?", **extra: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": f"{text} {marker}"}]}], **extra}


def post(mockllm: MockLLMClient, request: dict[str, Any], method: str = "generateContent", **kw: Any) -> httpx.Response:
    model = kw.pop("model", MODEL)
    query = kw.pop("query", "")
    headers = {**FAST, **kw.pop("headers", {})}
    return httpx.post(url(mockllm, method, model, query), json=request, headers=headers, timeout=5)


def sse(raw: bytes) -> list[dict[str, Any]]:
    assert raw.endswith(b"\r\n\r\n")
    blocks = raw.split(b"\r\n\r\n")[:-1]
    assert all(block.startswith(b"data: ") and b"\n" not in block for block in blocks)
    return [json.loads(block.removeprefix(b"data: ")) for block in blocks]


def parts_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [part for event in events for part in event["candidates"][0]["content"]["parts"]]


def cfg(fault: str | None = None, *, afc: bool = False, **extra: Any) -> types.GenerateContentConfig:
    """Per-request config; the SDK's automatic function calling is off unless a test is about it."""
    headers = {"x-mock-fault": fault} if fault else {}
    if not afc:
        extra["automatic_function_calling"] = types.AutomaticFunctionCallingConfig(disable=True)
    return types.GenerateContentConfig(http_options=types.HttpOptions(headers=headers), **extra)


def sdk_tools() -> list[types.Tool]:
    return [types.Tool(function_declarations=[types.FunctionDeclaration(**WEATHER), types.FunctionDeclaration(**TIME)])]


def thinking(include: bool = True, budget: int | None = 256) -> types.ThinkingConfig:
    return types.ThinkingConfig(include_thoughts=include, thinking_budget=budget)


def collect(stream: Iterator[types.GenerateContentResponse]) -> tuple[list[types.Part], types.GenerateContentResponse]:
    """Every part of a stream in order, and the last chunk."""
    parts: list[types.Part] = []
    last = None
    for last in stream:
        if last.candidates and last.candidates[0].content and last.candidates[0].content.parts:
            parts += last.candidates[0].content.parts
    assert last is not None
    return parts, last


# -- function calls: raw bytes --------------------------------------------------------------------


def test_streamed_call_is_one_whole_function_call_part_in_google_spelling(mockllm: MockLLMClient, marker: str) -> None:
    rule(mockllm, marker, {"blocks": [{"text": "Checking."}, CALL_PARIS]})
    response = post(mockllm, body(marker, tools=TOOLS), "streamGenerateContent", query="?alt=sse")
    assert response.status_code == 200
    events = sse(response.content)
    (entry,) = mockllm.journal(prompt_contains=marker)
    prompt = events[0]["usageMetadata"]["promptTokenCount"]
    rid = events[0]["responseId"]
    call_event = next(e for e in events if "functionCall" in e["candidates"][0]["content"]["parts"][0])
    # The call's event, byte for byte: Google's JSON spelling, `args` an object, no finish yet.
    raw_call = (
        b'data: {"candidates": [{"content": {"parts": [{"functionCall": {"name": "get_weather","args": '
        b'{"city": "Paris","unit": "c"}}}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": %d,'
        b'"totalTokenCount": %d,"promptTokensDetails": [{"modality": "TEXT","tokenCount": %d}]},'
        b'"modelVersion": "gemini-2.5-flash","responseId": "%s"}\r\n\r\n' % (prompt, prompt, prompt, rid.encode())
    )
    assert raw_call in response.content
    usage = events[-1]["usageMetadata"]
    assert usage["candidatesTokenCount"] == count_tokens("Checking.") + count_tokens('{"city":"Paris","unit":"c"}')
    assert call_event["candidates"][0]["content"]["parts"] == [{"functionCall": {"name": "get_weather", "args": PARIS}}]
    texts = [p["text"] for e in events[:-1] for p in e["candidates"][0]["content"]["parts"] if "text" in p]
    assert "".join(texts) == "Checking."
    final = events[-1]
    assert final["candidates"][0]["finishReason"] == "STOP"  # calls finish with STOP too
    assert final["candidates"][0]["content"]["parts"] == [{"text": ""}]
    assert parts_of(events).index(call_event["candidates"][0]["content"]["parts"][0]) == len(events) - 2
    assert entry["tool_calls"] == [
        {"id": entry["tool_calls"][0]["id"], "name": "get_weather", "arguments": '{"city":"Paris","unit":"c"}'}
    ]
    assert entry["agent"]["tools"] == ["get_weather", "get_time"]


def test_array_stream_carries_the_same_events_pretty_printed(mockllm: MockLLMClient, marker: str) -> None:
    rule(
        mockllm,
        marker,
        {
            "blocks": [
                {"text": "Checking."},
                CALL_PARIS,
                {"tool_call": {"name": "get_time", "arguments": {"zone": "CET", "hours": 3}}},
            ]
        },
    )
    request = body(marker, tools=TOOLS, generationConfig={"thinkingConfig": {"includeThoughts": True}})
    alt = post(mockllm, request, "streamGenerateContent", query="?alt=sse")
    array = post(mockllm, request, "streamGenerateContent")
    assert array.headers["content-type"] == "application/json; charset=UTF-8"
    assert array.content.startswith(b'[{\n  "candidates": [') and array.content.endswith(b"}\n]")
    assert b'"args": {\n                "city": "Paris",\n                "unit": "c"\n              }' in array.content
    assert json.loads(array.content) == sse(alt.content)
    assert b'"thought": true' in array.content and b'"thoughtSignature": "' in array.content
    calls = [p["functionCall"] for p in parts_of(sse(alt.content)) if "functionCall" in p]
    assert calls == [{"name": "get_weather", "args": PARIS}, {"name": "get_time", "args": {"zone": "CET", "hours": 3}}]


def test_non_streamed_answer_has_one_part_per_block(mockllm: MockLLMClient, marker: str) -> None:
    rule(mockllm, marker, {"blocks": [{"text": "Checking."}, CALL_PARIS]})
    response = post(mockllm, body(marker, tools=TOOLS))
    assert response.content.startswith(b'{\n  "candidates": [\n    {\n      "content": {\n        "parts": [')
    (candidate,) = response.json()["candidates"]
    assert candidate["content"]["parts"] == [
        {"text": "Checking."},
        {"functionCall": {"name": "get_weather", "args": PARIS}},
    ]
    assert candidate["finishReason"] == "STOP"


def test_same_request_twice_gives_the_same_bytes(mockllm: MockLLMClient, marker: str) -> None:
    request = body(
        marker,
        tools=TOOLS,
        toolConfig={"functionCallingConfig": {"mode": "ANY"}},
        generationConfig={"thinkingConfig": {"thinkingBudget": 64, "includeThoughts": True}},
    )
    first = post(mockllm, request, "streamGenerateContent", query="?alt=sse").content
    second = post(mockllm, request, "streamGenerateContent", query="?alt=sse").content
    assert first == second and b'"functionCall"' in first and b'"thought": true' in first


def test_thoughts_stream_in_pieces_before_the_answer_event_by_event(mockllm: MockLLMClient, marker: str) -> None:
    rule(mockllm, marker, {"blocks": [{"reasoning": "Think it over."}, {"text": "Done."}]})
    request = body(marker, generationConfig={"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 128}})
    response = post(mockllm, request, "streamGenerateContent", query="?alt=sse")
    events = sse(response.content)
    prompt = events[0]["usageMetadata"]["promptTokenCount"]
    thoughts = events[0]["usageMetadata"]["thoughtsTokenCount"]
    rid = events[0]["responseId"]

    def event(part: dict[str, Any]) -> dict[str, Any]:
        return {
            "candidates": [{"content": {"parts": [part], "role": "model"}, "index": 0}],
            "usageMetadata": {
                "promptTokenCount": prompt,
                "totalTokenCount": prompt + thoughts,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
                "thoughtsTokenCount": thoughts,
            },
            "modelVersion": MODEL,
            "responseId": rid,
        }

    thought_texts = [p["text"] for p in parts_of(events) if p.get("thought")]
    answer_texts = [p["text"] for p in parts_of(events[:-1]) if not p.get("thought")]
    assert "".join(thought_texts) == "Think it over." and len(thought_texts) > 1  # in pieces
    assert "".join(answer_texts) == "Done."
    expected = [event({"text": t, "thought": True}) for t in thought_texts] + [event({"text": t}) for t in answer_texts]
    assert events[:-1] == expected  # thoughts first, then the answer, one part an event
    assert thoughts == len(thought_texts)
    final = events[-1]
    assert final["candidates"][0]["finishReason"] == "STOP"
    usage = final["usageMetadata"]
    assert usage["thoughtsTokenCount"] == thoughts
    assert usage["candidatesTokenCount"] == len(answer_texts)  # thoughts are not candidates' tokens
    assert usage["totalTokenCount"] == prompt + thoughts + len(answer_texts)
    raw = (
        b'data: {"candidates": [{"content": {"parts": [{"text": "Think","thought": true}],"role": "model"},"index": 0}]'
    )
    assert response.content.startswith(raw)


# -- function calls through the SDK ---------------------------------------------------------------


def test_sdk_reads_a_call_streamed_and_not_streamed(mockllm: MockLLMClient, gemini: genai.Client, marker: str) -> None:
    rule(mockllm, marker, {"blocks": [{"text": "Let me check."}, CALL_PARIS]})
    whole = gemini.models.generate_content(model=MODEL, contents=f"Weather? {marker}", config=cfg(tools=sdk_tools()))
    (call,) = whole.function_calls
    assert (call.name, call.args) == ("get_weather", PARIS)
    assert whole.text == "Let me check."
    assert whole.candidates[0].finish_reason == types.FinishReason.STOP
    parts, last = collect(
        gemini.models.generate_content_stream(model=MODEL, contents=f"Weather? {marker}", config=cfg(tools=sdk_tools()))
    )
    calls = [p.function_call for p in parts if p.function_call]
    assert [(c.name, c.args) for c in calls] == [("get_weather", PARIS)]
    assert "".join(p.text for p in parts if p.text) == "Let me check."
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata.candidates_token_count == whole.usage_metadata.candidates_token_count


def test_parallel_calls_are_parts_of_one_answer(mockllm: MockLLMClient, gemini: genai.Client, marker: str) -> None:
    second = {"tool_call": {"name": "get_time", "arguments": {"zone": "CET", "hours": 9}}}
    rule(mockllm, marker, {"blocks": [CALL_PARIS, second]})
    whole = gemini.models.generate_content(model=MODEL, contents=f"Both {marker}", config=cfg(tools=sdk_tools()))
    assert [(c.name, c.args) for c in whole.function_calls] == [
        ("get_weather", PARIS),
        ("get_time", {"zone": "CET", "hours": 9}),
    ]
    parts, _ = collect(
        gemini.models.generate_content_stream(model=MODEL, contents=f"Both {marker}", config=cfg(tools=sdk_tools()))
    )
    assert [p.function_call.name for p in parts if p.function_call] == ["get_weather", "get_time"]
    assert len(mockllm.journal(prompt_contains=marker)[0]["tool_calls"]) == 2


def mode(name: str, *allowed: str) -> types.ToolConfig:
    config = types.FunctionCallingConfig(mode=name, allowed_function_names=list(allowed) or None)
    return types.ToolConfig(function_calling_config=config)


def test_mode_none_drops_the_calls(mockllm: MockLLMClient, gemini: genai.Client, marker: str) -> None:
    rule(mockllm, marker, {"blocks": [{"text": "Just text."}, CALL_PARIS]})
    response = gemini.models.generate_content(
        model=MODEL, contents=f"Q {marker}", config=cfg(tools=sdk_tools(), tool_config=mode("NONE"))
    )
    assert response.function_calls is None and response.text == "Just text."
    assert mockllm.journal(prompt_contains=marker)[0]["agent"]["tool_choice"] == "none"


def test_mode_any_forces_a_call_with_arguments_valid_against_the_schema(
    mockllm: MockLLMClient, gemini: genai.Client, marker: str
) -> None:
    schemas = {"get_weather": WEATHER_SCHEMA, "get_time": TIME_SCHEMA}
    for i in range(4):
        response = gemini.models.generate_content(
            model=MODEL, contents=f"Q{i} {marker}", config=cfg(tools=sdk_tools(), tool_config=mode("ANY"))
        )
        (call,) = response.function_calls
        jsonschema.validate(call.args, schemas[call.name])
    # ANY with one allowed name: that function, streamed too.
    parts, _ = collect(
        gemini.models.generate_content_stream(
            model=MODEL, contents=f"Q {marker}", config=cfg(tools=sdk_tools(), tool_config=mode("ANY", "get_time"))
        )
    )
    (call,) = [p.function_call for p in parts if p.function_call]
    assert call.name == "get_time"
    jsonschema.validate(call.args, TIME_SCHEMA)
    assert mockllm.journal(prompt_contains=marker)[-1]["agent"]["tool_choice"] == {"tool": "get_time"}


def test_mode_auto_without_a_rule_answers_in_text(mockllm: MockLLMClient, gemini: genai.Client, marker: str) -> None:
    response = gemini.models.generate_content(
        model=MODEL, contents=f"Q {marker}", config=cfg(tools=sdk_tools(), tool_config=mode("AUTO"))
    )
    assert response.function_calls is None and response.text
    (entry,) = mockllm.journal(prompt_contains=marker)
    assert entry["agent"]["tool_choice"] == "auto" and entry["tool_calls"] == []


def test_agent_loop_with_the_plain_sdk_ends_in_text(mockllm: MockLLMClient, gemini: genai.Client, marker: str) -> None:
    rule(mockllm, marker, CALL_PARIS)

    def get_weather(city: str, unit: str) -> dict[str, Any]:
        return {"city": city, "temperature": 21, "unit": unit}

    for model in (MODEL, "gemini-3-pro-preview"):  # Gemini 3 checks the thought signature on the way back
        contents: list[types.Content] = [types.Content(role="user", parts=[types.Part(text=f"Weather? {marker}")])]
        config = cfg(tools=sdk_tools(), thinking_config=thinking(include=False))
        for _ in range(5):
            response = gemini.models.generate_content(model=model, contents=contents, config=config)
            if not response.function_calls:
                break
            contents.append(response.candidates[0].content)
            results = [
                types.Part.from_function_response(name=call.name, response={"result": get_weather(**call.args)})
                for call in response.function_calls
            ]
            contents.append(types.Content(role="user", parts=results))
        assert response.function_calls is None and response.text
        assert len(contents) == 3
        assert contents[1].parts[0].thought_signature  # sent with the call, sent back with it
    entries = mockllm.journal(prompt_contains=marker)
    assert len(entries) == 4 and all(e["outcome"] == "completed" for e in entries)
    assert entries[1]["agent"]["tool_results"][0]["name"] == "get_weather"
    assert json.loads(entries[1]["agent"]["tool_results"][0]["content"]) == {
        "result": {"city": "Paris", "temperature": 21, "unit": "c"}
    }


def get_weather(city: str, unit: str) -> dict[str, Any]:
    """Weather in a city.

    Args:
        city: the city
        unit: c or f
    """
    return {"city": city, "temperature": 21, "unit": unit}


@pytest.mark.parametrize("streamed", [False, True])
def test_sdk_automatic_function_calling_loop_terminates(
    mockllm: MockLLMClient, gemini: genai.Client, marker: str, streamed: bool
) -> None:
    rule(mockllm, marker, CALL_PARIS)
    config = cfg(tools=[get_weather], afc=True)
    if streamed:
        chunks = list(gemini.models.generate_content_stream(model=MODEL, contents=f"Weather? {marker}", config=config))
        text = "".join(chunk.text or "" for chunk in chunks)
    else:
        response = gemini.models.generate_content(model=MODEL, contents=f"Weather? {marker}", config=config)
        text = response.text
        history = response.automatic_function_calling_history
        assert [c.role for c in history] == ["user", "model", "user"]
    assert text
    entries = mockllm.journal(prompt_contains=marker)
    assert len(entries) == 2  # the call, then the answer to its result
    assert entries[0]["tool_calls"][0]["name"] == "get_weather" and entries[1]["tool_calls"] == []
    (result,) = entries[1]["agent"]["tool_results"]
    assert json.loads(result["content"])["result"]["temperature"] == 21


# -- thoughts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True])
def test_sdk_sees_thoughts_only_when_included(
    mockllm: MockLLMClient, gemini: genai.Client, marker: str, streamed: bool
) -> None:
    def run(config: types.ThinkingConfig) -> tuple[list[types.Part], types.GenerateContentResponseUsageMetadata]:
        c = cfg(thinking_config=config)
        if streamed:
            parts, last = collect(gemini.models.generate_content_stream(model=MODEL, contents=f"Q {marker}", config=c))
            return parts, last.usage_metadata
        response = gemini.models.generate_content(model=MODEL, contents=f"Q {marker}", config=c)
        return response.candidates[0].content.parts, response.usage_metadata

    parts, usage = run(thinking(include=True, budget=40))
    thoughts = [p for p in parts if p.thought]
    assert thoughts and parts.index(thoughts[-1]) < parts.index(next(p for p in parts if p.text and not p.thought))
    assert usage.thoughts_token_count == 40
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count + 40
    parts, usage = run(thinking(include=False, budget=40))
    assert not any(p.thought for p in parts) and usage.thoughts_token_count == 40  # hidden, still counted
    parts, usage = run(types.ThinkingConfig(include_thoughts=True, thinking_level="LOW"))
    assert any(p.thought for p in parts) and usage.thoughts_token_count
    parts, usage = run(types.ThinkingConfig(include_thoughts=True))  # dynamic thinking, shown
    assert any(p.thought for p in parts) and usage.thoughts_token_count
    parts, usage = run(thinking(include=True, budget=0))  # a budget of 0 turns thinking off
    assert not any(p.thought for p in parts) and usage.thoughts_token_count is None


def test_thought_signature_rides_on_the_first_call_when_thinking(mockllm: MockLLMClient, marker: str) -> None:
    second = {"tool_call": {"name": "get_time", "arguments": {"zone": "CET", "hours": 9}}}
    rule(mockllm, marker, {"blocks": [{"reasoning": "Two lookups."}, CALL_PARIS, second]})
    request = body(marker, tools=TOOLS, generationConfig={"thinkingConfig": {"thinkingBudget": 100}})
    parts = post(mockllm, request).json()["candidates"][0]["content"]["parts"]
    assert [list(p) for p in parts] == [["functionCall", "thoughtSignature"], ["functionCall"]]  # hidden thoughts
    assert base64.b64decode(parts[0]["thoughtSignature"])
    request["generationConfig"]["thinkingConfig"]["includeThoughts"] = True
    parts = post(mockllm, request).json()["candidates"][0]["content"]["parts"]
    assert [list(p) for p in parts] == [["text", "thought"], ["functionCall", "thoughtSignature"], ["functionCall"]]
    assert parts[1]["thoughtSignature"] == sign("Two lookups.")  # the signature of the thoughts shown
    plain = post(mockllm, body(marker, tools=TOOLS)).json()["candidates"][0]["content"]["parts"]
    assert all("thoughtSignature" not in p for p in plain)  # no thinking asked: none (2.5)


# -- structured output ------------------------------------------------------------------------------


class Weather(BaseModel):
    city: str
    celsius: int
    sunny: bool


@pytest.mark.parametrize("streamed", [False, True])
def test_response_schema_pydantic_is_parsed(
    mockllm: MockLLMClient, gemini: genai.Client, marker: str, streamed: bool
) -> None:
    config = cfg(response_mime_type="application/json", response_schema=Weather)
    if streamed:
        chunks = list(gemini.models.generate_content_stream(model=MODEL, contents=f"Q {marker}", config=config))
        text = "".join(c.text or "" for c in chunks)
        assert len(chunks) > 2  # streamed in pieces like any text
        Weather.model_validate_json(text)
    else:
        response = gemini.models.generate_content(model=MODEL, contents=f"Q {marker}", config=config)
        assert isinstance(response.parsed, Weather)
        assert Weather.model_validate_json(response.text) == response.parsed
    assert mockllm.journal(prompt_contains=marker)[0]["agent"]["output"] == "json_schema"


@pytest.mark.parametrize(
    "config",
    [
        {"responseMimeType": "application/json", "responseJsonSchema": TIME_SCHEMA},
        {"responseMimeType": "application/json", "responseSchema": {**WEATHER_OPENAPI, "propertyOrdering": ["city"]}},
        {"responseMimeType": "application/json"},
    ],
)
def test_raw_schemas_give_valid_json(mockllm: MockLLMClient, marker: str, config: dict[str, Any]) -> None:
    text = post(mockllm, body(marker, generationConfig=config)).json()["candidates"][0]["content"]["parts"][0]["text"]
    value = json.loads(text)
    if "responseJsonSchema" in config:
        jsonschema.validate(value, TIME_SCHEMA)
    elif "responseSchema" in config:
        jsonschema.validate(value, {**WEATHER_SCHEMA, "additionalProperties": True})
    else:
        assert isinstance(value, dict)


# -- faults in the middle of a call and of the thoughts -----------------------------------------------


def thinking_call(mockllm: MockLLMClient, marker: str) -> int:
    """A rule of 3 thought chunks, then a call: returns the call's chunk index."""
    rule(mockllm, marker, {"blocks": [{"reasoning": "One two three"}, {"text": "Ok"}, CALL_PARIS]})
    return 4


def stream_faulted(
    gemini: genai.Client, marker: str, fault: str, seen: list[types.Part] | None = None
) -> list[types.Part]:
    """Stream with the fault; the parts go to `seen` as they come (kept when the stream fails)."""
    seen = [] if seen is None else seen
    config = cfg(fault, tools=sdk_tools(), thinking_config=thinking())
    for chunk in gemini.models.generate_content_stream(model=MODEL, contents=f"Q {marker}", config=config):
        if chunk.candidates and chunk.candidates[0].content and chunk.candidates[0].content.parts:
            seen += chunk.candidates[0].content.parts
    return seen


@pytest.mark.parametrize("where", ["thought", "call"])
def test_error_in_the_middle_is_a_server_error(
    mockllm: MockLLMClient, gemini: genai.Client, marker: str, where: str
) -> None:
    call_at = thinking_call(mockllm, marker)
    after = 1 if where == "thought" else call_at
    seen: list[types.Part] = []
    with pytest.raises(errors.ServerError) as caught:
        stream_faulted(gemini, marker, f"error-after={after}", seen)
    assert (caught.value.code, caught.value.status) == (500, "INTERNAL")  # in-band, after a 200
    assert [bool(p.thought) for p in seen] == ([True] if where == "thought" else [True, True, True, False])
    assert not any(p.function_call for p in seen)  # the cut falls at the call: none of it arrives


@pytest.mark.parametrize("where", ["thought", "call"])
def test_disconnect_in_the_middle_is_a_protocol_error(
    mockllm: MockLLMClient, gemini: genai.Client, marker: str, where: str
) -> None:
    call_at = thinking_call(mockllm, marker)
    after = 1 if where == "thought" else call_at
    seen: list[types.Part] = []
    with pytest.raises((httpx2.RemoteProtocolError, httpx.RemoteProtocolError)):
        stream_faulted(gemini, marker, f"disconnect-after={after}", seen)
    assert len(seen) == after and not any(p.function_call for p in seen)
    assert mockllm.wait_for_journal(marker, count=1)[0]["outcome"] == "disconnected"


@pytest.mark.parametrize("where", ["thought", "call"])
def test_malformed_in_the_middle_is_a_broken_event_of_that_kind(
    mockllm: MockLLMClient, gemini: genai.Client, marker: str, where: str
) -> None:
    call_at = thinking_call(mockllm, marker)
    after = 1 if where == "thought" else call_at
    seen: list[types.Part] = []
    with pytest.raises(errors.UnknownApiResponseError):
        stream_faulted(gemini, marker, f"malformed-after={after}", seen)
    assert len(seen) == after
    request = body(marker, tools=TOOLS, generationConfig={"thinkingConfig": {"includeThoughts": True}})
    raw = post(
        mockllm,
        request,
        "streamGenerateContent",
        query="?alt=sse",
        headers={"x-mock-fault": f"malformed-after={after}"},
    )
    broken = raw.content.split(b"\r\n\r\n")[after]
    if where == "thought":
        assert broken.endswith(b'{"parts": [{"text": "')
    else:
        assert broken.endswith(b'{"functionCall": {"name": "get_weather","args": {"')


def test_fragmented_call_and_thoughts_reassemble(mockllm: MockLLMClient, gemini: genai.Client, marker: str) -> None:
    thinking_call(mockllm, marker)
    clean = stream_faulted(gemini, marker, "")
    fragmented = stream_faulted(gemini, marker, "fragment")
    assert [p.model_dump() for p in fragmented] == [p.model_dump() for p in clean]
    assert any(p.function_call for p in fragmented) and any(p.thought for p in fragmented)


# -- strict checks ------------------------------------------------------------------------------------

FR = {"functionResponse": {"name": "get_weather", "response": {"t": 21}}}
FC = {"functionCall": {"name": "get_weather", "args": PARIS}}
USER = {"role": "user", "parts": [{"text": "Weather?"}]}


@pytest.mark.parametrize(
    ("check", "request_body", "model", "message"),
    [
        ("gemini.role", {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, MODEL,
         "Please use a valid role: user, model."),
        ("gemini.role", {"contents": [USER, {"role": "tool", "parts": [FR]}]}, MODEL,
         "Please use a valid role: user, model."),
        ("gemini.function-response-without-call", {"contents": [USER, {"role": "user", "parts": [FR]}], "tools": TOOLS},
         MODEL, "Please ensure that function response turn comes immediately after a function call turn."),
        ("gemini.function-response-without-call",
         {"contents": [USER, {"role": "model", "parts": [{"functionCall": {"name": "get_time", "args": {}}}]},
                       {"role": "user", "parts": [FR]}], "tools": TOOLS},
         MODEL, "Please ensure that function response turn comes immediately after a function call turn."),
        ("gemini.function-response-count",
         {"contents": [USER, {"role": "model", "parts": [FC, FC]}, {"role": "user", "parts": [FR]}], "tools": TOOLS},
         MODEL, "Please ensure that the number of function response parts is equal to the number of function call "
         "parts of the function call turn."),
        ("gemini.allowed-function-name-undeclared",
         {"contents": [USER], "tools": TOOLS,
          "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["nope"]}}},
         MODEL, "allowed_function_names[0]"),
        ("gemini.function-calling-config-without-declarations",
         {"contents": [USER], "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}},
         MODEL, "Function calling config is set without function_declarations."),
        ("gemini.response-schema-without-json-mime",
         {"contents": [USER], "generationConfig": {"responseSchema": WEATHER_OPENAPI}}, MODEL, "response_mime_type"),
        ("gemini.invalid-function-name",
         {"contents": [USER], "tools": [{"functionDeclarations": [{"name": "get weather!"}]}]}, MODEL,
         "* GenerateContentRequest.tools[0].function_declarations[0].name: Invalid function name. Must start with a "
         "letter or an underscore."),
        ("gemini.missing-thought-signature",
         {"contents": [USER, {"role": "model", "parts": [FC]}, {"role": "user", "parts": [FR]}], "tools": TOOLS},
         "gemini-3-pro-preview",
         "Function call is missing a thought_signature in functionCall parts. This is required for tools to work "
         "correctly, and missing thought_signature may lead to degraded model performance. Additional data, function "
         "call `default_api:get_weather` , position 2. Please refer to "
         "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."),
    ],
)  # fmt: skip
def test_strict_checks_refuse_as_the_api_does_and_strict_false_accepts(
    mockllm: MockLLMClient, marker: str, check: str, request_body: dict[str, Any], model: str, message: str
) -> None:
    request = json.loads(json.dumps(request_body).replace("Weather?", f"Weather? {marker}"))
    request["contents"][0]["parts"][0]["text"] += f" {marker}"
    for method, query in (("generateContent", ""), ("streamGenerateContent", "")):
        response = post(mockllm, request, method, model=model, query=query)
        assert response.status_code == 400
        data = response.json()
        error = (data[0] if method.startswith("stream") else data)["error"]
        assert error["status"] == "INVALID_ARGUMENT" and error["code"] == 400
        assert message in error["message"] and "details" not in error
    entries = mockllm.journal(prompt_contains=marker)
    assert [e["outcome"] for e in entries] == ["rejected"] * 2 and entries[0]["check"] == check
    mockllm.patch_config({"strict": False})
    assert post(mockllm, request, model=model).status_code == 200


def test_signatures_sent_back_pass_and_older_models_do_not_check(mockllm: MockLLMClient, marker: str) -> None:
    signed = {**FC, "thoughtSignature": "c2lnbmVk"}
    turn = [{"role": "user", "parts": [{"text": f"Weather? {marker}"}]}]
    assert (
        post(
            mockllm,
            {
                "contents": [*turn, {"role": "model", "parts": [signed]}, {"role": "user", "parts": [FR]}],
                "tools": TOOLS,
            },
            model="gemini-3-flash-preview",
        ).status_code
        == 200
    )
    unsigned = [*turn, {"role": "model", "parts": [FC]}, {"role": "user", "parts": [FR]}]
    assert post(mockllm, {"contents": unsigned, "tools": TOOLS}).status_code == 200  # 2.5 does not check
    # An earlier turn (before the last user text) is not checked on Gemini 3 either.
    later = [
        *unsigned,
        {"role": "model", "parts": [{"text": "21 degrees."}]},
        {"role": "user", "parts": [{"text": "Thanks"}]},
    ]
    assert post(mockllm, {"contents": later, "tools": TOOLS}, model="gemini-3-pro-preview").status_code == 200


def test_function_role_results_and_journal(mockllm: MockLLMClient, marker: str) -> None:
    """The legacy `function` role carries results too; the results are `tool` messages."""
    contents = [
        {"role": "user", "parts": [{"text": f"Weather? {marker}"}]},
        {"role": "model", "parts": [{**FC, "functionCall": {**FC["functionCall"], "id": "c1"}}]},
        {"role": "function", "parts": [{"functionResponse": {**FR["functionResponse"], "id": "c1"}}]},
    ]
    response = post(mockllm, {"contents": contents, "tools": TOOLS})
    assert response.status_code == 200
    (entry,) = mockllm.journal(prompt_contains=marker)
    assert entry["agent"]["tool_results"] == [{"call_id": "c1", "name": "get_weather", "content": '{"t":21}'}]


def test_openapi_schemas_read_as_json_schema() -> None:
    openapi = {
        "type": "OBJECT",
        "propertyOrdering": ["tags", "note"],
        "properties": {
            "tags": {"type": "ARRAY", "items": {"type": "STRING", "format": "enum", "enum": ["a"]}, "minItems": "1"},
            "note": {"type": "STRING", "nullable": True, "maxLength": "9"},
            "any": {"anyOf": [{"type": "INTEGER"}, {"type": "BOOLEAN"}]},
        },
        "required": ["tags"],
    }
    assert _json_schema(openapi) == {
        "type": "object",
        "required": ["tags"],
        "properties": {
            "tags": {"type": "array", "minItems": 1, "items": {"type": "string", "format": "enum", "enum": ["a"]}},
            "note": {"type": ["string", "null"], "maxLength": 9},
            "any": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]},
        },
    }


def test_a_plain_request_stays_off_the_agent_path(mockllm: MockLLMClient, marker: str) -> None:
    response = post(mockllm, body(marker, text="Which tools think about a response schema?"))
    assert response.status_code == 200
    (entry,) = mockllm.journal(prompt_contains=marker)
    assert "agent" not in entry and "tool_calls" not in entry
    # googleSearch alone offers no function: an agent request with nothing to call, answered in text
    response = post(mockllm, body(marker, tools=[{"googleSearch": {}}]))
    assert response.json()["candidates"][0]["content"]["parts"][0]["text"]
