"""HS256 JWT auth: the token's `sub` is the user id.

Read from `Authorization: Bearer`, and from `?access_token=` where a contract allows it (a browser's
EventSource cannot send headers). Tokens are minted by `contracts.mint_token`.
"""

from __future__ import annotations

import jwt
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler
from litestar.types import Guard

_USER_KEY = "auth.user"  # the request's user, in its state: the token is decoded once per request


class Authenticator:
    """Tokens signed with `secret`; with `require_exp`, only those that carry an expiry (`exp`)."""

    def __init__(self, secret: str, *, require_exp: bool = False) -> None:
        self._secret = secret
        self._required = ["sub", "exp"] if require_exp else ["sub"]

    def user_id(self, token: str) -> str:
        """The `sub` of a valid token; 401 naming the problem otherwise."""
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"], options={"require": self._required})
        except jwt.ExpiredSignatureError:
            raise NotAuthorizedException("token expired") from None
        except jwt.InvalidTokenError as err:
            raise NotAuthorizedException(f"invalid token: {err}") from None
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            raise NotAuthorizedException("invalid token: sub must be a non-empty string")
        return sub

    def user(self, connection: ASGIConnection, *, query_token: bool = False) -> str:
        """The user of a request: its bearer token, or (if allowed) its `access_token` query parameter.

        Decoded once per request and kept in its state, so a guard and the handler share it."""
        user = connection.state.get(_USER_KEY)
        if user is None:
            user = connection.state[_USER_KEY] = self._token_user(connection, query_token)
        return user

    def guard(self, *, query_token: bool = False) -> Guard:
        """A Litestar guard: 401 before the request's parameters and body are even read."""

        def authenticated(connection: ASGIConnection, _: BaseRouteHandler) -> None:
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
