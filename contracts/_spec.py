"""Reading profile and scenario YAML with errors that name the file and the field.

`Spec` wraps one mapping with the dotted path that led to it, so every complaint reads like
`profiles/mine.yaml: stream.grammar: expected a string, got a list`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
_MISSING: Any = object()


class SpecError(ValueError):
    """A profile or scenario file is wrong; the message names the file and the field."""

    def __init__(self, source: str, path: str, message: str) -> None:
        self.source, self.path = source, path
        where = f"{source}: {path}" if path else source
        super().__init__(f"{where}: {message}")


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SpecError(str(path), "", f"cannot read: {err.strerror or err}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpecError(str(path), "", f"not valid YAML: {err}") from None


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", int: "a number", float: "a number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


class Spec:
    """One mapping of a spec file, with the path that led to it."""

    def __init__(self, data: Any, source: str, path: str = "") -> None:
        if not isinstance(data, dict):
            raise SpecError(source, path, f"expected a mapping, got {_type_name(data)}")
        self.data, self.source, self.path = data, source, path

    def error(self, key: str, message: str) -> SpecError:
        return SpecError(self.source, self._at(key), message)

    def _at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def only(self, *allowed: str) -> None:
        """Refuse keys outside `allowed`: a typo must not be silently ignored."""
        for key in self.data:
            if key not in allowed:
                raise self.error(str(key), f"unknown field (allowed: {', '.join(allowed)})")

    def get(self, key: str, kind: type[T] | tuple[type, ...], default: Any = _MISSING) -> Any:
        if key not in self.data or self.data[key] is None:
            if default is _MISSING:
                raise self.error(key, "required field is missing")
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            expected = _type_name(kind()) if isinstance(kind, type) else " or ".join(_type_name(k()) for k in kind)
            raise self.error(key, f"expected {expected}, got {_type_name(value)}")
        return value

    def sub(self, key: str, default: Any = _MISSING) -> Spec:
        return Spec(self.get(key, dict, default), self.source, self._at(key))

    def items(self, key: str) -> Iterator[tuple[str, Spec]]:
        """The entries of a mapping of mappings."""
        for name, value in self.get(key, dict, {}).items():
            yield str(name), Spec(value, self.source, f"{self._at(key)}.{name}")

    def strings(self, key: str, default: Any = _MISSING) -> tuple[str, ...]:
        value = self.get(key, (list, str), default)
        if isinstance(value, str):
            return (value,)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(f"{key}[{i}]", f"expected a string, got {_type_name(item)}")
        return tuple(value)


def find_spec_file(name_or_path: str, *folders: Path, what: str) -> Path:
    """A built-in file by name (`sessions` in one of `folders`), or a file by path; SpecError if neither."""
    if not Path(name_or_path).suffix:
        for folder in folders:
            if (folder / f"{name_or_path}.yaml").is_file():
                return folder / f"{name_or_path}.yaml"
    if Path(name_or_path).is_file():
        return Path(name_or_path)
    known = ", ".join(sorted({p.stem for folder in folders for p in folder.glob("*.yaml")}))
    raise SpecError(name_or_path, "", f"no such {what} file, and not a built-in {what} ({known})")
