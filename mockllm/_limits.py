"""What a client may send the mock and how long it may take: the `limits` section of its config.

A mock that answers one client's oversized or endless input by reading it all, or that keeps every
idle socket for good, skews the timing of every other stream it serves and runs out of file
descriptors under a careless client. Each limit has a clear answer, so a client that crosses one
learns which:

    limits:
      max_header_bytes: 65536     # request line and header fields of one request: over it, 431, close
      max_headers: 100            # header fields of one request (trailers included): over it, 431, close
      max_body_bytes: 16777216    # one request body: over it, 413 in the route's own error shape
      max_json_depth: 128         # nesting of a JSON body: deeper, 400 in the route's own error shape
      header_timeout_s: 10        # from a request's first byte to the end of its head: then 408, close
      idle_timeout_s: 60          # a connection with no request in flight (and a body still awaited
                                  # after its head) is closed after this long
      max_connections: 10000      # open connections: one more is answered 503 at once and closed

The CLI flags `--max-header-bytes`, `--max-headers`, `--max-body-bytes`, `--max-json-depth`,
`--header-timeout-s`, `--idle-timeout-s` and `--max-connections` set them too. `max_json_depth` is
capped at `JSON_DEPTH_CAP`, far below Python's recursion limit: every body the mock decodes, stores
and renders again (the journal) then stays renderable.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ._errors import ConfigError

DEFAULT_JSON_DEPTH = 128
JSON_DEPTH_CAP = 512  # json.loads and json.dumps recurse in C, up to sys.getrecursionlimit() (1000)


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    max_body_bytes: int = 16 * 1024 * 1024
    max_json_depth: int = DEFAULT_JSON_DEPTH
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 60.0
    max_connections: int = 10_000

    def to_config(self) -> dict[str, Any]:
        return asdict(self)


# name -> (least, greatest) value accepted
_WHOLE = {
    "max_header_bytes": (1024, 64 * 1024 * 1024),
    "max_headers": (8, 100_000),
    "max_body_bytes": (1024, 1024 * 1024 * 1024),
    "max_json_depth": (2, JSON_DEPTH_CAP),
    "max_connections": (1, 10_000_000),
}
_SECONDS = {"header_timeout_s": (0.001, 86_400.0), "idle_timeout_s": (0.001, 86_400.0)}
_KEYS = tuple(_WHOLE) + tuple(_SECONDS)


def parse_limits(raw: Any, key: str = "limits") -> Limits:
    """The limits of a mapping (every missing key takes its default); `ConfigError` names a bad one."""
    if raw is None:
        return Limits()
    if not isinstance(raw, dict):
        raise ConfigError(key, f"expected a mapping, got {raw!r}")
    unknown = sorted(str(name) for name in set(raw) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", f"unknown key; expected one of {', '.join(_KEYS)}")
    values: dict[str, Any] = {}
    for name, (least, greatest) in _WHOLE.items():
        if name in raw:
            value = raw[name]
            if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= greatest:
                raise ConfigError(f"{key}.{name}", f"expected a whole number, {least} to {greatest}, got {value!r}")
            values[name] = value
    for name, (least, greatest) in _SECONDS.items():
        if name in raw:
            value = raw[name]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not least <= value <= greatest
            ):
                raise ConfigError(f"{key}.{name}", f"expected seconds, {least:g} to {greatest:g}, got {value!r}")
            values[name] = float(value)
    return Limits(**values)
