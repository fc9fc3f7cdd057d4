"""The planning core for agent answers, without a server: tool calls, reasoning and structured output
as the request's parameters and the config's rules call for them."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from mockllm import ChatRequest, ConfigError, Message, parse_config, plan_response
from mockllm._agent import Agent, OutputFormat, Reasoning, Tool, ToolCall, ToolChoice, ToolResult, sign, signed

WEATHER = Tool(
    "get_weather",
    {
        "type": "object",
        "properties": {"city": {"type": "string", "minLength": 2}, "unit": {"enum": ["c", "f"]}},
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
)
TIME = Tool("get_time", {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]})
FAST = {"timing": {"ttft_ms": 100, "itl_ms": 10}}


def request(text: str = "What is the weather in Paris?", **agent: Any) -> ChatRequest:
    agent.setdefault("tools", (WEATHER, TIME))
    return ChatRequest("m", (Message("user", text),), agent=Agent(**agent))


def answered(call_name: str = "get_weather", **agent: Any) -> ChatRequest:
    """A turn whose history ends with the result of the model's own call."""
    call = ToolCall("call_1", call_name, '{"city":"Paris","unit":"c"}')
    result = ToolResult("call_1", call_name, "18 degrees")
    messages = (Message("user", "weather?"), Message("assistant", ""), Message("tool", "18 degrees"))
    agent.setdefault("tools", (WEATHER, TIME))
    return ChatRequest("m", messages, agent=Agent(calls=(call,), results=(result,), pending=(result,), **agent))


def rule(answer: dict[str, Any], **match: Any) -> dict[str, Any]:
    return {"answers": {"rules": [{"match": match, "answer": answer}]}}


def kinds(plan: Any) -> list[str]:
    return [block.kind for block in plan.blocks]


def test_blocks_partition_the_chunks_in_order() -> None:
    config = parse_config(
        rule(
            {
                "blocks": [
                    {"text": "Let me check both."},
                    {"tool_call": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}},
                    {"tool_call": {"name": "get_time", "arguments": {"zone": "Europe/Paris"}}},
                ]
            }
        )
    )
    plan = plan_response(config, request())
    assert kinds(plan) == ["text", "tool_call", "tool_call"]
    assert plan.blocks[0].start == 0 and plan.blocks[-1].stop == len(plan.chunks)
    assert all(a.stop == b.start for a, b in zip(plan.blocks, plan.blocks[1:], strict=False))
    assert json.loads(plan.blocks[1].text) == {"city": "Paris", "unit": "c"}
    assert plan.blocks[2].text == '{"zone":"Europe/Paris"}'
    assert plan.blocks[1].call_id != plan.blocks[2].call_id and len(plan.blocks[1].call_id) == 24
    assert plan.answer == "Let me check both."
    assert plan.finish_reason == "tool_calls"
    assert len(plan.offsets) == len(plan.chunks)
    assert plan.block_of_chunks() == tuple(i for i, b in enumerate(plan.blocks) for _ in range(b.start, b.stop))


@pytest.mark.parametrize("seed", range(20))
def test_a_forced_choice_calls_the_tool_with_arguments_valid_against_its_schema(seed: int) -> None:
    config = parse_config({"seed": seed})
    plan = plan_response(config, request(choice=ToolChoice("tool", "get_weather")))
    (call,) = plan.blocks
    assert call.kind == "tool_call" and call.name == "get_weather"
    jsonschema.validate(json.loads(call.text), WEATHER.parameters)
    assert plan.answer == "" and plan.finish_reason == "tool_calls"


def test_required_calls_one_offered_tool_and_auto_answers_in_text() -> None:
    config = parse_config({})
    names = {plan_response(config, request(f"q{i}", choice=ToolChoice("required"))).blocks[0].name for i in range(30)}
    assert names == {"get_weather", "get_time"}  # the seed picks among those offered
    auto = plan_response(config, request())
    assert kinds(auto) == ["text"] and auto.finish_reason == "stop"


def test_none_drops_calls_a_rule_gives_and_unoffered_tools_are_never_called() -> None:
    config = parse_config(rule({"blocks": [{"text": "Sure."}, {"tool_call": {"name": "get_weather"}}]}))
    assert kinds(plan_response(config, request(choice=ToolChoice("none")))) == ["text"]
    assert kinds(plan_response(config, request(tools=(TIME,)))) == ["text"]
    assert kinds(plan_response(config, request(tools=()))) == ["text"]


def test_without_parallel_calls_only_the_first_is_made() -> None:
    both = {"blocks": [{"tool_call": {"name": "get_weather"}}, {"tool_call": {"name": "get_time"}}]}
    config = parse_config(rule(both))
    assert [b.name for b in plan_response(config, request()).blocks] == ["get_weather", "get_time"]
    assert [b.name for b in plan_response(config, request(parallel=False)).blocks] == ["get_weather"]


def test_after_the_tool_results_the_answer_is_text_so_a_loop_ends() -> None:
    config = parse_config(rule({"tool_call": {"name": "get_weather"}}, tool_offered="get_weather"))
    assert kinds(plan_response(config, request())) == ["tool_call"]
    after = plan_response(config, answered())
    assert kinds(after) == ["text"] and after.finish_reason == "stop"
    # A rule may answer the results on purpose, naming the tool they answer.
    chained = parse_config(rule({"tool_call": {"name": "get_time"}}, tool_result="get_weather"))
    assert [b.name for b in plan_response(chained, answered()).blocks] == ["get_time"]
    assert kinds(plan_response(chained, answered("get_time"))) == ["text"]
    assert kinds(plan_response(chained, request())) == ["text"]


def test_visible_reasoning_comes_first_signed_and_counted() -> None:
    config = parse_config(FAST)
    plan = plan_response(config, request(tools=(), reasoning=Reasoning("low")))
    assert kinds(plan) == ["reasoning", "text"]
    thinking = plan.blocks[0]
    assert thinking.stop - thinking.start == 24 == plan.reasoning_tokens
    assert thinking.signature == sign(thinking.text) and signed(thinking.text, thinking.signature)
    assert not signed(thinking.text + " ", thinking.signature)
    assert plan.completion_tokens == 24 + (plan.blocks[1].stop - plan.blocks[1].start)
    # the first visible answer token comes after the reasoning's 24 tokens have streamed
    assert plan.offsets[plan.blocks[1].start] == pytest.approx(0.1 + 24 * 0.01)


def test_hidden_reasoning_takes_its_time_before_the_first_chunk() -> None:
    config = parse_config(FAST)
    plain = plan_response(config, request(tools=()))
    hidden = plan_response(config, request(tools=(), reasoning=Reasoning("high", visible=False)))
    assert kinds(hidden) == ["text"]
    assert hidden.reasoning_tokens == 96
    assert hidden.ttft == pytest.approx(plain.ttft + 96 * 0.01)
    assert hidden.offsets[0] == pytest.approx(0.1 + 96 * 0.01)
    budget = plan_response(config, request(tools=(), reasoning=Reasoning("high", budget_tokens=10, visible=False)))
    assert budget.reasoning_tokens == 10


def test_reasoning_length_by_effort_is_configurable() -> None:
    config = parse_config({"reasoning": {"low": 3}})
    plan = plan_response(config, request(tools=(), reasoning=Reasoning("low")))
    assert plan.reasoning_tokens == 3 == plan.blocks[0].stop - plan.blocks[0].start


@pytest.mark.parametrize("seed", range(10))
def test_a_response_schema_gets_a_json_instance_of_it(seed: int) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 120}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    plan = plan_response(parse_config({"seed": seed}), request(tools=(), output=OutputFormat("json_schema", schema)))
    jsonschema.validate(json.loads(plan.answer), schema)
    assert len(plan.chunks) > 1  # streamed in pieces like any text
    free = plan_response(parse_config({"seed": seed}), request(tools=(), output=OutputFormat("json_object")))
    assert isinstance(json.loads(free.answer), dict)


def test_max_tokens_cuts_inside_a_call_and_says_length() -> None:
    config = parse_config(rule({"tool_call": {"name": "get_weather", "arguments": {"city": "Paris" * 20}}}))
    whole = plan_response(config, request())
    cut = plan_response(config, ChatRequest("m", (Message("user", "q"),), max_tokens=3, agent=Agent(tools=(WEATHER,))))
    assert len(cut.chunks) == 3 < len(whole.chunks)
    assert cut.finish_reason == "length"


def test_whole_calls_are_one_chunk_each() -> None:
    config = parse_config(rule({"tool_call": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}}))
    plan = plan_response(config, request(whole_calls=True))
    assert plan.chunks == ('{"city":"Paris","unit":"c"}',)


def test_the_same_request_gets_the_same_plan_and_another_seed_other_arguments() -> None:
    forced = request(choice=ToolChoice("tool", "get_weather"), reasoning=Reasoning("low"))
    one, two = (plan_response(parse_config({"seed": 1}), forced) for _ in range(2))
    assert one == two
    others = {plan_response(parse_config({"seed": s}), forced).blocks[-1].text for s in range(10)}
    assert len(others) > 1


def test_templated_arguments_render_from_the_request() -> None:
    config = parse_config(
        rule({"tool_call": {"name": "get_weather", "arguments": {"template": '{"city": {{ last_user | tojson }}}'}}})
    )
    plan = plan_response(config, request("Lyon"))
    assert json.loads(plan.blocks[0].text) == {"city": "Lyon"}


def test_a_redacted_block_is_one_opaque_chunk() -> None:
    config = parse_config(rule({"blocks": [{"redacted_reasoning": True}, {"text": "Done."}]}))
    plan = plan_response(config, request())
    assert kinds(plan) == ["redacted_reasoning", "text"]
    assert plan.blocks[0].stop - plan.blocks[0].start == 1 and len(plan.blocks[0].text) > 40


def test_rules_round_trip_through_to_dict() -> None:
    raw = rule(
        {
            "blocks": [
                {"reasoning": {"fixed": "Think."}},
                {"tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"tool_call": {"name": "get_time"}},
            ]
        },
        contains="weather",
        tool_offered="get_weather",
        tool_result=False,
    )
    config = parse_config(raw)
    again = parse_config(config.to_dict())
    assert again.answer_rules == config.answer_rules
    assert config.to_dict()["answers"]["rules"][0]["match"] == {
        "contains": "weather",
        "tool_offered": "get_weather",
        "tool_result": False,
    }


@pytest.mark.parametrize(
    ("raw", "key", "fragment"),
    [
        (rule({"blocks": []}), "answers.rules[0].answer.blocks", "non-empty list"),
        (rule({"blocks": [{"picture": 1}]}), "answers.rules[0].answer.blocks[0].picture", "unknown block"),
        (rule({"tool_call": {"name": 3}}), "answers.rules[0].answer.tool_call.name", "tool name"),
        (rule({"tool_call": {"arguments": [1]}}), "answers.rules[0].answer.tool_call.arguments", "expected a mapping"),
        (rule({"tool_call": {"nme": "x"}}), "answers.rules[0].answer.tool_call.nme", "unknown field"),
        (rule({"fixed": "x"}, tool_result=3), "answers.rules[0].match.tool_result", "true, false or a tool name"),
        ({"reasoning": {"huge": 3}}, "reasoning.huge", "unknown effort"),
        ({"reasoning": {"low": -1}}, "reasoning.low", "whole number"),
        ({"strict": "yes"}, "strict", "true or false"),
    ],
)
def test_bad_agent_config_is_refused_naming_the_key(raw: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert info.value.key == key
    assert fragment in info.value.problem


def test_the_readmes_agent_rules_do_what_it_says() -> None:
    """The README's agent example, read from the README itself: a call, then text from the result."""
    import pathlib
    import re

    import yaml

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "tool_offered" in b]
    config = parse_config(yaml.safe_load(block))
    first = plan_response(config, request("What is the weather in Paris?"))
    assert kinds(first) == ["reasoning", "text", "tool_call", "tool_call"]
    assert json.loads(first.blocks[2].text) == {"city": "Paris"}
    jsonschema.validate(json.loads(first.blocks[3].text), TIME.parameters)
    after = plan_response(config, answered())
    assert kinds(after) == ["text"] and after.answer == "It is 18 degrees."
