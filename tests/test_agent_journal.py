"""The journal as a backend's test reads it: the calls the mock made, the results the backend sent
back, the requests the provider would have refused; through `MockLLMClient`, in every dialect."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from mockllm import MockLLMClient

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def post(mockllm: MockLLMClient, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(mockllm.base_url + path, json=body, timeout=10)


def test_calls_and_results_are_journaled_with_the_ids_on_the_wire(mockllm: MockLLMClient, marker: str) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    ask = [{"role": "user", "content": f"Weather in Paris? {marker}"}]
    first = post(
        mockllm, "/v1/chat/completions", {"model": "m", "messages": ask, "tools": tools, "tool_choice": "required"}
    ).json()
    (call,) = first["choices"][0]["message"]["tool_calls"]
    (journaled,) = mockllm.tool_calls(prompt_contains=marker)
    assert journaled["id"] == call["id"] and journaled["id"].startswith("call_")
    assert (journaled["name"], journaled["arguments"]) == (call["function"]["name"], call["function"]["arguments"])
    history = [*ask, first["choices"][0]["message"], {"role": "tool", "tool_call_id": call["id"], "content": "18 C"}]
    final = post(mockllm, "/v1/chat/completions", {"model": "m", "messages": history, "tools": tools}).json()
    assert final["choices"][0]["finish_reason"] == "stop"
    (result,) = mockllm.tool_results(prompt_contains=marker)
    assert result["call_id"] == call["id"] and result["content"] == "18 C"
    assert result["entry"] > journaled["entry"]
    assert mockllm.refusals(prompt_contains=marker) == []


@pytest.mark.parametrize(
    ("path", "body", "check"),
    [
        (
            "/v1/chat/completions",
            {
                "model": "m",
                "messages": [{"role": "user", "content": "{m}"}, {"role": "tool", "tool_call_id": "x", "content": "r"}],
            },
            "openai-chat.tool-message-without-call",
        ),
        (
            "/v1/messages",
            {"model": "m", "messages": [{"role": "user", "content": "{m}"}]},
            "anthropic.max-tokens-required",
        ),
        (
            "/v1beta/models/m:generateContent",
            {"contents": [{"role": "assistant", "parts": [{"text": "{m}"}]}]},
            "gemini.role",
        ),
        (
            "/v1/responses",
            {
                "model": "m",
                "input": [
                    {"role": "user", "content": "{m}"},
                    {"type": "function_call_output", "call_id": "call_x", "output": "r"},
                ],
            },
            "openai-responses.function-call-output-without-call",
        ),
    ],
)
def test_a_refusal_names_its_check_and_strict_false_accepts_it(
    mockllm: MockLLMClient, marker: str, path: str, body: dict[str, Any], check: str
) -> None:
    text = json.dumps(body).replace("{m}", marker)
    response = httpx.post(mockllm.base_url + path, content=text, headers={"content-type": "application/json"})
    assert response.status_code == 400
    (refusal,) = mockllm.refusals(prompt_contains=marker)
    assert refusal["check"] == check and refusal["status"] == 400 and refusal["error"]
    mockllm.patch_config({"strict": False})
    again = httpx.post(mockllm.base_url + path, content=text, headers={"content-type": "application/json"})
    assert again.status_code == 200, again.text
