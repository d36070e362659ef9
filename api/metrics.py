"""Prometheus metrics of the API."""

from __future__ import annotations

import time

from fastapi import Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "boxoffice_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "boxoffice_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5),
)
COMMANDS = Counter("boxoffice_commands_total", "Commands sent to the journals", ["type", "outcome"])


class MetricsMiddleware:
    """Counts and times every HTTP request by route template.

    A plain ASGI middleware: Starlette's BaseHTTPMiddleware (what `@app.middleware("http")`
    makes) costs a task group and a body stream per request, which showed up as the biggest
    single overhead of a hold in profiles.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            # The router leaves the matched route in the scope: label by its template,
            # not by raw path (ids would explode the label space).
            route = scope.get("route")
            path = str(getattr(route, "path", "unmatched"))
            REQUESTS.labels(scope["method"], path, str(status)).inc()
            LATENCY.labels(scope["method"], path).observe(time.perf_counter() - started)


def render() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
