"""What a contract's adapter is: its route handlers, built over the shared chat core."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from litestar.types import ControllerRouterHandler

from .._chat import ChatCore


@dataclass(frozen=True, slots=True)
class ContractAdapter:
    """One contract profile served: `name` is the contract's (as `contracts` registers it)."""

    name: str
    summary: str
    handlers: Callable[[ChatCore], Sequence[ControllerRouterHandler]]
