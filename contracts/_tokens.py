"""Bearer tokens as the contracts with `auth` take them: HS256 JWTs whose `sub` claim is the user.

One minter for everyone who needs a token — the conformance runner (valid, expired, forged and
unsigned ones), the load users, the reference server's tests and benchmarks.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import jwt
import jwt.warnings

TOKEN_TTL_S = 3600
# PyJWT (2.10 on) warns when an HMAC secret is shorter than the hash. The secret is the
# implementation's, given to the run; judging its strength is not the minter's job, and the warning
# would repeat for every token of a run with a short test secret.
_SHORT_KEY_WARNING: type[Warning] | None = getattr(jwt.warnings, "InsecureKeyLengthWarning", None)


def _claims(user: str, valid_from_s: float, ttl_s: float) -> dict[str, Any]:
    start = int(time.time() + valid_from_s)
    return {"sub": user, "iat": start, "exp": start + int(ttl_s)}


def mint_token(secret: str, user: str, *, ttl_s: float = TOKEN_TTL_S, valid_from_s: float = 0) -> str:
    """An HS256 token for `user`, valid for `ttl_s` from `valid_from_s` seconds from now (negative:
    issued in the past, so `valid_from_s=-7200` with the default TTL is an hour expired)."""
    with warnings.catch_warnings():
        if _SHORT_KEY_WARNING is not None:
            warnings.simplefilter("ignore", _SHORT_KEY_WARNING)
        return jwt.encode(_claims(user, valid_from_s, ttl_s), secret, algorithm="HS256")


def unsigned_token(user: str) -> str:
    """A token for `user` with `alg: none` and no signature: the classic JWT forgery."""
    return jwt.encode(_claims(user, 0, TOKEN_TTL_S), None, algorithm="none")


def token_subject(token: str) -> str:
    """The `sub` claim of a token, unverified; ValueError when it is not a JWT with one."""
    try:
        return str(jwt.decode(token, options={"verify_signature": False})["sub"])
    except (jwt.PyJWTError, KeyError) as err:
        raise ValueError(f"not a JWT with a `sub` claim ({err})") from None
