"""Anthropic Messages: the request's history and agent side, and the API's own request checks.

`read_history` reads `system` and `messages` into the planner's messages (each content reduced
to its text, each `tool_result` also a `tool` message, so prompts, seeds and journal filters see
it) and collects the history's `tool_use` calls and `tool_result` results, noting whether it holds
any tool or thinking blocks at all. `read_agent` reads `tools`, `tool_choice` (with
`disable_parallel_tool_use`), `thinking` (with `output_config.effort`) and `output_config.format`
(or the older `output_format`) into an `Agent`, or None for a plain request, and with `strict` on
runs the checks below first. `anthropic_messages` (the dialect) calls both from its `parse`; this
module never imports it.

The checks, each refusal a 400 `invalid_request_error` whose journal `check` is the id:

- `anthropic.max-tokens-required` (raised by `AnthropicMessages.parse`, where `max_tokens` is
  read): no `max_tokens`; "max_tokens: Field required", the API's wording for a missing field.
- `anthropic.thinking-budget-too-small`: `budget_tokens` < 1024; "thinking.enabled.budget_tokens:
  Input should be greater than or equal to 1024".
- `anthropic.thinking-budget-not-below-max-tokens`: `budget_tokens` >= `max_tokens`;
  "`max_tokens` must be greater than `thinking.budget_tokens`. ...".
- `anthropic.thinking-temperature`: thinking on and `temperature` other than 1; "`temperature`
  may only be set to 1 when thinking is enabled. ...".
- `anthropic.thinking-top-k`: thinking on and `top_k` set; "`top_k` must be unset when thinking
  is enabled. ...".
- `anthropic.thinking-forced-tool-choice`: thinking on and `tool_choice` `any` or `tool`;
  "Thinking may not be enabled when tool_choice forces tool use.".
- `anthropic.tool-use-without-tool-result`: a `tool_use` not answered in the next turn;
  "`tool_use` ids were found without `tool_result` blocks immediately after: ...".
- `anthropic.tool-result-without-tool-use`: a `tool_result` answering no `tool_use` of the turn
  before; "unexpected `tool_use_id` found in `tool_result` blocks: ...".
- `anthropic.thinking-disabled-final-thinking`: thinking off and a final (prefilled) assistant
  message holding thinking; "When thinking is disabled, an `assistant` message in the final
  position cannot contain `thinking`. ...".
- `anthropic.thinking-block-missing`: thinking on and the assistant turn the tool results answer
  not starting with a thinking block; "Expected `thinking` or `redacted_thinking`, but found ...".
- `anthropic.thinking-signature-invalid`: a thinking block whose `signature` is not the one the
  mock gave its text (dropped or altered between turns); "Invalid `signature` in `thinking` block".

Where the wording came from: the API's own 400 answers, quoted in the public issue threads the
comment above `_check_thinking_params` lists, one or more per check (each "..." above stands for
the rest of the message, e.g. its link to the extended-thinking documentation, which the code
writes in full). A first message from the assistant and consecutive turns of one role are not
refused: the API accepts both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._agent import Agent, OutputFormat, Reasoning, Tool, ToolCall, ToolChoice, ToolResult, signed
from .._errors import RequestError
from .._jsonbytes import compact_json
from .._request import Message

ROLES = frozenset({"user", "assistant"})
# The request fields that change an agent answer: in `sampling`, so the seed depends on them.
AGENT_FIELDS = frozenset({"tools", "tool_choice", "thinking", "output_config", "output_format"})
_TOOL_CHOICES = {"auto": "auto", "any": "required", "tool": "tool", "none": "none"}
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
_THINKING_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"


# -- the request's history ------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    """One message of `messages` with its content blocks (None for a string content)."""

    index: int
    role: str
    blocks: list[dict[str, Any]] | None


class _History:
    """The request's messages as the planner reads them, and what the checks need of its blocks."""

    __slots__ = ("_entries", "agentic", "calls", "messages", "raw", "results")

    def __init__(self, raw: list[Any]) -> None:
        self.messages: tuple[Message, ...] = ()
        self.raw = raw  # the request's `messages`, as sent
        self.calls: list[ToolCall] = []
        self.results: list[tuple[int, ToolResult]] = []  # (message index, result)
        self.agentic = False  # tool_use, tool_result or thinking blocks in the history
        self._entries: list[_Entry] | None = None

    @property
    def entries(self) -> list[_Entry]:
        """Each message with its blocks: made when a check needs them, never on the plain path."""
        if self._entries is None:
            self._entries = [
                _Entry(i, item["role"], item["content"] if isinstance(item["content"], list) else None)
                for i, item in enumerate(self.raw)
            ]
        return self._entries


def read_history(body: dict[str, Any]) -> _History:
    """`system` (a leading system message) and `messages`, each content reduced to its text, each
    tool result a `tool` message; and the tool calls, results and thinking blocks found."""
    out = []
    system = body.get("system")
    if system is not None:
        text = system if isinstance(system, str) else _blocks_text(system, "system")
        if text:
            out.append(Message("system", text))
    value = body.get("messages")
    if value is None:
        raise RequestError("messages", "messages: Field required")
    if not isinstance(value, list) or not value:
        raise RequestError("messages", "messages: Input should be a non-empty list of message objects")
    history = _History(value)
    results = history.results
    for i, item in enumerate(value):
        where = f"messages.{i}"
        if not isinstance(item, dict):
            raise RequestError(where, f"{where}: Input should be an object, got {type(item).__name__}")
        role = item.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise RequestError(f"{where}.role", f"{where}.role: Input should be 'user' or 'assistant', got {role!r}")
        content = item.get("content")
        if content is None:
            raise RequestError(f"{where}.content", f"{where}.content: Field required")
        if isinstance(content, str):
            out.append(Message(role, content))
            continue
        found = len(results)
        text = _blocks_text(content, f"{where}.content", history, i)
        if len(results) == found:
            out.append(Message(role, text))
            continue
        out += [Message("tool", result.content) for _, result in results[found:]]
        if text:
            out.append(Message(role, text))
    history.messages = tuple(out)
    return history


def _blocks_text(value: Any, where: str, history: _History | None = None, index: int = 0) -> str:
    """The text blocks of a content list, joined; images and the like carry no text. Tool calls,
    tool results and thinking blocks are read `into` the history (a message's, not the system's)."""
    if not isinstance(value, list):
        raise RequestError(where, f"{where}: Input should be a string or a list of content blocks")
    texts = []
    for j, block in enumerate(value):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise RequestError(f"{where}.{j}", f"{where}.{j}: each content block must be an object with a 'type'")
        kind = block["type"]
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise RequestError(f"{where}.{j}.text", f"{where}.{j}.text: a text block needs a string 'text'")
            texts.append(block["text"])
        elif history is not None and kind in ("tool_use", "tool_result", "thinking", "redacted_thinking"):
            _read_block(block, f"{where}.{j}", history, index)
    return "".join(texts)


def _read_block(block: dict[str, Any], where: str, history: _History, index: int) -> None:
    kind = block["type"]
    history.agentic = True
    if kind == "tool_use":
        for name in ("id", "name"):
            if not isinstance(block.get(name), str) or not block[name]:
                raise RequestError(f"{where}.{name}", f"{where}.{name}: Field required")
        arguments = block.get("input", {})
        if not isinstance(arguments, dict):
            raise RequestError(f"{where}.input", f"{where}.input: Input should be a valid dictionary")
        text = compact_json(arguments)
        history.calls.append(ToolCall(block["id"], block["name"], text))
    elif kind == "tool_result":
        call_id = block.get("tool_use_id")
        if not isinstance(call_id, str) or not call_id:
            raise RequestError(f"{where}.tool_use_id", f"{where}.tool_use_id: Field required")
        content = block.get("content", "")
        if content is None:
            content = ""
        if not isinstance(content, str):
            content = _blocks_text(content, f"{where}.content")
        name = next((call.name for call in reversed(history.calls) if call.id == call_id), None)
        history.results.append((index, ToolResult(call_id, name, content)))
    elif kind == "thinking":
        if not isinstance(block.get("thinking"), str):
            raise RequestError(f"{where}.thinking", f"{where}.thinking: Field required")
    elif not isinstance(block.get("data"), str):
        raise RequestError(f"{where}.data", f"{where}.data: Field required")


# -- tools, tool choice, thinking, output format --------------------------------------------------


def read_agent(body: dict[str, Any], history: _History, max_tokens: int, strict: bool) -> Agent | None:
    tools = _tools(body.get("tools"))
    choice, parallel = _tool_choice(body.get("tool_choice"))
    thinking, reasoning = _thinking(body.get("thinking"), body.get("output_config"))
    output = _output(body.get("output_config"), body.get("output_format"))
    if strict:
        _check_thinking_params(body, thinking, max_tokens, choice)
        _check_tool_pairs(history)
        _check_thinking_blocks(history, thinking)
    if not (tools or "tool_choice" in body or reasoning or output or history.calls or history.results):
        return None  # e.g. `thinking: {type: disabled}` alone: a plain request
    last_assistant = max((e.index for e in history.entries if e.role == "assistant"), default=-1)
    return Agent(
        tools=tools,
        choice=choice,
        parallel=parallel,
        reasoning=reasoning,
        output=output,
        calls=tuple(history.calls),
        results=tuple(result for _, result in history.results),
        pending=tuple(result for index, result in history.results if index > last_assistant),
    )


def _tools(value: Any) -> tuple[Tool, ...]:
    """Custom tools (`{name, description, input_schema}`); server tools (`{type: web_search_…}`
    and the like) are accepted, and never called by the mock."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RequestError("tools", "tools: Input should be a valid list")
    tools = []
    for i, tool in enumerate(value):
        where = f"tools.{i}"
        if not isinstance(tool, dict):
            raise RequestError(where, f"{where}: Input should be a valid dictionary")
        if tool.get("type") not in (None, "custom"):
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise RequestError(f"{where}.custom.name", f"{where}.custom.name: Field required")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise RequestError(f"{where}.custom.input_schema", f"{where}.custom.input_schema: Field required")
        description = tool.get("description")
        tools.append(Tool(name, schema, description if isinstance(description, str) else ""))
    return tuple(tools)


def _tool_choice(value: Any) -> tuple[ToolChoice, bool]:
    """`{type: auto|any|tool|none, name, disable_parallel_tool_use}`: the choice, and whether
    several calls may come in one turn."""
    if value is None:
        return ToolChoice(), True
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in _TOOL_CHOICES:
        raise RequestError(
            "tool_choice",
            f"tool_choice: Input tag {kind!r} found using 'type' does not match any of the expected tags: "
            "'auto', 'any', 'tool', 'none'",
        )
    name = value.get("name")
    if kind == "tool" and (not isinstance(name, str) or not name):
        raise RequestError("tool_choice.tool.name", "tool_choice.tool.name: Field required")
    parallel = not value.get("disable_parallel_tool_use", False)
    return ToolChoice(_TOOL_CHOICES[kind], name if kind == "tool" else None), parallel  # type: ignore[arg-type]


def _thinking(value: Any, output_config: Any) -> tuple[dict[str, Any] | None, Reasoning | None]:
    """`{type: enabled, budget_tokens}`, `{type: adaptive}` (its effort from `output_config.effort`)
    or `{type: disabled}`; `display: omitted` streams no thinking (it is still timed and counted)."""
    if value is None:
        return None, None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in ("enabled", "disabled", "adaptive"):
        raise RequestError(
            "thinking",
            f"thinking: Input tag {kind!r} found using 'type' does not match any of the expected tags: "
            "'enabled', 'disabled', 'adaptive'",
        )
    if kind == "disabled":
        return value, None
    visible = value.get("display") != "omitted"
    if kind == "adaptive":
        effort = output_config.get("effort") if isinstance(output_config, dict) else None
        return value, Reasoning(effort=_EFFORTS.get(effort) if isinstance(effort, str) else None, visible=visible)
    budget = value.get("budget_tokens")
    if budget is None:
        raise RequestError("thinking.enabled.budget_tokens", "thinking.enabled.budget_tokens: Field required")
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise RequestError(
            "thinking.enabled.budget_tokens", "thinking.enabled.budget_tokens: Input should be a valid integer"
        )
    return value, Reasoning(budget_tokens=budget, visible=visible)


def _output(output_config: Any, output_format: Any) -> OutputFormat | None:
    """`output_config.format` (or the older top-level `output_format`): `{type: json_schema, schema}`."""
    spec = output_config.get("format") if isinstance(output_config, dict) else None
    spec = spec if spec is not None else output_format
    if spec is None:
        return None
    if not isinstance(spec, dict) or spec.get("type") != "json_schema" or not isinstance(spec.get("schema"), dict):
        raise RequestError("output_config.format", "output_config.format: expected {type: json_schema, schema: {...}}")
    return OutputFormat("json_schema", spec["schema"])


# -- strict: the API's own checks -----------------------------------------------------------------
# Messages as api.anthropic.com words them, seen in its 400 answers quoted in public issue threads:
# anthropics/claude-code#13460 and #5060 (tool_result / tool_use pairing), BerriAI/litellm#9001 and
# router-for-me/CLIProxyAPI#413 (budget_tokens), MartialBE/one-hub#529 (temperature),
# quarkiverse/quarkus-langchain4j#1812 (top_k), mastra-ai/mastra#7507 (forced tool choice),
# deepset-ai/haystack-core-integrations#2146 (final assistant message without thinking),
# lbjlaq/Antigravity-Manager#498 (altered signature), tailcallhq/forgecode#1853 (thinking off).
# A first message from the assistant and consecutive turns of one role are accepted: the API
# merges consecutive turns and no longer requires a leading user turn
# (anthropics/anthropic-sdk-typescript#622), so the mock refuses neither.


def _check_thinking_params(body: dict[str, Any], thinking: dict[str, Any] | None, max_tokens: int, choice: Any) -> None:
    if thinking is None or thinking.get("type") == "disabled":
        return
    if thinking.get("type") == "enabled":
        budget = thinking["budget_tokens"]
        if budget < 1024:
            raise RequestError(
                "thinking.enabled.budget_tokens",
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
                check="anthropic.thinking-budget-too-small",
            )
        if budget >= max_tokens:
            raise RequestError(
                None,  # the API's message names no field first
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
                f"{_THINKING_DOCS}#max-tokens-and-context-window-size",
                check="anthropic.thinking-budget-not-below-max-tokens",
            )
    considerations = (
        f"Please consult our documentation at {_THINKING_DOCS}#important-considerations-when-using-extended-thinking"
    )
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        raise RequestError(
            None,
            f"`temperature` may only be set to 1 when thinking is enabled. {considerations}",
            check="anthropic.thinking-temperature",
        )
    if body.get("top_k") is not None:
        raise RequestError(
            None,
            f"`top_k` must be unset when thinking is enabled. {considerations}",
            check="anthropic.thinking-top-k",
        )
    if choice.forced:
        raise RequestError(
            None,
            "Thinking may not be enabled when tool_choice forces tool use.",
            check="anthropic.thinking-forced-tool-choice",
        )


def _turns(history: _History) -> list[list[_Entry]]:
    """Consecutive messages of one role, merged into one turn as the API merges them."""
    turns: list[list[_Entry]] = []
    for entry in history.entries:
        if turns and turns[-1][0].role == entry.role:
            turns[-1].append(entry)
        else:
            turns.append([entry])
    return turns


def _blocks_of(turn: list[_Entry], kind: str) -> list[tuple[int, int, dict[str, Any]]]:
    return [
        (entry.index, j, block)
        for entry in turn
        for j, block in enumerate(entry.blocks or ())
        if block.get("type") == kind
    ]


def _check_tool_pairs(history: _History) -> None:
    """Each `tool_use` answered by a `tool_result` in the next turn; each `tool_result` answering a
    `tool_use` of the turn before it."""
    if not history.agentic:
        return
    turns = _turns(history)
    for t, turn in enumerate(turns):
        if turn[0].role == "assistant":
            uses = _blocks_of(turn, "tool_use")
            if not uses or t + 1 == len(turns):
                continue
            answered = {block["tool_use_id"] for _, _, block in _blocks_of(turns[t + 1], "tool_result")}
            missing = [(i, block["id"]) for i, _, block in uses if block["id"] not in answered]
            if missing:
                where = f"messages.{missing[0][0]}"
                raise RequestError(
                    where,
                    f"{where}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(call_id for _, call_id in missing)}. Each `tool_use` block must have a "
                    "corresponding `tool_result` block in the next message.",
                    check="anthropic.tool-use-without-tool-result",
                )
            continue
        results = _blocks_of(turn, "tool_result")
        if not results:
            continue
        used = {block["id"] for _, _, block in _blocks_of(turns[t - 1], "tool_use")} if t else set()
        unexpected = [(i, j, block["tool_use_id"]) for i, j, block in results if block["tool_use_id"] not in used]
        if unexpected:
            i, j, _ = unexpected[0]
            where = f"messages.{i}.content.{j}"
            raise RequestError(
                where,
                f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{', '.join(call_id for _, _, call_id in unexpected)}. Each `tool_result` block must have a "
                "corresponding `tool_use` block in the previous message.",
                check="anthropic.tool-result-without-tool-use",
            )


def _check_thinking_blocks(history: _History, thinking: dict[str, Any] | None) -> None:
    """Thinking on: the assistant turn the history's tool results answer starts with its thinking,
    and every thinking block comes back as the mock signed it. Thinking off: a final (prefilled)
    assistant message holds no thinking."""
    if not history.agentic:
        return
    on = thinking is not None and thinking.get("type") != "disabled"
    assistants = [entry for entry in history.entries if entry.role == "assistant" and entry.blocks]
    if not on:
        last = history.entries[-1]
        if last.role == "assistant" and last.blocks:
            for j, block in enumerate(last.blocks):
                if block.get("type") in ("thinking", "redacted_thinking"):
                    where = f"messages.{last.index}.content.{j}"
                    raise RequestError(
                        where,
                        f"{where}: When thinking is disabled, an `assistant` message in the final position cannot "
                        "contain `thinking`. To use thinking blocks, enable `thinking` in your request.",
                        check="anthropic.thinking-disabled-final-thinking",
                    )
        return
    final = next((e for e in reversed(history.entries) if e.role == "assistant"), None)
    if final is not None and final.blocks and final.index != history.entries[-1].index:
        first = final.blocks[0].get("type")
        if any(b.get("type") == "tool_use" for b in final.blocks) and first not in ("thinking", "redacted_thinking"):
            where = f"messages.{final.index}.content.0.type"
            raise RequestError(
                where,
                f"{where}: Expected `thinking` or `redacted_thinking`, but found `{first}`. When `thinking` is "
                "enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost "
                "set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from "
                "previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation "
                f"at {_THINKING_DOCS}",
                check="anthropic.thinking-block-missing",
            )
    for entry in assistants:
        for j, block in enumerate(entry.blocks or ()):
            if block.get("type") != "thinking":
                continue
            where = f"messages.{entry.index}.content.{j}"
            signature = block.get("signature")
            if not isinstance(signature, str) or not signed(block["thinking"], signature):
                raise RequestError(
                    where,
                    f"{where}: Invalid `signature` in `thinking` block",
                    check="anthropic.thinking-signature-invalid",
                )
