"""The registered dialects, in registration order: the one list of them.

`mockllm.dialects.register` adds to it and `mockllm.dialects.DIALECTS` is this list. It lives in a
module that imports nothing of the mock's, so that the modules the dialects themselves import can
look a dialect up by name without an import circle: the replay loader reads a capture through its
dialect's `text_of`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, TypeVar, overload


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(Sequence[T]):
    """Items with unique names, in the order they were added; read as a sequence, looked up by name."""

    __slots__ = ("_by_name",)

    def __init__(self) -> None:
        self._by_name: dict[str, T] = {}

    def add(self, item: T) -> T:
        """Add `item`; adding it again is harmless, another item under a name taken is a ValueError."""
        known = self._by_name.get(item.name)
        if known is not None and known is not item:
            raise ValueError(f"a dialect named {item.name!r} is registered already ({known!r})")
        self._by_name[item.name] = item
        return item

    def remove(self, name: str) -> T:
        """Take the item of this name out (KeyError when there is none); returns it."""
        return self._by_name.pop(name)

    def named(self, name: str) -> T | None:
        return self._by_name.get(name)

    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def __iter__(self) -> Iterator[T]:
        return iter(tuple(self._by_name.values()))  # a snapshot: registering while iterating is safe

    def __contains__(self, item: object) -> bool:
        return any(known is item for known in self._by_name.values())

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[T, ...]: ...

    def __getitem__(self, index: int | slice) -> T | tuple[T, ...]:
        return tuple(self._by_name.values())[index]

    def __repr__(self) -> str:
        return f"Registry({list(self._by_name)})"


DIALECTS: Registry[Any] = Registry()
