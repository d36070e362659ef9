"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import errors, metrics, operations
from api.services import Services
from boxoffice.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = await Services.start(settings)
        try:
            yield
        finally:
            await app.state.services.stop()

    app = FastAPI(title="boxoffice", version="1", lifespan=lifespan)
    errors.install(app)
    app.middleware("http")(metrics.middleware)
    app.include_router(operations.router)
    return app


def main() -> None:
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.http_host,
        port=settings.http_port,
        workers=settings.api_workers,
        log_level="info",
        ws="websockets-sansio",
    )
