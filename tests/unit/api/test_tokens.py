"""Bearer tokens and passwords: sign, verify, expire, refuse tampering."""

from __future__ import annotations

import base64

import pytest

from api.auth import (
    TokenSigner,
    User,
    hash_password,
    needs_rehash,
    verify_password,
)
from api.errors import ApiError

NOW = 1_750_000_000.0


def reason(exc: pytest.ExceptionInfo[ApiError]) -> str:
    assert exc.value.status == 401
    assert exc.value.code == "unauthorized"
    assert exc.value.headers["WWW-Authenticate"] == "Bearer"
    return str(exc.value.details["reason"])


def test_a_token_carries_the_user_until_it_expires() -> None:
    signer = TokenSigner("secret", ttl_s=3600)
    issued = signer.issue(User("alice", organizer=True), now=NOW)
    assert issued.expires_at == int(NOW) + 3600
    assert signer.verify(issued.token, now=NOW) == User("alice", organizer=True)
    assert signer.verify(issued.token, now=NOW + 3599) == User("alice", organizer=True)
    with pytest.raises(ApiError) as exc:
        signer.verify(issued.token, now=NOW + 3600)
    assert reason(exc) == "expired"


def test_expires_at_is_rfc3339_utc() -> None:
    issued = TokenSigner("secret", ttl_s=60).issue(User("alice"), now=0)
    assert issued.expires_at_rfc3339 == "1970-01-01T00:01:00Z"


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = TokenSigner("other secret", ttl_s=60).issue(User("alice"), now=NOW).token
    with pytest.raises(ApiError) as exc:
        TokenSigner("secret", ttl_s=60).verify(token, now=NOW)
    assert reason(exc) == "invalid"


def test_a_tampered_payload_is_refused() -> None:
    signer = TokenSigner("secret", ttl_s=60)
    token = signer.issue(User("alice"), now=NOW).token
    payload, signature = token.rsplit(".", 1)
    padded = payload + "=" * (-len(payload) % 4)
    forged = base64.urlsafe_b64decode(padded).replace(b"false", b"true ")
    forged_payload = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
    with pytest.raises(ApiError) as exc:
        signer.verify(f"{forged_payload}.{signature}", now=NOW)
    assert reason(exc) == "invalid"


@pytest.mark.parametrize("token", ["", "garbage", "a.b", "a.b.c", "é"])
def test_garbage_is_refused_not_crashed_on(token: str) -> None:
    with pytest.raises(ApiError) as exc:
        TokenSigner("secret", ttl_s=60).verify(token, now=NOW)
    assert reason(exc) == "invalid"


def test_a_signed_payload_of_the_wrong_shape_is_refused() -> None:
    # Signed by us but not a session (e.g. a future format): validity of the signature alone
    # is not enough.
    signer = TokenSigner("secret", ttl_s=60)
    odd = signer._serializer.dumps({"sub": "alice", "exp": "never"})
    with pytest.raises(ApiError):
        signer.verify(odd, now=NOW)


def test_tokens_are_not_guessable_across_users() -> None:
    signer = TokenSigner("secret", ttl_s=60)
    alice = signer.issue(User("alice"), now=NOW).token
    bob = signer.issue(User("bob"), now=NOW).token
    assert alice.rsplit(".", 1)[1] != bob.rsplit(".", 1)[1]


def test_a_ttl_below_one_second_is_refused() -> None:
    with pytest.raises(ValueError):
        TokenSigner("secret", ttl_s=0)


def test_passwords_are_stored_as_salted_argon2id_hashes() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first.startswith("$argon2id$")
    assert "correct horse" not in first
    assert first != second  # salted
    assert verify_password(first, "correct horse")
    assert not verify_password(first, "correct horsf")
    assert not needs_rehash(first)


def test_an_unknown_user_or_a_broken_hash_never_verifies() -> None:
    assert not verify_password(None, "anything at all")
    assert not verify_password("not a hash", "anything at all")
