"""HS256 JWT auth: the token's `sub` is the user id.

Read from `Authorization: Bearer`, and from `?access_token=` where a contract allows it (a browser's
EventSource cannot send headers). Tokens are minted by `contracts.mint_token`.

A client sends one token on many requests, and PyJWT's decode (base64, JSON, HMAC, claim checks in
Python: ~7% of the server's CPU per request, on the path to the first token) gives the same answer
for the same token string until a time claim changes it. So a token that passed is remembered (at
most `VERIFIED_CACHE_SIZE`, oldest forgotten first) with its user and the window its time claims
allow (`iat`/`nbf` to `exp`); a later request with the very same string inside that window skips
the decode, and one outside it is decoded again, answering exactly what PyJWT does. Tokens that
fail are never remembered.
"""

from __future__ import annotations

import math
import time

import jwt
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler
from litestar.types import Guard

_USER_KEY = "auth.user"  # the request's user, in its state: the token is decoded once per request
VERIFIED_CACHE_SIZE = 4096


def _claim_time(claims: dict, name: str, default: float) -> float:
    """A time claim as PyJWT reads it (`int(value)`: it has just accepted the token, so it converts)."""
    return int(claims[name]) if name in claims else default


class Authenticator:
    """Tokens signed with `secret`; with `require_exp`, only those that carry an expiry (`exp`)."""

    def __init__(self, secret: str, *, require_exp: bool = False) -> None:
        self._secret = secret
        self._required = ["sub", "exp"] if require_exp else ["sub"]
        self._verified: dict[str, tuple[str, float, float]] = {}  # token -> (sub, valid from, valid until)

    def user_id(self, token: str) -> str:
        """The `sub` of a valid token; 401 naming the problem otherwise."""
        known = self._verified.get(token)
        if known is not None:
            sub, valid_from, valid_until = known
            if valid_from <= time.time() < valid_until:
                return sub
            del self._verified[token]
        return self._decode(token)

    def _decode(self, token: str) -> str:
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"], options={"require": self._required})
        except jwt.ExpiredSignatureError:
            raise NotAuthorizedException("token expired") from None
        except jwt.InvalidTokenError as err:
            raise NotAuthorizedException(f"invalid token: {err}") from None
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            raise NotAuthorizedException("invalid token: sub must be a non-empty string")
        # PyJWT refuses now >= exp, nbf > now and iat > now (no leeway): the same window.
        valid_from = max(_claim_time(claims, "nbf", -math.inf), _claim_time(claims, "iat", -math.inf))
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (sub, valid_from, _claim_time(claims, "exp", math.inf))
        return sub

    def user(self, connection: ASGIConnection, *, query_token: bool = False) -> str:
        """The user of a request: its bearer token, or (if allowed) its `access_token` query parameter.

        Decoded once per request and kept in its state, so a guard and the handler share it."""
        user = connection.state.get(_USER_KEY)
        if user is None:
            user = connection.state[_USER_KEY] = self._token_user(connection, query_token)
        return user

    def guard(self, *, query_token: bool = False) -> Guard:
        """A Litestar guard: 401 before the request's parameters and body are even read.

        A coroutine function although it never awaits: Litestar runs a plain function guard in a
        worker thread (`sync_to_thread`), a hop there and back on every authenticated request that
        stood between the request and its first byte (a GIL hand-off of up to 5 ms under load)."""

        async def authenticated(connection: ASGIConnection, _: BaseRouteHandler) -> None:
            self.user(connection, query_token=query_token)

        return authenticated

    def _token_user(self, connection: ASGIConnection, query_token: bool) -> str:
        header = connection.headers.get("authorization")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise NotAuthorizedException("Authorization must be 'Bearer <token>'")
            return self.user_id(token.strip())
        if query_token:
            token = connection.query_params.get("access_token")
            if token:
                return self.user_id(token)
            raise NotAuthorizedException("missing token: send Authorization: Bearer <token> or ?access_token=")
        raise NotAuthorizedException("missing token: send Authorization: Bearer <token>")
