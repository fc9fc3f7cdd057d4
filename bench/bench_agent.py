"""What a tool-call or reasoning stream costs per event, beside plain text, in every dialect that has them.

    python -m bench.bench_agent [--events 200] [--repeats 7]

For each dialect and each kind of answer (text; one tool call whose arguments stream in about
`--events` pieces; reasoning of `--events` tokens before a short answer), it times in one process:

- `request`: the work done once per request (parse, plan, encode, schedule), per event;
- `write`: the per-token path alone, building every write's bytes (`WireSchedule.payload`), per write.

Each figure is the median of `--repeats` runs, taken in one run side by side, so the ratios to text
(`x text`) hold on a noisy machine. A tool-call or reasoning event should cost what a text event costs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mockllm import Call, Encoding, parse_config, plan_response, stream_schedule
from mockllm.dialects import DIALECTS, Dialect

TOOL = {
    "name": "search",
    "description": "Search the notes.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}
USER = "bench question"


def _chat(feature: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "bench", "messages": [{"role": "user", "content": USER}], "stream": True}
    if feature == "tool_call":
        body["tools"] = [{"type": "function", "function": TOOL}]
        body["tool_choice"] = {"type": "function", "function": {"name": "search"}}
    elif feature == "reasoning":
        body["reasoning_effort"] = "high"
    return body


def _responses(feature: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "bench", "input": USER, "stream": True}
    if feature == "tool_call":
        body["tools"] = [{"type": "function", **TOOL}]
        body["tool_choice"] = {"type": "function", "name": "search"}
    elif feature == "reasoning":
        body["reasoning"] = {"effort": "high", "summary": "auto"}
    return body


def _anthropic(feature: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "bench",
        "max_tokens": 8192,
        "messages": [{"role": "user", "content": USER}],
        "stream": True,
    }
    if feature == "tool_call":
        body["tools"] = [{"name": "search", "description": TOOL["description"], "input_schema": TOOL["parameters"]}]
        body["tool_choice"] = {"type": "tool", "name": "search"}
    elif feature == "reasoning":
        body["thinking"] = {"type": "enabled", "budget_tokens": 4096}
    return body


def _gemini(feature: str) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": USER}]}]}
    if feature == "tool_call":
        body["tools"] = [{"functionDeclarations": [TOOL]}]
        body["toolConfig"] = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["search"]}}
    elif feature == "reasoning":
        body["generationConfig"] = {"thinkingConfig": {"thinkingBudget": 4096, "includeThoughts": True}}
    return body


@dataclass(frozen=True)
class Ask:
    path: str
    body: Callable[[str], dict[str, Any]]
    query: dict[str, str]


ASKS: dict[str, Ask] = {
    "openai-chat": Ask("/v1/chat/completions", _chat, {}),
    "openai-responses": Ask("/v1/responses", _responses, {}),
    "anthropic-messages": Ask("/v1/messages", _anthropic, {}),
    "gemini": Ask("/v1beta/models/bench:streamGenerateContent", _gemini, {"alt": "sse"}),
}
FEATURES = ("text", "tool_call", "reasoning")


def _config(events: int) -> Any:
    # Arguments of about `events` tokens (one word each), reasoning of `events` tokens, text of `events`.
    words = " ".join(f"w{i % 97}" for i in range(events))
    return parse_config(
        {
            "timing": {"ttft_ms": 0, "itl_ms": 1},  # distinct deadlines: a write per event
            "reasoning": {"high": events, "default": events},
            "answers": {
                "default": {"prose": {"length_tokens": events}},
                "rules": [
                    {
                        "match": {"tool_offered": "search"},
                        "answer": {"tool_call": {"name": "search", "arguments": {"query": words}}},
                    }
                ],
            },
        }
    )


def _respond(dialect: Dialect, ask: Ask, feature: str, config: Any, i: int) -> Any:
    body = ask.body(feature)
    text = json.dumps(body).replace(USER, f"{USER} {i}").encode()
    path = ask.path
    params = {"model": "bench"} if "{model}" in next(r.path for r in dialect.routes if r.handler is None) else {}
    call = Call("POST", path, ask.query, {"content-type": "application/json"}, text, path_params=params)
    chat, options = dialect.parse(call)
    plan = plan_response(config, chat)
    enc = Encoding(chat, call, f"mock{plan.seed:016x}", 1_700_000_000, options)
    frames = dialect.stream_frames(plan, enc)
    return stream_schedule(plan, frames, dialect.stream_headers, None)


def measure(events: int, repeats: int) -> list[dict[str, Any]]:
    """Every (dialect, answer) row, the rows interleaved within each repeat, so that a slow moment
    of a shared machine falls on every row alike and the ratios to text hold."""
    config = _config(events)
    cells = [(d, ASKS[d.name], feature) for d in DIALECTS if d.name in ASKS for feature in FEATURES]
    per_request: dict[int, list[float]] = {i: [] for i in range(len(cells))}
    per_write: dict[int, list[float]] = {i: [] for i in range(len(cells))}
    writes: dict[int, int] = {}
    count = 40  # requests per cell and repeat
    for r in range(repeats):
        for i, (dialect, ask, feature) in enumerate(cells):
            started = time.perf_counter()
            schedules = [_respond(dialect, ask, feature, config, r * count + k) for k in range(count)]
            planned = time.perf_counter() - started
            started = time.perf_counter()
            for schedule in schedules:
                payload = schedule.payload
                for k in range(len(schedule.parts)):
                    payload(k)
            played = time.perf_counter() - started
            total = sum(len(s.parts) for s in schedules)
            writes[i] = len(schedules[0].parts)
            per_request[i].append(planned / total * 1e6)
            per_write[i].append(played / total * 1e6)
    return [
        {
            "dialect": dialect.name,
            "feature": feature,
            "writes": writes[i],
            "request_us_per_event": statistics.median(per_request[i]),
            "write_us": statistics.median(per_write[i]),
        }
        for i, (dialect, _, feature) in enumerate(cells)
    ]


def render(rows: list[dict[str, Any]]) -> str:
    text = {r["dialect"]: r for r in rows if r["feature"] == "text"}
    columns = (
        f"{'dialect':<20}{'answer':<11}{'writes':>7}{'request us/ev':>15}{'x text':>8}{'write us':>10}{'x text':>8}"
    )
    lines = [columns]
    for row in rows:
        base = text[row["dialect"]]
        lines.append(
            f"{row['dialect']:<20}{row['feature']:<11}{row['writes']:>7}"
            f"{row['request_us_per_event']:>15.2f}{row['request_us_per_event'] / base['request_us_per_event']:>8.2f}"
            f"{row['write_us']:>10.3f}{row['write_us'] / base['write_us']:>8.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON as well")
    args = parser.parse_args(argv)
    rows = measure(args.events, args.repeats)
    print(render(rows))
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
