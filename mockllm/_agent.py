"""What an agent backend's request asks for beyond text, in dialect-free form. No I/O.

Each dialect reads its own spelling of tools, tool choice, reasoning and response formats into an
`Agent`, and the tool calls and tool results its history carries into `ToolCall` and `ToolResult`;
the planner answers from these alone, so a forced tool choice, a reasoning effort or a response
schema drives the answer the same way on every API, as it drives the real provider.

A plan's output beyond plain text is a run of `Block`s over its chunks (`_plan`): reasoning, tool
calls and text, each a range of the chunks the stream carries, so timing, faults and the journal
treat a tool call's arguments and a reasoning block exactly as they treat text.

Signatures: a reasoning block is signed (`sign`) the way a provider signs its thinking, so that the
mock can refuse, as Anthropic does, a next turn that sent it back altered.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Choice = Literal["auto", "none", "required", "tool"]
BlockKind = Literal["text", "reasoning", "redacted_reasoning", "tool_call"]

NO_PARAMETERS: Mapping[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the request offers the model: its name and its parameters' JSON Schema."""

    name: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: NO_PARAMETERS)
    description: str = ""


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """`auto` (the model decides), `none` (no call), `required` (at least one call), or `tool`:
    a call to the tool named `name`, as every provider spells a forced choice."""

    mode: Choice = "auto"
    name: str | None = None

    @property
    def forced(self) -> bool:
        return self.mode in ("required", "tool")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model made: in a request's history (sent back by the client) or in a plan."""

    id: str
    name: str
    arguments: str  # the arguments as the JSON text the model streamed


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool's result in the request's history; `name` is the tool it answers, when known."""

    call_id: str
    name: str | None
    content: str


@dataclass(frozen=True, slots=True)
class Reasoning:
    """The request asks the model to reason. `visible`: whether the dialect streams the reasoning
    (Anthropic's thinking, a Responses summary, `reasoning_content`, Gemini's thoughts when asked
    to include them); hidden reasoning still takes its time and counts its tokens."""

    effort: str | None = None  # minimal, low, medium, high
    budget_tokens: int | None = None
    visible: bool = True


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """A structured answer: JSON valid against `schema` (`json_schema`), or any JSON object."""

    kind: Literal["json_schema", "json_object"]
    schema: Mapping[str, Any] | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Agent:
    """Everything in a request beyond its messages' text that may change the answer."""

    tools: tuple[Tool, ...] = ()
    choice: ToolChoice = field(default_factory=ToolChoice)
    parallel: bool = True  # several calls in one turn allowed
    reasoning: Reasoning | None = None
    output: OutputFormat | None = None
    calls: tuple[ToolCall, ...] = ()  # the calls in the history, oldest first
    results: tuple[ToolResult, ...] = ()  # the results in the history, oldest first
    pending: tuple[ToolResult, ...] = ()  # the results after the last assistant turn: the next answer's input
    whole_calls: bool = False  # the dialect sends each call's arguments in one piece (Gemini)

    def tool(self, name: str) -> Tool | None:
        for tool in self.tools:
            if tool.name == name:
                return tool
        return None

    @property
    def answered(self) -> bool:
        """The history ends with tool results: this turn is the model's answer to its own calls."""
        return bool(self.pending)

    def answers_tool(self, name: str) -> bool:
        return any(result.name == name for result in self.pending)

    def to_journal(self) -> dict[str, Any]:
        return {
            "tools": [tool.name for tool in self.tools],
            "tool_choice": self.choice.mode if self.choice.mode != "tool" else {"tool": self.choice.name},
            "reasoning": None
            if self.reasoning is None
            else {
                "effort": self.reasoning.effort,
                "budget_tokens": self.reasoning.budget_tokens,
                "visible": self.reasoning.visible,
            },
            "output": None if self.output is None else self.output.kind,
            "tool_results": [
                {"call_id": result.call_id, "name": result.name, "content": result.content} for result in self.results
            ],
        }


@dataclass(frozen=True, slots=True)
class Block:
    """One piece of a planned answer: chunks `start` up to `stop` of the plan (their text joined is
    `text`: the reasoning, the call's arguments, or answer text). A redacted reasoning block has one
    chunk, its opaque data."""

    kind: BlockKind
    start: int
    stop: int
    text: str
    call_id: str | None = None  # a tool call's id, without the dialect's prefix
    name: str | None = None  # a tool call's function
    signature: str | None = None  # a reasoning block's signature (`sign(text)`)

    def to_journal(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "chunks": [self.start, self.stop]}
        if self.kind == "tool_call":
            out.update(id=self.call_id, name=self.name, arguments=self.text)
        else:
            out["text"] = self.text
        return out


_SIGNING_KEY = b"mockllm-reasoning-signature/1"


def sign(text: str) -> str:
    """A reasoning block's signature: opaque to the client, a keyed hash of its text, so an altered
    block sent back is told from the one the mock streamed."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), key=_SIGNING_KEY, digest_size=48).digest()
    return base64.b64encode(digest).decode()


def signed(text: str, signature: str) -> bool:
    return sign(text) == signature
