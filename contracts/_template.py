"""`{name}` templates in profile and scenario files, rendered against a step's variables.

A string that is exactly one placeholder keeps the variable's type (a number stays a number);
`{name?}` renders a missing variable as null. A mapping entry or query parameter whose value
renders to null is dropped, so one template serves a first turn (no conversation id yet) and a
later one, and a scenario can leave a field out of a request by setting its variable to null.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\??)\}")


class TemplateError(ValueError):
    """A template names a variable the step does not have."""


def render(value: Any, variables: Mapping[str, Any]) -> Any:
    """`value` with every placeholder replaced; mappings drop entries that rendered to null."""
    if isinstance(value, str):
        return _render_str(value, variables)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            rendered = render(item, variables)
            if rendered is not None:
                out[key] = rendered
        return out
    if isinstance(value, list):
        return [render(item, variables) for item in value]
    return value


def _lookup(name: str, optional: str, variables: Mapping[str, Any]) -> Any:
    if name in variables:
        return variables[name]
    if optional:
        return None
    known = ", ".join(sorted(variables)) or "none"
    raise TemplateError(f"unknown variable {{{name}}} (known here: {known})")


def _render_str(text: str, variables: Mapping[str, Any]) -> Any:
    whole = _PLACEHOLDER.fullmatch(text)
    if whole:
        return _lookup(whole.group(1), whole.group(2), variables)

    def substitute(match: re.Match[str]) -> str:
        found = _lookup(match.group(1), match.group(2), variables)
        return "" if found is None else str(found)

    return _PLACEHOLDER.sub(substitute, text)


def names_in(value: Any) -> set[str]:
    """Every variable a template mentions (checked when a file is loaded)."""
    if isinstance(value, str):
        return {m.group(1) for m in _PLACEHOLDER.finditer(value)}
    if isinstance(value, Mapping):
        return set().union(*(names_in(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(names_in(v) for v in value)) if value else set()
    return set()
