"""The agent side of a Gemini request, and the checks the real API makes on it.

`gemini.py` parses the conversation and the sampling settings; what makes a request an agent's is
read here into an `Agent` (see `mockllm/_agent.py`):

- `tools: [{functionDeclarations: [...]}]`: each declaration a `Tool`; OpenAPI `parameters`
  (upper-case types, `nullable`, int64 counts as strings) are turned into JSON Schema by
  `_json_schema`, `parametersJsonSchema` is taken as it is; other tools (googleSearch,
  codeExecution, urlContext...) are accepted and ignored.
- `toolConfig.functionCallingConfig`: `AUTO`/`VALIDATED` auto, `ANY` required (restricted to
  `allowedFunctionNames`; one allowed name is that tool), `NONE` none.
- `generationConfig.thinkingConfig`: a `thinkingBudget` > 0 (or -1, dynamic), a `thinkingLevel`, or
  `includeThoughts` alone turns reasoning on, visible only with `includeThoughts`; a budget of 0
  turns it off.
- `generationConfig.responseMimeType: application/json` with `responseJsonSchema` or
  `responseSchema`: a JSON-schema output format; without a schema, a JSON object.
- History: model `functionCall` parts are the calls, `functionResponse` parts (in `user` or
  `function` contents) the results; the results after the last model turn are pending.

Fields are found by their JSON or their proto name (`field_of`): the API takes both and the
google-genai SDK sends some nested fields in snake case. `agent_hint` is the few lookups that let
a plain chat request skip all this.

The provider's checks, made when `Call.strict` (the config's `strict`, on by default), each a 400
`INVALID_ARGUMENT` `RequestError` with this `check` id and, where it was found, the real API's
words:

- `gemini.role`: a content whose role is not user or model (nor the legacy `function` of function
  responses). "Please use a valid role: user, model." whatever the role, as client bug reports
  quote it (songquanpeng/one-api#1385, router-for-me/CLIProxyAPI#17). Raised from
  `gemini._contents`, which reads the roles, by `_check_role`.
- `gemini.function-response-without-call`: a `functionResponse` whose name no call of the model
  contents just before it has. "Please ensure that function response turn comes immediately after
  a function call turn." (GoogleCloudPlatform/generative-ai#368, langchain-ai/langchain#27799).
- `gemini.function-response-count`: a call left unanswered or answered twice. "Please ensure that
  the number of function response parts is equal to the number of function call parts of the
  function call turn." (microsoft/vscode#299295, google-gemini/gemini-cli#4217).
- `gemini.invalid-function-name`: a declaration's name not `[A-Za-z_][A-Za-z0-9_.:-]{0,63}`.
  "* GenerateContentRequest.tools[i].function_declarations[j].name: Invalid function name. Must
  start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots
  (.), colons (:), or dashes (-), with a maximum length of 64." (google-gemini/gemini-cli#9535;
  the real API lists every bad name, the mock the first).
- `gemini.function-calling-config-without-declarations`: mode `ANY` or allowed names with no
  function declared. "Function calling config is set without function_declarations."
  (musistudio/claude-code-router#1207).
- `gemini.missing-thought-signature`: Gemini 3 models only, in the current turn, a model step whose
  first `functionCall` part came back without its `thoughtSignature`. "Function call is missing a
  thought_signature in functionCall parts. This is required for tools to work correctly, ..."
  (https://ai.google.dev/gemini-api/docs/thought-signatures).
- `gemini.allowed-function-name-undeclared`: an `allowedFunctionNames` entry that names no
  declaration. No capture of the real text was found: written in the API's field-violation style,
  "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names[k]: Function
  `name` is not declared in the request's function declarations."
- `gemini.response-schema-without-json-mime`: a response schema with a mime type other than
  `application/json` or `text/x.enum`. Not found either; written in the same style,
  "* GenerateContentRequest.generation_config.response_mime_type: response_mime_type must be set to
  application/json or text/x.enum when response_schema or response_json_schema is set."

Malformed fields (a mode not in the enum, a negative budget, a declaration without a name) are
refused whatever `strict` says, with the mock's own words and the field named.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .._agent import Agent, OutputFormat, Reasoning, Tool, ToolCall, ToolChoice, ToolResult
from .._errors import RequestError
from .._jsonbytes import compact_json
from .._request import Message

_AGENT_CONFIG_KEYS = (
    "thinkingConfig", "thinking_config", "responseMimeType", "response_mime_type", "responseSchema",
    "response_schema", "responseJsonSchema", "response_json_schema",
)  # fmt: skip


def agent_hint(body: dict[str, Any], messages: tuple[Message, ...]) -> bool:
    """Whether the request may be an agent's (tools, thinking, a response type, function calls or
    responses in its history): a few lookups, so a plain chat request skips the agent parser."""
    if "tools" in body or "toolConfig" in body or "tool_config" in body:
        return True
    config = body.get("generationConfig")
    if isinstance(config, dict) and any(key in config for key in _AGENT_CONFIG_KEYS):
        return True
    # A model turn of function calls only has no text; results are `tool` messages.
    return any(not message.content or message.role == "tool" for message in messages)


_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:\-]{0,63}")
_MODES = {"AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"}
_LEVELS = {"minimal", "low", "medium", "high"}
# The OpenAPI Schema fields Gemini knows that JSON Schema spells the same way.
_SCHEMA_KEYS = (
    "format", "description", "title", "enum", "required", "minItems", "maxItems", "minimum", "maximum",
    "minLength", "maxLength", "pattern", "minProperties", "maxProperties", "default",
)  # fmt: skip


_INT64_KEYS = frozenset({"minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"})


def field_of(value: dict[str, Any], name: str) -> Any:
    """A field by its JSON name, or by its proto name: the API takes both (`thinkingBudget`,
    `thinking_budget`), and the google-genai SDK sends some nested fields in snake case."""
    found = value.get(name)
    if found is None:
        found = value.get(_SNAKE.sub(r"_\1", name).lower())
    return found


_SNAKE = re.compile(r"(?<!^)([A-Z])")


def _json_schema(schema: Any) -> Any:
    """Gemini's OpenAPI subset (`type: OBJECT`, `nullable`, `propertyOrdering`) as JSON Schema."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if isinstance(kind, str) and kind.upper() != "TYPE_UNSPECIFIED":
        out["type"] = kind.lower()
        if schema.get("nullable") is True:
            out["type"] = [kind.lower(), "null"]
    for key in _SCHEMA_KEYS:
        if key in schema:
            value = schema[key]
            if key in _INT64_KEYS and isinstance(value, str) and value.isdigit():
                value = int(value)  # proto JSON writes int64 fields as strings: "minItems": "1"
            out[key] = value
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {name: _json_schema(sub) for name, sub in schema["properties"].items()}
    if "items" in schema:
        out["items"] = _json_schema(schema["items"])
    if isinstance(schema.get("anyOf"), list):
        out["anyOf"] = [_json_schema(sub) for sub in schema["anyOf"]]
    return out


def read_agent(body: dict[str, Any], model: str, strict: bool) -> Agent | None:
    """The request's tools, tool choice, thinking, response schema and tool history; None when it
    has none of them (the plain path)."""
    tools = _tools(body.get("tools"), strict)
    choice, tools = _choice(field_of(body, "toolConfig"), tools, strict)
    config = field_of(body, "generationConfig") or {}
    reasoning = _reasoning(field_of(config, "thinkingConfig"))
    output = _output(config, strict)
    calls, results, pending = _history(body["contents"], model, strict)
    if not (tools or field_of(body, "toolConfig") or reasoning or output or calls or results):
        return None
    return Agent(
        tools=tools,
        choice=choice,
        reasoning=reasoning,
        output=output,
        calls=calls,
        results=results,
        pending=pending,
        whole_calls=True,  # a functionCall comes whole, in one part of one event
    )


def _tools(value: Any, strict: bool) -> tuple[Tool, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RequestError("tools", "'tools' must be an array of Tool objects")
    tools: list[Tool] = []
    for i, tool in enumerate(value):
        if not isinstance(tool, dict):
            raise RequestError(f"tools[{i}]", f"tools[{i}] must be a Tool object")
        declarations = field_of(tool, "functionDeclarations")
        if declarations is None:
            continue  # googleSearch, codeExecution, urlContext...: server-side tools the mock ignores
        if not isinstance(declarations, list):
            raise RequestError(f"tools[{i}].functionDeclarations", "'functionDeclarations' must be an array")
        for j, decl in enumerate(declarations):
            where = f"tools[{i}].functionDeclarations[{j}]"
            if not isinstance(decl, dict) or not isinstance(decl.get("name"), str):
                raise RequestError(where, f"{where} must be a FunctionDeclaration with a 'name'")
            name = decl["name"]
            if strict and not _FUNCTION_NAME.fullmatch(name):
                # The real API's words (one line per bad name; the mock names the first).
                raise RequestError(
                    None,
                    f"* GenerateContentRequest.tools[{i}].function_declarations[{j}].name: Invalid function name. "
                    "Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), "
                    "dots (.), colons (:), or dashes (-), with a maximum length of 64.\n",
                    check="gemini.invalid-function-name",
                )
            schema = field_of(decl, "parametersJsonSchema")
            if schema is None and decl.get("parameters") is not None:
                schema = _json_schema(decl["parameters"])
            parameters = schema if isinstance(schema, dict) else {"type": "object", "properties": {}}
            tools.append(Tool(name, parameters, decl.get("description") or ""))
    return tuple(tools)


def _choice(value: Any, tools: tuple[Tool, ...], strict: bool) -> tuple[ToolChoice, tuple[Tool, ...]]:
    """`functionCallingConfig` as a tool choice, and the tools the model may call under it."""
    config = field_of(value, "functionCallingConfig") if isinstance(value, dict) else None
    if not isinstance(config, dict):
        return ToolChoice(), tools
    mode = config.get("mode") or "AUTO"
    if not isinstance(mode, str) or mode.upper() not in _MODES:
        raise RequestError(
            "toolConfig.functionCallingConfig.mode",
            f"toolConfig.functionCallingConfig.mode must be one of AUTO, ANY, NONE, VALIDATED, got {mode!r}",
        )
    mode = mode.upper()
    allowed = field_of(config, "allowedFunctionNames") or []
    if not isinstance(allowed, list) or not all(isinstance(name, str) for name in allowed):
        raise RequestError(
            "toolConfig.functionCallingConfig.allowedFunctionNames", "allowedFunctionNames must be an array of names"
        )
    if strict and not tools and (mode == "ANY" or allowed):
        # The real API's words (seen in https://github.com/musistudio/claude-code-router/pull/1207).
        raise RequestError(
            None,
            "Function calling config is set without function_declarations.",
            check="gemini.function-calling-config-without-declarations",
        )
    declared = {tool.name for tool in tools}
    for k, name in enumerate(allowed):
        if strict and name not in declared:
            # Reconstructed in the API's field-violation style; no capture of the real text found.
            raise RequestError(
                None,
                f"* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names[{k}]: "
                f"Function `{name}` is not declared in the request's function declarations.\n",
                check="gemini.allowed-function-name-undeclared",
            )
    if mode == "NONE":
        return ToolChoice("none"), tools
    if mode != "ANY":
        return ToolChoice("auto"), tools
    if allowed:
        tools = tuple(tool for tool in tools if tool.name in allowed) or tools
    if len(allowed) == 1:
        return ToolChoice("tool", allowed[0]), tools
    return ToolChoice("required"), tools


def _reasoning(value: Any) -> Reasoning | None:
    """`thinkingConfig`: a budget > 0 (or -1, dynamic), a level, or `includeThoughts` alone turns
    thinking on; a budget of 0 turns it off."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RequestError("generationConfig.thinkingConfig", "'thinkingConfig' must be an object")
    budget = field_of(value, "thinkingBudget")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < -1):
        raise RequestError(
            "generationConfig.thinkingConfig.thinkingBudget",
            f"thinkingBudget must be an integer >= -1, got {budget!r}",
        )
    level = field_of(value, "thinkingLevel")
    effort = level.lower() if isinstance(level, str) and level.lower() in _LEVELS else None
    include = field_of(value, "includeThoughts") is True
    if budget == 0 and effort is None:
        return None
    if not ((budget is not None and budget != 0) or effort is not None or include):
        return None
    return Reasoning(effort=effort, budget_tokens=budget if budget and budget > 0 else None, visible=include)


def _output(config: dict[str, Any], strict: bool) -> OutputFormat | None:
    mime = field_of(config, "responseMimeType")
    schema = field_of(config, "responseJsonSchema")
    if schema is None and field_of(config, "responseSchema") is not None:
        schema = _json_schema(field_of(config, "responseSchema"))
    if schema is not None and strict and mime not in ("application/json", "text/x.enum"):
        # Reconstructed in the API's field-violation style: a schema needs a JSON (or enum) mime type.
        raise RequestError(
            None,
            "* GenerateContentRequest.generation_config.response_mime_type: response_mime_type must be set to "
            "application/json or text/x.enum when response_schema or response_json_schema is set.\n",
            check="gemini.response-schema-without-json-mime",
        )
    if mime != "application/json":
        return None
    if isinstance(schema, dict):
        return OutputFormat("json_schema", schema)
    return OutputFormat("json_object")


def _history(
    contents: list[dict[str, Any]], model: str, strict: bool
) -> tuple[tuple[ToolCall, ...], tuple[ToolResult, ...], tuple[ToolResult, ...]]:
    """The calls (model `functionCall` parts) and results (`functionResponse` parts) in the history,
    and the results after the last model turn; the real API's checks on their order."""
    calls: list[ToolCall] = []
    results: list[ToolResult] = []
    pending: list[ToolResult] = []
    before: list[str] = []  # the calls of the run of model contents just before this content
    turn_start = 0  # where the current turn begins: the last user content of the user's own
    for i, item in enumerate(contents):
        parts = item.get("parts") or []
        if item.get("role") == "model":
            if i and contents[i - 1].get("role") != "model":
                before = []
            for part in parts:
                call = field_of(part, "functionCall") if isinstance(part, dict) else None
                if isinstance(call, dict):
                    name = call.get("name") or ""
                    calls.append(ToolCall(str(call.get("id") or ""), name, compact_json(call.get("args") or {})))
                    before.append(name)
            pending = []
            continue
        responses = [
            field_of(p, "functionResponse")
            for p in parts
            if isinstance(p, dict) and isinstance(field_of(p, "functionResponse"), dict)
        ]
        if not responses:
            turn_start = i
        for response in responses:
            name = response.get("name")
            if strict and name not in before:
                # The real API's words for a response with no call before it.
                raise RequestError(
                    None,
                    "Please ensure that function response turn comes immediately after a function call turn.",
                    check="gemini.function-response-without-call",
                )
            result = ToolResult(str(response.get("id") or ""), name, compact_json(response.get("response")))
            results.append(result)
            pending.append(result)
        if strict and responses and len(responses) != len(before):
            # The real API's words when a call goes unanswered, or is answered twice (as quoted in
            # https://github.com/microsoft/vscode/issues/299295).
            raise RequestError(
                None,
                "Please ensure that the number of function response parts is equal to the number of function "
                "call parts of the function call turn.",
                check="gemini.function-response-count",
            )
        before = []
    if strict and model.startswith("gemini-3"):
        _check_signatures(contents, turn_start)
    return tuple(calls), tuple(results), tuple(pending)


def _check_signatures(contents: list[dict[str, Any]], start: int) -> None:
    """Gemini 3 refuses a current turn whose model step sent its first functionCall back without
    the thoughtSignature it came with (2.5 models do not check). The real API's words:
    https://ai.google.dev/gemini-api/docs/thought-signatures; position is the content's, from 1."""
    for i in range(start, len(contents)):
        if contents[i].get("role") != "model":
            continue
        for part in contents[i].get("parts") or []:
            call = field_of(part, "functionCall") if isinstance(part, dict) else None
            if not isinstance(call, dict):
                continue
            if not field_of(part, "thoughtSignature"):
                raise RequestError(
                    None,
                    "Function call is missing a thought_signature in functionCall parts. This is required for tools "
                    "to work correctly, and missing thought_signature may lead to degraded model performance. "
                    f"Additional data, function call `default_api:{call.get('name')}` , position {i + 1}. Please refer "
                    "to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
                    check="gemini.missing-thought-signature",
                )
            break  # only a step's first call carries the signature


def check_role(role: Any, roles: Mapping[str, str]) -> None:
    """`gemini.role`: the real API's words whatever the role, as client bug reports and fixes quote
    them: contents are user or model turns; the legacy `function` role of function responses is
    still accepted."""
    if isinstance(role, str) and role not in roles:
        raise RequestError(None, "Please use a valid role: user, model.", check="gemini.role")
