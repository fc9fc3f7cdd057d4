"""OpenAI chat completions as an agent backend: tool calls, reasoning, structured output and the
provider's request checks, judged by the real `openai` SDK and by the raw bytes against the mock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel

from mockllm import MockLLMClient

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "minLength": 2}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME_SCHEMA = {
    "type": "object",
    "properties": {"zone": {"type": "string"}, "hours": {"type": "integer", "minimum": 0, "maximum": 23}},
    "required": ["zone", "hours"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": WEATHER_SCHEMA,
        "strict": True,
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "description": "Time in a zone", "parameters": TIME_SCHEMA, "strict": True},
}
PARIS = {"city": "Paris", "unit": "c"}


_CLIENTS: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Each test's SDK clients closed when it ends, so no socket is left for a later test's GC."""
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def sdk(mockllm: MockLLMClient, timeout: float = 5.0) -> openai.OpenAI:
    client = openai.OpenAI(base_url=mockllm.openai_base_url, api_key="sk-test", max_retries=0, timeout=timeout)
    _CLIENTS.append(client)
    return client


def ask(marker: str, text: str = "What is the weather?") -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"{text} {marker}"}]


def rule(mockllm: MockLLMClient, marker: str, answer: dict[str, Any], **match: Any) -> None:
    mockllm.patch_config({"answers": {"rules": [{"match": {"contains": marker, **match}, "answer": answer}]}})


def post(mockllm: MockLLMClient, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{mockllm.openai_base_url}/chat/completions", json=body, headers=headers or {}, timeout=5)


def events(raw: bytes) -> list[Any]:
    """The `data:` payloads of an SSE body, decoded (the last one is "[DONE]")."""
    out: list[Any] = []
    for block in raw.split(b"\n\n"):
        if block:
            data = block.removeprefix(b"data: ").decode()
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def chunk(entry_id: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": entry_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": "fp_mock0001",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


# -- tool calls: raw bytes ----------------------------------------------------------------------


def test_streamed_tool_calls_are_api_openai_com_bytes_event_by_event(mockllm: MockLLMClient, marker: str) -> None:
    answer = {"blocks": [{"tool_call": {"name": "get_weather", "arguments": PARIS}},
                         {"tool_call": {"name": "get_time", "arguments": {"zone": "CET", "hours": 9}}}]}  # fmt: skip
    rule(mockllm, marker, answer)
    body = {"model": "gpt-4o", "messages": ask(marker), "tools": [WEATHER, TIME], "stream": True}
    response = post(mockllm, body)
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream; charset=utf-8"
    got = events(response.content)
    entry = mockllm.journal(prompt_contains=marker)[0]
    chunks, blocks = entry["planned"]["chunks"], entry["planned"]["blocks"]
    assert [b["kind"] for b in blocks] == ["tool_call", "tool_call"]
    assert [(c["name"], json.loads(c["arguments"])) for c in entry["tool_calls"]] == [
        ("get_weather", PARIS),
        ("get_time", {"zone": "CET", "hours": 9}),
    ]
    first = got[0]
    ident, created = first["id"], first["created"]
    assert ident.startswith("chatcmpl-")
    ids = [c["id"] for c in entry["tool_calls"]]  # as sent on the wire: `call_` and 24 hex digits
    assert all(i.startswith("call_") and len(i) == 29 and int(i[5:], 16) >= 0 for i in ids)
    expected = [
        chunk(ident, created, "gpt-4o", {"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": ids[0], "type": "function", "function": {"name": "get_weather", "arguments": ""}}
        ], "refusal": None}),
    ]  # fmt: skip
    for block_index, block in enumerate(blocks):
        if block_index:
            opening = {"index": 1, "id": ids[1], "type": "function", "function": {"name": "get_time", "arguments": ""}}
            expected.append(chunk(ident, created, "gpt-4o", {"tool_calls": [opening]}))
        for piece in chunks[block["chunks"][0] : block["chunks"][1]]:
            delta = {"tool_calls": [{"index": block_index, "function": {"arguments": piece}}]}
            expected.append(chunk(ident, created, "gpt-4o", delta))
    expected += [chunk(ident, created, "gpt-4o", {}, "tool_calls"), "[DONE]"]
    assert got == expected
    assert len(blocks[0]["chunks"]) == 2 and blocks[0]["chunks"][1] - blocks[0]["chunks"][0] > 3  # in pieces
    # The bytes are compact JSON, one event per frame, as api.openai.com writes them.
    assert response.content.startswith(b'data: {"id":"chatcmpl-')
    assert b'"delta":{"tool_calls":[{"index":0,"function":{"arguments":' in response.content


def test_streamed_reasoning_is_reasoning_content_deltas_before_the_content(mockllm: MockLLMClient, marker: str) -> None:
    body = {
        "model": "deepseek-r1",
        "messages": ask(marker, "Think, then answer."),
        "reasoning_effort": "low",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = post(mockllm, body)
    got = events(response.content)
    entry = mockllm.journal(prompt_contains=marker)[0]
    chunks, blocks = entry["planned"]["chunks"], entry["planned"]["blocks"]
    assert [b["kind"] for b in blocks] == ["reasoning", "text"]
    ident, created = got[0]["id"], got[0]["created"]

    def with_usage(event: dict[str, Any]) -> dict[str, Any]:
        return {**event, "usage": None}

    expected = [with_usage(chunk(ident, created, "deepseek-r1", {"role": "assistant", "content": "", "refusal": None}))]
    for block in blocks:
        key = "reasoning_content" if block["kind"] == "reasoning" else "content"
        for piece in chunks[block["chunks"][0] : block["chunks"][1]]:
            expected.append(with_usage(chunk(ident, created, "deepseek-r1", {key: piece})))
    expected.append(with_usage(chunk(ident, created, "deepseek-r1", {}, "stop")))
    usage = got[-2]["usage"]
    reasoning_tokens = entry["planned"]["reasoning_tokens"]
    assert reasoning_tokens == blocks[0]["chunks"][1] - blocks[0]["chunks"][0] == 24  # low effort
    assert usage["completion_tokens_details"]["reasoning_tokens"] == reasoning_tokens
    assert usage["completion_tokens"] == entry["planned"]["completion_tokens"] == len(chunks)
    assert got[:-2] == expected and got[-2]["choices"] == [] and got[-1] == "[DONE]"
    assert entry["answer"] == "".join(chunks[blocks[1]["chunks"][0] :])


# -- tool calls: the SDK ------------------------------------------------------------------------


def test_stream_helper_accumulates_parallel_tool_calls(mockllm: MockLLMClient, marker: str) -> None:
    answer = {"blocks": [{"tool_call": {"name": "get_weather", "arguments": PARIS}},
                         {"tool_call": {"name": "get_time"}}]}  # fmt: skip
    rule(mockllm, marker, answer)
    client = sdk(mockllm)
    done: list[tuple[str, Any]] = []
    with client.chat.completions.stream(model="gpt-4o", messages=ask(marker), tools=[WEATHER, TIME]) as stream:
        for event in stream:
            if event.type == "tool_calls.function.arguments.done":
                done.append((event.name, event.parsed_arguments))
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert calls[0].function.parsed_arguments == PARIS
    jsonschema.validate(calls[1].function.parsed_arguments, TIME_SCHEMA)  # generated from the schema
    assert [name for name, _ in done] == ["get_weather", "get_time"]
    journaled = mockllm.tool_calls(prompt_contains=marker)
    assert [(c["id"], c["arguments"]) for c in journaled] == [(c.id, c.function.arguments) for c in calls]
    # parallel_tool_calls: false keeps one call
    whole = client.chat.completions.create(
        model="gpt-4o", messages=ask(marker), tools=[WEATHER, TIME], parallel_tool_calls=False
    )
    assert [c.function.name for c in whole.choices[0].message.tool_calls] == ["get_weather"]


def test_non_streamed_tool_call_has_null_content(mockllm: MockLLMClient, marker: str) -> None:
    rule(mockllm, marker, {"tool_call": {"name": "get_weather", "arguments": PARIS}})
    result = sdk(mockllm).chat.completions.create(model="gpt-4o", messages=ask(marker), tools=[WEATHER])
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_") and len(call.id) == 29
    assert json.loads(call.function.arguments) == PARIS
    raw = post(mockllm, {"model": "gpt-4o", "messages": ask(marker), "tools": [WEATHER]}).json()
    assert list(raw["choices"][0]["message"]) == ["role", "content", "tool_calls", "refusal", "annotations"]


def test_text_then_tool_call_streamed_and_not(mockllm: MockLLMClient, marker: str) -> None:
    answer = {"blocks": [{"text": "Let me look that up."}, {"tool_call": {"name": "get_weather", "arguments": PARIS}}]}
    rule(mockllm, marker, answer)
    client = sdk(mockllm)
    whole = client.chat.completions.create(model="gpt-4o", messages=ask(marker), tools=[WEATHER])
    message = whole.choices[0].message
    assert message.content == "Let me look that up." and message.tool_calls[0].function.name == "get_weather"
    with client.chat.completions.stream(model="gpt-4o", messages=ask(marker), tools=[WEATHER]) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Let me look that up."
    assert final.choices[0].message.tool_calls[0].function.parsed_arguments == PARIS
    assert final.choices[0].finish_reason == "tool_calls"
    got = events(
        post(mockllm, {"model": "gpt-4o", "messages": ask(marker), "tools": [WEATHER], "stream": True}).content
    )
    assert got[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    opening = next(e for e in got[1:-1] if "tool_calls" in e["choices"][0]["delta"])
    assert opening["choices"][0]["delta"]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}


@pytest.mark.parametrize("stream", [False, True])
def test_tool_choice_is_honoured(mockllm: MockLLMClient, marker: str, stream: bool) -> None:
    client = sdk(mockllm)

    def answer(**kwargs: Any) -> Any:
        if not stream:
            return client.chat.completions.create(model="gpt-4o", messages=ask(marker), **kwargs).choices[0]
        with client.chat.completions.stream(model="gpt-4o", messages=ask(marker), **kwargs) as s:
            return s.get_final_completion().choices[0]

    auto = answer(tools=[WEATHER, TIME])  # no rule: the model answers in text
    assert auto.finish_reason == "stop" and auto.message.content and not auto.message.tool_calls
    required = answer(tools=[WEATHER, TIME], tool_choice="required")
    (call,) = required.message.tool_calls
    assert required.finish_reason == "tool_calls" and call.function.name in ("get_weather", "get_time")
    jsonschema.validate(
        json.loads(call.function.arguments),
        {"get_weather": WEATHER_SCHEMA, "get_time": TIME_SCHEMA}[call.function.name],
    )
    named = answer(tools=[WEATHER, TIME], tool_choice={"type": "function", "function": {"name": "get_time"}})
    (call,) = named.message.tool_calls
    assert call.function.name == "get_time"
    jsonschema.validate(json.loads(call.function.arguments), TIME_SCHEMA)
    rule(
        mockllm, marker, {"blocks": [{"text": "Checking."}, {"tool_call": {"name": "get_weather", "arguments": PARIS}}]}
    )
    none = answer(tools=[WEATHER], tool_choice="none")
    assert none.finish_reason == "stop" and none.message.content == "Checking." and not none.message.tool_calls


def test_generated_arguments_validate_and_are_deterministic(mockllm: MockLLMClient, marker: str) -> None:
    body = {"model": "gpt-4o", "messages": ask(marker), "tools": [WEATHER], "tool_choice": "required", "stream": True}
    first, second = post(mockllm, body).content, post(mockllm, body).content
    assert first == second  # same request, same bytes: ids, arguments, chunking
    calls = mockllm.tool_calls(prompt_contains=marker)
    assert calls[0]["id"] == calls[1]["id"]
    jsonschema.validate(json.loads(calls[0]["arguments"]), WEATHER_SCHEMA)
    other = post(mockllm, {**body, "tools": [WEATHER, TIME]}).content
    assert other != first  # the tools offered are part of the seed


# -- reasoning ----------------------------------------------------------------------------------


def test_reasoning_effort_through_the_sdk(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    whole = client.chat.completions.create(model="o4-mini", messages=ask(marker), reasoning_effort="medium")
    message = whole.choices[0].message
    reasoning = message.model_extra["reasoning_content"]
    assert reasoning and message.content and whole.choices[0].finish_reason == "stop"
    assert whole.usage.completion_tokens_details.reasoning_tokens == 48
    assert whole.usage.completion_tokens > 48
    pieces: list[str] = []
    text: list[str] = []
    stream = client.chat.completions.create(
        model="o4-mini", messages=ask(marker), reasoning_effort="medium", stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    usage = None
    for event in stream:
        if event.usage:
            usage = event.usage
        if event.choices:
            delta = event.choices[0].delta
            if (delta.model_extra or {}).get("reasoning_content"):
                assert not text, "reasoning comes before the content"
                pieces.append(delta.model_extra["reasoning_content"])
            if delta.content:
                text.append(delta.content)
    assert "".join(pieces) == reasoning and "".join(text) == message.content
    assert usage is not None and usage.completion_tokens_details.reasoning_tokens == 48
    with client.chat.completions.stream(model="o4-mini", messages=ask(marker), reasoning_effort="medium") as s:
        final = s.get_final_completion()
    assert final.choices[0].message.content == message.content
    assert final.choices[0].message.model_extra["reasoning_content"] == reasoning
    plain = client.chat.completions.create(model="o4-mini", messages=ask(marker), reasoning_effort="none")
    assert "reasoning_content" not in (plain.choices[0].message.model_extra or {})


def test_reasoning_then_tool_call(mockllm: MockLLMClient, marker: str) -> None:
    rule(mockllm, marker, {"tool_call": {"name": "get_weather", "arguments": PARIS}}, tool_result=False)
    client = sdk(mockllm)
    kwargs: dict[str, Any] = {
        "model": "o4-mini",
        "messages": ask(marker),
        "tools": [WEATHER],
        "reasoning_effort": "low",
    }
    with client.chat.completions.stream(**kwargs) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.model_extra["reasoning_content"] and message.content is None
    assert message.tool_calls[0].function.parsed_arguments == PARIS
    got = events(post(mockllm, {**kwargs, "stream": True}).content)
    assert got[0]["choices"][0]["delta"] == {"role": "assistant", "content": None, "refusal": None}
    assert "reasoning_content" in got[1]["choices"][0]["delta"]


# -- structured output --------------------------------------------------------------------------


class Forecast(BaseModel):
    city: str
    celsius: float
    rain: bool
    days: list[str]


def test_parse_with_a_pydantic_model_streamed_and_not(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    parse = getattr(client.chat.completions, "parse", None) or client.beta.chat.completions.parse
    whole = parse(model="gpt-4o", messages=ask(marker), response_format=Forecast)
    parsed = whole.choices[0].message.parsed
    assert isinstance(parsed, Forecast) and whole.choices[0].finish_reason == "stop"
    with client.chat.completions.stream(model="gpt-4o", messages=ask(marker), response_format=Forecast) as stream:
        deltas = [e for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert len(deltas) > 3  # the JSON comes in pieces, like text
    assert final.choices[0].message.parsed == parsed
    entry = mockllm.journal(prompt_contains=marker)[0]
    assert entry["agent"]["output"] == "json_schema"
    jsonschema.validate(json.loads(entry["answer"]), Forecast.model_json_schema())


def test_json_object_answers_an_object(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    messages = ask(marker, "Answer in JSON.")
    whole = client.chat.completions.create(model="gpt-4o", messages=messages, response_format={"type": "json_object"})
    assert isinstance(json.loads(whole.choices[0].message.content), dict)
    stream = client.chat.completions.create(
        model="gpt-4o", messages=messages, response_format={"type": "json_object"}, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == whole.choices[0].message.content
    plain = client.chat.completions.create(model="gpt-4o", messages=messages, response_format={"type": "text"})
    assert not mockllm.journal(prompt_contains=marker)[-1].get("agent")
    assert plain.choices[0].message.content


# -- an agent loop ------------------------------------------------------------------------------


def get_weather(city: str, unit: str) -> str:
    return json.dumps({"city": city, "temperature": 21 if unit == "c" else 70, "unit": unit})


def test_agent_loop_with_the_plain_sdk_runs_to_completion(mockllm: MockLLMClient, marker: str) -> None:
    rule(mockllm, marker, {"tool_call": {"name": "get_weather"}}, tool_offered="get_weather")
    client = sdk(mockllm)
    messages: list[Any] = ask(marker)
    local = {"get_weather": get_weather}
    for _turn in range(5):
        result = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER])
        message = result.choices[0].message
        if not message.tool_calls:
            break
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            output = local[call.function.name](**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
    else:
        pytest.fail("the agent loop did not end")
    assert result.choices[0].finish_reason == "stop" and message.content
    assert _turn == 1
    results = mockllm.tool_results(prompt_contains=marker)
    calls = mockllm.tool_calls(prompt_contains=marker)
    assert [r["call_id"] for r in results] == [calls[0]["id"]]
    assert results[0]["name"] == "get_weather" and json.loads(results[0]["content"])["temperature"] in (21, 70)
    # and streamed, with the stream helper's accumulation
    messages = ask(marker)
    with client.chat.completions.stream(model="gpt-4o", messages=messages, tools=[WEATHER]) as stream:
        first = stream.get_final_completion().choices[0].message
    call = first.tool_calls[0]
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [{"id": call.id, "type": "function",
         "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": get_weather(**call.function.parsed_arguments)},
    ]  # fmt: skip
    with client.chat.completions.stream(model="gpt-4o", messages=messages, tools=[WEATHER]) as stream:
        last = stream.get_final_completion().choices[0]
    assert last.finish_reason == "stop" and last.message.content and not last.message.tool_calls


# -- faults -------------------------------------------------------------------------------------

LONG_ARGS = {"city": "Saint-Rémy-de-Provence", "unit": "c"}


def stream_call(client: openai.OpenAI, marker: str, fault: str, **kwargs: Any) -> Any:
    with client.chat.completions.stream(
        model="gpt-4o", messages=ask(marker), tools=[WEATHER], extra_headers={"x-mock-fault": fault}, **kwargs
    ) as stream:
        return stream.get_final_completion()


def test_faults_inside_tool_call_arguments(mockllm: MockLLMClient, marker: str) -> None:
    rule(mockllm, marker, {"tool_call": {"name": "get_weather", "arguments": LONG_ARGS}})
    client = sdk(mockllm)
    with pytest.raises(openai.APIError) as caught:
        stream_call(client, marker, "error-after=3")
    assert not isinstance(caught.value, openai.APIStatusError) and caught.value.body["type"] == "server_error"
    with pytest.raises(openai.APIConnectionError):
        stream_call(client, marker, "disconnect-after=3")
    with pytest.raises(json.JSONDecodeError):
        stream_call(client, marker, "malformed-after=3")
    whole = stream_call(client, marker, "fragment")
    assert whole.choices[0].message.tool_calls[0].function.parsed_arguments == LONG_ARGS
    raw = post(mockllm, {"model": "m", "messages": ask(marker), "tools": [WEATHER], "stream": True},
               {"x-mock-fault": "malformed-after=3"}).content  # fmt: skip
    bad = [block for block in raw.split(b"\n\n") if block and not block.endswith(b"}") and block != b"data: [DONE]"]
    assert bad == [b"data: " + bad[0][6:]] and b'"tool_calls":[{"index":0,"function":{"arguments":"' in bad[0]
    raw = post(mockllm, {"model": "m", "messages": ask(marker), "tools": [WEATHER], "stream": True},
               {"x-mock-fault": "error-after=3"}).content  # fmt: skip
    got = events(raw)
    pieces = [e["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for e in got[1:-1]]
    assert len(pieces) == 3 and "error" in got[-1]
    outcomes = [e["outcome"] for e in mockllm.journal(prompt_contains=marker)]
    assert "disconnected" in outcomes


def test_faults_inside_reasoning(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)

    def run(fault: str) -> tuple[list[str], list[str]]:
        reasoning: list[str] = []
        text: list[str] = []
        stream = client.chat.completions.create(
            model="o4-mini", messages=ask(marker), reasoning_effort="low", stream=True,
            extra_headers={"x-mock-fault": fault},
        )  # fmt: skip
        for event in stream:
            delta = event.choices[0].delta if event.choices else None
            if delta is not None and (delta.model_extra or {}).get("reasoning_content"):
                reasoning.append(delta.model_extra["reasoning_content"])
            if delta is not None and delta.content:
                text.append(delta.content)
        return reasoning, text

    with pytest.raises(openai.APIError) as caught:
        run("error-after=5")
    assert not isinstance(caught.value, openai.APIStatusError)
    with pytest.raises(openai.APIConnectionError):
        run("disconnect-after=5")
    with pytest.raises(json.JSONDecodeError):
        run("malformed-after=5")
    raw = post(mockllm, {"model": "m", "messages": ask(marker), "reasoning_effort": "low", "stream": True},
               {"x-mock-fault": "error-after=5"}).content  # fmt: skip
    got = events(raw)
    assert [list(e["choices"][0]["delta"]) for e in got[1:-1]] == [["reasoning_content"]] * 5 and "error" in got[-1]
    reasoning, text = run("fragment")
    entry = mockllm.journal(prompt_contains=marker)[-1]
    block = entry["planned"]["blocks"][0]
    assert "".join(reasoning) == block["text"] and "".join(text) == entry["answer"]
    raw = post(mockllm, {"model": "m", "messages": ask(marker), "reasoning_effort": "low", "stream": True},
               {"x-mock-fault": "malformed-after=5"}).content  # fmt: skip
    assert b'"delta":{"reasoning_content":"\n\n' in raw


# -- the provider's checks ----------------------------------------------------------------------


def call_message(call_id: str = "call_abc") -> dict[str, Any]:
    call = {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def tool_message(call_id: str = "call_abc") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": "sunny"}


CHECKS: list[tuple[str, dict[str, Any], str | None, str]] = [
    ("openai-chat.tool-message-without-call", {"messages": ["user", tool_message()], "tools": [WEATHER]},
     "messages.[1].role", "messages with role 'tool' must be a response to a preceeding message with 'tool_calls'"),
    ("openai-chat.tool-call-id-unknown", {"messages": ["user", call_message(), tool_message("call_zzz")],
     "tools": [WEATHER]}, "messages.[2].tool_call_id", "'tool_call_id' of 'call_zzz' not found in 'tool_calls'"),
    ("openai-chat.tool-calls-without-results", {"messages": ["user", call_message(), "user"], "tools": [WEATHER]},
     "messages.[1].role", "The following tool_call_ids did not have response messages: call_abc"),
    ("openai-chat.tool-calls-without-results", {"messages": ["user", call_message()]},
     "messages.[1].role", "must be followed by tool messages responding to each 'tool_call_id'"),
    ("openai-chat.tool-choice-unknown-function",
     {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_time"}}},
     "tool_choice", "function 'get_time' not found in 'tools'"),
    ("openai-chat.tool-choice-without-tools", {"tool_choice": "required"}, "tool_choice",
     "'tool_choice' is only allowed when 'tools' are specified"),
    ("openai-chat.parallel-tool-calls-without-tools", {"parallel_tool_calls": False}, "parallel_tool_calls",
     "'parallel_tool_calls' is only allowed when 'tools' are specified"),
    ("openai-chat.json-object-without-json-word", {"response_format": {"type": "json_object"}}, "messages",
     "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'"),
    ("openai-chat.json-schema-missing", {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
     "response_format.json_schema.name", "Missing required parameter: 'response_format.json_schema.name'."),
    ("openai-chat.json-schema-missing", {"response_format": {"type": "json_schema"}},
     "response_format.json_schema", "Missing required parameter: 'response_format.json_schema'."),
    ("openai-chat.tool-name-missing", {"tools": [{"type": "function", "function": {"parameters": WEATHER_SCHEMA}}]},
     "tools[0].function.name", "Missing required parameter: 'tools[0].function.name'."),
    ("openai-chat.tool-name-invalid", {"tools": [{"type": "function", "function": {"name": "get weather"}}]},
     "tools[0].function.name", "string does not match pattern. Expected a string that matches the pattern"),
    ("openai-chat.tool-name-invalid", {"tools": [{"type": "function", "function": {"name": "x" * 65}}]},
     "tools[0].function.name", "string too long. Expected a string with maximum length 64"),
    ("openai-chat.tools-invalid", {"tools": []}, "tools", "Invalid 'tools': empty array."),
    ("openai-chat.tool-function-missing", {"tools": [{"type": "function"}]}, "tools[0].function",
     "Missing required parameter: 'tools[0].function'."),
    ("openai-chat.tool-choice-invalid", {"tools": [WEATHER], "tool_choice": "always"}, "tool_choice",
     "Supported values are: 'none', 'auto', and 'required'."),
    ("openai-chat.reasoning-effort-invalid", {"reasoning_effort": "max"}, "reasoning_effort",
     "Invalid value: 'max'."),
    ("openai-chat.schema-invalid", {"tools": [{"type": "function", "function": {"name": "f", "parameters":
     {"type": "objekt"}}}], "tool_choice": "required"}, None, "Invalid schema for function 'f': "),
    ("openai-chat.schema-invalid", {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema":
     {"type": "string", "minLength": 5, "maxLength": 2}}}}, None, "Invalid schema for response_format 'x': "),
    ("openai-chat.n-above-one", {"n": 2}, "n", "'n' must be 1"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("check", "fields", "param", "message"), CHECKS, ids=[f"{c[0]}-{i}" for i, c in enumerate(CHECKS)]
)
def test_strict_checks_refuse_as_openai_and_strict_false_accepts(
    mockllm: MockLLMClient, marker: str, check: str, fields: dict[str, Any], param: str | None, message: str
) -> None:
    body: dict[str, Any] = {"model": "gpt-4o", **fields}
    body["messages"] = [
        {"role": "user", "content": f"Hello {marker}"} if m == "user" else m for m in fields.get("messages", ["user"])
    ]
    response = post(mockllm, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param and message in error["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(mockllm).post("/chat/completions", body=body, cast_to=object)
    assert caught.value.body["param"] == param
    (refusal, _again) = mockllm.refusals(prompt_contains=marker)
    assert refusal["check"] == check and refusal["status"] == 400 and message in refusal["error"]
    assert mockllm.journal(prompt_contains=marker)[0]["outcome"] == "rejected"
    mockllm.patch_config({"strict": False})
    for stream in (False, True):
        accepted = post(mockllm, {**body, "stream": stream})
        assert accepted.status_code == 200, accepted.text
    assert accepted.content.endswith(b"data: [DONE]\n\n")


def test_a_correct_history_passes_the_checks(mockllm: MockLLMClient, marker: str) -> None:
    two = {"role": "assistant", "content": "Checking both.", "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]}  # fmt: skip
    body = {
        "model": "gpt-4o",
        "tools": [WEATHER, TIME],
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"Weather and time {marker}"},
            two,
            tool_message("call_b"),
            {"role": "tool", "tool_call_id": "call_a", "content": [{"type": "text", "text": "rainy"}]},
        ],
    }
    response = post(mockllm, body)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["finish_reason"] == "stop"
    entry = mockllm.journal(prompt_contains=marker)[0]
    assert entry["agent"]["tool_results"] == [
        {"call_id": "call_b", "name": "get_time", "content": "sunny"},
        {"call_id": "call_a", "name": "get_weather", "content": "rainy"},
    ]


def test_plain_requests_take_the_plain_path(mockllm: MockLLMClient, marker: str) -> None:
    body = {"model": "gpt-4o", "messages": ask(marker), "stream": True}
    raw = post(mockllm, body).content
    entry = mockllm.journal(prompt_contains=marker)[0]
    assert "agent" not in entry and "blocks" not in entry["planned"]
    got = events(raw)
    assert [e["choices"][0]["delta"] for e in got[1:-2]] == [{"content": c} for c in entry["planned"]["chunks"]]
