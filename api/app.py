"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from api import (
    accounts,
    auth,
    chat,
    chatsocket,
    errors,
    linesocket,
    logfilters,
    metrics,
    operations,
    ratelimit,
    shows,
    ticketing,
    waitlist,
    webapp,
)
from api.chatlive import ChatLive
from api.limits import BodyLimit
from api.services import Services
from api.text import UrlGuard
from boxoffice.settings import Settings, get_settings

# FastAPI's native OpenTelemetry asks the global providers whether it is enabled on every
# request, and they read os.environ each time (2% of the API's CPU under load); our metrics
# are Prometheus' (api.metrics), so it is off.
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = await Services.start(settings)
        app.state.chat = await ChatLive.start(app.state.services)
        try:
            yield
        finally:
            await app.state.chat.stop()
            await app.state.services.stop()

    app = FastAPI(title="boxoffice", version="1", lifespan=lifespan, telemetry=NO_TELEMETRY)
    logfilters.install()
    errors.install(app)
    auth.install(app, settings)
    # Before metrics: the middleware added last runs first, so metrics also counts the 429s.
    ratelimit.install(app, settings)
    app.add_middleware(metrics.MetricsMiddleware)
    app.include_router(operations.router)
    app.include_router(accounts.router)
    app.include_router(ticketing.router)
    app.include_router(shows.router)
    app.include_router(waitlist.router)
    app.include_router(linesocket.router)
    app.include_router(chat.router)
    app.include_router(chatsocket.router)
    # Last: the web app's pages and files at / and /web/, behind every API route.
    webapp.install(app)
    # Paths, query strings and headers with text storage cannot hold never reach a route.
    app.add_middleware(UrlGuard)
    # Outermost: an oversized body is refused before anything reads it.
    app.add_middleware(BodyLimit)
    return app


def main() -> None:
    import uvicorn

    from api.wsprotocol import BoundedWebSocketProtocol

    settings = get_settings()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.http_host,
        port=settings.http_port,
        workers=settings.api_workers,
        log_level="info",
        # websockets' sans-I/O protocol, but one that answers a handshake it refuses (a URL
        # over 8 KiB gets 414 and a close, not silence).
        ws=BoundedWebSocketProtocol,
    )
