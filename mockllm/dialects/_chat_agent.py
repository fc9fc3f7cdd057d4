"""The agent side of an OpenAI chat completions request, and the checks api.openai.com makes of it.

`agent_of` reads `tools`, `tool_choice`, `parallel_tool_calls`, `reasoning_effort`, a JSON
`response_format` and the history's tool calls / tool messages into an `Agent` (None when the
request has none of them: the plain path); `message_text` reads a message's content (the plain
path's `_messages` uses it too); `check_choices` is the `n` limit. `openai_chat` encodes the answer.

The checks (on unless the config says `strict: false`; then each is let through), each a 400 in
OpenAI's error shape (`{"error": {"message", "type": "invalid_request_error", "param", "code":
null}}`) with its `check` id in the journal, and what the API answers:

- `openai-chat.tool-message-without-call`: a tool message with no assistant `tool_calls` before it.
  "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with
  'tool_calls'." (param `messages.[i].role`; the spelling and the typo are the API's, as quoted in
  smarter-sh/smarter#264 and miurla/morphic#136).
- `openai-chat.tool-call-id-unknown`: a tool message answering no call of the assistant message
  before it. "Invalid parameter: 'tool_call_id' of 'X' not found in 'tool_calls' of previous
  message." (the API's, as clients quote it).
- `openai-chat.tool-call-id-missing`: a tool message without `tool_call_id`. "Missing required
  parameter: 'messages.[i].tool_call_id'." (the API's missing-parameter wording).
- `openai-chat.tool-calls-without-results`: an assistant message's `tool_calls` not each answered
  by a tool message before the next message of another role. "An assistant message with
  'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following
  tool_call_ids did not have response messages: X" (param `messages.[i].role`, as quoted in
  router-for-me/CLIProxyAPI#2798).
- `openai-chat.tool-call-invalid`: an assistant message's `tool_calls` not an array of objects, or
  a call without `id` or `function`. "Invalid type for 'K': expected an array, but got a string
  instead." / "Missing required parameter: 'K.[j].id'." (the API's type / missing wordings).
- `openai-chat.tools-invalid`: `tools` not a non-empty array of tool objects of type `function` or
  `custom`. "Invalid type for 'tools': expected an array, ..." / "Invalid 'tools': empty array.
  Expected an array with minimum length 1, but got an empty array instead." / "Invalid value: 'x'.
  Supported values are: 'function' and 'custom'."
- `openai-chat.tool-function-missing`: a function tool without its `function` object. "Missing
  required parameter: 'tools[i].function'."
- `openai-chat.tool-name-missing`: a function tool without a string `name`. "Missing required
  parameter: 'tools[i].function.name'."
- `openai-chat.tool-name-invalid`: a name not matching `^[a-zA-Z0-9_-]{1,64}$`. "Invalid
  'tools[0].function.name': string does not match pattern. Expected a string that matches the
  pattern '^[a-zA-Z0-9_-]+$'." (the API's) / "... string too long. Expected a string with maximum
  length 64, but got a string with length N instead."
- `openai-chat.tool-parameters-invalid`: `parameters` not an object. "Invalid type for
  'tools[i].function.parameters': expected an object, but got ... instead."
- `openai-chat.schema-invalid`: a function's `parameters` or a response schema no value can satisfy
  (`_schema_instance.check_schema`). "Invalid schema for function 'X': <why>" / "Invalid schema for
  response_format 'X': <why>" (the API's prefix; the reason is the mock's).
- `openai-chat.tool-choice-invalid`: a `tool_choice` that is none of auto, none, required, a named
  function (or `allowed_tools`). "Invalid value: 'x'. Supported values are: 'none', 'auto', and
  'required'." / "Missing required parameter: 'tool_choice.function.name'."
- `openai-chat.tool-choice-without-tools`: `tool_choice` without `tools`. "Invalid value for
  'tool_choice': 'tool_choice' is only allowed when 'tools' are specified." (the API's).
- `openai-chat.tool-choice-unknown-function`: `tool_choice` naming a function `tools` does not
  offer. "Invalid value for 'tool_choice': function 'X' not found in 'tools'." (as SGLang's
  OpenAI-compatible router words it, mirroring the API).
- `openai-chat.parallel-tool-calls-without-tools`: `parallel_tool_calls` without `tools`, or not a
  boolean. "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when
  'tools' are specified." (worded as the tool_choice one).
- `openai-chat.reasoning-effort-invalid`: a `reasoning_effort` none of the efforts. "Invalid value:
  'x'. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', and 'xhigh'."
- `openai-chat.response-format-invalid`: a `response_format` that is not an object or of no known
  type. "Invalid value: 'x'. Supported values are: 'text', 'json_object', and 'json_schema'." /
  "Missing required parameter: 'response_format.type'."
- `openai-chat.json-object-without-json-word`: `json_object` with no "json" in the messages.
  "'messages' must contain the word 'json' in some form, to use 'response_format' of type
  'json_object'." (the API's, as clients quote it).
- `openai-chat.json-schema-missing`: `json_schema` without its object, its `name`, or with a schema
  that is not an object. "Missing required parameter: 'response_format.json_schema'." / "...
  'response_format.json_schema.name'."
- `openai-chat.n-above-one`: `n` above 1. Not the provider's rule (it answers n choices): the mock's
  own limit, "the mock answers one choice per request; 'n' must be 1, got N"; with `strict: false`
  it answers the one choice. An `n` that is not a positive integer is refused with no check id.

Messages in the API's generic shapes ("Invalid type for 'K': expected ..., but got ... instead.",
"Missing required parameter: 'K'.", "Invalid value: 'x'. Supported values are: ...") follow how the
API words other fields; the ones marked "the API's" are quoted by clients and their issue trackers
(openai/openai-python and langchain-ai issues among them). `_CHECKS` indexes the ids.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .._agent import NO_PARAMETERS, Agent, OutputFormat, Reasoning, Tool, ToolCall, ToolChoice, ToolResult
from .._errors import RequestError
from .._request import Message
from .._schema_instance import SchemaError, check_schema
from ._base import json_type

# The checks by id, as the module docstring words them at length.
_CHECKS = {
    "openai-chat.tool-message-without-call": "a tool message with no assistant tool_calls before it",
    "openai-chat.tool-call-id-unknown": "a tool message answering no call of the assistant message before it",
    "openai-chat.tool-call-id-missing": "a tool message without a tool_call_id",
    "openai-chat.tool-calls-without-results": "an assistant message's tool_calls not each answered by a tool message",
    "openai-chat.tool-call-invalid": "an assistant message's tool call without an id, type or function",
    "openai-chat.tools-invalid": "tools not an array of tool objects",
    "openai-chat.tool-function-missing": "a function tool without its function",
    "openai-chat.tool-name-missing": "a function tool without a name",
    "openai-chat.tool-name-invalid": "a function name not matching ^[a-zA-Z0-9_-]{1,64}$",
    "openai-chat.tool-parameters-invalid": "a function's parameters not a JSON Schema object",
    "openai-chat.tool-choice-invalid": "a tool_choice that is none of auto, none, required, a named function",
    "openai-chat.tool-choice-without-tools": "tool_choice without tools",
    "openai-chat.tool-choice-unknown-function": "tool_choice naming a function tools does not offer",
    "openai-chat.parallel-tool-calls-without-tools": "parallel_tool_calls without tools, or not a boolean",
    "openai-chat.reasoning-effort-invalid": "a reasoning_effort that is none of the efforts",
    "openai-chat.response-format-invalid": "a response_format of no known type",
    "openai-chat.json-object-without-json-word": "response_format json_object with no 'json' in the messages",
    "openai-chat.json-schema-missing": "response_format json_schema without json_schema or its name, or a bad schema",
    "openai-chat.schema-invalid": "a function's parameters or a response schema no value can satisfy",
    "openai-chat.n-above-one": "n > 1 (the mock's own limit, not the provider's: it answers one choice)",
}  # fmt: skip

_AGENT_FIELDS = frozenset({"tools", "tool_choice", "parallel_tool_calls", "reasoning_effort", "response_format"})
_NAME = re.compile(r"[a-zA-Z0-9_-]+")
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


def message_text(value: Any, i: int, role: str) -> str:
    """A message's content as text: the string, or its text parts joined (other parts skipped)."""
    if isinstance(value, str):
        return value
    if value is None and role in ("assistant", "tool", "function"):
        return ""  # an assistant turn that only called tools
    if isinstance(value, list):
        texts = []
        for j, part in enumerate(value):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise RequestError(
                    f"messages[{i}].content[{j}]",
                    "each content part must be an object with a 'type'",
                )
            if part["type"] in ("text", "input_text"):
                if not isinstance(part.get("text"), str):
                    raise RequestError(f"messages[{i}].content[{j}].text", "a text part needs a string 'text'")
                texts.append(part["text"])
        return "".join(texts)
    raise RequestError(f"messages[{i}].content", f"messages[{i}].content must be a string or an array of parts")


def check_choices(n: Any, strict: bool) -> None:
    """`n`: the mock answers one choice; an `n` above 1 is answered with one when not `strict`."""
    if n is not None and n != 1:
        counted = isinstance(n, int) and not isinstance(n, bool) and n > 1
        if not counted or strict:
            # Not the provider's rule (it answers n choices): the mock's own limit. With
            # `strict: false` an n above 1 is answered with the one choice.
            raise RequestError(
                "n",
                f"the mock answers one choice per request; 'n' must be 1, got {n!r}"
                + (" (with the config's strict: false it answers with one choice)" if counted else ""),
                check="openai-chat.n-above-one" if counted else None,
            )


def _refuse(strict: bool, check: str, param: str | None, message: str) -> None:
    """A 400 as the provider answers it, when the request is checked; else nothing."""
    if strict:
        raise RequestError(param, message, check=check)


def agent_of(body: dict[str, Any], messages: tuple[Message, ...], strict: bool) -> Agent | None:
    """The request's tools, tool choice, reasoning, output format and tool history; None when it
    has none of them (the plain path)."""
    if _AGENT_FIELDS.isdisjoint(body) and not any(
        item["role"] == "tool" or "tool_calls" in item for item in body["messages"]
    ):
        return None  # the plain path, at the cost of one look per message
    tools, has_tools = _tools(body.get("tools"), strict)
    raw_choice = body.get("tool_choice")
    choice = _tool_choice(raw_choice, tools, has_tools, strict)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        if not isinstance(parallel, bool):
            _refuse(
                strict,
                "openai-chat.parallel-tool-calls-without-tools",
                "parallel_tool_calls",
                f"Invalid type for 'parallel_tool_calls': expected a boolean, but got {json_type(parallel)} instead.",
            )
            parallel = bool(parallel)
        elif not has_tools:
            _refuse(
                strict,
                "openai-chat.parallel-tool-calls-without-tools",
                "parallel_tool_calls",
                "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' "
                "are specified.",
            )
    reasoning = _reasoning(body.get("reasoning_effort"), strict)
    output = _response_format(body.get("response_format"), messages, strict)
    calls, results, pending = _history(body.get("messages"), strict)
    if not (has_tools or raw_choice is not None or parallel is not None or reasoning or output or calls or results):
        return None
    return Agent(
        tools=tools,
        choice=choice,
        parallel=True if parallel is None else parallel,
        reasoning=reasoning,
        output=output,
        calls=calls,
        results=results,
        pending=pending,
    )


def _tools(value: Any, strict: bool) -> tuple[tuple[Tool, ...], bool]:
    """The function tools offered, and whether `tools` offers any tool at all (custom tools too)."""
    if value is None:
        return (), False
    if not isinstance(value, list):
        _refuse(
            strict,
            "openai-chat.tools-invalid",
            "tools",
            f"Invalid type for 'tools': expected an array, but got {json_type(value)} instead.",
        )
        return (), False
    if not value:
        _refuse(
            strict,
            "openai-chat.tools-invalid",
            "tools",
            "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        )
    tools: list[Tool] = []
    for i, item in enumerate(value):
        key = f"tools[{i}]"
        if not isinstance(item, dict):
            _refuse(
                strict,
                "openai-chat.tools-invalid",
                key,
                f"Invalid type for '{key}': expected an object, but got {json_type(item)} instead.",
            )
            continue
        kind = item.get("type")
        if kind == "custom":
            continue  # a free-form tool: accepted, never called by the mock
        if kind != "function":
            _refuse(
                strict,
                "openai-chat.tools-invalid",
                f"{key}.type",
                f"Invalid value: {kind!r}. Supported values are: 'function' and 'custom'."
                if kind is not None
                else f"Missing required parameter: '{key}.type'.",
            )
            if kind is not None:
                continue
        function = item.get("function")
        if not isinstance(function, dict):
            _refuse(
                strict,
                "openai-chat.tool-function-missing",
                f"{key}.function",
                f"Missing required parameter: '{key}.function'."
                if function is None
                else f"Invalid type for '{key}.function': expected an object, but got {json_type(function)} instead.",
            )
            continue
        name = function.get("name")
        if not isinstance(name, str):
            _refuse(
                strict,
                "openai-chat.tool-name-missing",
                f"{key}.function.name",
                f"Missing required parameter: '{key}.function.name'."
                if name is None
                else f"Invalid type for '{key}.function.name': expected a string, but got {json_type(name)} instead.",
            )
            continue
        if len(name) > 64:
            _refuse(
                strict,
                "openai-chat.tool-name-invalid",
                f"{key}.function.name",
                f"Invalid '{key}.function.name': string too long. Expected a string with maximum length 64, "
                f"but got a string with length {len(name)} instead.",
            )
        elif not _NAME.fullmatch(name):
            _refuse(
                strict,
                "openai-chat.tool-name-invalid",
                f"{key}.function.name",
                f"Invalid '{key}.function.name': string does not match pattern. Expected a string that "
                "matches the pattern '^[a-zA-Z0-9_-]+$'.",
            )
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            _refuse(
                strict,
                "openai-chat.tool-parameters-invalid",
                f"{key}.function.parameters",
                f"Invalid type for '{key}.function.parameters': expected an object, but got "
                f"{json_type(parameters)} instead.",
            )
            parameters = None
        if parameters is not None and not _schema_ok(strict, parameters, f"function '{name}'"):
            parameters = None
        description = function.get("description")
        tools.append(
            Tool(
                name,
                NO_PARAMETERS if parameters is None else parameters,
                description if isinstance(description, str) else "",
            )
        )
    return tuple(tools), bool(value)


def _tool_choice(value: Any, tools: tuple[Tool, ...], has_tools: bool, strict: bool) -> ToolChoice:
    if value is None:
        return ToolChoice()
    if not has_tools:
        _refuse(
            strict,
            "openai-chat.tool-choice-without-tools",
            "tool_choice",
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
        )
    if isinstance(value, str):
        if value in ("auto", "none", "required"):
            return ToolChoice(value)  # type: ignore[arg-type]
        _refuse(
            strict,
            "openai-chat.tool-choice-invalid",
            "tool_choice",
            f"Invalid value: {value!r}. Supported values are: 'none', 'auto', and 'required'.",
        )
        return ToolChoice()
    if isinstance(value, dict) and value.get("type") == "allowed_tools":
        mode = (value.get("allowed_tools") or {}).get("mode") if isinstance(value.get("allowed_tools"), dict) else None
        return ToolChoice("required" if mode == "required" else "auto")
    function = value.get("function") if isinstance(value, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(value, dict) or value.get("type") != "function" or not isinstance(name, str):
        param = (
            "tool_choice.function.name"
            if isinstance(value, dict) and value.get("type") == "function"
            else "tool_choice"
        )
        _refuse(
            strict,
            "openai-chat.tool-choice-invalid",
            param,
            f"Missing required parameter: '{param}'."
            if param != "tool_choice"
            else "Invalid value for 'tool_choice': expected 'none', 'auto', 'required', or an object "
            '{"type": "function", "function": {"name": ...}}.',
        )
        return ToolChoice("required")
    if has_tools and all(tool.name != name for tool in tools):
        # As SGLang's OpenAI-compatible router words it, mirroring the API.
        _refuse(
            strict,
            "openai-chat.tool-choice-unknown-function",
            "tool_choice",
            f"Invalid value for 'tool_choice': function '{name}' not found in 'tools'.",
        )
    return ToolChoice("tool", name)


def _schema_ok(strict: bool, schema: Mapping[str, Any], what: str) -> bool:
    """Whether the mock can make values valid against `schema`; if not, a 400 as OpenAI refuses an
    invalid schema ("Invalid schema for function 'X': ..."), or False without the checks (the
    caller then drops the schema)."""
    try:
        check_schema(schema, "schema")
    except SchemaError as err:
        _refuse(strict, "openai-chat.schema-invalid", None, f"Invalid schema for {what}: {err}")
        return False
    return True


def _reasoning(value: Any, strict: bool) -> Reasoning | None:
    if value is None or value == "none":
        return None
    if value not in _EFFORTS:
        _refuse(
            strict,
            "openai-chat.reasoning-effort-invalid",
            "reasoning_effort",
            f"Invalid value: {value!r}. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', and 'xhigh'.",
        )
        value = "medium"
    return Reasoning(effort="high" if value == "xhigh" else value, visible=True)


def _response_format(value: Any, messages: tuple[Message, ...], strict: bool) -> OutputFormat | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        _refuse(
            strict,
            "openai-chat.response-format-invalid",
            "response_format",
            f"Invalid type for 'response_format': expected an object, but got {json_type(value)} instead.",
        )
        return None
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        if not any("json" in message.content.lower() for message in messages):
            _refuse(
                strict,
                "openai-chat.json-object-without-json-word",
                "messages",
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
            )
        return OutputFormat("json_object")
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict):
            _refuse(
                strict,
                "openai-chat.json-schema-missing",
                "response_format.json_schema",
                "Missing required parameter: 'response_format.json_schema'."
                if spec is None
                else "Invalid type for 'response_format.json_schema': expected an object, but got "
                f"{json_type(spec)} instead.",
            )
            return OutputFormat("json_schema")
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            _refuse(
                strict,
                "openai-chat.json-schema-missing",
                "response_format.json_schema.name",
                "Missing required parameter: 'response_format.json_schema.name'.",
            )
            name = None
        schema = spec.get("schema")
        if schema is not None and not isinstance(schema, dict):
            _refuse(
                strict,
                "openai-chat.json-schema-missing",
                "response_format.json_schema.schema",
                "Invalid type for 'response_format.json_schema.schema': expected an object, but got "
                f"{json_type(schema)} instead.",
            )
            schema = None
        if schema is not None and not _schema_ok(strict, schema, f"response_format '{name}'"):
            schema = None
        return OutputFormat("json_schema", schema, name)
    _refuse(
        strict,
        "openai-chat.response-format-invalid",
        "response_format.type",
        f"Invalid value: {kind!r}. Supported values are: 'text', 'json_object', and 'json_schema'."
        if kind is not None
        else "Missing required parameter: 'response_format.type'.",
    )
    return None


def _history(value: Any, strict: bool) -> tuple[tuple[ToolCall, ...], tuple[ToolResult, ...], tuple[ToolResult, ...]]:
    """The tool calls of the assistant messages, the tool messages' results, and the results that
    end the history; checked as the API checks them: each tool message answers a call of the
    assistant message before it, and each call of an assistant message is answered before the next
    message of another role."""
    calls: list[ToolCall] = []
    results: list[ToolResult] = []
    trailing: list[ToolResult] = []
    open_calls: dict[str, str] | None = None  # the latest assistant tool_calls (id -> name) still in reach
    unanswered: list[str] = []
    asked_at = 0
    for i, item in enumerate(value):  # `_messages` has checked it is a list of objects with a role
        role = item["role"]
        if role == "tool":
            call_id = item.get("tool_call_id")
            if not isinstance(call_id, str):
                _refuse(
                    strict,
                    "openai-chat.tool-call-id-missing",
                    f"messages.[{i}].tool_call_id",
                    f"Missing required parameter: 'messages.[{i}].tool_call_id'.",
                )
                call_id = ""
            if open_calls is None:
                _refuse(
                    strict,
                    "openai-chat.tool-message-without-call",
                    f"messages.[{i}].role",
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    "with 'tool_calls'.",
                )
            elif call_id not in open_calls:
                _refuse(
                    strict,
                    "openai-chat.tool-call-id-unknown",
                    f"messages.[{i}].tool_call_id",
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of previous message.",
                )
            if call_id in unanswered:
                unanswered.remove(call_id)
            result = ToolResult(call_id, (open_calls or {}).get(call_id), message_text(item.get("content"), i, role))
            results.append(result)
            trailing.append(result)
            continue
        if unanswered:
            _refuse_unanswered(strict, asked_at, unanswered)
        trailing = []
        open_calls, unanswered = None, []
        if role == "assistant" and item.get("tool_calls") is not None:
            made = _assistant_calls(item["tool_calls"], i, strict)
            if made:
                calls += made
                open_calls = {call.id: call.name for call in made}
                unanswered = [call.id for call in made]
                asked_at = i
    if unanswered:
        _refuse_unanswered(strict, asked_at, unanswered)
    return tuple(calls), tuple(results), tuple(trailing)


def _refuse_unanswered(strict: bool, at: int, ids: list[str]) -> None:
    _refuse(
        strict,
        "openai-chat.tool-calls-without-results",
        f"messages.[{at}].role",
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(ids)}",
    )


def _assistant_calls(value: Any, i: int, strict: bool) -> list[ToolCall]:
    key = f"messages.[{i}].tool_calls"
    if not isinstance(value, list):
        _refuse(
            strict,
            "openai-chat.tool-call-invalid",
            key,
            f"Invalid type for '{key}': expected an array, but got {json_type(value)} instead.",
        )
        return []
    out = []
    for j, call in enumerate(value):
        if not isinstance(call, dict):
            _refuse(
                strict,
                "openai-chat.tool-call-invalid",
                f"{key}.[{j}]",
                f"Invalid type for '{key}.[{j}]': expected an object, but got {json_type(call)} instead.",
            )
            continue
        function = call.get("function")
        call_id = call.get("id")
        for field_name, ok in (("id", isinstance(call_id, str)), ("function", isinstance(function, dict))):
            if not ok:
                _refuse(
                    strict,
                    "openai-chat.tool-call-invalid",
                    f"{key}.[{j}].{field_name}",
                    f"Missing required parameter: '{key}.[{j}].{field_name}'.",
                )
        if not isinstance(call_id, str) or not isinstance(function, dict):
            continue
        name = function.get("name")
        arguments = function.get("arguments")
        out.append(
            ToolCall(call_id, name if isinstance(name, str) else "", arguments if isinstance(arguments, str) else "")
        )
    return out
