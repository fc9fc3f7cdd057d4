"""The Responses API's agent features against the real mock, judged by the `openai` SDK: function
calls (streamed as `function_call` items with argument deltas, several in one turn, after text),
`tool_choice`, reasoning items (summary deltas when a summary is asked for, hidden otherwise, counted
in `reasoning_tokens`), `text.format` structured output, an agent loop, faults inside a call's
arguments and inside reasoning, and the request checks the API makes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pydantic
import pytest

from mockllm import MockLLMClient

FAST = {"x-mock-ttft-ms": "0", "x-mock-itl-ms": "0", "x-mock-answer-tokens": "12"}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
    "strict": True,
}
TIME = {
    "type": "function",
    "name": "get_time",
    "description": "The time in a zone.",
    "parameters": {
        "type": "object",
        "properties": {"zone": {"type": "string", "minLength": 2}},
        "required": ["zone"],
        "additionalProperties": False,
    },
    "strict": True,
}
PARIS = {"city": "Paris", "unit": "c"}


_CLIENTS: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Each test's SDK clients closed when it ends, so no socket is left for a later test's GC."""
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def sdk(mockllm: MockLLMClient) -> openai.OpenAI:
    client = openai.OpenAI(base_url=mockllm.openai_base_url, api_key="k", max_retries=0, timeout=5)
    _CLIENTS.append(client)
    return client


def rule(mockllm: MockLLMClient, marker: str, answer: dict[str, Any], **match: Any) -> None:
    mockllm.patch_config({"answers": {"rules": [{"match": {"contains": marker, **match}, "answer": answer}]}})


def call_weather(mockllm: MockLLMClient, marker: str) -> None:
    rule(mockllm, marker, {"tool_call": {"name": "get_weather", "arguments": PARIS}})


def headers(fault: str | None = None) -> dict[str, str]:
    return FAST if fault is None else {**FAST, "x-mock-fault": fault}


def post(mockllm: MockLLMClient, fault: str | None = None, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{mockllm.openai_base_url}/responses", json={"model": "m", **body}, headers=headers(fault), timeout=5
    )


def raw_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.split(b"\n\n"):
        if block:
            name, data = block.split(b"\n", 1)
            out.append((name.removeprefix(b"event: ").decode(), json.loads(data.removeprefix(b"data: "))))
    return out


def numbered(parsed: list[tuple[str, dict[str, Any]]]) -> bool:
    return [data["sequence_number"] for _, data in parsed] == list(range(len(parsed)))


# -- tool calls ---------------------------------------------------------------------------------


def test_streamed_function_call_raw_events_are_the_api_shape(mockllm: MockLLMClient, marker: str) -> None:
    call_weather(mockllm, marker)
    raw = post(mockllm, input=f"Weather {marker}", tools=[WEATHER], stream=True).content
    parsed = raw_events(raw)
    assert numbered(parsed) and all(name == data["type"] for name, data in parsed)
    names = [name for name, _ in parsed]
    assert names[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert names[-3:] == ["response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    assert set(names[3:-3]) == {"response.function_call_arguments.delta"} and len(names[3:-3]) > 2
    entry = mockllm.journal(prompt_contains=marker)[0]
    (call,) = entry["tool_calls"]
    call_id = call["id"]  # the journal's id is the function_call's `call_id`, as sent
    fc = "fc_" + call_id.removeprefix("call_")
    arguments = json.dumps(PARIS, separators=(",", ":"))
    added = parsed[2][1]
    assert added == {
        "type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
        "item": {"id": fc, "type": "function_call", "status": "in_progress", "arguments": "", "call_id": call_id,
                 "name": "get_weather"},
    }  # fmt: skip
    for k, (_, data) in enumerate(parsed[3:-3], 3):
        assert list(data) == ["type", "sequence_number", "item_id", "output_index", "delta"]
        assert data["sequence_number"] == k and data["item_id"] == fc and data["output_index"] == 0
    assert "".join(data["delta"] for _, data in parsed[3:-3]) == arguments == call["arguments"]
    done = parsed[-3][1]
    assert done == {"type": "response.function_call_arguments.done", "sequence_number": len(parsed) - 3,
                    "item_id": fc, "output_index": 0, "arguments": arguments}  # fmt: skip
    item = {"id": fc, "type": "function_call", "status": "completed", "arguments": arguments, "call_id": call_id,
            "name": "get_weather"}  # fmt: skip
    assert parsed[-2][1] == {"type": "response.output_item.done", "sequence_number": len(parsed) - 2,
                             "output_index": 0, "item": item}  # fmt: skip
    final = parsed[-1][1]["response"]
    assert final["status"] == "completed" and final["output"] == [item]
    assert final["tools"] == [{**WEATHER, "description": "The weather in a city."}] and final["tool_choice"] == "auto"
    # The raw bytes of one event, field order and all.
    assert (
        b'event: response.function_call_arguments.delta\ndata: {"type":"response.function_call_arguments.delta",'
        b'"sequence_number":3,"item_id":"' + fc.encode() + b'","output_index":0,"delta":'
    ) in raw
    # Deterministic: the same request, the same bytes.
    assert post(mockllm, input=f"Weather {marker}", tools=[WEATHER], stream=True).content == raw


@pytest.mark.parametrize("stream", [False, True])
def test_function_call_judged_by_the_sdk(mockllm: MockLLMClient, marker: str, stream: bool) -> None:
    call_weather(mockllm, marker)
    client = sdk(mockllm)
    kwargs: dict[str, Any] = {"model": "m", "input": f"Weather {marker}", "tools": [WEATHER], "extra_headers": FAST}
    if stream:
        with client.responses.stream(**kwargs) as events:
            seen = list(events)
            final = events.get_final_response()
        deltas = [e for e in seen if e.type == "response.function_call_arguments.delta"]
        assert deltas and deltas[-1].snapshot == json.dumps(PARIS, separators=(",", ":"))
    else:
        final = client.responses.parse(**kwargs)
    (call,) = final.output
    assert call.type == "function_call" and call.name == "get_weather" and call.status == "completed"
    assert json.loads(call.arguments) == PARIS and call.call_id.startswith("call_") and call.id.startswith("fc_")
    assert call.parsed_arguments == PARIS  # a strict tool: the SDK parses its arguments
    assert final.status == "completed" and final.output_text == ""


@pytest.mark.parametrize("stream", [False, True])
def test_text_then_parallel_calls(mockllm: MockLLMClient, marker: str, stream: bool) -> None:
    blocks = [
        {"text": "Let me check both."},
        {"tool_call": {"name": "get_weather", "arguments": PARIS}},
        {"tool_call": {"name": "get_time", "arguments": {"zone": "Europe/Paris"}}},
    ]
    rule(mockllm, marker, {"blocks": blocks})
    client = sdk(mockllm)
    kwargs: dict[str, Any] = {"model": "m", "input": f"Both {marker}", "tools": [WEATHER, TIME], "extra_headers": FAST}
    if stream:
        with client.responses.stream(**kwargs) as events:
            seen = list(events)
            final = events.get_final_response()
        assert [e.sequence_number for e in seen] == list(range(len(seen)))
        added = [e for e in seen if e.type == "response.output_item.added"]
        assert [(e.output_index, e.item.type) for e in added] == [
            (0, "message"),
            (1, "function_call"),
            (2, "function_call"),
        ]
    else:
        final = client.responses.create(**kwargs)
    message, weather, time = final.output
    assert message.type == "message" and final.output_text == "Let me check both."
    assert (weather.name, json.loads(weather.arguments)) == ("get_weather", PARIS)
    assert (time.name, json.loads(time.arguments)) == ("get_time", {"zone": "Europe/Paris"})
    assert weather.call_id != time.call_id and len({message.id, weather.id, time.id}) == 3
    # parallel_tool_calls false: the first call only.
    one = client.responses.create(**{**kwargs, "parallel_tool_calls": False})
    assert [item.type for item in one.output] == ["message", "function_call"] and one.parallel_tool_calls is False


def test_tool_choice_modes(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    base: dict[str, Any] = {"model": "m", "tools": [WEATHER, TIME], "extra_headers": FAST}
    # auto without a rule: text; none with a calling rule: text.
    auto = client.responses.create(input=f"Plain {marker}", **base)
    assert [item.type for item in auto.output] == ["message"] and auto.tool_choice == "auto"
    call_weather(mockllm, marker)
    none = client.responses.create(input=f"Weather {marker}", tool_choice="none", **base)
    assert [item.type for item in none.output] == ["message"] and none.tool_choice == "none"
    named = client.responses.create(
        input=f"Weather {marker}", tool_choice={"type": "function", "name": "get_weather"}, **base
    )
    assert [item.name for item in named.output] == ["get_weather"]
    assert named.tool_choice.type == "function" and named.tool_choice.name == "get_weather"


def test_forced_choice_without_a_rule_generates_valid_arguments(mockllm: MockLLMClient, marker: str) -> None:
    pytest.importorskip("mockllm._schema_instance")
    client = sdk(mockllm)
    for choice in ("required", {"type": "function", "name": "get_time"}):
        result = client.responses.create(model="m", input=f"Go {marker}", tools=[WEATHER, TIME], tool_choice=choice,
                                         extra_headers=FAST)  # type: ignore[arg-type]  # fmt: skip
        (call,) = result.output
        assert call.type == "function_call"
        tool = WEATHER if call.name == "get_weather" else TIME
        jsonschema.validate(json.loads(call.arguments), tool["parameters"])
        if isinstance(choice, dict):
            assert call.name == "get_time"


def test_agent_loop_runs_to_the_final_answer(mockllm: MockLLMClient, marker: str) -> None:
    rule(mockllm, marker, {"tool_call": {"name": "get_weather", "arguments": PARIS}}, tool_offered="get_weather")
    client = sdk(mockllm)

    def get_weather(city: str, unit: str) -> str:
        return f"18 degrees {unit} in {city}"

    inputs: list[Any] = [{"role": "user", "content": f"Weather in Paris? {marker}"}]
    for turn in range(5):  # noqa: B007
        response = client.responses.create(model="m", input=inputs, tools=[WEATHER], extra_headers=FAST)
        calls = [item for item in response.output if item.type == "function_call"]
        if not calls:
            break
        inputs += [item.model_dump(exclude_none=True) for item in response.output]
        for call in calls:
            output = get_weather(**json.loads(call.arguments))
            inputs.append({"type": "function_call_output", "call_id": call.call_id, "output": output})
    assert turn == 1 and response.output_text and response.status == "completed"
    first, second = mockllm.journal(prompt_contains=marker)
    assert first["tool_calls"][0]["name"] == "get_weather" and second["tool_calls"] == []
    assert second["agent"]["tool_results"][0]["content"] == "18 degrees c in Paris"
    assert second["agent"]["tool_results"][0]["name"] == "get_weather"


def test_agent_loop_streamed(mockllm: MockLLMClient, marker: str) -> None:
    call_weather(mockllm, marker)
    client = sdk(mockllm)
    inputs: list[Any] = [{"role": "user", "content": f"Weather? {marker}"}]
    with client.responses.stream(model="m", input=inputs, tools=[WEATHER], extra_headers=FAST) as stream:
        first = stream.get_final_response()
    (call,) = first.output
    inputs += [call.model_dump(exclude_none=True, exclude={"parsed_arguments"}),
               {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}]  # fmt: skip
    with client.responses.stream(model="m", input=inputs, tools=[WEATHER], extra_headers=FAST) as stream:
        final = stream.get_final_response()
    assert final.output_text and [item.type for item in final.output] == ["message"]


# -- reasoning -----------------------------------------------------------------------------------


def test_visible_reasoning_raw_events(mockllm: MockLLMClient, marker: str) -> None:
    rule(mockllm, marker, {"blocks": [{"reasoning": "Think first."}, {"text": "Answer."}]})
    raw = post(mockllm, input=f"Q {marker}", reasoning={"effort": "low", "summary": "auto"}, stream=True).content
    parsed = raw_events(raw)
    assert numbered(parsed)
    ident = parsed[0][1]["response"]["id"].removeprefix("resp_")
    rs = f"rs_{ident}"
    where = {"item_id": rs, "output_index": 0, "summary_index": 0}
    names = [name for name, _ in parsed]
    k = names.index("response.reasoning_summary_text.done")
    assert parsed[2][1] == {"type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
                            "item": {"id": rs, "type": "reasoning", "summary": []}}  # fmt: skip
    assert parsed[3][1] == {"type": "response.reasoning_summary_part.added", "sequence_number": 3, **where,
                            "part": {"type": "summary_text", "text": ""}}  # fmt: skip
    assert set(names[4:k]) == {"response.reasoning_summary_text.delta"}
    assert "".join(data["delta"] for _, data in parsed[4:k]) == "Think first."
    assert parsed[k][1] == {"type": "response.reasoning_summary_text.done", "sequence_number": k, **where,
                            "text": "Think first."}  # fmt: skip
    summary = [{"type": "summary_text", "text": "Think first."}]
    assert parsed[k + 1][1] == {"type": "response.reasoning_summary_part.done", "sequence_number": k + 1, **where,
                                "part": summary[0]}  # fmt: skip
    assert parsed[k + 2][1]["item"] == {"id": rs, "type": "reasoning", "summary": summary}
    assert names[k + 3 : k + 5] == ["response.output_item.added", "response.content_part.added"]
    assert parsed[k + 3][1]["output_index"] == 1
    final = parsed[-1][1]["response"]
    assert [item["type"] for item in final["output"]] == ["reasoning", "message"]
    assert final["reasoning"] == {"effort": "low", "summary": "auto"}
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] > 0


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_summary_judged_by_the_sdk(mockllm: MockLLMClient, marker: str, stream: bool) -> None:
    client = sdk(mockllm)
    reasoning = {"effort": "medium", "summary": "auto"}
    kwargs: dict[str, Any] = {"model": "m", "input": f"Q {marker}", "reasoning": reasoning, "extra_headers": FAST}
    if stream:
        with client.responses.stream(**kwargs) as events:
            seen = list(events)
            final = events.get_final_response()
        text = "".join(e.delta for e in seen if e.type == "response.reasoning_summary_text.delta")
    else:
        final = client.responses.create(**kwargs)
        text = None
    reasoning, message = final.output
    assert reasoning.type == "reasoning" and reasoning.summary and reasoning.summary[0].text
    assert text in (None, reasoning.summary[0].text)
    assert message.type == "message" and final.output_text
    usage = final.usage
    assert usage is not None and usage.output_tokens_details.reasoning_tokens == 48  # medium's default
    assert usage.output_tokens > usage.output_tokens_details.reasoning_tokens


@pytest.mark.parametrize("stream", [False, True])
def test_hidden_reasoning_is_an_empty_item_and_counted(mockllm: MockLLMClient, marker: str, stream: bool) -> None:
    client = sdk(mockllm)
    kwargs: dict[str, Any] = {
        "model": "m",
        "input": f"Q {marker}",
        "reasoning": {"effort": "high"},
        "extra_headers": FAST,
    }
    if stream:
        with client.responses.stream(**kwargs) as events:
            seen = list(events)
            final = events.get_final_response()
        assert not [e for e in seen if "reasoning_summary" in e.type]
        assert [e.sequence_number for e in seen] == list(range(len(seen)))
    else:
        final = client.responses.create(**kwargs)
    reasoning, message = final.output
    assert reasoning.type == "reasoning" and reasoning.summary == [] and message.type == "message"
    assert final.usage is not None and final.usage.output_tokens_details.reasoning_tokens == 96
    assert final.reasoning is not None and final.reasoning.effort == "high" and final.reasoning.summary is None
    plain = client.responses.create(model="m", input=f"Q {marker}", extra_headers=FAST)
    assert plain.usage is not None and plain.usage.output_tokens_details.reasoning_tokens == 0


def test_reasoning_then_call_and_redacted(mockllm: MockLLMClient, marker: str) -> None:
    rule(mockllm, marker, {"blocks": [{"reasoning": "Need weather."}, {"redacted_reasoning": True},
                                      {"tool_call": {"name": "get_weather", "arguments": PARIS}}]})  # fmt: skip
    client = sdk(mockllm)
    kwargs: dict[str, Any] = {"model": "m", "input": f"W {marker}", "tools": [WEATHER],
                              "reasoning": {"effort": "low", "summary": "detailed"}, "extra_headers": FAST}  # fmt: skip
    with client.responses.stream(**kwargs) as events:
        final = events.get_final_response()
    shown, redacted, call = final.output
    assert shown.summary[0].text == "Need weather." and redacted.encrypted_content and redacted.summary == []
    assert call.type == "function_call"
    dump = [item.model_dump(exclude={"parsed_arguments"}) for item in final.output]
    assert [item.model_dump() for item in client.responses.create(**kwargs).output] == dump


# -- structured output ---------------------------------------------------------------------------


class Weather(pydantic.BaseModel):
    city: str
    degrees: int
    sunny: bool


@pytest.mark.parametrize("stream", [False, True])
def test_text_format_json_schema_parse(mockllm: MockLLMClient, marker: str, stream: bool) -> None:
    pytest.importorskip("mockllm._schema_instance")
    client = sdk(mockllm)
    kwargs: dict[str, Any] = {"model": "m", "input": f"Weather {marker}", "text_format": Weather, "extra_headers": FAST}
    if stream:
        with client.responses.stream(**kwargs) as events:
            final = events.get_final_response()
    else:
        final = client.responses.parse(**kwargs)
    assert isinstance(final.output_parsed, Weather)
    assert final.text.format.type == "json_schema" and final.text.format.name == "Weather"


def test_text_format_json_object(mockllm: MockLLMClient, marker: str) -> None:
    pytest.importorskip("mockllm._schema_instance")
    text: Any = {"format": {"type": "json_object"}}
    result = sdk(mockllm).responses.create(model="m", input=f"Answer in JSON {marker}", text=text, extra_headers=FAST)
    assert isinstance(json.loads(result.output_text), dict) and result.text.format.type == "json_object"


def test_text_format_with_a_rule_answer_is_the_rule_text(mockllm: MockLLMClient, marker: str) -> None:
    rule(mockllm, marker, {"fixed": '{"city":"Paris","degrees":18,"sunny":true}'})
    final = sdk(mockllm).responses.parse(model="m", input=f"W {marker}", text_format=Weather, extra_headers=FAST)
    assert final.output_parsed == Weather(city="Paris", degrees=18, sunny=True)


# -- faults inside a call's arguments and inside reasoning ---------------------------------------


def _long_call(mockllm: MockLLMClient, marker: str) -> None:
    arguments = {"city": "Paris " * 10, "unit": "c"}
    rule(mockllm, marker, {"blocks": [{"reasoning": "Thinking about the weather in Paris today."},
                                      {"tool_call": {"name": "get_weather", "arguments": arguments}}]})  # fmt: skip


def _body(marker: str) -> dict[str, Any]:
    return {
        "input": f"W {marker}",
        "tools": [WEATHER],
        "reasoning": {"effort": "low", "summary": "auto"},
        "stream": True,
    }


def _chunk_ranges(mockllm: MockLLMClient, marker: str) -> dict[str, list[int]]:
    blocks = mockllm.journal(prompt_contains=marker)[-1]["planned"]["blocks"]
    return {block["kind"]: block["chunks"] for block in blocks}


@pytest.mark.parametrize("where", ["reasoning", "tool_call"])
def test_error_inside_a_block_is_numbered_and_fails_the_response(
    mockllm: MockLLMClient, marker: str, where: str
) -> None:
    _long_call(mockllm, marker)
    post(mockllm, **_body(marker))
    start, stop = _chunk_ranges(mockllm, marker)[where]
    after = start + (stop - start) // 2
    parsed = raw_events(post(mockllm, f"error-after={after}", **_body(marker)).content)
    assert numbered(parsed)
    assert [name for name, _ in parsed][-2:] == ["error", "response.failed"]
    failed = parsed[-1][1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    kind = "reasoning" if where == "reasoning" else "function_call"
    assert failed["output"][-1]["type"] == kind
    if where == "tool_call":
        assert failed["output"][-1]["status"] == "incomplete"
        sent = "".join(d["delta"] for n, d in parsed if n == "response.function_call_arguments.delta")
        assert failed["output"][-1]["arguments"] == sent
    # The SDK hands the error over as events, and its stream helper has no final response.
    client = sdk(mockllm)
    body = _body(marker)
    del body["stream"]
    seen = list(client.responses.create(model="m", stream=True, extra_headers=headers(f"error-after={after}"), **body))
    assert seen[-1].type == "response.failed" and seen[-2].type == "error"


@pytest.mark.parametrize("where", ["reasoning", "tool_call"])
@pytest.mark.parametrize("fault", ["disconnect", "malformed"])
def test_transport_faults_inside_a_block(mockllm: MockLLMClient, marker: str, where: str, fault: str) -> None:
    _long_call(mockllm, marker)
    post(mockllm, **_body(marker))
    start, stop = _chunk_ranges(mockllm, marker)[where]
    after = start + (stop - start) // 2
    body = _body(marker)
    del body["stream"]
    seen: list[Any] = []
    error = openai.APIConnectionError if fault == "disconnect" else json.JSONDecodeError
    with pytest.raises(error):
        seen.extend(
            sdk(mockllm).responses.create(
                model="m", stream=True, extra_headers=headers(f"{fault}-after={after}"), **body
            )
        )
    kind = "response.reasoning_summary_text.delta" if where == "reasoning" else "response.function_call_arguments.delta"
    assert seen[-1].type == kind
    assert [e.sequence_number for e in seen] == list(range(len(seen)))
    if fault == "malformed":
        raw = post(mockllm, f"malformed-after={after}", **_body(marker)).content
        broken = [b for b in raw.split(b"\n\n") if b.startswith(b"event: ") and not b.rstrip().endswith(b"}")]
        assert len(broken) == 1 and broken[0].startswith(b"event: " + kind.encode())


def test_fragmented_agent_stream_gives_the_same_response(mockllm: MockLLMClient, marker: str) -> None:
    _long_call(mockllm, marker)
    client = sdk(mockllm)
    body = _body(marker)
    del body["stream"]
    whole = client.responses.create(model="m", extra_headers=FAST, **body)
    with client.responses.stream(model="m", extra_headers=headers("fragment"), **body) as events:
        final = events.get_final_response()
    assert [item.model_dump(exclude={"parsed_arguments"}) for item in final.output] == [
        item.model_dump() for item in whole.output
    ]


# -- request checks ------------------------------------------------------------------------------

CHECKS = [
    ("function-call-output-without-call", {"input": [{"role": "user", "content": "hi"},
     {"type": "function_call_output", "call_id": "call_x", "output": "1"}]}, "input",
     "No tool call found for function call output with call_id call_x."),
    ("function-call-without-output", {"input": [{"role": "user", "content": "hi"},
     {"type": "function_call", "call_id": "call_y", "name": "get_weather", "arguments": "{}"}], "tools": [WEATHER]},
     "input", "No tool output found for function call call_y."),
    ("tool-choice-not-offered", {"tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}},
     "tool_choice", "Tool choice 'nope' not found in 'tools' parameter."),
    ("text-format-missing-name", {"text": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
     "text.format.name", "Missing required parameter: 'text.format.name'."),
    ("text-format-missing-schema", {"text": {"format": {"type": "json_schema", "name": "x"}}},
     "text.format.schema", "Missing required parameter: 'text.format.schema'."),
    ("json-object-without-json", {"text": {"format": {"type": "json_object"}}}, "input",
     "Response input messages must contain the word 'json' in some form to use 'text.format' of type 'json_object'."),
    ("tool-missing-name", {"tools": [{"type": "function", "parameters": {"type": "object"}}]}, "tools[0].name",
     "Missing required parameter: 'tools[0].name'."),
    ("tool-invalid-name", {"tools": [{**WEATHER, "name": "get.weather"}]}, "tools[0].name",
     "Invalid 'tools[0].name': string does not match pattern. Expected a string that matches the pattern "
     "'^[a-zA-Z0-9_-]+$'."),
    ("tool-invalid-parameters", {"tools": [{**WEATHER, "parameters": "x"}]}, "tools[0].parameters",
     "Invalid type for 'tools[0].parameters': expected an object, but got a string instead."),
]  # fmt: skip


@pytest.mark.parametrize(("check", "body", "param", "message"), CHECKS, ids=[c[0] for c in CHECKS])
def test_request_checks(mockllm: MockLLMClient, marker: str, check: str, body: dict[str, Any], param: str,
                        message: str) -> None:  # fmt: skip
    body = {"input": f"Question {marker}", **body}
    if isinstance(body["input"], list):
        body["input"] = [{**body["input"][0], "content": f"hi {marker}"}, *body["input"][1:]]
    client = sdk(mockllm)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="m", extra_headers=FAST, **body)
    assert caught.value.status_code == 400
    assert caught.value.body == {"message": message, "type": "invalid_request_error", "param": param,
                                 "code": caught.value.body["code"]}  # fmt: skip
    if message.startswith("Missing required"):
        assert caught.value.body["code"] == "missing_required_parameter"
    (entry,) = mockllm.journal(prompt_contains=marker)
    assert (
        entry["outcome"] == "rejected" and entry["check"] == f"openai-responses.{check}" and entry["error"] == message
    )
    mockllm.patch_config({"strict": False})
    accepted = client.responses.create(model="m", extra_headers=FAST, **body)
    assert accepted.status == "completed"


def test_function_call_output_with_previous_response_id_is_not_checked(mockllm: MockLLMClient, marker: str) -> None:
    result = sdk(mockllm).responses.create(
        model="m", previous_response_id="resp_abc", extra_headers=FAST,
        input=[{"role": "user", "content": f"hi {marker}"},
               {"type": "function_call_output", "call_id": "call_x", "output": "1"}],
    )  # fmt: skip
    assert result.status == "completed" and result.previous_response_id == "resp_abc"


def test_plain_request_with_an_agent_echo_keeps_its_text(mockllm: MockLLMClient, marker: str) -> None:
    """Offering tools without a call changes only the echo: the one message item's events are the plain path's."""
    plain = raw_events(post(mockllm, input=f"Q {marker}", stream=True).content)
    rule(mockllm, marker, {"blocks": [{"text": "Hello there."}]})
    blocks = raw_events(post(mockllm, input=f"Q {marker}", stream=True).content)
    mockllm.reset()
    rule(mockllm, marker, {"fixed": "Hello there."})
    fixed = raw_events(post(mockllm, input=f"Q {marker}", stream=True).content)
    assert [(n, d) for n, d in blocks] == [(n, d) for n, d in fixed]
    assert numbered(plain)


@pytest.mark.parametrize("tools", [False, True])
def test_a_rule_reasoning_block_without_a_summary_is_hidden(mockllm: MockLLMClient, marker: str, tools: bool) -> None:
    """Without `reasoning.summary` the reasoning is not shown: an item with an empty summary, its tokens
    counted (with tools offered its time passes in silence; without, the plan hides it)."""
    rule(mockllm, marker, {"blocks": [{"reasoning": "Secret thoughts here."}, {"text": "Answer."}]})
    extra: dict[str, Any] = {"tools": [WEATHER]} if tools else {}
    parsed = raw_events(post(mockllm, input=f"Q {marker}", stream=True, **extra).content)
    assert numbered(parsed) and not [name for name, _ in parsed if "reasoning_summary" in name]
    final = parsed[-1][1]["response"]
    assert final["output"][0]["type"] == "reasoning" and final["output"][0]["summary"] == []
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] > 0 and final["output"][1]["type"] == "message"
    assert "Secret" not in json.dumps(parsed)
    # A malformed event in its time is a broken reasoning item event.
    fault = "malformed-after=1" if tools else "malformed-after=0"
    raw = post(mockllm, fault, input=f"Q {marker}", stream=True, **extra).content
    broken = [b for b in raw.split(b"\n\n") if b.startswith(b"event: ") and not b.rstrip().endswith(b"}")]
    assert len(broken) == 1 and b'"type":"reasoning"' in broken[0]
    assert (
        sdk(mockllm).responses.create(model="m", input=f"Q {marker}", extra_headers=FAST, **extra).output_text
        == "Answer."
    )


def test_max_output_tokens_inside_a_call_is_incomplete(mockllm: MockLLMClient, marker: str) -> None:
    rule(mockllm, marker, {"tool_call": {"name": "get_weather", "arguments": {"city": "Paris " * 20, "unit": "c"}}})
    client = sdk(mockllm)
    result = client.responses.create(model="m", input=f"W {marker}", tools=[WEATHER], max_output_tokens=16,
                                     extra_headers=FAST)  # fmt: skip
    assert result.status == "incomplete" and result.incomplete_details.reason == "max_output_tokens"
    (call,) = result.output
    assert call.status == "incomplete" and call.arguments and not call.arguments.endswith("}")
    events = list(client.responses.create(model="m", input=f"W {marker}", tools=[WEATHER], max_output_tokens=16,
                                          stream=True, extra_headers=FAST))  # fmt: skip
    assert events[-1].type == "response.incomplete" and events[-1].response.output[0].arguments == call.arguments
    assert [e.sequence_number for e in events] == list(range(len(events)))
