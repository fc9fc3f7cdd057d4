"""Answers with more than text: tool calls, reasoning and structured output, as rules give them and as
the request's own parameters call for them. No I/O.

A rule's answer may be a run of blocks, in the order the stream carries them:

    answer:
      blocks:
        - reasoning: {prose: {length_tokens: 40}}      # any text source
        - text: {fixed: "Let me look that up."}
        - tool_call: {name: get_weather, arguments: {city: Paris}}       # fixed arguments
        - tool_call: {name: get_time}                                    # generated from its schema
        - tool_call: {name: search, arguments: {template: '{"q": {{ last_user | tojson }}}'}}
        - redacted_reasoning: true

(`answer: {tool_call: {...}}` is a one-block answer.) With no rule at all the request decides, as the
provider's model would: a forced tool choice gets a call to that tool (or, for `required`, to one
the seed picks) whose arguments validate against its schema; a request for reasoning gets reasoning
first, of a length set by its effort or budget (`reasoning:` in the config), streamed where the
dialect shows it and only timed and counted where it does not; a response schema gets a JSON
instance of it as the answer text. `tool_choice: none` drops every call, a call to a tool the
request does not offer is dropped, `parallel_tool_calls: false` keeps the first.

A rule whose answer calls a tool does not apply, unless its match says `tool_result:`, to a turn whose
history ends with tool results: the model answers its own calls' results in text, so agent loops end.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ._agent import Agent, Block, OutputFormat, Tool, sign
from ._errors import ConfigError, RequestError
from ._jsonbytes import compact_json
from ._request import ChatRequest
from ._schema_instance import SchemaError, schema_instance
from ._tokenizer import tokenize

PartKind = Literal["text", "reasoning", "redacted_reasoning", "tool_call"]

# The reasoning a request gets by its effort, in tokens; a budget caps it. `default` for a request
# that turns reasoning on without an effort (Anthropic's `thinking`, Gemini's `thinkingBudget`).
DEFAULT_REASONING_TOKENS: Mapping[str, int] = {"minimal": 8, "low": 24, "medium": 48, "high": 96, "default": 48}

_JSON_OBJECT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string", "minLength": 8, "maxLength": 80}},
    "required": ["answer"],
    "additionalProperties": False,
}


@dataclass(frozen=True, slots=True)
class CallSpec:
    """A tool call a rule gives: a tool (None: the one the request forces, else the first offered)
    and its arguments: fixed (a mapping), a template of JSON text, or None (generated from the tool's
    schema with the request's seed)."""

    name: str | None = None
    arguments: Mapping[str, Any] | None = None
    template: Any = None  # a TemplateAnswer whose text is the arguments' JSON

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name is not None:
            out["name"] = self.name
        if self.arguments is not None:
            out["arguments"] = dict(self.arguments)
        elif self.template is not None:
            out["arguments"] = {"template": self.template.source}
        return out


@dataclass(frozen=True, slots=True)
class Part:
    kind: PartKind
    source: Any = None  # an AnswerSource for text and reasoning
    call: CallSpec | None = None

    def to_config(self) -> dict[str, Any]:
        if self.kind == "tool_call":
            assert self.call is not None
            return {"tool_call": self.call.to_config()}
        if self.kind == "redacted_reasoning":
            return {"redacted_reasoning": True}
        return {self.kind: self.source.to_config()}


@dataclass(frozen=True, slots=True)
class BlocksAnswer:
    """An answer made of blocks (see the module docstring)."""

    recorded_offsets: ClassVar[None] = None
    parts: tuple[Part, ...]

    @property
    def calls_tools(self) -> bool:
        return any(part.kind == "tool_call" for part in self.parts)

    def tokens(self, request: ChatRequest, rng: random.Random, seed: int) -> list[str]:
        """The visible text's tokens (for a caller that wants only the text)."""
        out: list[str] = []
        for part in self.parts:
            if part.kind == "text":
                out += part.source.tokens(request, rng, seed)
        return out

    def to_config(self) -> dict[str, Any]:
        return {"blocks": [part.to_config() for part in self.parts]}


@dataclass(frozen=True, slots=True)
class AgentMatch:
    """A rule's conditions on the agent side of a request: a tool it offers (`tool_offered`), and
    whether its history ends with tool results (`tool_result: true/false`, or the tool they answer)."""

    tool_offered: str | None = None
    tool_result: bool | str | None = None

    def matches(self, agent: Agent | None) -> bool:
        if self.tool_offered is not None and (agent is None or agent.tool(self.tool_offered) is None):
            return False
        if self.tool_result is None:
            return True
        answered = agent is not None and agent.answered
        if isinstance(self.tool_result, bool):
            return answered == self.tool_result
        return answered and agent is not None and agent.answers_tool(self.tool_result)

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.tool_offered is not None:
            out["tool_offered"] = self.tool_offered
        if self.tool_result is not None:
            out["tool_result"] = self.tool_result
        return out


AGENT_MATCH_KEYS = ("tool_offered", "tool_result")


def parse_agent_match(value: Mapping[str, Any], key: str) -> AgentMatch | None:
    """The agent conditions among a rule's match fields (None when it has none)."""
    offered = value.get("tool_offered")
    result = value.get("tool_result")
    if offered is None and result is None:
        return None
    if offered is not None and (not isinstance(offered, str) or not offered):
        raise ConfigError(f"{key}.tool_offered", f"expected a tool name, got {offered!r}")
    if result is not None and not isinstance(result, bool) and (not isinstance(result, str) or not result):
        raise ConfigError(f"{key}.tool_result", f"expected true, false or a tool name, got {result!r}")
    return AgentMatch(offered, result)


# -- config ------------------------------------------------------------------------------------------


def parse_blocks(value: Any, key: str, parse_source: Any) -> BlocksAnswer:
    """`blocks: [...]`; `parse_source` reads a block's text source (the answers module's reader)."""
    if not isinstance(value, list) or not value:
        raise ConfigError(key, "expected a non-empty list of blocks (text, reasoning, redacted_reasoning, tool_call)")
    return BlocksAnswer(tuple(parse_part(item, f"{key}[{i}]", parse_source) for i, item in enumerate(value)))


def parse_part(value: Any, key: str, parse_source: Any) -> Part:
    if not isinstance(value, dict) or len(value) != 1:
        raise ConfigError(key, "expected one of {text: SOURCE}, {reasoning: SOURCE}, {tool_call: {...}}, "
                          "{redacted_reasoning: true}")  # fmt: skip
    ((kind, spec),) = value.items()
    if kind in ("text", "reasoning"):
        if isinstance(spec, str):
            spec = {"fixed": spec}
        return Part(kind, parse_source(spec, f"{key}.{kind}"))
    if kind == "redacted_reasoning":
        if spec is not True:
            raise ConfigError(f"{key}.redacted_reasoning", "expected true")
        return Part("redacted_reasoning")
    if kind == "tool_call":
        return Part("tool_call", call=parse_call(spec, f"{key}.tool_call", parse_source))
    raise ConfigError(f"{key}.{kind}", "unknown block; use text, reasoning, redacted_reasoning or tool_call")


def parse_call(spec: Any, key: str, parse_source: Any) -> CallSpec:
    if spec is None:
        return CallSpec()
    if not isinstance(spec, dict):
        raise ConfigError(key, f"expected a mapping with 'name' and 'arguments', got {spec!r}")
    unknown = sorted(set(spec) - {"name", "arguments"})
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", "unknown field; use name, arguments")
    name = spec.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise ConfigError(f"{key}.name", f"expected a tool name, got {name!r}")
    arguments = spec.get("arguments")
    if arguments is None or arguments == "generate":
        return CallSpec(name)
    if isinstance(arguments, dict) and set(arguments) == {"template"} and isinstance(arguments["template"], str):
        return CallSpec(name, template=parse_source({"template": arguments["template"]}, f"{key}.arguments"))
    if not isinstance(arguments, dict):
        raise ConfigError(
            f"{key}.arguments", f"expected a mapping, {{template: JSON}} or 'generate', got {arguments!r}"
        )
    try:
        json.dumps(arguments)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{key}.arguments", f"not JSON-serialisable: {err}") from None
    return CallSpec(name, arguments)


def parse_reasoning_tokens(value: Any, key: str) -> Mapping[str, int]:
    """`reasoning: {minimal, low, medium, high, default}`: tokens of reasoning by effort."""
    if value is None:
        return DEFAULT_REASONING_TOKENS
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a mapping of effort -> tokens, got {value!r}")
    out = dict(DEFAULT_REASONING_TOKENS)
    for effort, tokens in value.items():
        if effort not in DEFAULT_REASONING_TOKENS:
            raise ConfigError(f"{key}.{effort}", f"unknown effort; use {', '.join(DEFAULT_REASONING_TOKENS)}")
        if isinstance(tokens, bool) or not isinstance(tokens, int) or not 0 <= tokens <= 100_000:
            raise ConfigError(f"{key}.{effort}", f"expected a whole number of tokens in [0, 100000], got {tokens!r}")
        out[effort] = tokens
    return out


# -- planning ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Pieces:
    """An agent answer before timing: the tokens of each block, the hidden reasoning tokens."""

    kinds: list[PartKind] = field(default_factory=list)
    tokens: list[list[str]] = field(default_factory=list)
    calls: list[tuple[str, str] | None] = field(default_factory=list)  # (id, name) of each tool call
    hidden_reasoning: int = 0


def agent_pieces(
    request: ChatRequest,
    source: Any,
    ruled: bool,
    rng: random.Random,
    seed: int,
    reasoning_tokens: Mapping[str, int],
    reasoning_text: Callable[[int, random.Random], list[str]],
) -> Pieces:
    """The blocks of the answer to `request` from `source` (`ruled`: a rule chose it, else it is the
    default answer), with the request's tool choice, reasoning and output format applied.
    `reasoning_text(n, rng)` makes `n` tokens of reasoning when the source gives none."""
    agent = request.agent or Agent()
    parts = list(source.parts) if isinstance(source, BlocksAnswer) else [Part("text", source)]
    parts = _apply_tool_choice(parts, agent, rng)
    if agent.output is not None and not ruled and not any(p.kind == "tool_call" for p in parts):
        parts = [p for p in parts if p.kind != "text"] + [Part("text", _StructuredText(agent.output))]
    if agent.reasoning is not None and not any(p.kind in ("reasoning", "redacted_reasoning") for p in parts):
        parts.insert(0, Part("reasoning", _ReasoningText(reasoning_text, _reasoning_length(agent, reasoning_tokens))))
    # Reasoning shows where the request asked to see it; a rule's reasoning on a request that asked
    # for none shows where the request speaks the agent side of its API at all (a request with no
    # agent parameters, such as a legacy completion's, may have no way to carry it): else it is hidden.
    visible_reasoning = agent.reasoning.visible if agent.reasoning is not None else request.agent is not None
    out = Pieces()
    for i, part in enumerate(parts):
        if part.kind == "tool_call":
            assert part.call is not None
            name, arguments = _call(part.call, agent, request, rng, seed)
            out.kinds.append("tool_call")
            out.tokens.append([arguments] if agent.whole_calls else tokenize(arguments))
            out.calls.append((_call_id(seed, i), name))
            continue
        if part.kind == "redacted_reasoning":
            out.kinds.append("redacted_reasoning")
            out.tokens.append([_redacted_data(seed, i)])
            out.calls.append(None)
            continue
        tokens = part.source.tokens(request, rng, seed)
        if part.kind == "reasoning" and not visible_reasoning:
            out.hidden_reasoning += len(tokens)
            continue
        if not tokens:
            continue
        out.kinds.append(part.kind)
        out.tokens.append(tokens)
        out.calls.append(None)
    return out


def blocks_of(pieces: Pieces, chunk_counts: list[int], chunks: tuple[str, ...]) -> tuple[Block, ...]:
    """The plan's blocks, given how many chunks each block's tokens became."""
    blocks = []
    start = 0
    for kind, count, call in zip(pieces.kinds, chunk_counts, pieces.calls, strict=True):
        if not count:
            continue
        text = "".join(chunks[start : start + count])
        call_id, name = call if call is not None else (None, None)
        signature = sign(text) if kind == "reasoning" else None
        blocks.append(Block(kind, start, start + count, text, call_id, name, signature))
        start += count
    return tuple(blocks)


def _apply_tool_choice(parts: list[Part], agent: Agent, rng: random.Random) -> list[Part]:
    """The calls the provider's model could make: none under `none`, only tools offered, the forced
    tool under `tool`, at least one under `required`, one at most without parallel calls."""
    choice = agent.choice
    calls = [p for p in parts if p.kind == "tool_call"]
    if choice.mode == "none" or not agent.tools:
        return [p for p in parts if p.kind != "tool_call"]
    offered = {tool.name for tool in agent.tools}
    if choice.mode == "tool":
        kept = [p for p in calls if (p.call and p.call.name) in (choice.name, None)]
    else:
        kept = [p for p in calls if p.call is not None and (p.call.name is None or p.call.name in offered)]
    if not agent.parallel:
        kept = kept[:1]
    if choice.forced and not kept:
        name = choice.name if choice.mode == "tool" else agent.tools[rng.randrange(len(agent.tools))].name
        # A forced call comes alone: the model writes no text before it (as Anthropic prefills it).
        return [p for p in parts if p.kind in ("reasoning", "redacted_reasoning")] + [
            Part("tool_call", call=CallSpec(name))
        ]
    return [p for p in parts if p.kind != "tool_call" or p in kept]


def _call(spec: CallSpec, agent: Agent, request: ChatRequest, rng: random.Random, seed: int) -> tuple[str, str]:
    """The call's tool and its arguments' JSON text."""
    name = spec.name or (agent.choice.name if agent.choice.mode == "tool" else None) or agent.tools[0].name
    if spec.arguments is not None:
        return name, compact_json(spec.arguments)
    if spec.template is not None:
        text = spec.template.text(request, seed)
        try:
            return name, compact_json(json.loads(text))
        except ValueError:
            return name, text  # a template that renders bad JSON streams it as written: the client's problem
    tool = agent.tool(name) or Tool(name)
    return name, compact_json(_instance(tool.parameters, rng, f"the parameters of function {name!r}"))


def _instance(schema: Mapping[str, Any], rng: random.Random, what: str) -> Any:
    """A seeded instance of `schema`; a schema no value can satisfy is the request's fault: a
    `RequestError` (400) naming it, as the provider refuses an invalid schema."""
    try:
        return schema_instance(schema, rng)
    except SchemaError as err:
        raise RequestError(None, f"Invalid schema for {what}: {err}", check="schema") from None


def _call_id(seed: int, index: int) -> str:
    """24 hex digits from the request's seed and the block's place: the same request, the same ids."""
    return hashlib.blake2b(b"%d:%d" % (seed, index), digest_size=12).hexdigest()


def _redacted_data(seed: int, index: int) -> str:
    """A redacted block's opaque data: base64 of the seed's hash, as long as a real one's start."""
    return base64.b64encode(hashlib.blake2b(b"redacted:%d:%d" % (seed, index), digest_size=60).digest()).decode()


def _reasoning_length(agent: Agent, table: Mapping[str, int]) -> int:
    reasoning = agent.reasoning
    assert reasoning is not None
    tokens = table.get(reasoning.effort or "default", table["default"])
    if reasoning.budget_tokens is not None:
        tokens = min(tokens, reasoning.budget_tokens)
    return tokens


@dataclass(frozen=True, slots=True)
class _ReasoningText:
    """Reasoning of `length` tokens (a request's reasoning, no rule's)."""

    make: Callable[[int, random.Random], list[str]]
    length: int

    def tokens(self, request: ChatRequest, rng: random.Random, seed: int) -> list[str]:
        return self.make(self.length, rng)


@dataclass(frozen=True, slots=True)
class _StructuredText:
    """The answer text of a request for structured output: a seeded JSON instance of its schema."""

    output: OutputFormat

    def tokens(self, request: ChatRequest, rng: random.Random, seed: int) -> list[str]:
        schema = self.output.schema if self.output.kind == "json_schema" and self.output.schema else _JSON_OBJECT_SCHEMA
        return tokenize(compact_json(_instance(schema, rng, "the response format")))
