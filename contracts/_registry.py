"""Which contract profiles exist: the list every part of the harness derives its own from.

The reference server's profile choices and settings check, the conformance `reference` run, the
demo and the tests all read `contract_profiles()`; none keeps a list of its own. The built-in ones
are the five contracts of shared/contracts.md, in the seeds' order, each a YAML file in
`contracts/profiles/`. A sixth contract is its YAML file there and one more name in
`_BUILTIN` (plus the reference server's adapter module for it); a team's own contract file can be
registered at run time with `register_profile(path)`.

The mock dialects' load profiles (`contracts/dialects/`) use the same format but are no contracts:
each dialect module names its own (`mockllm.dialects`), so the dialect registry lists them.
"""

from __future__ import annotations

from pathlib import Path

PROFILE_DIR = Path(__file__).parent / "profiles"
DIALECT_PROFILE_DIR = Path(__file__).parent / "dialects"

_BUILTIN = ("sessions", "conversations", "start-stream", "query-stream", "conversation-events")
_REGISTERED: dict[str, Path] = {}  # name -> file, in registration order


def register_profile(path: str | Path, name: str | None = None) -> str:
    """Add a contract profile file under `name` (default: the file's stem); returns the name.

    Registering the same file again is harmless; another file under a name already taken is a
    ValueError, so two contracts can never answer to one name."""
    file = Path(path).resolve()
    key = name or file.stem
    known = _REGISTERED.get(key)
    if known is not None and known != file:
        raise ValueError(f"a contract profile named {key!r} is registered already ({known})")
    _REGISTERED[key] = file
    return key


def unregister_profile(name: str) -> None:
    """Forget a profile registered at run time (a built-in one stays: it is part of the harness)."""
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in contract profile")
    _REGISTERED.pop(name, None)


def contract_profiles() -> tuple[str, ...]:
    """The names of every registered contract profile, built-in ones first in the seeds' order."""
    return tuple(_REGISTERED)


def profile_file(name: str) -> Path | None:
    """The file of a registered contract profile, or None."""
    return _REGISTERED.get(name)


for _name in _BUILTIN:
    register_profile(PROFILE_DIR / f"{_name}.yaml")
