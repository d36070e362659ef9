"""Command rate limits: a token bucket per user, or per client address before sign-in.

Every POST, PUT, PATCH and DELETE under /v1 and /ops spends one token (an ASGI middleware, so routes
cannot forget it), and so does every frame a client sends on a WebSocket (`check_frame`).
HTTP and WebSocket commands of one user share one bucket. Buckets live in the memory of each
API process: with several workers a user's effective limit is multiplied by how many of them
the user's connections land on.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import TokenSigner, User
from api.errors import ApiError, error_body
from boxoffice.settings import Settings

COMMAND_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class TokenBuckets:
    """Buckets of `burst` tokens refilled at `rate_per_s`, one per key.

    A bucket idle long enough to have refilled is indistinguishable from a new one, so it is
    dropped; memory then follows the number of keys active in the last `burst / rate_per_s`
    seconds. `max_buckets` caps even that (against floods from many addresses), at the price of
    forgetting the least recently seen keys early, which can only make the limit more lenient.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        max_buckets: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0 or burst < 1 or max_buckets < 1:
            raise ValueError("rate_per_s must be > 0, burst and max_buckets >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_buckets = max_buckets
        self._clock = clock
        # Least recently touched first: eviction looks only at the front.
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, cost: float = 1.0) -> float:
        """Spend `cost` tokens of key's bucket: 0.0 when allowed, otherwise the seconds until it
        would be (nothing is spent then, so a client that waits that long gets through)."""
        now = self._clock()
        # Before the lookup: evicting the caller's own full bucket only means recreating it.
        self._evict_idle(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
        else:
            bucket.tokens = self._level(bucket, now)
            bucket.stamp = now
            self._buckets.move_to_end(key)
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self.rate_per_s

    def retry_after(self, key: str) -> int | None:
        """`take` for one command, in Retry-After terms: None when allowed, else whole seconds
        (at least 1, rounded up so a client that obeys it is let through)."""
        wait = self.take(key)
        return None if wait == 0.0 else max(1, math.ceil(wait))

    def _level(self, bucket: _Bucket, now: float) -> float:
        return min(float(self.burst), bucket.tokens + (now - bucket.stamp) * self.rate_per_s)

    def _evict_idle(self, now: float) -> None:
        buckets = self._buckets
        # Stopping at the first bucket not yet full keeps each call O(1) amortized; the ones
        # behind it are reached on later calls.
        while buckets:
            oldest = next(iter(buckets.values()))
            if self._level(oldest, now) < self.burst:
                break
            buckets.popitem(last=False)


def key_for(user: User | None, address: str | None) -> str:
    return f"user:{user.username}" if user is not None else f"addr:{address or 'unknown'}"


def too_many(retry_after_s: int) -> ApiError:
    return ApiError(
        429,
        "rate_limited",
        f"too many commands; retry in {retry_after_s} s",
        {"retry_after_s": retry_after_s},
        headers={"Retry-After": str(retry_after_s)},
    )


class RateLimitMiddleware:
    """Pure ASGI (not BaseHTTPMiddleware): it must not buffer or wrap responses it lets pass."""

    def __init__(self, app: ASGIApp, buckets: TokenBuckets, tokens: TokenSigner) -> None:
        self.app = app
        self.buckets = buckets
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in COMMAND_METHODS
            and _limited(scope["path"])
        ):
            conn = HTTPConnection(scope)
            wait = self.buckets.retry_after(key_for(self._user(conn), _address(conn)))
            if wait is not None:
                error = too_many(wait)
                response = JSONResponse(
                    error_body(error.code, error.message, error.details),
                    status_code=error.status,
                    headers=error.headers,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _user(self, conn: HTTPConnection) -> User | None:
        # A bad token counts against the address: the route answers it 401 anyway.
        scheme, _, token = conn.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            return self.tokens.verify(token.strip())
        except ApiError:
            return None


# Commands under these prefixes are limited: the API's own and the operations probe, which
# writes to Kafka too.
LIMITED_PREFIXES = ("/v1", "/ops")


def _limited(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in LIMITED_PREFIXES)


def _address(conn: HTTPConnection) -> str | None:
    return conn.client.host if conn.client else None


def install(app: FastAPI, settings: Settings) -> TokenBuckets:
    """Limit the app's commands. Needs `auth.install` first (it reads the token signer). Install
    it before the metrics middleware, so that middleware wraps it and counts the 429s."""
    buckets = TokenBuckets(settings.rate_limit_per_s, settings.rate_limit_burst)
    app.state.rate_limits = buckets
    app.add_middleware(RateLimitMiddleware, buckets=buckets, tokens=app.state.tokens)
    return buckets


def check_frame(conn: HTTPConnection, user: User | None) -> int | None:
    """For each frame a WebSocket client sends: None when allowed, else the seconds to wait
    (answer it with an error frame `rate_limited`, drop the frame, keep the socket)."""
    buckets: TokenBuckets = conn.app.state.rate_limits
    return buckets.retry_after(key_for(user, _address(conn)))
