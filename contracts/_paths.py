"""Dotted paths into JSON documents: how profiles name the fields of an answer or an event.

`json_path` and `json_values` read a call's JSON answer (captures, `answer:` rules), failing with
KeyError; `field_value` reads an event's payload on the per-event path, where absent is None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def json_path(document: Any, path: str) -> Any:
    """The value at a dotted path (`metadata.model`, `history.0.role`); KeyError if absent."""
    if path in ("", "."):
        return document
    current = document
    for part in path.split("."):
        if isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        elif isinstance(current, Mapping) and part in current:
            current = current[part]
        else:
            raise KeyError(path)
    return current


def json_values(document: Any, path: str) -> list[tuple[str, Any]]:
    """Every (concrete path, value) a path reaches, `*` standing for each item of a list
    (`history.*.role` -> `history.0.role`, `history.1.role` ...); KeyError names the first one absent."""
    found: list[tuple[str, Any]] = [("", document)]
    for part in path.split(".") if path not in ("", ".") else ():
        step: list[tuple[str, Any]] = []
        for where, current in found:
            if part == "*" and isinstance(current, list):
                step.extend((f"{where}{i}.", item) for i, item in enumerate(current))
                continue
            try:
                step.append((f"{where}{part}.", json_path(current, part)))
            except KeyError:
                raise KeyError(f"{where}{part}") from None
        found = step
    return [(where.rstrip(".") or ".", value) for where, value in found]


def field_value(payload: Any, path: str) -> Any:
    """The value at a dotted path (`delta.text`, `choices.0.delta.content`), None when absent."""
    if "." not in path:
        return payload.get(path) if isinstance(payload, dict) else None
    current = payload
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current
