"""The contract adapters: one module per contract profile, each a thin layer over the chat core.

Which contracts exist is `contracts.contract_profiles()`; the adapter of contract `name` is the
module of that name here (`start-stream` -> `start_stream.py`), whose `ADAPTER` builds the route
handlers from a `ChatCore`. So a sixth contract is its profile YAML and its name in `contracts`,
and one module here: nothing else lists the contracts.
"""

from __future__ import annotations

import importlib

from ._adapter import ContractAdapter


class MissingAdapter(LookupError):
    """A contract profile is registered in `contracts` but this server has no module for it."""


def adapter(name: str) -> ContractAdapter:
    """The adapter of the contract profile `name`."""
    module_name = f"{__name__}.{name.replace('-', '_')}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        raise MissingAdapter(f"no reference-server adapter for the contract {name!r} ({module_name})") from None
    found: ContractAdapter = module.ADAPTER
    if found.name != name:
        raise MissingAdapter(f"{module_name} serves {found.name!r}, not {name!r}")
    return found


__all__ = ["ContractAdapter", "MissingAdapter", "adapter"]
