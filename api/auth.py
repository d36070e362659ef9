"""Who is calling: password hashing, signed expiring bearer tokens, and the FastAPI dependencies
that turn an `Authorization: Bearer` header (or a WebSocket's `?token=`) into a User.

Tokens are stateless: they carry the username and the organizer flag, so authenticating a
request costs one HMAC and no database round trip. The price is that a change of the organizer
flag shows in the next token, not in the ones already issued.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, FastAPI
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import BadSignature, URLSafeSerializer
from starlette.requests import HTTPConnection

from api.errors import ApiError
from boxoffice.settings import Settings

log = logging.getLogger(__name__)

USERNAME_PATTERN = r"^[a-z0-9_]{3,32}$"
PASSWORD_MIN_CHARS = 8
# Argon2 accepts any length, so the cap is what bounds the cost one request can impose.
PASSWORD_MAX_CHARS = 1024

# Verified tokens remembered per process; past this many the memory starts over.
VERIFIED_CACHE = 100_000


@dataclass(frozen=True, slots=True)
class User:
    username: str
    organizer: bool = False


# Passwords


# OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane): slow enough to make offline guessing
# expensive, cheap enough that sign-ups in bulk do not starve the API. Hashes embed their
# parameters, so raising them later only needs `needs_rehash` on the next sign-in.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

# A pool of its own, one thread per core: hashing is CPU and memory bound, so more threads
# would only add memory (19 MiB each) and queue behind each other anyway, and a burst of
# sign-ins must not occupy the default executor other code relies on.
_HASHING = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="argon2")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when password matches. Without a hash (unknown user) a dummy one is verified so the
    answer takes as long as for a real user and timing does not reveal who has an account."""
    try:
        return _HASHER.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _HASHER.check_needs_rehash(password_hash)


@cache
def _dummy_hash() -> str:
    return _HASHER.hash(os.urandom(16).hex())


async def hash_password_async(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_HASHING, hash_password, password)


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(
        _HASHING, verify_password, password_hash, password
    )


# Tokens


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_at: int  # Unix seconds

    @property
    def expires_at_rfc3339(self) -> str:
        return datetime.fromtimestamp(self.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TokenSigner:
    """Bearer tokens: `{"sub", "org", "exp"}` signed by itsdangerous with HMAC-SHA256. The
    expiry is checked here against an injectable clock rather than by itsdangerous' timed
    serializer, so tests can move time."""

    # Bumping the salt invalidates every token issued under the old payload shape.
    SALT = "boxoffice.session.v1"

    def __init__(self, secret: str, ttl_s: int) -> None:
        if ttl_s < 1:
            raise ValueError("token_ttl_s must be at least 1 second")
        self._serializer = URLSafeSerializer(
            secret, salt=self.SALT, signer_kwargs={"digest_method": hashlib.sha256}
        )
        self._ttl_s = ttl_s
        self._verified: dict[str, tuple[User, int]] = {}

    def issue(self, user: User, now: float | None = None) -> IssuedToken:
        expires_at = int(time.time() if now is None else now) + self._ttl_s
        token = self._serializer.dumps(
            {"sub": user.username, "org": user.organizer, "exp": expires_at}
        )
        return IssuedToken(token, expires_at)

    def verify(self, token: str, now: float | None = None) -> User:
        """The token's user; ApiError 401 when the token is forged, malformed or expired."""
        at = time.time() if now is None else now
        known = self._verified.get(token)
        if known is not None and known[1] > at:
            return known[0]
        user, expires_at = self._check(token, at)
        # Every command checks its token twice (rate limiter, route); a verified token is
        # remembered until it expires, so a busy client pays for the HMAC once.
        if len(self._verified) >= VERIFIED_CACHE:
            self._verified.clear()
        self._verified[token] = (user, expires_at)
        return user

    def _check(self, token: str, at: float) -> tuple[User, int]:
        try:
            claims: Any = self._serializer.loads(token)
        except BadSignature:
            raise _unauthorized("the token is not valid", "invalid") from None
        if not (
            isinstance(claims, dict)
            and isinstance(claims.get("sub"), str)
            and isinstance(claims.get("org"), bool)
            and type(claims.get("exp")) is int
        ):
            raise _unauthorized("the token is not valid", "invalid")
        if claims["exp"] <= at:
            raise _unauthorized("the token has expired; sign in again", "expired")
        return User(claims["sub"], claims["org"]), claims["exp"]


def _unauthorized(message: str, reason: str) -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        message,
        {"reason": reason},
        headers={"WWW-Authenticate": "Bearer"},
    )


def install(app: FastAPI, settings: Settings) -> TokenSigner:
    """Give the app its token signer (on app.state, so bare test apps can have one too)."""
    signer = TokenSigner(settings.token_secret, settings.token_ttl_s)
    app.state.tokens = signer
    _dummy_hash()  # now, so the first sign-in of an unknown user is not slower than others
    return signer


def signer_of(conn: HTTPConnection) -> TokenSigner:
    found: TokenSigner = conn.app.state.tokens
    return found


# Dependencies

# Declared through HTTPBearer so /docs shows the Authorize button; errors are ours, not its.
_bearer = HTTPBearer(auto_error=False, description="a token from POST /v1/sessions")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies on a thread
# pool, and that hand-off cost more than the HMAC check itself on the hot paths.
async def current_user(conn: HTTPConnection, credentials: Bearer) -> User:
    """The signed-in user; 401 `unauthorized` without a valid, unexpired bearer token."""
    if credentials is None:
        raise _unauthorized("sign in and send Authorization: Bearer <token>", "missing")
    return signer_of(conn).verify(credentials.credentials)


async def optional_user(conn: HTTPConnection, credentials: Bearer) -> User | None:
    """The signed-in user or None when no token is sent; a bad or expired token is still a 401,
    so a client with a stale token learns it rather than silently seeing the anonymous view."""
    if credentials is None:
        return None
    return signer_of(conn).verify(credentials.credentials)


def user_from_token(conn: HTTPConnection, token: str | None) -> User | None:
    """For WebSockets' `?token=`: the user, or None when the token is absent, bad or expired."""
    if not token:
        return None
    try:
        return signer_of(conn).verify(token)
    except ApiError:
        return None


CurrentUser = Annotated[User, Depends(current_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]


async def current_organizer(user: CurrentUser) -> User:
    """The signed-in user if an organizer: 401 without a valid token, 403 `not_organizer`."""
    if not user.organizer:
        raise not_organizer()
    return user


def not_organizer() -> ApiError:
    return ApiError(403, "not_organizer", "Only organizers may do this.")


Organizer = Annotated[User, Depends(current_organizer)]

# The name the stack's own tools (the `boxoffice up` probe) act as on organizer-only routes.
SERVICE_USER = "boxoffice_probe"


def service_token(settings: Settings, username: str = SERVICE_USER) -> str:
    """An organizer token for the stack's own tools, signed with the API's secret: whoever
    holds the secret may act as an organizer anyway."""
    return (
        TokenSigner(settings.token_secret, settings.token_ttl_s).issue(User(username, True)).token
    )
