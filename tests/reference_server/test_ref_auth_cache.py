"""The reference server's memory of verified tokens answers as a fresh decode would.

A token that passed is remembered until its `exp`; past it the same string is refused as expired,
and a token that failed is never remembered (a forged one stays forged however often it is sent)."""

from __future__ import annotations

import time

import pytest
from litestar.exceptions import NotAuthorizedException

from contracts import mint_token
from reference_server._auth import Authenticator

SECRET = "a-test-secret-of-at-least-32-bytes!"


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    auth = Authenticator(SECRET)
    token = mint_token(SECRET, "alice", ttl_s=1)
    assert auth.user_id(token) == "alice"
    assert auth.user_id(token) == "alice"  # remembered
    expires = int(time.time()) + 1  # `exp` is whole seconds: at most 2 s away
    time.sleep(max(0.0, expires + 1.05 - time.time()))
    with pytest.raises(NotAuthorizedException, match="token expired"):
        auth.user_id(token)


def test_a_failed_token_is_never_remembered() -> None:
    auth = Authenticator(SECRET)
    forged = mint_token("another-secret-of-at-least-32-bytes", "mallory")
    for _ in range(2):
        with pytest.raises(NotAuthorizedException, match="invalid token"):
            auth.user_id(forged)
    other = Authenticator(SECRET, require_exp=True)
    assert other.user_id(mint_token(SECRET, "bob")) == "bob"
