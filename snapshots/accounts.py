"""The users table (migration 0002): the queries of the API (async pool) and the CLI (sync)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool


class UsernameTakenError(Exception):
    def __init__(self, username: str) -> None:
        super().__init__(f"username {username!r} is taken")
        self.username = username


@dataclass(frozen=True)
class Account:
    username: str
    password_hash: str
    organizer: bool
    created_at: datetime


_INSERT = "INSERT INTO users (username, password_hash, organizer) VALUES (%s, %s, %s)"
_SELECT = "SELECT username, password_hash, organizer, created_at FROM users WHERE username = %s"


async def create_user(
    pool: AsyncConnectionPool, username: str, password_hash: str, organizer: bool = False
) -> None:
    """Insert a new user; UsernameTakenError when the name exists (the primary key decides, so two
    concurrent sign-ups of one name cannot both succeed)."""
    try:
        async with pool.connection() as conn:
            await conn.execute(_INSERT, (username, password_hash, organizer))
    except psycopg.errors.UniqueViolation:
        raise UsernameTakenError(username) from None


async def find_user(pool: AsyncConnectionPool, username: str) -> Account | None:
    async with pool.connection() as conn, conn.cursor(row_factory=class_row(Account)) as cur:
        await cur.execute(_SELECT, (username,))
        return await cur.fetchone()


async def set_password_hash(pool: AsyncConnectionPool, username: str, password_hash: str) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE users SET password_hash = %s WHERE username = %s", (password_hash, username)
        )


def put_user(
    conn: psycopg.Connection[Any], username: str, password_hash: str, organizer: bool | None
) -> tuple[bool, bool]:
    """Create the user, or set the password of an existing one; organizer None keeps the flag
    as it is (False for a new user). Returns (created, organizer)."""
    # xmax is 0 only on a row version this statement inserted: it tells insert from update.
    row = conn.execute(
        "INSERT INTO users (username, password_hash, organizer)"
        " VALUES (%s, %s, coalesce(%s::boolean, false))"
        " ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash,"
        " organizer = coalesce(%s::boolean, users.organizer)"
        " RETURNING (xmax = 0), organizer",
        (username, password_hash, organizer, organizer),
    ).fetchone()
    assert row is not None  # INSERT ... ON CONFLICT DO UPDATE always returns its row
    return bool(row[0]), bool(row[1])
