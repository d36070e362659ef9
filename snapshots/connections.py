"""How the read-side queries get a connection: from a pool (the API) or as given (the
projector, which owns one connection and wraps its writes in a transaction)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

Db: TypeAlias = "AsyncConnection[Any] | AsyncConnectionPool[Any]"


@asynccontextmanager
async def connection(db: Db) -> AsyncIterator[AsyncConnection[Any]]:
    if isinstance(db, AsyncConnection):
        yield db
        return
    async with db.connection() as conn:
        yield conn
