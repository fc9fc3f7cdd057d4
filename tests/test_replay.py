"""Replay of captured streams: the transcript format, the plan it gives, and the served stream."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import openai
import pytest

from mockllm import ChatRequest, Message, MockLLMClient, count_tokens, parse_config, plan_response
from mockllm._errors import ConfigError
from mockllm._replay import BUILTIN_DIR, TEXT_OF, load_transcript

SHIPPED = sorted(path.stem for path in BUILTIN_DIR.glob("*.jsonl"))
EXPECTED_TEXT = {
    "openai-sse-explainer": "Server-Sent Events keep one HTTP response open and push each token as it is ready.",
    "anthropic-haiku": "Tokens drift like snow—\ncafé lights hum in Zürich,\n東京 waits for dawn 🌅",
    "gemini-burst": "The mock replays this capture at its recorded pace, then stalls for a moment before the final,"
    " longer chunk arrives in one piece.",
}


def write(tmp_path: Path, lines: list[object]) -> str:
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return str(path)


HEADER = {"transcript": "mockllm/1", "dialect": "openai-chat"}


def chat_chunk(text: str) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]})


def test_every_dialect_has_a_text_reader_and_three_transcripts_ship() -> None:
    assert set(TEXT_OF) == {"openai-chat", "openai-completions", "openai-responses", "anthropic-messages", "gemini"}
    assert set(SHIPPED) == set(EXPECTED_TEXT)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_transcripts_load_with_their_text_and_pace(name: str) -> None:
    transcript = load_transcript(name, "k")
    assert transcript.text == EXPECTED_TEXT[name]
    assert len(transcript.chunks) == len(transcript.at_ms) > 1
    assert list(transcript.at_ms) == sorted(transcript.at_ms) and transcript.at_ms[0] > 100


def test_events_without_text_are_skipped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            HEADER,
            {
                "at_ms": 0,
                "data": json.dumps({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
            },
            {"at_ms": 10, "data": chat_chunk("Hi")},
            {"at_ms": 10, "data": chat_chunk(" there")},  # the same arrival time is allowed
            {"at_ms": 30, "data": json.dumps({"choices": [], "usage": {"completion_tokens": 2}})},
            {"at_ms": 31, "data": "[DONE]"},
        ],
    )
    transcript = load_transcript(path, "k")
    assert transcript.chunks == ("Hi", " there") and transcript.at_ms == (10.0, 10.0)


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ([], "empty"),
        (["not json"], ":1: not a JSON object"),
        ([{"transcript": "v0", "dialect": "openai-chat"}], "header"),
        ([{"transcript": "mockllm/1", "dialect": "cohere"}], '"dialect" must be one of'),
        ([HEADER, {"at_ms": 5, "data": chat_chunk("a")}, {"at_ms": 4, "data": chat_chunk("b")}], ':3: "at_ms"'),
        ([HEADER, {"at_ms": "1", "data": chat_chunk("a")}], ':2: "at_ms"'),
        ([HEADER, {"at_ms": 1, "data": {"choices": []}}], ':2: "data" must be'),
        ([HEADER, {"at_ms": 1, "event": 3, "data": chat_chunk("a")}], ':2: "event"'),
        ([HEADER, {"at_ms": 1, "data": "[DONE]"}], "no event carries answer text"),
    ],
)
def test_a_bad_transcript_is_a_config_error_naming_line_and_problem(
    tmp_path: Path, lines: list[object], problem: str
) -> None:
    path = write(tmp_path, lines) if lines else str(tmp_path / "empty.jsonl")
    if not lines:
        Path(path).write_text("")
    with pytest.raises(ConfigError) as err:
        load_transcript(path, "answers.default.replay.transcript")
    assert err.value.key == "answers.default.replay.transcript"
    assert problem in str(err.value)


def test_a_missing_transcript_lists_the_shipped_ones() -> None:
    with pytest.raises(ConfigError, match=r"cannot read transcript 'no-such'.*anthropic-haiku"):
        load_transcript("no-such", "k")


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ({"transcript": "anthropic-haiku", "speed": 0}, "answers.default.replay.speed"),
        ({"transcript": "anthropic-haiku", "speed": True}, "answers.default.replay.speed"),
        ({"transcript": "anthropic-haiku", "pace": 2}, "answers.default.replay.pace"),
        ({"transcript": ""}, "answers.default.replay.transcript"),
        (["anthropic-haiku"], "answers.default.replay"),
    ],
)
def test_bad_replay_config_names_the_key(spec: object, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"answers": {"default": {"replay": spec}}})
    assert err.value.key == key


def request(text: str = "hello", max_tokens: int | None = None) -> ChatRequest:
    return ChatRequest(model="m", messages=(Message("user", text),), max_tokens=max_tokens)


def test_a_replay_plan_keeps_the_recorded_chunks_and_pace_scaled_by_speed() -> None:
    transcript = load_transcript("openai-sse-explainer", "k")
    for speed in (1, 4):
        config = parse_config(
            {"answers": {"default": {"replay": {"transcript": "openai-sse-explainer", "speed": speed}}}}
        )
        plan = plan_response(config, request())
        assert plan.chunks == transcript.chunks
        assert plan.offsets == pytest.approx([at / 1000 / speed for at in transcript.at_ms])
        assert plan.ttft == plan.offsets[0]
        assert plan.answer == transcript.text and plan.completion_tokens == count_tokens(transcript.text)
        assert plan.finish_reason == "stop"
    assert parse_config(config.to_dict()).to_dict() == config.to_dict()  # the config round-trips


def test_max_tokens_cuts_a_replay_mid_chunk_if_need_be() -> None:
    config = parse_config({"answers": {"default": {"replay": "gemini-burst"}}})
    plan = plan_response(config, request(max_tokens=5))
    assert plan.finish_reason == "length" and plan.completion_tokens == 5 == count_tokens(plan.answer)
    assert "".join(plan.chunks) == plan.answer and len(plan.chunks) == len(plan.offsets) == 2
    assert plan.chunks[0] == "The" and plan.chunks[1] != " mock replays this capture at its recorded pace,"


def test_rules_pick_a_replay_for_matching_prompts_only() -> None:
    config = parse_config(
        {"answers": {"rules": [{"match": {"contains": "haiku"}, "answer": {"replay": "anthropic-haiku"}}]}}
    )
    assert plan_response(config, request("write a haiku")).answer == EXPECTED_TEXT["anthropic-haiku"]
    assert plan_response(config, request("write prose")).answer != EXPECTED_TEXT["anthropic-haiku"]


def test_the_server_streams_a_replay_at_its_recorded_pace(mockllm: MockLLMClient, marker: str) -> None:
    speed = 4.0
    mockllm.patch_config(
        {
            "answers": {
                "rules": [
                    {
                        "match": {"contains": marker},
                        "answer": {"replay": {"transcript": "anthropic-haiku", "speed": speed}},
                    }
                ]
            }
        }
    )
    client = openai.OpenAI(base_url=mockllm.openai_base_url, api_key="k", max_retries=0, timeout=10)
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": marker}], stream=True)
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    transcript = load_transcript("anthropic-haiku", "k")
    assert pieces == list(transcript.chunks)
    (entry,) = mockllm.journal(prompt_contains=marker)
    # The plan is the recording's pace, exactly; the server wrote no chunk before its due time. How
    # closely it keeps to the plan on a quiet machine is the benchmark's figure (bench.bench_mockllm):
    # a shared CI machine starved for CPU can make any write late, so no upper bound is asserted here.
    planned = entry["planned"]
    recorded = [at / speed for at in transcript.at_ms]
    assert planned["ttft_ms"] == pytest.approx(recorded[0], abs=1e-6)
    assert planned["offsets_ms"] == pytest.approx(recorded, abs=1e-6)
    achieved = entry["achieved"]
    sent = list(itertools.accumulate(achieved["itl_ms"], initial=achieved["ttft_ms"]))
    assert len(sent) == len(recorded)
    early = [(due, at) for due, at in zip(recorded, sent, strict=True) if at < due - 1.0]  # timers fire <1 ms early
    assert not early, f"chunks written before their recorded time (due ms, sent ms): {early}"


def test_a_capture_is_re_encoded_in_whatever_dialect_is_asked(mockllm: MockLLMClient, marker: str) -> None:
    """A Gemini capture served to the Anthropic SDK, an OpenAI capture to Gemini's wire format."""
    import anthropic
    import httpx

    rules = [
        {"match": {"contains": f"{marker}-a"}, "answer": {"replay": {"transcript": "gemini-burst", "speed": 10}}},
        {
            "match": {"contains": f"{marker}-b"},
            "answer": {"replay": {"transcript": "openai-sse-explainer", "speed": 10}},
        },
    ]
    mockllm.patch_config({"answers": {"rules": rules}})
    client = anthropic.Anthropic(base_url=mockllm.base_url, api_key="k", max_retries=0, timeout=10)
    with client.messages.stream(
        model="m", max_tokens=1000, messages=[{"role": "user", "content": f"{marker}-a"}]
    ) as stream:
        pieces = list(stream.text_stream)
    assert pieces == list(load_transcript("gemini-burst", "k").chunks)
    body = {"contents": [{"role": "user", "parts": [{"text": f"{marker}-b"}]}]}
    raw = httpx.post(f"{mockllm.base_url}/v1beta/models/m:streamGenerateContent?alt=sse", json=body, timeout=10)
    frames = [json.loads(line[6:]) for line in raw.text.splitlines() if line.startswith("data: ")]
    texts = [part["text"] for frame in frames for part in frame["candidates"][0]["content"]["parts"] if part["text"]]
    assert texts == list(load_transcript("openai-sse-explainer", "k").chunks)
