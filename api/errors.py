"""The contract's error shape, raised as ApiError and mapped once for the whole app."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.printable import safe_json

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


def sentence(message: str) -> str:
    """Every error message is told as a sentence: a capital first letter and a full stop, the
    same whichever route or socket wrote it."""
    message = message.strip()
    if not message:
        return "The request was refused."
    if message[0].islower():
        message = message[0].upper() + message[1:]
    return message if message[-1] in ".!?" else message + "."


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    # Details and messages may echo a client's input (a key, a location); text that cannot be
    # written as UTF-8 is replaced, so refusing bad input never fails to answer.
    body: dict[str, Any] = safe_json(
        {"error": {"code": code, "message": sentence(message), "details": details or {}}}
    )
    return body


def unavailable(what: str, retry_after_s: int = 2) -> ApiError:
    return ApiError(
        503,
        "unavailable",
        f"{what[:1].upper()}{what[1:]} is unavailable; come back later.",
        headers={"Retry-After": str(retry_after_s)},
    )


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}


def install(app: FastAPI) -> None:
    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details),
            status_code=exc.status,
            headers=exc.headers,
        )

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {
                "location": ".".join(str(p) for p in err.get("loc", ())),
                "problem": str(err.get("msg", "")),
            }
            for err in exc.errors()
        ]
        return JSONResponse(
            error_body("invalid_request", "The request is not valid.", {"problems": problems}),
            status_code=422,
        )

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code
        return JSONResponse(
            error_body(code, message),
            status_code=exc.status_code,
            headers=dict(exc.headers or {}),
        )

    async def on_database_lost(_: Request, exc: Exception) -> JSONResponse:
        # PostgreSQL restarting or unreachable (a dropped pooled connection, no connection
        # within the pool's timeout) is an outage, never the request's fault: 503 and come back.
        log.warning("database unavailable: %s", type(exc).__name__)
        return JSONResponse(
            error_body("unavailable", "The database is unavailable; try again shortly."),
            status_code=503,
            headers={"Retry-After": "1"},
        )

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(psycopg.OperationalError, on_database_lost)
    app.add_exception_handler(PoolTimeout, on_database_lost)
