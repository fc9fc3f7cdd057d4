"""Every agent feature in every dialect that has it, streamed and not, and every fault in the middle of a
tool call's arguments and of a reasoning block, checked on the raw bytes the client receives.

Each dialect is a row of data: how to ask for each feature, and a small decoder, written here from the
provider's documented wire format (not from the mock's encoder), that reads the blocks (reasoning,
text, tool calls) out of a streamed or a whole response. Each cell is judged against the journal's
plan: the blocks on the wire are the planned blocks, piece for piece; a fault at chunk N leaves
exactly the first N pieces, then what the fault says. The SDKs' reactions are checked in the
per-dialect `test_agent_*` modules.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from mockllm import MockLLMClient

Event = tuple[str | None, dict[str, Any] | None, bytes]  # (SSE event type, data as JSON or None, raw)
Piece = tuple[str, str, str]  # (block kind, block key: a call's name/index, text piece)

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME = {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 99}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


# -- reading the wire ---------------------------------------------------------------------------------


def sse_events(raw: bytes) -> list[Event]:
    """The events of an SSE body (LF or CRLF framed), with their data decoded where it is JSON."""
    out: list[Event] = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        if not block.strip():
            continue
        kind, data = None, []
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                kind = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
        payload = b"\n".join(data)
        try:
            value = json.loads(payload)
        except ValueError:
            value = None
        out.append((kind, value if isinstance(value, dict) else None, payload))
    return out


def chat_pieces(events: list[Event]) -> list[Piece]:
    pieces: list[Piece] = []
    for _, data, _ in events:
        for choice in (data or {}).get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                pieces.append(("reasoning", "", delta["reasoning_content"]))
            if delta.get("content"):
                pieces.append(("text", "", delta["content"]))
            for call in delta.get("tool_calls") or ():
                arguments = (call.get("function") or {}).get("arguments")
                if arguments:
                    pieces.append(("tool_call", str(call["index"]), arguments))
    return pieces


def chat_whole(body: dict[str, Any]) -> list[Piece]:
    message = body["choices"][0]["message"]
    out: list[Piece] = []
    if message.get("reasoning_content"):
        out.append(("reasoning", "", message["reasoning_content"]))
    if message.get("content"):
        out.append(("text", "", message["content"]))
    out += [("tool_call", str(i), c["function"]["arguments"]) for i, c in enumerate(message.get("tool_calls") or ())]
    return out


def responses_pieces(events: list[Event]) -> list[Piece]:
    kinds = {
        "response.reasoning_summary_text.delta": "reasoning",
        "response.output_text.delta": "text",
        "response.function_call_arguments.delta": "tool_call",
    }
    return [
        (kinds[data["type"]], str(data["output_index"]), data["delta"])
        for _, data, _ in events
        if data and data.get("type") in kinds and data.get("delta")
    ]


def responses_whole(body: dict[str, Any]) -> list[Piece]:
    out: list[Piece] = []
    for index, item in enumerate(body["output"]):
        if item["type"] == "reasoning":
            out += [("reasoning", str(index), part["text"]) for part in item.get("summary") or () if part["text"]]
        elif item["type"] == "message":
            out += [("text", str(index), part["text"]) for part in item["content"] if part.get("text")]
        elif item["type"] == "function_call":
            out.append(("tool_call", str(index), item["arguments"]))
    return out


def anthropic_pieces(events: list[Event]) -> list[Piece]:
    fields = {
        "text_delta": ("text", "text"),
        "thinking_delta": ("reasoning", "thinking"),
        "input_json_delta": ("tool_call", "partial_json"),
    }
    out: list[Piece] = []
    for _, data, _ in events:
        if data and data.get("type") == "content_block_delta" and data["delta"]["type"] in fields:
            kind, name = fields[data["delta"]["type"]]
            if data["delta"][name]:
                out.append((kind, str(data["index"]), data["delta"][name]))
    return out


def anthropic_whole(body: dict[str, Any]) -> list[Piece]:
    out: list[Piece] = []
    for index, block in enumerate(body["content"]):
        if block["type"] == "thinking":
            out.append(("reasoning", str(index), block["thinking"]))
        elif block["type"] == "text":
            out.append(("text", str(index), block["text"]))
        elif block["type"] == "tool_use":
            out.append(("tool_call", str(index), json.dumps(block["input"])))
    return out


def gemini_pieces(events: list[Event]) -> list[Piece]:
    out: list[Piece] = []
    for _, data, _ in events:
        for candidate in (data or {}).get("candidates") or ():
            for part in (candidate.get("content") or {}).get("parts") or ():
                if "functionCall" in part:
                    out.append(("tool_call", part["functionCall"]["name"], json.dumps(part["functionCall"]["args"])))
                elif part.get("text"):
                    out.append(("reasoning" if part.get("thought") else "text", "", part["text"]))
    return out


def gemini_whole(body: dict[str, Any]) -> list[Piece]:
    return gemini_pieces([(None, body, b"")])


# -- asking for each feature ------------------------------------------------------------------------------


def chat_body(feature: str, prompt: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": prompt}], "stream": stream}
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
        {"type": "function", "function": {"name": "get_time", "parameters": TIME}},
    ]
    if feature in ("tool_call", "parallel", "text_then_call"):
        body["tools"] = tools
    if feature == "tool_call":
        body["tool_choice"] = {"type": "function", "function": {"name": "get_weather"}}
    if feature == "reasoning":
        body["reasoning_effort"] = "low"
    if feature == "structured":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON, "strict": True},
        }
    return body


def responses_body(feature: str, prompt: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "input": prompt, "stream": stream}
    tools = [
        {"type": "function", "name": "get_weather", "parameters": WEATHER},
        {"type": "function", "name": "get_time", "parameters": TIME},
    ]
    if feature in ("tool_call", "parallel", "text_then_call"):
        body["tools"] = tools
    if feature == "tool_call":
        body["tool_choice"] = {"type": "function", "name": "get_weather"}
    if feature == "reasoning":
        body["reasoning"] = {"effort": "low", "summary": "auto"}
    if feature == "structured":
        body["text"] = {"format": {"type": "json_schema", "name": "person", "schema": PERSON, "strict": True}}
    return body


def anthropic_body(feature: str, prompt: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "m",
        "max_tokens": 2048,
        "messages": [{"role": "user", "content": prompt}],
        "stream": stream,
    }
    tools = [{"name": "get_weather", "input_schema": WEATHER}, {"name": "get_time", "input_schema": TIME}]
    if feature in ("tool_call", "parallel", "text_then_call"):
        body["tools"] = tools
    if feature == "tool_call":
        body["tool_choice"] = {"type": "tool", "name": "get_weather"}
    if feature == "reasoning":
        body["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    return body


def gemini_body(feature: str, prompt: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
    declarations = [
        {"name": "get_weather", "parametersJsonSchema": WEATHER},
        {"name": "get_time", "parametersJsonSchema": TIME},
    ]
    if feature in ("tool_call", "parallel", "text_then_call"):
        body["tools"] = [{"functionDeclarations": declarations}]
    if feature == "tool_call":
        body["toolConfig"] = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    if feature == "reasoning":
        body["generationConfig"] = {"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}}
    if feature == "structured":
        body["generationConfig"] = {"responseMimeType": "application/json", "responseJsonSchema": PERSON}
    return body


@dataclass(frozen=True)
class Dialect:
    name: str
    path: Callable[[bool], str]
    body: Callable[[str, str, bool], dict[str, Any]]
    pieces: Callable[[list[Event]], list[Piece]]
    whole: Callable[[dict[str, Any]], list[Piece]]
    is_error: Callable[[Event], bool]
    is_terminal: Callable[[Event], bool]
    features: tuple[str, ...]
    whole_calls: bool = False  # a call's arguments come in one piece


ALL = ("tool_call", "parallel", "text_then_call", "reasoning", "structured")
DIALECTS = [
    Dialect(
        "openai-chat",
        lambda stream: "/v1/chat/completions",
        chat_body,
        chat_pieces,
        chat_whole,
        lambda e: bool(e[1] and "error" in e[1]),
        lambda e: e[2] == b"[DONE]",
        ALL,
    ),
    Dialect(
        "openai-responses",
        lambda stream: "/v1/responses",
        responses_body,
        responses_pieces,
        responses_whole,
        lambda e: bool(e[1] and e[1].get("type") in ("error", "response.failed")),
        lambda e: bool(e[1] and e[1].get("type") in ("response.completed", "response.incomplete")),
        ALL,
    ),
    Dialect(
        "anthropic-messages",
        lambda stream: "/v1/messages",
        anthropic_body,
        anthropic_pieces,
        anthropic_whole,
        lambda e: e[0] == "error",
        lambda e: e[0] == "message_stop",
        ("tool_call", "parallel", "text_then_call", "reasoning"),  # structured output is the forced tool call
    ),
    Dialect(
        "gemini",
        lambda stream: "/v1beta/models/m:" + ("streamGenerateContent?alt=sse" if stream else "generateContent"),
        gemini_body,
        gemini_pieces,
        gemini_whole,
        lambda e: bool(e[1] and "error" in e[1]),
        lambda e: bool(e[1] and any(c.get("finishReason") for c in e[1].get("candidates") or ())),
        ALL,
        whole_calls=True,
    ),
]
CELLS = [(d, f) for d in DIALECTS for f in d.features]


def _id(value: Any) -> str:
    return value.name if isinstance(value, Dialect) else str(value)


RULES = {
    "parallel": {"blocks": [{"tool_call": {"name": "get_weather"}}, {"tool_call": {"name": "get_time"}}]},
    "text_then_call": {
        "blocks": [{"text": {"fixed": "Let me check the weather for you."}}, {"tool_call": {"name": "get_weather"}}]
    },
}


def ask(
    mockllm: MockLLMClient, dialect: Dialect, feature: str, marker: str, stream: bool, fault: str | None = None
) -> httpx.Response:
    if feature in RULES:
        mockllm.patch_config({"answers": {"rules": [{"match": {"contains": marker}, "answer": RULES[feature]}]}})
    headers = {"x-mock-itl-ms": "0", "x-mock-ttft-ms": "0"}
    if fault:
        headers["x-mock-fault"] = fault
    url = mockllm.base_url + dialect.path(stream)
    body = dialect.body(feature, f"Question {marker}", stream)
    if not stream:
        return httpx.post(url, json=body, headers=headers, timeout=10)
    with httpx.stream("POST", url, json=body, headers=headers, timeout=10) as response:
        received = bytearray()
        try:
            for data in response.iter_bytes():
                received += data
        except httpx.RemoteProtocolError:
            pass  # a connection closed mid-body (`disconnect`): what arrived is what the client has
        return httpx.Response(response.status_code, headers=response.headers, content=bytes(received))


def planned(mockllm: MockLLMClient, marker: str) -> dict[str, Any]:
    (entry,) = [e for e in mockllm.journal(prompt_contains=marker) if e["outcome"] == "completed"][-1:]
    return entry["planned"]


def planned_pieces(plan: dict[str, Any], stop: int | None = None) -> list[tuple[str, str]]:
    """(kind, text) of each planned chunk, up to chunk `stop`, as the wire carries them."""
    out = []
    for block in plan["blocks"]:
        if block["kind"] == "redacted_reasoning":
            continue
        for index in range(block["chunks"][0], min(block["chunks"][1], len(plan["chunks"]) if stop is None else stop)):
            out.append((block["kind"], plan["chunks"][index]))
    return out


def expected_kinds(feature: str) -> list[str]:
    return {
        "tool_call": ["tool_call"],
        "parallel": ["tool_call", "tool_call"],
        "text_then_call": ["text", "tool_call"],
        "reasoning": ["reasoning", "text"],
        "structured": ["text"],
    }[feature]


def same_json(a: str, b: str) -> bool:
    return json.loads(a) == json.loads(b)


# -- the cells ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dialect", "feature"), CELLS, ids=_id)
def test_streamed_blocks_are_the_planned_blocks_piece_for_piece(
    mockllm: MockLLMClient, marker: str, dialect: Dialect, feature: str
) -> None:
    response = ask(mockllm, dialect, feature, marker, True)
    assert response.status_code == 200, response.text
    events = sse_events(response.content)
    assert all(data is not None for _, data, raw in events if raw != b"[DONE]"), "every event's data is JSON"
    assert dialect.is_terminal(events[-1]) or dialect.is_terminal(events[-2])
    plan = planned(mockllm, marker)
    assert [b["kind"] for b in plan["blocks"]] == expected_kinds(feature)
    got = dialect.pieces(events)
    want = planned_pieces(plan)
    if dialect.whole_calls:
        assert [k for k, _, _ in got] == [k for k, _ in want]
        for (_, _, text), (_, planned_text) in zip(got, want, strict=True):
            assert text == planned_text or same_json(text, planned_text)
    else:
        assert [(k, t) for k, _, t in got] == want
    # pieces of one block carry one key (its index or name); two calls carry two
    calls = {key for kind, key, _ in got if kind == "tool_call"}
    assert len(calls) == expected_kinds(feature).count("tool_call")
    if feature == "structured":
        answer = json.loads(plan["blocks"][0]["text"])
        assert set(answer) == {"name", "age"}


@pytest.mark.parametrize(("dialect", "feature"), CELLS, ids=_id)
def test_whole_answers_carry_the_planned_blocks(
    mockllm: MockLLMClient, marker: str, dialect: Dialect, feature: str
) -> None:
    response = ask(mockllm, dialect, feature, marker, False)
    assert response.status_code == 200, response.text
    plan = planned(mockllm, marker)
    got = dialect.whole(response.json())
    want = [b for b in plan["blocks"] if b["kind"] != "redacted_reasoning"]
    assert [kind for kind, _, _ in got] == [b["kind"] for b in want]
    for (kind, _, text), block in zip(got, want, strict=True):
        wanted = block["arguments"] if kind == "tool_call" else block["text"]
        assert text == wanted or (kind == "tool_call" and same_json(text, wanted))


@pytest.mark.parametrize(("dialect", "feature"), CELLS, ids=_id)
def test_the_same_request_gets_the_same_bytes(
    mockllm: MockLLMClient, marker: str, dialect: Dialect, feature: str
) -> None:
    first = ask(mockllm, dialect, feature, marker, True).content
    assert ask(mockllm, dialect, feature, marker, True).content == first


def _middle(plan: dict[str, Any], kind: str) -> int:
    """A chunk index inside the first block of `kind`: after its first piece, before its last."""
    block = next(b for b in plan["blocks"] if b["kind"] == kind)
    start, stop = block["chunks"]
    return start + max(1, (stop - start) // 2) if stop - start > 1 else start


MID = [(d, kind) for d in DIALECTS for kind in ("tool_call", "reasoning")]


@pytest.mark.parametrize(("dialect", "kind"), MID, ids=_id)
@pytest.mark.parametrize("effect", ["error", "disconnect", "truncate", "malformed", "fragment", "pause"])
def test_every_fault_works_in_the_middle_of_a_call_and_of_reasoning(
    mockllm: MockLLMClient, marker: str, dialect: Dialect, kind: str, effect: str
) -> None:
    feature = "text_then_call" if kind == "tool_call" else "reasoning"
    clean = ask(mockllm, dialect, feature, marker, True)
    plan = planned(mockllm, marker)
    cut = _middle(plan, kind)
    if kind == "tool_call" and not dialect.whole_calls:
        block = next(b for b in plan["blocks"] if b["kind"] == "tool_call")
        assert block["chunks"][0] < cut < block["chunks"][1], "the cut falls inside the arguments"
    fault = {"fragment": "fragment", "pause": f"stall-after={cut},for=0.05"}.get(effect, f"{effect}-after={cut}")
    response = ask(mockllm, dialect, feature, marker, True, fault=fault)
    events = sse_events(response.content)
    got = [(k, t) for k, _, t in dialect.pieces(events)]
    if effect in ("fragment", "pause"):
        assert response.content == clean.content  # the same bytes, whatever the writes or the wait
        return
    # a malformed event comes at the cut and the rest follows; every other fault ends the stream there
    want = planned_pieces(plan) if effect == "malformed" else planned_pieces(plan, cut)
    if dialect.whole_calls:
        got = [(k, t if k != "tool_call" else json.dumps(json.loads(t))) for k, t in got]
        want = [(k, t if k != "tool_call" else json.dumps(json.loads(t))) for k, t in want]
    assert got == want, "exactly the planned pieces before the cut (and after it, past a malformed event) arrive"
    if effect == "malformed":
        assert any(data is None and raw != b"[DONE]" for _, data, raw in events), "one event is not JSON"
        return
    assert not any(dialect.is_terminal(e) for e in events), "no terminal event after a broken stream"
    if effect == "error":
        assert dialect.is_error(events[-1]) or dialect.is_error(events[-2])


@pytest.mark.parametrize("dialect", DIALECTS, ids=_id)
@pytest.mark.parametrize("effect", ["error", "disconnect"])
def test_whole_answers_with_calls_fail_as_the_fault_says(
    mockllm: MockLLMClient, marker: str, dialect: Dialect, effect: str
) -> None:
    if effect == "error":
        response = ask(mockllm, dialect, "tool_call", marker, False, fault="error-after=1")
        assert response.status_code == 500
        return
    with pytest.raises(httpx.HTTPError):
        ask(mockllm, dialect, "tool_call", marker, False, fault="disconnect-after=1")
