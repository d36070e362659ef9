"""The one rule for text and whole numbers the API accepts, whatever road they come by.

Every string a client sends (a JSON body field, a path segment, a query parameter, a header, a
field of a WebSocket frame) ends up in a journal event, a PostgreSQL row or an answer. Two kinds
of character cannot make that trip: NUL, which PostgreSQL text refuses (and which would stop a
projector that meets it), and lone UTF-16 surrogates (U+D800..U+DFFF), which are not Unicode
scalar values, so they cannot be encoded as UTF-8 at all. Such input is refused at the edge with
422, never stored.

Whole numbers are bounded by what PostgreSQL's bigint (and the JSON codec's 64 bits) can hold,
so a number too large for storage is a 422 rather than a crash further in.

- `Text`: the pydantic type for body fields (`Annotated[str, ...]`).
- `text_problem` / `check_text`: the same rule for places pydantic does not see.
- `UrlGuard`: the ASGI middleware that applies it to every path, query string and header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated
from urllib.parse import unquote_to_bytes

import orjson
from pydantic import AfterValidator, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import ApiError, error_body
from api.printable import FORBIDDEN

# PostgreSQL bigint; also the largest number the JSON codec (orjson, 64 bits) writes signed.
BIGINT_MAX = 2**63 - 1

_FORBIDDEN = FORBIDDEN


def text_problem(value: str) -> str | None:
    """Why `value` cannot be accepted as text, or None when it can."""
    found = _FORBIDDEN.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain the NUL character (U+0000)"
    return "must not contain a lone surrogate (U+D800 to U+DFFF): that is not Unicode text"


def invalid_text(where: str, problem: str) -> ApiError:
    return ApiError(
        422,
        "invalid_text",
        f"The {where} {problem}.",
        {"location": where},
    )


def check_text(value: str, where: str) -> str:
    """`value` if it is acceptable text; ApiError 422 `invalid_text` naming `where` otherwise."""
    problem = text_problem(value)
    if problem is not None:
        raise invalid_text(where, problem)
    return value


def check_texts(values: Iterable[str], where: str) -> None:
    for value in values:
        check_text(value, where)


def _validated(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        # pydantic turns this into a 422 with the field's location.
        raise ValueError(f"the text {problem}")
    return value


Text = Annotated[str, AfterValidator(_validated)]
"""A string field of a request body: no NUL, no lone surrogate."""

# Counts and positions a client may send (seq, version, before): 0..bigint.
WholeNumber = Annotated[int, Field(ge=0, le=BIGINT_MAX)]


def _url_problem(raw: bytes) -> str | None:
    """What is wrong with a percent-encoded path or query string, if anything. Bytes that do
    not decode as UTF-8 are decoded by the server as replacement characters, which storage
    can hold; NUL and encoded surrogates (which strict UTF-8 refuses too) cannot."""
    decoded = unquote_to_bytes(raw.replace(b"+", b" "))
    if b"\x00" in decoded:
        return "must not contain the NUL character (U+0000)"
    if re.search(rb"\xed[\xa0-\xbf]", decoded):
        return "must not contain a lone surrogate (U+D800 to U+DFFF): that is not Unicode text"
    return None


class UrlGuard:
    """Refuses a request whose path, query string or headers hold text storage cannot keep,
    before any route sees it: HTTP gets the contract's 422, a WebSocket an `error` frame and
    close 4400. Bodies and WebSocket frames are checked by the models and frame parsers
    (`Text`, `check_text`), which know their fields."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        error = self._problem(scope)
        if error is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await self._refuse_http(error, send)
        else:
            await self._refuse_websocket(error, receive, send)

    def _problem(self, scope: Scope) -> ApiError | None:
        raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "replace")
        problem = _url_problem(raw_path)
        if problem is not None:
            return invalid_text("path", problem)
        problem = _url_problem(scope.get("query_string", b""))
        if problem is not None:
            return invalid_text("query string", problem)
        for name, value in scope.get("headers", ()):
            if b"\x00" in value:
                return invalid_text(
                    f"header {name.decode('latin-1')}", "must not contain the NUL character"
                )
        return None

    async def _refuse_http(self, error: ApiError, send: Send) -> None:
        body = orjson.dumps(error_body(error.code, error.message, error.details))
        await send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _refuse_websocket(self, error: ApiError, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        frame = orjson.dumps(
            {"type": "error", "code": error.code, "message": error.message}
        ).decode()
        await send({"type": "websocket.send", "text": frame})
        await send({"type": "websocket.close", "code": 4400})
