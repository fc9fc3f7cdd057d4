"""OpenAI Responses: the agent side of a request, read into an `Agent`, and the API's request checks.

`openai_responses.OpenAIResponses.parse` reads the plain fields and hands this module the rest:

- `input` (`_input`): a string, or input items: `message` items (roles user, assistant, system,
  developer; text parts read, image, file and audio parts and refusals skipped), the history's
  `function_call` items (its calls, and assistant turns) and `function_call_output` items (its
  results, and tool turns; those after the last message are `pending`); `reasoning`, `item_reference`,
  `web_search_call` and `file_search_call` items sent back are accepted and skipped;
- `tools` (function tools `{type: function, name, description, parameters, strict}`; built-in tool
  types are echoed and otherwise ignored), `tool_choice` (`auto`, `none`, `required`,
  `{type: function, name}`, `{type: allowed_tools, mode}`), `parallel_tool_calls`, `reasoning`
  (`{effort, summary}`) and `text` (`format`: `json_schema`, `json_object`, `text`; `verbosity`)
  (`_agent_settings`): what the planner reads (`_Settings.agent`), what the response object echoes
  (`_Settings.echo`) and what the seed depends on (`_Settings.sampling`).

The checks, made as the API makes them unless the config says `strict: false` (each a 400
`RequestError` whose `check` the journal records; `openai_responses.OpenAIResponses.error` adds the
`code` the API gives by how the message starts). The wording, and where it came from:

- `openai-responses.function-call-output-without-call` (param `input`): "No tool call found for
  function call output with call_id call_x." Only without a `previous_response_id`, as the API
  pairs them. As API users quote it (e.g. github.com/james-6-23/codex2api issue 414, with
  `"param": "input"`).
- `openai-responses.function-call-without-output` (param `input`): "No tool output found for function
  call call_x." Same condition; as API users quote it (e.g. github.com/Azure/azure-sdk-for-python
  issue 46092, github.com/anomalyco/opencode issue 16717).
- `openai-responses.invalid-call-item`: a history item without its `call_id` or `name`:
  "Missing required parameter: 'input[0].call_id'." (or `.name`); `arguments` not a string:
  "Invalid type for 'input[0].arguments': expected a string, but got an object instead." Also only
  without a `previous_response_id`. The API's `missing_required_parameter` and `invalid_type`
  message forms.
- `openai-responses.tool-missing-name`: "Missing required parameter: 'tools[0].name'." The API's
  `missing_required_parameter` form.
- `openai-responses.tool-invalid-name`: "Invalid 'tools[0].name': string does not match pattern.
  Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'." (code `invalid_value`): the API's
  message, quoted in the comment at `_FUNCTION_NAME`.
- `openai-responses.tool-invalid-parameters`: "Invalid type for 'tools[0].parameters': expected an
  object, but got a string instead." The API's `invalid_type` form.
- `openai-responses.tool-choice-not-offered` (param `tool_choice`): "Tool choice 'x' not found in
  'tools' parameter." As the API's users report it.
- `openai-responses.invalid-reasoning-effort`: "Invalid value: 'x'. Supported values are: 'none',
  'minimal', 'low', 'medium', 'high', and 'xhigh'." The API's `invalid_value` form, listing the
  efforts the mock accepts (`_EFFORTS`).
- `openai-responses.invalid-reasoning-summary`: "Invalid value: 'x'. Supported values are: 'auto',
  'concise', and 'detailed'." The same form, listing `_SUMMARIES`.
- `openai-responses.text-format-missing-name` / `.text-format-missing-schema`: "Missing required
  parameter: 'text.format.name'." (and `'text.format.schema'`). The API's
  `missing_required_parameter` form.
- `openai-responses.json-object-without-json` (param `input`): "Response input messages must
  contain the word 'json' in some form to use 'text.format' of type 'json_object'." The API's
  message as the code's comment records it (no source recorded; the chat completions' counterpart,
  "'messages' must contain the word 'json' in some form, to use 'response_format' of type
  'json_object'.", is quoted by API users, e.g. github.com/ultimatejimmy/xray.koplugin issue 33);
  `instructions` do not count.

With `strict: false` these requests are read as well as they can be (a missing call id or name as
"", non-string arguments as their JSON, a function tool without a name echoed but not offered,
parameters that are not an object as none, an unknown effort or summary as none, a named tool
choice whatever the tools). The errors without a check id (`tools`, a tool, `tool_choice`,
`parallel_tool_calls`, `reasoning`, `text` or `text.format` of the wrong type, a named tool choice
without its name, an unknown `tool_choice` mode, `text.format.type` or `text.verbosity`, and the
malformed input items) are refused in either mode.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .._agent import NO_PARAMETERS, Agent, OutputFormat, Reasoning, Tool, ToolCall, ToolChoice, ToolResult
from .._errors import RequestError
from .._request import Message
from ._base import dumps, json_type

ROLES = frozenset({"user", "assistant", "system", "developer"})
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
_MEDIA_PARTS = frozenset({"input_image", "input_file", "input_audio", "refusal"})
# Input items that carry no text the mock answers from: accepted so agent loops can replay them.
_SKIPPED_ITEMS = frozenset({"reasoning", "item_reference", "web_search_call", "file_search_call"})

# Function names as the API allows them (its message: "Invalid 'tools[0].name': string does not match
# pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.", code invalid_value).
_FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
_SUMMARIES = ("auto", "concise", "detailed")
_CHOICES = ("none", "auto", "required")
_FORMATS = ("text", "json_object", "json_schema")


# -- the request's input -------------------------------------------------------------------------


class _History:
    """The input items: the messages (tool calls and results among them, as assistant and tool
    turns), the calls and results themselves, and the results the history ends with."""

    __slots__ = ("calls", "mentions_json", "messages", "pending", "results")

    def __init__(
        self,
        messages: tuple[Message, ...],
        calls: tuple[ToolCall, ...] = (),
        results: tuple[ToolResult, ...] = (),
        pending: tuple[ToolResult, ...] = (),
        mentions_json: bool = False,
    ) -> None:
        self.messages = messages
        self.calls = calls
        self.results = results
        self.pending = pending
        self.mentions_json = mentions_json


def _input(value: Any, check: bool) -> _History:
    """`input`: a string (one user message) or a list of input items. `check`: refuse, as the API
    does without a `previous_response_id`, a call without its output and an output without its call."""
    if isinstance(value, str):
        return _History((Message("user", value),), mentions_json="json" in value.lower())
    if not isinstance(value, list) or not value:
        raise RequestError("input", "'input' must be a string or a non-empty array of input items")
    messages: list[Message] = []
    calls: list[ToolCall] = []
    results: list[ToolResult] = []
    pending: list[ToolResult] = []
    mentions_json = False
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise RequestError(f"input[{i}]", f"input[{i}] must be an object, got {type(item).__name__}")
        kind = item.get("type", "message")
        if not isinstance(kind, str):
            raise RequestError(f"input[{i}].type", f"input[{i}].type must be a string, got {type(kind).__name__}")
        if kind == "function_call":
            call = ToolCall(_call_id(item, i, check), _item_string(item, i, "name", check), _arguments(item, i, check))
            calls.append(call)
            messages.append(Message("assistant", call.arguments))
            continue
        if kind == "function_call_output":
            call_id = _call_id(item, i, check)
            output = item.get("output")
            content = output if isinstance(output, str) else _text(output, f"input[{i}].output")
            name = next((known.name for known in reversed(calls) if known.id == call_id), None)
            result = ToolResult(call_id, name, content)
            results.append(result)
            pending.append(result)
            messages.append(Message("tool", content))
            continue
        if kind in _SKIPPED_ITEMS:
            continue
        if kind != "message":
            raise RequestError(f"input[{i}].type", f"input[{i}].type {kind!r} is not an input item the mock reads")
        role = item.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise RequestError(f"input[{i}].role", f"input[{i}].role must be one of {sorted(ROLES)}, got {role!r}")
        content = item.get("content")
        text = content if isinstance(content, str) else _text(content, f"input[{i}].content")
        messages.append(Message(role, text))
        mentions_json = mentions_json or "json" in text.lower()
        pending = []  # a message after the results: the history no longer ends with them
    if check:
        _check_pairs(calls, results)
    return _History(tuple(messages), tuple(calls), tuple(results), tuple(pending), mentions_json)


def _check_pairs(calls: list[ToolCall], results: list[ToolResult]) -> None:
    """Every output answers a call of the input, every call has its output, as the API requires.
    Its messages: "No tool call found for function call output with call_id call_x." and
    "No tool output found for function call call_x." (param `input`, as reported by its users)."""
    called = {call.id for call in calls}
    for result in results:
        if result.call_id not in called:
            raise RequestError(
                "input",
                f"No tool call found for function call output with call_id {result.call_id}.",
                check="openai-responses.function-call-output-without-call",
            )
    answered = {result.call_id for result in results}
    for call in calls:
        if call.id not in answered:
            raise RequestError(
                "input",
                f"No tool output found for function call {call.id}.",
                check="openai-responses.function-call-without-output",
            )


def _call_id(item: dict[str, Any], i: int, check: bool) -> str:
    return _item_string(item, i, "call_id", check)


def _item_string(item: dict[str, Any], i: int, name: str, check: bool) -> str:
    value = item.get(name)
    if isinstance(value, str) and value:
        return value
    if check:
        raise RequestError(
            f"input[{i}].{name}",
            f"Missing required parameter: 'input[{i}].{name}'.",
            check="openai-responses.invalid-call-item",
        )
    return ""


def _arguments(item: dict[str, Any], i: int, check: bool) -> str:
    value = item.get("arguments", "")
    if isinstance(value, str):
        return value
    if check:
        raise RequestError(
            f"input[{i}].arguments",
            f"Invalid type for 'input[{i}].arguments': expected a string, but got {json_type(value)} instead.",
            check="openai-responses.invalid-call-item",
        )
    return dumps(value).decode()


def _text(parts: Any, where: str) -> str:
    """The text of a list of content parts; images and files carry none the mock reads."""
    if not isinstance(parts, list):
        raise RequestError(where, f"{where} must be a string or an array of content parts")
    texts = []
    for j, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        kind = kind if isinstance(kind, str) else None  # a list or an object names no part type
        if kind in _TEXT_PARTS:
            if not isinstance(part.get("text"), str):
                raise RequestError(f"{where}[{j}].text", f"a {kind} part needs a string 'text'")
            texts.append(part["text"])
        elif kind not in _MEDIA_PARTS:
            raise RequestError(
                f"{where}[{j}]",
                f"{where}[{j}] must be a content part of type input_text, output_text, input_image or input_file",
            )
    return "".join(texts)


# -- tools, tool choice, reasoning, text format --------------------------------------------------


class _Settings:
    """The request's agent parameters: what the planner reads, what the response echoes, what the
    seed depends on."""

    __slots__ = ("choice", "echoed", "output", "parallel", "reasoning", "sampling", "summary", "tools")

    def __init__(self) -> None:
        self.tools: list[Tool] = []
        self.choice: ToolChoice | None = None
        self.parallel: bool | None = None
        self.reasoning: Reasoning | None = None
        self.summary: str | None = None
        self.output: OutputFormat | None = None
        self.echoed: dict[str, Any] = {}
        self.sampling: dict[str, Any] = {}

    def agent(self, history: _History) -> Agent | None:
        """The request's `Agent`, or None for a plain request (the plain path stays untouched)."""
        if not (
            self.tools
            or self.choice is not None
            or self.reasoning is not None
            or self.output is not None
            or history.calls
            or history.results
        ):
            return None
        return Agent(
            tools=tuple(self.tools),
            choice=self.choice or ToolChoice(),
            parallel=self.parallel is not False,
            reasoning=self.reasoning,
            output=self.output,
            calls=history.calls,
            results=history.results,
            pending=history.pending,
        )

    def echo(self) -> str | None:
        """The echoed fields that differ from a plain request's, as JSON text (hashable)."""
        return json.dumps(self.echoed, ensure_ascii=False) if self.echoed else None


def _agent_settings(body: dict[str, Any], strict: bool, history: _History) -> _Settings:
    settings = _Settings()
    _tools(body.get("tools"), strict, settings)
    _tool_choice(body.get("tool_choice"), strict, settings)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        if not isinstance(parallel, bool):
            raise RequestError(
                "parallel_tool_calls",
                f"Invalid type for 'parallel_tool_calls': expected a boolean, but got {json_type(parallel)} instead.",
            )
        settings.parallel = parallel
        settings.echoed["parallel_tool_calls"] = parallel
        if not parallel:
            settings.sampling["parallel_tool_calls"] = False
    _reasoning(body.get("reasoning"), strict, settings)
    _text_format(body.get("text"), strict, history, settings)
    return settings


def _tools(value: Any, strict: bool, settings: _Settings) -> None:
    """`tools`: function tools are offered to the model; built-in tools are echoed, not used."""
    if value is None:
        return
    if not isinstance(value, list):
        raise RequestError("tools", f"Invalid type for 'tools': expected an array, but got {json_type(value)} instead.")
    echoed: list[Any] = []
    for i, tool in enumerate(value):
        if not isinstance(tool, dict):
            raise RequestError(
                f"tools[{i}]", f"Invalid type for 'tools[{i}]': expected an object, but got {json_type(tool)} instead."
            )
        if tool.get("type") != "function":
            echoed.append(tool)
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            if strict:
                raise RequestError(
                    f"tools[{i}].name",
                    f"Missing required parameter: 'tools[{i}].name'.",
                    check="openai-responses.tool-missing-name",
                )
            echoed.append(tool)
            continue
        if strict and not _FUNCTION_NAME.fullmatch(name):
            raise RequestError(
                f"tools[{i}].name",
                f"Invalid 'tools[{i}].name': string does not match pattern. "
                "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                check="openai-responses.tool-invalid-name",
            )
        parameters = tool.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            if strict:
                raise RequestError(
                    f"tools[{i}].parameters",
                    f"Invalid type for 'tools[{i}].parameters': expected an object, "
                    f"but got {json_type(parameters)} instead.",
                    check="openai-responses.tool-invalid-parameters",
                )
            parameters = None
        description = tool.get("description") if isinstance(tool.get("description"), str) else None
        settings.tools.append(Tool(name, NO_PARAMETERS if parameters is None else parameters, description or ""))
        echoed.append(
            {
                "type": "function",
                "description": description,
                "name": name,
                "parameters": parameters,
                "strict": tool.get("strict", True),
            }
        )
    if echoed:
        settings.echoed["tools"] = echoed
    if settings.tools:
        settings.sampling["tools"] = [[tool.name, dict(tool.parameters), tool.description] for tool in settings.tools]


def _tool_choice(value: Any, strict: bool, settings: _Settings) -> None:
    """`tool_choice`: a mode, a function by name, or allowed tools with their mode."""
    if value is None:
        return
    if isinstance(value, str):
        if value not in _CHOICES:
            raise RequestError(
                "tool_choice", f"Invalid value: {value!r}. Supported values are: 'none', 'auto', and 'required'."
            )
        settings.choice = ToolChoice(value)  # type: ignore[arg-type]
    elif isinstance(value, dict):
        kind = value.get("type")
        if kind == "function":
            name = value.get("name")
            if not isinstance(name, str) or not name:
                raise RequestError("tool_choice.name", "Missing required parameter: 'tool_choice.name'.")
            # The API's message (as its users report it): "Tool choice 'x' not found in 'tools' parameter."
            if strict and not any(tool.name == name for tool in settings.tools):
                raise RequestError(
                    "tool_choice",
                    f"Tool choice '{name}' not found in 'tools' parameter.",
                    check="openai-responses.tool-choice-not-offered",
                )
            settings.choice = ToolChoice("tool", name)
        elif kind == "allowed_tools":
            settings.choice = ToolChoice("required" if value.get("mode") == "required" else "auto")
        else:
            settings.choice = ToolChoice("auto")  # a built-in tool: the mock's model calls functions only
    else:
        raise RequestError(
            "tool_choice", f"Invalid type for 'tool_choice': expected an object, but got {json_type(value)} instead."
        )
    settings.echoed["tool_choice"] = value
    settings.sampling["tool_choice"] = value


def _reasoning(value: Any, strict: bool, settings: _Settings) -> None:
    """`reasoning: {effort, summary}`: reasoning when an effort (other than none) or a summary is
    asked for; shown, as summary deltas, only with a summary."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise RequestError(
            "reasoning", f"Invalid type for 'reasoning': expected an object, but got {json_type(value)} instead."
        )
    effort = value.get("effort")
    summary = value.get("summary", value.get("generate_summary"))
    if effort is not None and effort not in _EFFORTS:
        if strict:
            raise RequestError(
                "reasoning.effort",
                f"Invalid value: {effort!r}. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', "
                "and 'xhigh'.",
                check="openai-responses.invalid-reasoning-effort",
            )
        effort = None
    if summary is not None and summary not in _SUMMARIES:
        if strict:
            raise RequestError(
                "reasoning.summary",
                f"Invalid value: {summary!r}. Supported values are: 'auto', 'concise', and 'detailed'.",
                check="openai-responses.invalid-reasoning-summary",
            )
        summary = None
    settings.echoed["reasoning"] = {"effort": effort, "summary": summary}
    if effort == "none" or (effort is None and summary is None):
        return
    settings.summary = summary
    settings.reasoning = Reasoning(effort={"xhigh": "high"}.get(effort, effort), visible=summary is not None)
    settings.sampling["reasoning"] = {"effort": effort, "summary": summary}


def _text_format(value: Any, strict: bool, history: _History, settings: _Settings) -> None:
    """`text: {format, verbosity}`: a JSON schema or any JSON object as the answer."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise RequestError("text", f"Invalid type for 'text': expected an object, but got {json_type(value)} instead.")
    verbosity = value.get("verbosity", "medium")
    if verbosity not in ("low", "medium", "high"):
        raise RequestError(
            "text.verbosity", f"Invalid value: {verbosity!r}. Supported values are: 'low', 'medium', and 'high'."
        )
    fmt = value.get("format", {"type": "text"})
    if not isinstance(fmt, dict):
        raise RequestError(
            "text.format", f"Invalid type for 'text.format': expected an object, but got {json_type(fmt)} instead."
        )
    kind = fmt.get("type")
    if kind not in _FORMATS:
        raise RequestError(
            "text.format.type",
            f"Invalid value: {kind!r}. Supported values are: 'text', 'json_object', and 'json_schema'.",
        )
    echoed: dict[str, Any] = {"type": kind}
    if kind == "json_schema":
        # The API's messages: "Missing required parameter: 'text.format.name'." (and '.schema').
        name, schema = fmt.get("name"), fmt.get("schema")
        if strict and (not isinstance(name, str) or not name):
            raise RequestError(
                "text.format.name",
                "Missing required parameter: 'text.format.name'.",
                check="openai-responses.text-format-missing-name",
            )
        if strict and not isinstance(schema, dict):
            raise RequestError(
                "text.format.schema",
                "Missing required parameter: 'text.format.schema'.",
                check="openai-responses.text-format-missing-schema",
            )
        schema = schema if isinstance(schema, dict) else None
        name = name if isinstance(name, str) else None
        settings.output = OutputFormat("json_schema", schema, name)
        echoed.update(description=fmt.get("description"), name=name, schema=schema, strict=fmt.get("strict", False))
    elif kind == "json_object":
        # The API's message when no input message says "json" (instructions do not count).
        if strict and not history.mentions_json:
            raise RequestError(
                "input",
                "Response input messages must contain the word 'json' in some form to use 'text.format' of type "
                "'json_object'.",
                check="openai-responses.json-object-without-json",
            )
        settings.output = OutputFormat("json_object")
    settings.echoed["text"] = {"format": echoed, "verbosity": verbosity}
    if settings.output is not None:
        settings.sampling["text_format"] = echoed
