"""The served OpenAPI schema, made truthful: Litestar's generated one, completed from the contracts.

Litestar documents what a handler's signature says (its 2xx status, its parameters and body types,
a generic 400) and nothing else. A fuzzer (schemathesis, `nox -s fuzz`) judges the server by this
document, so everything the server can answer is added here, from where it is known:

- the contract profile (`contracts.load_profile`) of each served adapter: its auth kind (the bearer
  security scheme, and the `access_token` query key where the profile takes one), its stream calls
  (`text/event-stream`, with the event schema built from the profile's event kinds and field rules),
  its request field rules (`uuid` -> `format: uuid`, `text` -> 1 to `message_max_chars` characters,
  required or not), its answer rules (`iso8601` -> `format: date-time`, ...) and its captures, which
  become OpenAPI links (start -> stream with `sessionId`, create -> message/stream with the id) so a
  stateful fuzzer reaches the routes that need an id from an earlier call;
- each handler's `opt`: `refusals` (the statuses it raises itself: 404, 403, 409, 410, 502, 503) and
  `rate_limited` (429, documented when the profile's limit is configured);
- the server itself: 400 for any request, 413 for a request with a body, 431 and 503 from the HTTP
  edge (`_edge.py`), 401 for any call of a profile with auth; every error body is `Error`;
- the handler's body type: `additionalProperties: false` where its struct refuses unknown fields.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import Any, get_args

import msgspec
from litestar import Litestar, Request
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.plugins import JsonRenderPlugin

from contracts import Call, Profile, StreamSpec, load_profile

from ._settings import Settings

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every refusal: the status again, what is wrong, and (for a 400) the fields at fault.",
    "required": ["status_code", "detail"],
    "properties": {
        "status_code": {"type": "integer"},
        "detail": {"type": "string"},
        "extra": {
            "anyOf": [
                {"type": "array", "items": {"type": "object", "additionalProperties": True}},
                {"type": "object", "additionalProperties": True},
            ]
        },
    },
}
REFUSALS: dict[int, str] = {
    400: "Bad request: malformed JSON (or nested too deeply), a missing or malformed field, an unknown field",
    401: "Missing, malformed, forged or expired token",
    403: "The user's plan does not allow this model",
    404: "No such id (or another user's)",
    409: "Conflict: no user message awaits an answer (conversation-events); a session id another kind of"
    " conversation has (sessions)",
    410: "The stream session expired or was already streamed",
    413: "Request body over `max_body_bytes`",
    429: "Rate limit: retry after `Retry-After` seconds",
    431: "Request head over `max_header_bytes`, or more than `max_headers` header fields",
    502: "The LLM failed",
    503: "Past `limit_concurrency` (retry after `Retry-After` seconds), or the LLM failed",
}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
# A contract field rule (contracts.FIELD_RULES, REQUEST_RULES) as JSON Schema.
RULE_SCHEMAS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "text": {"type": "string", "minLength": 1},
    "word": {"type": "string", "pattern": r"^\S+$"},
    "integer": {"type": "integer"},
    "counter": {"type": "integer", "minimum": 0},
    "iso8601": {"type": "string", "format": "date-time"},
    "uuid": {"type": "string", "format": "uuid"},
    "object": {"type": "object"},
    "list": {"type": "array"},
    "joined-text": {"type": "string"},
    "present": {},
}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "HS256, `sub` = the user"},
    "access_token": {
        "type": "apiKey",
        "in": "query",
        "name": "access_token",
        "description": "the bearer token as a query parameter, for a browser's EventSource",
    },
}
_TYPED_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
_VARIABLE = re.compile(r"^\{(\w+)\??\}$")


def shape(path: str) -> str:
    """A path with its parameters unnamed, so `/a/{conversation}` (a profile's) matches `/a/{id:str}`."""
    return _TYPED_PARAM.sub("{}", path)


def field_schema(rule: str) -> dict[str, Any]:
    return dict(RULE_SCHEMAS.get(rule, {}))


def nested(fields: Mapping[str, str]) -> dict[str, Any]:
    """`{"a": rule, "b.c": rule, "d.*.e": rule}` as an object schema (`*`: the items of a list);
    every named field required."""
    schema: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    for dotted, rule in fields.items():
        node = schema
        *parents, leaf = dotted.split(".")
        for part in parents:
            if part == "*":
                node["type"] = "array"
                node = node.setdefault("items", {"type": "object"})
                continue
            node.setdefault("properties", {})
            node.setdefault("required", [])
            if part not in node["required"]:
                node["required"].append(part)
            node = node["properties"].setdefault(part, {"type": "object"})
        node.setdefault("properties", {})
        node.setdefault("required", [])
        node["properties"][leaf] = {**field_schema(rule), **node["properties"].get(leaf, {})}
        if leaf not in node["required"]:
            node["required"].append(leaf)
    return schema


def event_schema(stream: StreamSpec) -> dict[str, Any]:
    """One SSE event of the profile (OpenAPI 3.2's `itemSchema` form: `data` holds the JSON event)."""
    variants: list[dict[str, Any]] = []
    if stream.kind_field:
        kinds = dict.fromkeys(
            [*stream.fields, *stream.done, *stream.error, *stream.heartbeat_kinds, *stream.text_kinds]
        )
        for kind in sorted(kinds):
            variant = nested(stream.fields.get(kind, {}))
            variant["properties"][stream.kind_field] = {"const": kind}
            variant["required"].insert(0, stream.kind_field)
            variants.append({"title": kind, **variant})
    else:
        for rule in stream.kinds:
            if rule.has:
                variant = nested({rule.has: "present", **stream.fields.get(rule.kind, {})})
                variants.append({"title": rule.kind, **variant})
    data: dict[str, Any] = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"oneOf": variants},
    }
    literals = [rule.data for rule in stream.kinds if rule.data] + ([stream.sentinel] if stream.sentinel else [])
    if literals:
        data = {"anyOf": [data, {"enum": sorted(set(literals))}]}
    return {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": data,
            "event": {"type": "string"},
            "id": {"type": "string"},
            "retry": {"type": "integer"},
        },
    }


def _forbids_unknown_fields(handler: HTTPRouteHandler) -> bool:
    field = handler.parsed_data_field
    if field is None:
        return False
    candidates = [field.annotation, *get_args(field.annotation)]
    return any(
        isinstance(kind, type) and issubclass(kind, msgspec.Struct) and kind.__struct_config__.forbid_unknown_fields  # type: ignore[attr-defined]
        for kind in candidates
    )


class SchemaCompleter:
    """Completes Litestar's schema dict for `app`, serving `settings.profiles`."""

    def __init__(self, app: Litestar, settings: Settings) -> None:
        self._app = app
        self._settings = settings
        self._profiles: dict[str, Profile] = {name: load_profile(name) for name in settings.profiles}

    def complete(self, generated: Mapping[str, Any]) -> dict[str, Any]:
        schema = copy.deepcopy(dict(generated))
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        security_schemes = components.setdefault("securitySchemes", {})
        operations = {
            (method, shape(path)): op for path, item in schema.get("paths", {}).items() for method, op in item.items()
        }
        for path, method, handler in self._handlers():
            op = operations.get((method, shape(path)))
            if op is None:
                continue
            profile = self._profiles.get(handler.opt.get("profile", ""))
            self._refusals(op, handler, profile)
            if _forbids_unknown_fields(handler):
                self._body_schema(schema, op)["additionalProperties"] = False
            if "requestBody" in op and handler.parsed_data_field is not None:
                op["requestBody"]["required"] = not handler.parsed_data_field.is_optional
            if profile is not None:
                op["tags"] = [profile.name]
                self._security(op, profile, security_schemes)
        for name, profile in self._profiles.items():
            components["schemas"][f"{name}-event"] = event_schema(profile.stream)
            for call in self._calls(profile):
                op = operations.get((call.method.lower(), shape(call.path)))
                if op is not None:
                    self._from_call(schema, op, call, name)
            self._links(profile, operations)
        return schema

    # -- from the app -----------------------------------------------------------------------------

    def _handlers(self) -> Iterator[tuple[str, str, HTTPRouteHandler]]:
        for route in self._app.routes:
            for handler in getattr(route, "route_handlers", ()):
                if isinstance(handler, HTTPRouteHandler) and handler.include_in_schema:
                    for method in handler.http_methods:
                        yield route.path, method.lower(), handler

    def _refusals(self, op: dict[str, Any], handler: HTTPRouteHandler, profile: Profile | None) -> None:
        statuses = {400, 431, 503, *handler.opt.get("refusals", ())}
        if "requestBody" in op:
            statuses.add(413)
        if profile is not None and profile.auth != "none":
            statuses.add(401)
        if handler.opt.get("rate_limited") and profile is not None and self._settings.rate_limit(profile.name):
            statuses.add(429)
        responses = op.setdefault("responses", {})
        for status in sorted(statuses):
            answer: dict[str, Any] = {
                "description": REFUSALS[status],
                "content": {"application/json": {"schema": ERROR_REF}},
            }
            if status in (429, 503):
                answer["headers"] = RETRY_AFTER if status == 429 else {}
            responses[str(status)] = answer

    @staticmethod
    def _security(op: dict[str, Any], profile: Profile, schemes: dict[str, Any]) -> None:
        if profile.auth == "none":
            return
        names = ["bearer", "access_token"] if profile.auth == "bearer-or-query" else ["bearer"]
        for name in names:
            schemes[name] = SECURITY_SCHEMES[name]
        op["security"] = [{name: []} for name in names]

    # -- from the contract profiles -------------------------------------------------------------

    @staticmethod
    def _calls(profile: Profile) -> Iterator[Call]:
        seen: set[int] = set()
        for operation in profile.operations.values():
            for call in operation.calls:
                if id(call) not in seen:
                    seen.add(id(call))
                    yield call

    def _from_call(self, schema: dict[str, Any], op: dict[str, Any], call: Call, profile: str) -> None:
        """A profile call's request rules, answer rules and (for a stream) the event stream."""
        self._path_formats(op, call, profile)
        self._examples(schema, op, call)
        for name, rule in call.request.items():
            wanted = self._request_field(rule.rule)
            parameter = next((p for p in op.get("parameters", []) if p["in"] == "query" and p["name"] == name), None)
            if parameter is not None:
                parameter["schema"] = {**self._without_null(parameter.get("schema", {})), **wanted}
                parameter["required"] = rule.required
            elif "requestBody" in op:
                body = self._body_schema(schema, op)
                properties = body.setdefault("properties", {})
                if name in properties:
                    properties[name] = (
                        self._with_null(properties[name], wanted)
                        if not rule.required
                        else {**self._without_null(properties[name]), **wanted}
                    )
        success = next((code for code in op.get("responses", {}) if code.startswith("2")), None)
        if success is None:
            return
        answer = op["responses"][success]
        if call.stream:
            answer["content"] = {
                "text/event-stream": {
                    # OpenAPI 3.1 (as schemathesis reads it): an event stream's `schema` is one event's.
                    "schema": {"$ref": f"#/components/schemas/{profile}-event"},
                }
            }
        elif call.answer:
            rules = {key: value for key, value in call.answer.items() if value in RULE_SCHEMAS}
            listed = {key[2:]: value for key, value in rules.items() if key.startswith("*.")}
            content = answer.setdefault("content", {}).setdefault("application/json", {})
            if listed:
                content["schema"] = {"type": "array", "items": nested(listed)}
            elif rules:
                content["schema"] = nested(rules)

    def _path_formats(self, op: dict[str, Any], call: Call, profile: str) -> None:
        """A path `{variable}` takes the form of the answer field it is captured from (`id: uuid`)."""
        rules = {
            variable: source.answer.get(field)
            for source in self._calls(self._profiles[profile])
            for variable, field in source.capture.items()
        }
        for index, segment in enumerate(call.path.split("/")):
            match = _VARIABLE.match(segment)
            rule = rules.get(match.group(1)) if match else None
            if rule in RULE_SCHEMAS:
                name = self._path_name(call, index)
                for parameter in op.get("parameters", []):
                    if parameter["in"] == "path" and parameter["name"] == name:
                        parameter["schema"] = {**parameter.get("schema", {}), **field_schema(rule)}

    def _examples(self, schema: dict[str, Any], op: dict[str, Any], call: Call) -> None:
        """Fields the profile fills from configuration (`{model}`, `{project}`) get its values as
        examples, so that generated calls reach past the plan and project checks."""
        known = {"model": [self._settings.default_model], "project": list(self._settings.projects)}
        sent = {**call.query, **(call.json if isinstance(call.json, Mapping) else {})}
        for name, value in sent.items():
            match = _VARIABLE.match(value) if isinstance(value, str) else None
            examples = known.get(match.group(1)) if match else None
            if not examples:
                continue
            parameter = next((p for p in op.get("parameters", []) if p["in"] == "query" and p["name"] == name), None)
            if parameter is not None:
                parameter["examples"] = {f"configured-{i}": {"value": v} for i, v in enumerate(examples)}
            elif "requestBody" in op and name in self._body_schema(schema, op).get("properties", {}):
                self._body_schema(schema, op)["properties"][name]["examples"] = examples

    def _request_field(self, rule: str) -> dict[str, Any]:
        wanted = field_schema(rule)
        if rule == "text":
            wanted["maxLength"] = self._settings.message_max_chars
        return wanted

    @staticmethod
    def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
        """A parameter's schema without Litestar's `oneOf [X, null]` for an optional value."""
        for key in ("oneOf", "anyOf"):
            options = [s for s in schema.get(key, []) if s.get("type") != "null"]
            if len(options) == 1:
                return {k: v for k, v in schema.items() if k != key} | options[0]
        return schema

    @staticmethod
    def _with_null(schema: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
        """An optional body field's schema with the profile's rule on its value, and null still allowed
        where the body type takes it (`X | None = None`: a JSON null is the field left out)."""
        for key in ("oneOf", "anyOf"):
            options = schema.get(key, [])
            if any(s.get("type") == "null" for s in options):
                merged = [s if s.get("type") == "null" else {**s, **wanted} for s in options]
                return {**{k: v for k, v in schema.items() if k != key}, key: merged}
        return {**schema, **wanted}

    @staticmethod
    def _body_schema(schema: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
        """The object schema of the operation's JSON body (its component, when it is a reference)."""
        body = op["requestBody"]["content"]["application/json"]["schema"]
        for key in ("oneOf", "anyOf"):
            options = [s for s in body.get(key, []) if s.get("type") != "null"]
            if options:
                body = options[0]
        ref = body.get("$ref")
        if ref:
            body = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
        return body

    def _links(self, profile: Profile, operations: Mapping[tuple[str, str], dict[str, Any]]) -> None:
        """A call that captures `{var}` from its answer links to every call of the profile that sends it."""
        calls = list(self._calls(profile))
        for source in calls:
            op = operations.get((source.method.lower(), shape(source.path)))
            if op is None or not source.capture:
                continue
            success = next((code for code in op.get("responses", {}) if code.startswith("2")), None)
            if success is None:
                continue
            links = op["responses"][success].setdefault("links", {})
            for variable, answer_path in source.capture.items():
                pointer = "$response.body#/" + answer_path.replace(".", "/")
                for target in calls:
                    target_op = operations.get((target.method.lower(), shape(target.path)))
                    if target_op is None or "operationId" not in target_op:
                        continue
                    link = self._link(variable, pointer, target)
                    if link:
                        links[f"{variable}-{target_op['operationId']}"] = {
                            "operationId": target_op["operationId"],
                            **link,
                        }
            if not links:
                del op["responses"][success]["links"]

    def _link(self, variable: str, pointer: str, target: Call) -> dict[str, Any]:
        parameters: dict[str, str] = {}
        body: dict[str, str] = {}
        segments = target.path.split("/")
        for index, segment in enumerate(segments):
            if (match := _VARIABLE.match(segment)) and match.group(1) == variable:
                parameters[f"path.{self._path_name(target, index)}"] = pointer
        for name, value in target.query.items():
            if isinstance(value, str) and (match := _VARIABLE.match(value)) and match.group(1) == variable:
                parameters[f"query.{name}"] = pointer
        if isinstance(target.json, Mapping):
            for name, value in target.json.items():
                if isinstance(value, str) and (match := _VARIABLE.match(value)) and match.group(1) == variable:
                    body[name] = pointer
        link: dict[str, Any] = {}
        if parameters:
            link["parameters"] = parameters
        if body:
            link["requestBody"] = body
        return link

    def _path_name(self, target: Call, index: int) -> str:
        """The server's name of the path parameter at segment `index` of the profile's path."""
        for route in self._app.routes:
            if shape(route.path) == shape(target.path):
                found = _TYPED_PARAM.match(route.path.split("/")[index])
                if found:
                    return found.group(1)
        raise LookupError(f"no route for {target.method} {target.path}")


class CompletedJsonSchema(JsonRenderPlugin):
    """`/schema/openapi.json`: Litestar's schema completed by `SchemaCompleter`, built once."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self._settings = settings
        self._rendered: bytes | None = None

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        if self._rendered is None:
            completed = SchemaCompleter(request.app, self._settings).complete(openapi_schema)
            self._rendered = super().render(request, completed)
        return self._rendered
