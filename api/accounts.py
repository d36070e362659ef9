"""Accounts: sign up (`POST /v1/users`), sign in (`POST /v1/sessions`), and who am I
(`GET /v1/users/me`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import psycopg
from fastapi import APIRouter, Depends, Request
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, Field

from api import auth
from api.auth import CurrentUser, User
from api.errors import ApiError, unavailable
from api.services import Services, services
from api.text import Text
from snapshots import accounts

router = APIRouter(prefix="/v1", tags=["accounts"])

Svc = Annotated[Services, Depends(services)]


class NewUser(BaseModel):
    username: Text = Field(pattern=auth.USERNAME_PATTERN, examples=["alice"])
    password: Text = Field(min_length=auth.PASSWORD_MIN_CHARS, max_length=auth.PASSWORD_MAX_CHARS)


class Credentials(BaseModel):
    # No username pattern here: a name that cannot exist is just a failed sign-in (401). The
    # caps only keep absurd input from reaching the hasher.
    username: Text = Field(max_length=64)
    password: Text = Field(max_length=auth.PASSWORD_MAX_CHARS)


class UserCreated(BaseModel):
    username: str


class Session(BaseModel):
    token: str
    expires_at: str


class Me(BaseModel):
    username: str
    organizer: bool


@asynccontextmanager
async def _database() -> AsyncIterator[None]:
    try:
        yield
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise unavailable("the account database") from exc


@router.post("/users", status_code=201)
async def create_user(body: NewUser, svc: Svc) -> UserCreated:
    password_hash = await auth.hash_password_async(body.password)
    try:
        async with _database():
            await accounts.create_user(svc.pool, body.username, password_hash)
    except accounts.UsernameTakenError:
        raise ApiError(
            409, "username_taken", "that username is taken", {"username": body.username}
        ) from None
    return UserCreated(username=body.username)


@router.post("/sessions")
async def create_session(body: Credentials, svc: Svc, request: Request) -> Session:
    async with _database():
        account = await accounts.find_user(svc.pool, body.username)
    # One answer for an unknown user and a wrong password, reached after the same hashing work.
    matches = await auth.verify_password_async(
        account.password_hash if account else None, body.password
    )
    if account is None or not matches:
        raise ApiError(401, "bad_credentials", "wrong username or password")
    if auth.needs_rehash(account.password_hash):
        async with _database():
            await accounts.set_password_hash(
                svc.pool, account.username, await auth.hash_password_async(body.password)
            )
    issued = auth.signer_of(request).issue(User(account.username, account.organizer))
    return Session(token=issued.token, expires_at=issued.expires_at_rfc3339)


@router.get("/users/me")
async def me(user: CurrentUser) -> Me:
    return Me(username=user.username, organizer=user.organizer)
