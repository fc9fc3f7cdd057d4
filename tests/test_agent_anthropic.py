"""Anthropic Messages as an agent backend: tool_use blocks, extended thinking, tool-forced JSON and the
API's own request checks, judged by the real `anthropic` SDK against the real mock server.

The raw bytes of a tool call and of a thinking stream are checked event by event against the shape
the API documents (docs.claude.com: "Streaming Messages", "Extended thinking"); everything else is
judged by the SDK's own stream helper (`input_json`, `thinking`, `signature` events, the final
message) and by `jsonschema` for generated arguments.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import httpx2
import jsonschema
import pytest

from mockllm import MockLLMClient
from mockllm._agent import sign

FAST = {"x-mock-ttft-ms": "0", "x-mock-itl-ms": "0"}
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME = {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 120}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
TOOLS = [
    {"name": "get_weather", "description": "The weather in a city.", "input_schema": WEATHER},
    {"name": "get_time", "description": "The time in a zone.", "input_schema": TIME},
]
PARIS = {"city": "Paris", "unit": "c"}
THINKING = {"type": "enabled", "budget_tokens": 1024}

pytestmark = pytest.mark.filterwarnings("error")  # the SDK must parse every frame without a warning


_CLIENTS: list[anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Each test's SDK clients closed when it ends, so no socket is left for a later test's GC."""
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def sdk(mockllm: MockLLMClient, timeout: float = 5.0) -> anthropic.Anthropic:
    client = anthropic.Anthropic(base_url=mockllm.base_url, api_key="k", max_retries=0, timeout=timeout)
    _CLIENTS.append(client)
    return client


def ask(marker: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"What is the weather in Paris? {marker}"}]


def rule(mockllm: MockLLMClient, marker: str, answer: dict[str, Any], **match: Any) -> None:
    mockllm.patch_config({"answers": {"rules": [{"match": {"contains": marker, **match}, "answer": answer}]}})


def weather_rule(mockllm: MockLLMClient, marker: str, *blocks: dict[str, Any]) -> None:
    rule(mockllm, marker, {"blocks": list(blocks) or [{"tool_call": {"name": "get_weather", "arguments": PARIS}}]})


def body(marker: str, **extra: Any) -> dict[str, Any]:
    return {"model": "claude-mock", "max_tokens": 2048, "messages": ask(marker), **extra}


def post(mockllm: MockLLMClient, payload: dict[str, Any], fault: str | None = None) -> httpx.Response:
    headers = dict(FAST, **({"x-mock-fault": fault} if fault else {}))
    return httpx.post(f"{mockllm.base_url}/v1/messages", json=payload, headers=headers, timeout=5)


def events(raw: bytes) -> list[tuple[str, Any]]:
    """(event, data as JSON) of an LF-framed SSE body; every frame exactly those two lines."""
    out = []
    for block in raw.decode().split("\n\n"):
        if block:
            event, data = block.split("\n")
            assert event.startswith("event: ") and data.startswith("data: "), block
            out.append((event.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def planned(mockllm: MockLLMClient, marker: str) -> dict[str, Any]:
    return mockllm.wait_for_journal(marker)[-1]["planned"]


def stream(client: anthropic.Anthropic, marker: str, fault: str | None = None, **kwargs: Any) -> Any:
    headers = dict(FAST, **({"x-mock-fault": fault} if fault else {}))
    kwargs.setdefault("messages", ask(marker))
    kwargs.setdefault("max_tokens", 2048)
    return client.messages.stream(model="claude-mock", extra_headers=headers, **kwargs)


def create(client: anthropic.Anthropic, marker: str, fault: str | None = None, **kwargs: Any) -> Any:
    headers = dict(FAST, **({"x-mock-fault": fault} if fault else {}))
    kwargs.setdefault("messages", ask(marker))
    kwargs.setdefault("max_tokens", 2048)
    return client.messages.create(model="claude-mock", extra_headers=headers, **kwargs)


# -- the raw bytes, event by event ------------------------------------------------------------------


def test_streamed_tool_call_bytes_are_the_documented_events(mockllm: MockLLMClient, marker: str) -> None:
    weather_rule(mockllm, marker)
    raw = post(mockllm, body(marker, tools=TOOLS, stream=True)).content
    plan = planned(mockllm, marker)
    (block,) = plan["blocks"]
    call_id = "toolu_01" + block["id"]
    got = events(raw)
    assert [e for e, _ in got] == ["message_start", "content_block_start", "ping"] + ["content_block_delta"] * len(
        plan["chunks"]
    ) + ["content_block_stop", "message_delta", "message_stop"]
    assert got[0][1]["message"]["content"] == [] and got[0][1]["message"]["stop_reason"] is None
    assert got[1][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {}},
    }
    deltas = [data for event, data in got if event == "content_block_delta"]
    assert deltas == [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": chunk}}
        for chunk in plan["chunks"]
    ]
    assert len(deltas) > 1 and json.loads("".join(plan["chunks"])) == PARIS
    assert got[-3][1] == {"type": "content_block_stop", "index": 0}
    assert got[-2][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert got[-2][1]["usage"]["output_tokens"] == plan["completion_tokens"]
    # The byte layout of a delta is the one the text path writes (compact, fixed key order).
    assert (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"input_json_delta","partial_json":' + json.dumps(plan["chunks"][0]).encode() + b"}}\n\n"
    ) in raw
    assert mockllm.tool_calls(prompt_contains=marker)[0]["arguments"] == json.dumps(PARIS, separators=(",", ":"))


def test_streamed_thinking_bytes_are_the_documented_events(mockllm: MockLLMClient, marker: str) -> None:
    raw = post(mockllm, body(marker, thinking=THINKING, stream=True)).content
    plan = planned(mockllm, marker)
    thinking, text = plan["blocks"]
    assert thinking["kind"] == "reasoning" and text["kind"] == "text"
    got = events(raw)
    n_think = thinking["chunks"][1] - thinking["chunks"][0]
    n_text = text["chunks"][1] - text["chunks"][0]
    assert [e for e, _ in got] == (
        ["message_start", "content_block_start", "ping"]
        + ["content_block_delta"] * (n_think + 1)
        + ["content_block_stop", "content_block_start"]
        + ["content_block_delta"] * n_text
        + ["content_block_stop", "message_delta", "message_stop"]
    )
    assert got[1][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    thinking_deltas = [d["delta"] for e, d in got[3 : 3 + n_think]]
    assert all(d["type"] == "thinking_delta" for d in thinking_deltas)
    assert "".join(d["thinking"] for d in thinking_deltas) == thinking["text"]
    assert got[3 + n_think][1] == {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "signature_delta", "signature": sign(thinking["text"])},
    }
    assert got[4 + n_think][1] == {"type": "content_block_stop", "index": 0}
    assert got[5 + n_think][1] == {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "text", "text": ""},
    }
    text_deltas = [d for e, d in got[6 + n_think : 6 + n_think + n_text]]
    assert all(d["index"] == 1 and d["delta"]["type"] == "text_delta" for d in text_deltas)
    assert (
        "".join(d["delta"]["text"] for d in text_deltas)
        == text["text"]
        == mockllm.journal(prompt_contains=marker)[-1]["answer"]
    )
    assert got[-3][1] == {"type": "content_block_stop", "index": 1}
    usage = got[-2][1]["usage"]
    assert got[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert usage["output_tokens"] == plan["completion_tokens"] >= plan["reasoning_tokens"] > 0


def test_redacted_thinking_is_a_block_start_and_stop(mockllm: MockLLMClient, marker: str) -> None:
    rule(mockllm, marker, {"blocks": [{"redacted_reasoning": True}, {"text": "Sunny."}]})
    raw = post(mockllm, body(marker, thinking=THINKING, stream=True)).content
    plan = planned(mockllm, marker)
    data = plan["blocks"][0]["text"]
    got = events(raw)
    assert [e for e, _ in got[:5]] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_stop",
        "content_block_start",
    ]
    assert got[1][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "redacted_thinking", "data": data},
    }
    assert got[3][1] == {"type": "content_block_stop", "index": 0}
    assert got[4][1]["index"] == 1 and got[4][1]["content_block"]["type"] == "text"
    whole = post(mockllm, body(marker, thinking=THINKING)).json()
    assert whole["content"] == [{"type": "redacted_thinking", "data": data}, {"type": "text", "text": "Sunny."}]


def test_a_text_only_agent_answer_streams_the_plain_bytes(mockllm: MockLLMClient, marker: str) -> None:
    """Tools offered but not called: the one text block is byte for byte the plain text stream."""
    rule(mockllm, marker, {"fixed": "It is sunny in Paris today."})
    with_tools = post(mockllm, body(marker, tools=TOOLS, stream=True)).content
    assert planned(mockllm, marker)["blocks"][0]["kind"] == "text"
    plain = post(mockllm, body(marker, stream=True)).content
    strip = [(e, d) for e, d in events(plain) if e != "message_start"]
    assert [(e, d) for e, d in events(with_tools) if e != "message_start"] == strip
    assert b"tool_use" not in with_tools


# -- the SDK's stream helper and final message ------------------------------------------------------


def test_sdk_stream_helper_accumulates_a_tool_call(mockllm: MockLLMClient, marker: str) -> None:
    weather_rule(mockllm, marker)
    client = sdk(mockllm)
    with stream(client, marker, tools=TOOLS) as s:
        seen = [event for event in s if event.type == "input_json"]
        final = s.get_final_message()
    assert len(seen) > 1 and "".join(e.partial_json for e in seen) == json.dumps(PARIS, separators=(",", ":"))
    assert seen[-1].snapshot == PARIS
    (use,) = final.content
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == PARIS
    assert use.id.startswith("toolu_01") and final.stop_reason == "tool_use"
    whole = create(client, marker, tools=TOOLS)
    assert [b.model_dump() for b in whole.content] == [b.model_dump() for b in final.content]
    assert whole.stop_reason == "tool_use" and whole.usage.output_tokens == final.usage.output_tokens


def test_sdk_stream_helper_sees_thinking_and_its_signature(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    with stream(client, marker, thinking=THINKING) as s:
        kinds = [(e.type, e) for e in s if e.type in ("thinking", "signature", "text")]
        final = s.get_final_message()
    thinking = "".join(e.thinking for t, e in kinds if t == "thinking")
    (signature,) = [e.signature for t, e in kinds if t == "signature"]
    first_text = next(i for i, (t, _) in enumerate(kinds) if t == "text")
    assert [t for t, _ in kinds[:first_text]][-1] == "signature"  # signed before the text starts
    block, text = final.content
    assert block.type == "thinking" and block.thinking == thinking and block.signature == signature == sign(thinking)
    assert text.type == "text" and text.text == mockllm.journal(prompt_contains=marker)[-1]["answer"]
    whole = create(client, marker, thinking=THINKING)
    assert [b.model_dump() for b in whole.content] == [b.model_dump() for b in final.content]


def test_adaptive_and_omitted_thinking(mockllm: MockLLMClient, marker: str) -> None:
    """`{type: adaptive}` thinks (its length from `output_config.effort`); `display: omitted` sends an
    empty thinking block with its signature only, and still counts the reasoning's tokens."""
    client = sdk(mockllm)
    with stream(client, marker, thinking={"type": "adaptive"}, output_config={"effort": "low"}) as s:
        final = s.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"] and final.content[0].thinking
    hidden = {"type": "enabled", "budget_tokens": 1024, "display": "omitted"}
    raw = post(mockllm, body(marker, thinking=hidden, stream=True)).content
    got = events(raw)
    assert [e for e, _ in got[:6]] == ["message_start", "content_block_start", "ping", "content_block_delta",
                                       "content_block_stop", "content_block_start"]  # fmt: skip
    assert got[3][1]["delta"] == {"type": "signature_delta", "signature": sign("")}
    assert got[5][1] == {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}
    plan = planned(mockllm, marker)
    assert [b["kind"] for b in plan["blocks"]] == ["text"] and plan["reasoning_tokens"] > 0
    assert got[-2][1]["usage"]["output_tokens"] == plan["completion_tokens"] > len(plan["chunks"])
    with stream(client, marker, thinking=hidden) as s:
        final = s.get_final_message()
    assert final.content[0].model_dump(exclude_none=True) == {"type": "thinking", "thinking": "", "signature": sign("")}
    whole = create(client, marker, thinking=hidden)
    assert [b.model_dump() for b in whole.content] == [b.model_dump() for b in final.content]
    # sent back, the empty block is accepted
    weather_rule(mockllm, marker)
    messages, reply = run_loop(client, marker, thinking=hidden)
    assert messages[1]["content"][0] == {"type": "thinking", "thinking": "", "signature": sign("")}
    assert reply.stop_reason == "end_turn"


def test_text_then_call_and_parallel_calls_in_order(mockllm: MockLLMClient, marker: str) -> None:
    weather_rule(
        mockllm,
        marker,
        {"text": "Let me look that up."},
        {"tool_call": {"name": "get_weather", "arguments": PARIS}},
        {"tool_call": {"name": "get_time", "arguments": {"zone": "Europe/Paris"}}},
    )
    client = sdk(mockllm)
    with stream(client, marker, tools=TOOLS) as s:
        starts = [e.index for e in s if e.type == "content_block_start"]
        final = s.get_final_message()
    assert starts == [0, 1, 2]
    text, weather, time = final.content
    assert text.type == "text" and text.text == "Let me look that up."
    assert (weather.name, weather.input) == ("get_weather", PARIS)
    assert (time.name, time.input) == ("get_time", {"zone": "Europe/Paris"})
    assert weather.id != time.id and final.stop_reason == "tool_use"
    whole = create(client, marker, tools=TOOLS)
    assert [b.type for b in whole.content] == ["text", "tool_use", "tool_use"]
    # disable_parallel_tool_use: the first call only
    single = create(client, marker, tools=TOOLS, tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    assert [b.type for b in single.content] == ["text", "tool_use"] and single.content[1].name == "get_weather"


# -- tool_choice and generated arguments ------------------------------------------------------------


def test_tool_choice_none_drops_the_call(mockllm: MockLLMClient, marker: str) -> None:
    weather_rule(mockllm, marker, {"text": "No tools."}, {"tool_call": {"name": "get_weather", "arguments": PARIS}})
    whole = create(sdk(mockllm), marker, tools=TOOLS, tool_choice={"type": "none"})
    assert [b.type for b in whole.content] == ["text"] and whole.stop_reason == "end_turn"


def test_tool_choice_auto_without_a_rule_answers_text(mockllm: MockLLMClient, marker: str) -> None:
    whole = create(sdk(mockllm), marker, tools=TOOLS, tool_choice={"type": "auto"})
    assert [b.type for b in whole.content] == ["text"] and whole.stop_reason == "end_turn"


def test_tool_choice_any_calls_an_offered_tool_with_valid_input(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    with stream(client, marker, tools=TOOLS, tool_choice={"type": "any"}) as s:
        final = s.get_final_message()
    (use,) = final.content
    schema = {"get_weather": WEATHER, "get_time": TIME}[use.name]
    jsonschema.validate(use.input, schema)
    assert final.stop_reason == "tool_use"


def test_tool_forced_json_validates_against_the_input_schema(mockllm: MockLLMClient, marker: str) -> None:
    """Anthropic's structured output: a forced tool whose input_schema is the answer's schema."""
    client = sdk(mockllm)
    tools = [{"name": "record_person", "description": "Record a person.", "input_schema": PERSON}, *TOOLS]
    choice = {"type": "tool", "name": "record_person"}
    for prompt in ("Alice", "Bob", "Carol"):
        messages = [{"role": "user", "content": f"{prompt} {marker}"}]
        with stream(client, marker, tools=tools, tool_choice=choice, messages=messages) as s:
            pieces = [e.partial_json for e in s if e.type == "input_json"]
            final = s.get_final_message()
        (use,) = final.content
        assert use.name == "record_person" and json.loads("".join(pieces)) == use.input
        jsonschema.validate(use.input, PERSON)
        whole = create(client, marker, tools=tools, tool_choice=choice, messages=messages)
        assert whole.content[0].input == use.input  # the same request, the same arguments


def test_output_config_json_schema_answers_valid_json(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    config = {"format": {"type": "json_schema", "schema": PERSON}}
    with stream(client, marker, output_config=config) as s:
        text = "".join(s.text_stream)
    jsonschema.validate(json.loads(text), PERSON)
    whole = create(client, marker, output_config=config)
    assert whole.content[0].text == text


def test_same_request_same_bytes(mockllm: MockLLMClient, marker: str) -> None:
    payload = body(marker, tools=TOOLS, tool_choice={"type": "any"}, stream=True)
    first = post(mockllm, payload).content
    assert post(mockllm, payload).content == first and b"input_json_delta" in first
    thinking = body(marker, thinking=THINKING, stream=True)
    assert post(mockllm, thinking).content == post(mockllm, thinking).content


# -- agent loops with the plain SDK -----------------------------------------------------------------


def get_weather(city: str, unit: str = "c") -> str:
    return json.dumps({"city": city, "temperature": 21, "unit": unit})


def run_loop(client: anthropic.Anthropic, marker: str, **kwargs: Any) -> tuple[list[dict[str, Any]], Any]:
    """Call the model, run every tool_use locally, send the results, until it answers in text."""
    messages: list[dict[str, Any]] = ask(marker)
    for _ in range(5):
        with stream(client, marker, messages=messages, tools=TOOLS, **kwargs) as s:
            reply = s.get_final_message()
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]})
        if reply.stop_reason != "tool_use":
            return messages, reply
        results = [
            {"type": "tool_result", "tool_use_id": b.id, "content": get_weather(**b.input)}
            for b in reply.content
            if b.type == "tool_use"
        ]
        messages.append({"role": "user", "content": results})
    raise AssertionError("the agent loop did not end")


def test_agent_loop_runs_to_a_final_text_answer(mockllm: MockLLMClient, marker: str) -> None:
    weather_rule(mockllm, marker)
    messages, reply = run_loop(sdk(mockllm), marker)
    assert len(messages) == 4 and reply.stop_reason == "end_turn" and reply.content[0].type == "text"
    (result,) = mockllm.tool_results(prompt_contains=marker)
    assert result["name"] == "get_weather" and json.loads(result["content"])["city"] == "Paris"
    assert result["call_id"] == messages[1]["content"][0]["id"]


def test_agent_loop_with_thinking_sends_the_blocks_back_unchanged(mockllm: MockLLMClient, marker: str) -> None:
    weather_rule(mockllm, marker)
    messages, reply = run_loop(sdk(mockllm), marker, thinking=THINKING)
    first = messages[1]["content"]
    assert [b["type"] for b in first] == ["thinking", "tool_use"]
    assert [b.type for b in reply.content] == ["thinking", "text"]
    assert [e["outcome"] for e in mockllm.journal(prompt_contains=marker)] == ["completed", "completed"]


def test_agent_loop_with_altered_thinking_is_refused(mockllm: MockLLMClient, marker: str) -> None:
    weather_rule(mockllm, marker)
    client = sdk(mockllm)
    with stream(client, marker, tools=TOOLS, thinking=THINKING) as s:
        reply = s.get_final_message()
    assistant = [b.model_dump(exclude_none=True) for b in reply.content]
    use = assistant[1]
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": "21C"}]}
    altered = copy.deepcopy(assistant)
    altered[0]["thinking"] += " (edited)"
    messages = [*ask(marker), {"role": "assistant", "content": altered}, result]
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(client, marker, messages=messages, tools=TOOLS, thinking=THINKING)
    assert caught.value.type == "invalid_request_error"
    assert caught.value.api_message == "messages.1.content.0: Invalid `signature` in `thinking` block"
    dropped = [*ask(marker), {"role": "assistant", "content": assistant[1:]}, result]
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(client, marker, messages=dropped, tools=TOOLS, thinking=THINKING)
    assert caught.value.api_message.startswith(
        "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`. When "
        "`thinking` is enabled, a final `assistant` message must start with a thinking block"
    )
    checks = [r["check"] for r in mockllm.refusals(prompt_contains=marker)]
    assert checks == ["anthropic.thinking-signature-invalid", "anthropic.thinking-block-missing"]
    # unchanged, it is accepted
    unchanged = [*ask(marker), {"role": "assistant", "content": assistant}, result]
    final = create(client, marker, messages=unchanged, tools=TOOLS, thinking=THINKING)
    assert final.stop_reason == "end_turn"


# -- faults in the middle of a call's arguments and of thinking -------------------------------------


def middle(mockllm: MockLLMClient, marker: str, kind: str) -> tuple[int, dict[str, Any]]:
    plan = planned(mockllm, marker)
    block = next(b for b in plan["blocks"] if b["kind"] == kind)
    start, stop = block["chunks"]
    assert stop - start >= 3, block
    return (start + stop) // 2, plan


@pytest.mark.parametrize("kind", ["tool_call", "reasoning"])
def test_faults_mid_block_as_the_sdk_sees_them(mockllm: MockLLMClient, marker: str, kind: str) -> None:
    client = sdk(mockllm)
    if kind == "tool_call":
        weather_rule(mockllm, marker, {"text": "Checking."}, {"tool_call": {"name": "get_weather", "arguments": PARIS}})
        extra: dict[str, Any] = {"tools": TOOLS}
    else:
        extra = {"thinking": THINKING}
    with stream(client, marker, **extra) as s:
        clean = s.get_final_message()
    cut, plan = middle(mockllm, marker, kind)
    delta_type = {"tool_call": "input_json_delta", "reasoning": "thinking_delta"}[kind]

    def pieces(fault: str) -> list[Any]:
        seen: list[Any] = []
        with stream(client, marker, fault, **extra) as s:
            for event in s:
                if event.type == "content_block_delta" and event.delta.type != "signature_delta":
                    seen.append(event.delta)
        return seen

    seen: list[Any] = []
    # an in-band `event: error`
    with pytest.raises(anthropic.APIStatusError) as caught, stream(client, marker, f"error-after={cut}", **extra) as s:
        for event in s:
            if event.type == "content_block_delta":
                seen.append(event.delta)
    assert caught.value.type == "overloaded_error" and len(seen) == cut and seen[-1].type == delta_type
    with pytest.raises(httpx2.RemoteProtocolError):
        pieces(f"disconnect-after={cut}")
    with pytest.raises(json.JSONDecodeError):  # a broken delta of the kind being streamed
        pieces(f"malformed-after={cut}")
    raw = post(mockllm, body(marker, stream=True, **extra), f"malformed-after={cut}").content
    frames = [frame for frame in raw.split(b"\n\n") if frame]
    (at,) = [i for i, frame in enumerate(frames) if not _is_json(frame.split(b"data: ", 1)[1])]
    assert sum(b'"content_block_delta"' in frame for frame in frames[:at]) == cut  # `cut` deltas before it
    assert frames[at].endswith(b'"') and b'"type":"%b"' % delta_type.encode() in frames[at]
    with stream(client, marker, "fragment", **extra) as s:
        fragmented = s.get_final_message()
    assert fragmented.model_dump() == clean.model_dump()
    assert len(plan["chunks"]) > cut


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


# -- the API's checks, on by default ----------------------------------------------------------------


def refused(mockllm: MockLLMClient, marker: str, payload: dict[str, Any], check: str, message: str) -> None:
    response = post(mockllm, payload)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(message), error["error"]["message"]
    assert error["request_id"].startswith("req_")
    refusal = mockllm.refusals(prompt_contains=marker)[-1]
    assert refusal["check"] == check and refusal["status"] == 400


def tool_turn(call_id: str = "toolu_01abc") -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": call_id, "name": "get_weather", "input": PARIS}],
    }


def result_turn(call_id: str = "toolu_01abc") -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "21C"}]}


def checks(marker: str) -> list[tuple[dict[str, Any], str, str]]:
    user = ask(marker)
    thinking_tool_turn = {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "I should look.", "signature": sign("I should look.")},
        {"type": "tool_use", "id": "toolu_01abc", "name": "get_weather", "input": PARIS},
    ]}  # fmt: skip
    extra_result = result_turn()
    extra_result["content"].append({"type": "tool_result", "tool_use_id": "toolu_01old", "content": "stale"})
    forged = copy.deepcopy(thinking_tool_turn)
    forged["content"][0]["signature"] = sign("something else")
    return [
        ({"model": "m", "messages": user}, "anthropic.max-tokens-required", "max_tokens: Field required"),
        (
            body(marker, messages=[*user, {"role": "assistant", "content": "Sure."}, result_turn("toolu_01xyz")]),
            "anthropic.tool-result-without-tool-use",
            "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_01xyz. Each "
            "`tool_result` block must have a corresponding `tool_use` block in the previous message.",
        ),
        (
            body(marker, messages=[*user, tool_turn(), extra_result], tools=TOOLS),
            "anthropic.tool-result-without-tool-use",
            "messages.2.content.1: unexpected `tool_use_id` found in `tool_result` blocks: toolu_01old. Each "
            "`tool_result` block must have a corresponding `tool_use` block in the previous message.",
        ),
        (
            body(marker, messages=[result_turn(), *user]),
            "anthropic.tool-result-without-tool-use",
            "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_01abc.",
        ),
        (
            body(marker, messages=[*user, tool_turn(), {"role": "user", "content": "and now?"}], tools=TOOLS),
            "anthropic.tool-use-without-tool-result",
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_01abc. "
            "Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
        ),
        (
            body(marker, thinking={"type": "enabled", "budget_tokens": 512}),
            "anthropic.thinking-budget-too-small",
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        ),
        (
            body(marker, max_tokens=1024, thinking=THINKING),
            "anthropic.thinking-budget-not-below-max-tokens",
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
            "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size",
        ),
        (
            body(marker, thinking=THINKING, temperature=0.5),
            "anthropic.thinking-temperature",
            "`temperature` may only be set to 1 when thinking is enabled.",
        ),
        (
            body(marker, thinking=THINKING, top_k=5),
            "anthropic.thinking-top-k",
            "`top_k` must be unset when thinking is enabled.",
        ),
        (
            body(marker, thinking=THINKING, tools=TOOLS, tool_choice={"type": "any"}),
            "anthropic.thinking-forced-tool-choice",
            "Thinking may not be enabled when tool_choice forces tool use.",
        ),
        (
            body(marker, thinking=THINKING, tools=TOOLS, tool_choice={"type": "tool", "name": "get_time"}),
            "anthropic.thinking-forced-tool-choice",
            "Thinking may not be enabled when tool_choice forces tool use.",
        ),
        (
            body(marker, thinking=THINKING, tools=TOOLS, messages=[*user, tool_turn(), result_turn()]),
            "anthropic.thinking-block-missing",
            "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`.",
        ),
        (
            body(marker, thinking=THINKING, tools=TOOLS, messages=[*user, forged, result_turn()]),
            "anthropic.thinking-signature-invalid",
            "messages.1.content.0: Invalid `signature` in `thinking` block",
        ),
        (
            body(marker, messages=[*user, {"role": "assistant", "content": thinking_tool_turn["content"][:1]}]),
            "anthropic.thinking-disabled-final-thinking",
            "messages.1.content.0: When thinking is disabled, an `assistant` message in the final position cannot "
            "contain `thinking`.",
        ),
    ]


def test_each_check_refuses_as_the_api_does(mockllm: MockLLMClient, marker: str) -> None:
    for payload, check, message in checks(marker):
        refused(mockllm, marker, payload, check, message)


def test_each_check_is_off_with_strict_false(mockllm: MockLLMClient, marker: str) -> None:
    mockllm.patch_config({"strict": False})
    for payload, check, _ in checks(marker):
        response = post(mockllm, payload)
        assert response.status_code == 200, (check, response.text)
        assert response.json()["type"] == "message"
    assert not mockllm.refusals(prompt_contains=marker)
    # without max_tokens the answer is capped at 4096 tokens
    headers = dict(FAST, **{"x-mock-answer-tokens": "5000"})
    response = httpx.post(
        f"{mockllm.base_url}/v1/messages", json={"model": "m", "messages": ask(marker)}, headers=headers, timeout=10
    )
    assert response.json()["stop_reason"] == "max_tokens" and response.json()["usage"]["output_tokens"] == 4096


def test_sdk_raises_bad_request_for_a_tool_result_without_its_call(mockllm: MockLLMClient, marker: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(sdk(mockllm), marker, messages=[result_turn("toolu_01b"), *ask(marker)])
    assert "unexpected `tool_use_id`" in caught.value.api_message


def test_what_the_api_accepts_is_accepted(mockllm: MockLLMClient, marker: str) -> None:
    """A leading assistant turn, consecutive turns of one role (merged), server tools, thinking off
    with earlier thinking blocks, redacted thinking sent back, tool results as blocks with is_error."""
    client = sdk(mockllm)
    accepted = [
        [{"role": "assistant", "content": "Hello, how can I help?"}, *ask(marker)],
        [*ask(marker), {"role": "user", "content": "Also, bring an umbrella?"}],
        [
            *ask(marker),
            {"role": "assistant", "content": "Let me check."},
            tool_turn(),
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01abc", "is_error": True,
                                          "content": [{"type": "text", "text": "service down"}]}]},
        ],
    ]  # fmt: skip
    for messages in accepted:
        reply = create(client, marker, messages=messages, tools=[*TOOLS, {"type": "web_search_20250305",
                                                                         "name": "web_search"}])  # fmt: skip
        assert reply.stop_reason == "end_turn"
    redacted = {"role": "assistant", "content": [
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"},
        {"type": "tool_use", "id": "toolu_01abc", "name": "get_weather", "input": PARIS},
    ]}  # fmt: skip
    reply = create(client, marker, messages=[*ask(marker), redacted, result_turn()], tools=TOOLS, thinking=THINKING)
    assert [b.type for b in reply.content] == ["thinking", "text"]
    assert not mockllm.refusals(prompt_contains=marker)
    results = mockllm.tool_results(prompt_contains=marker)
    assert {"call_id": "toolu_01abc", "name": "get_weather", "content": "service down"} in [
        {k: r[k] for k in ("call_id", "name", "content")} for r in results
    ]


def test_thinking_disabled_alone_is_a_plain_request(mockllm: MockLLMClient, marker: str) -> None:
    payload = body(marker, stream=True)
    plain = post(mockllm, payload).content
    disabled = post(mockllm, dict(payload, thinking={"type": "disabled"})).content
    entry = mockllm.journal(prompt_contains=marker)[-1]
    assert "agent" not in entry and "blocks" not in entry["planned"]
    assert [e for e, _ in events(disabled)] == [e for e, _ in events(plain)]


def test_malformed_agent_fields_are_invalid_requests_even_when_not_strict(mockllm: MockLLMClient, marker: str) -> None:
    """Schema errors are not provider checks: `strict: false` does not turn them off."""
    mockllm.patch_config({"strict": False})
    cases = [
        (body(marker, tools=[{"name": "get_weather"}]), "tools.0.custom.input_schema: Field required"),
        (body(marker, tools=TOOLS, tool_choice={"type": "sometimes"}), "tool_choice: Input tag 'sometimes'"),
        (body(marker, tools=TOOLS, tool_choice={"type": "tool"}), "tool_choice.tool.name: Field required"),
        (body(marker, thinking={"type": "enabled"}), "thinking.enabled.budget_tokens: Field required"),
        (body(marker, messages=[*ask(marker), {"role": "assistant", "content": [{"type": "tool_use", "name": "x"}]}]),
         "messages.1.content.0.id: Field required"),
    ]  # fmt: skip
    for payload, message in cases:
        response = post(mockllm, payload)
        assert response.status_code == 400 and response.json()["error"]["message"].startswith(message), response.text
    assert not mockllm.refusals(prompt_contains=marker)


def test_count_tokens_counts_tool_results(mockllm: MockLLMClient, marker: str) -> None:
    messages = [*ask(marker), tool_turn(), result_turn()]
    long_result = copy.deepcopy(messages)
    long_result[2]["content"][0]["content"] = "a much longer tool result, with many more words in it " * 5
    url = f"{mockllm.base_url}/v1/messages/count_tokens"
    short = httpx.post(url, json={"model": "m", "messages": messages}, timeout=5).json()["input_tokens"]
    longer = httpx.post(url, json={"model": "m", "messages": long_result}, timeout=5).json()["input_tokens"]
    assert longer > short > 0
