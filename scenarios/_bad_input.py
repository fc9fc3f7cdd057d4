"""Bad input derived from a profile: every way the declared request fields of a call can be wrong.

contracts.md (common to all five): "Bad input gets a 4xx with a JSON body that names the problem;
nothing is stored for it; never a 5xx." A hand-written list of bad requests reaches only what its
author thought of; this derives them from what the profile declares of each call (`request:`, a
field's kind and whether it is required), so a team's own profile gets the same probing:

- each required field missing; each field of the wrong JSON type (a number for a string);
- each field empty: a message (`text`) empty is judged by `validation.empty-message`, whose level
  the profile sets (a MUST only where its contract says a message is not empty); a UUID empty or
  malformed by the status a malformed id gets (`malformed_id_status`, any 4xx when unset);
- for a JSON body, the body not JSON at all, and a JSON body that is not an object.

Over-long input is not here: only a contract that states a limit implies one (`validation-long-message`).
Every variant that keeps a message carries the run's marker, so an LLM call made for it shows in the
journal (`validation.no-side-effect`), and a message stored for it shows in the history. Pure: a
call and its rendered request in, variants out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts import Call, Operation, RequestField

MALFORMED_UUID = "not-a-uuid"
_ABSENT = object()


@dataclass(frozen=True)
class BadInput:
    """One bad request: which call of the operation it replaces, how, and what judges its refusal."""

    label: str  # what is wrong, for the report: "`message` missing"
    call: int  # the index of the call in its operation
    field: str | None  # the field it is about (None: the whole body)
    value: Any = _ABSENT  # the field's value (`_ABSENT`: left out)
    raw_body: bytes | None = None  # a body sent as these bytes instead (not JSON, or not an object)
    status_check: str = "validation.status"  # `validation.empty-message` for an empty message
    status: str = "4xx"  # the status expected: `4xx`, or a template naming a run setting

    @property
    def missing(self) -> bool:
        return self.value is _ABSENT and self.raw_body is None

    def apply(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The request's JSON body or query with this field changed (left out when missing)."""
        out = dict(fields)
        if self.field is not None:
            out.pop(self.field, None)
            if self.value is not _ABSENT:
                out[self.field] = self.value
        return out


def bad_inputs(operation: Operation, text: str) -> list[BadInput]:
    """Every bad variant of the operation's calls that declare their request fields; `text` is the
    message a variant sends where it keeps one (it carries the run's marker)."""
    out: list[BadInput] = []
    for index, call in enumerate(operation.calls):
        for declared in call.request.values():
            out.extend(_field_variants(index, declared, call))
        if call.request and isinstance(call.json, dict):
            out.extend(_body_variants(index, call, text))
    return out


def _field_variants(index: int, declared: RequestField, call: Call) -> list[BadInput]:
    name, rule = declared.name, declared.rule
    out = []
    if declared.required:
        out.append(BadInput(f"`{name}` missing", index, name))
    if isinstance(call.json, dict):  # a query parameter is always a string: no wrong type there
        out.append(BadInput(f"`{name}` a number, not a string", index, name, 42))
    if rule == "text":
        out.append(BadInput(f"`{name}` empty", index, name, "", status_check="validation.empty-message"))
    elif rule == "uuid":
        status = "{malformed_id_status?}"
        out.append(BadInput(f"`{name}` empty, not a UUID", index, name, "", status=status))
        out.append(BadInput(f"`{name}` {MALFORMED_UUID!r}, not a UUID", index, name, MALFORMED_UUID, status=status))
    return out


def _body_variants(index: int, call: Call, text: str) -> list[BadInput]:
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    # The first declared text field opens the cut-off body, so a lenient parser that reads it anyway
    # sends the marker to the LLM, where the journal sees it.
    field = next((f.name for f in call.request.values() if f.rule == "text"), None)
    opening = f'{{"{field}": "{quoted}", ' if field else "{"
    return [
        BadInput("the body not JSON (cut off)", index, None, raw_body=opening.encode()),
        BadInput("the body a JSON array, not an object", index, None, raw_body=f'["{quoted}"]'.encode()),
    ]
