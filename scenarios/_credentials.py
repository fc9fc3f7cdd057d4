"""Who a conformance scenario acts as: two users, with the tokens each auth check needs.

With the implementation's JWT secret, every scenario gets two fresh users and their tokens are
minted here (valid, expired, signed with the wrong secret); without it, the two given tokens
stand for the two users. An unsigned (`alg: none`) token needs no secret.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts import mint_token, token_subject, unsigned_token

from ._errors import UsageError

WRONG_SECRET = "not-the-secret-of-this-implementation-0123456789"


@dataclass
class Identity:
    user: str
    token: str | None


@dataclass
class Credentials:
    """Two users' identities: minted from the JWT secret per scenario, or the two given tokens."""

    secret: str | None = None
    tokens: tuple[str, str] | None = None

    def users(self, scenario: str, run_id: str) -> tuple[Identity, Identity]:
        user = f"conformance-{run_id}-{scenario}"
        if self.secret is not None:
            return Identity(user, mint_token(self.secret, user)), Identity(
                f"{user}-other", mint_token(self.secret, f"{user}-other")
            )
        if self.tokens is not None:
            first, second = (Identity(_subject(t), t) for t in self.tokens)
            return first, second
        return Identity(user, None), Identity(f"{user}-other", None)

    @staticmethod
    def forged(user: str) -> str:
        """A token for `user` signed with the wrong secret."""
        return mint_token(WRONG_SECRET, user)

    def expired(self, user: str) -> str | None:
        """A well-signed token for `user` that expired an hour ago (None without the secret)."""
        return mint_token(self.secret, user, valid_from_s=-7200) if self.secret is not None else None

    @staticmethod
    def unsigned(user: str) -> str:
        """A token for `user` with `alg: none` and no signature, the classic JWT forgery."""
        return unsigned_token(user)


def _subject(token: str) -> str:
    try:
        return token_subject(token)
    except ValueError as err:
        raise UsageError(f"--token: {err}") from None
