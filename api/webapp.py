"""The web app for fans: `GET /` answers `web/index.html`, its modules and stylesheet are under
`/web/`.

Only those two places are the app's, so no API route is shadowed: a catch-all mount at `/`
would also answer every unknown `/v1/...` path and every wrong method on an API route (a GET
on a POST-only route would turn from 405 into a static 404). Neither is in the OpenAPI schema,
so the schema fuzzing sees the API alone. An unknown file under `/web/` is the contract's JSON
404, like any other unknown path.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

from boxoffice.settings import PROJECT_ROOT


def web_dir() -> Path:
    """The checkout's `web/`; an installed (non-editable) package finds it in the working
    directory instead, as the Docker image lays it out (`/app/web`)."""
    here = PROJECT_ROOT / "web"
    return here if here.is_dir() else Path.cwd() / "web"


# The page may talk to its own origin only (fetch and the seat-map WebSocket) and runs no
# inline script, so injected markup cannot run or send anything anywhere.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

# Files change with the checkout: the browser revalidates each time (a cheap 304 by ETag)
# rather than running yesterday's module against today's API.
REVALIDATE = {"Cache-Control": "no-cache"}


class WebFiles(StaticFiles):
    """Static files that are always revalidated."""

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(REVALIDATE)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def install(app: FastAPI) -> None:
    """Call after every API router: the app's routes come last."""
    root = web_dir()
    index = root / "index.html"

    @app.get("/", include_in_schema=False)
    async def web_index() -> FileResponse:
        return FileResponse(
            index,
            media_type="text/html; charset=utf-8",
            headers={
                **REVALIDATE,
                "Content-Security-Policy": PAGE_POLICY,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    app.mount("/web", WebFiles(directory=root, check_dir=False), name="web")
