"""The PostgreSQL-only baseline of the on-sale benchmark: the classic design.

One transaction per hold (`UPDATE ... WHERE status = 'available' RETURNING`), behind the same
HTTP layer as boxoffice (FastAPI + uvicorn, the same token auth, rate limiter, body limit and
metrics middleware), on the same PostgreSQL server. Routes mirror boxoffice's ticketing
routes closely enough for the same load generator:

  POST /v1/shows/{show_id}/holds        {"seats": [...]} | {"best_available": {"quantity": n}}
  POST /v1/orders/{order_id}/payment    {"payment_token": "..."}
  DELETE /v1/orders/{order_id}
  GET /v1/shows/{show_id}/seatmap        {"show_id", "version", "seats": {seat: status}}

The seat map is what a PostgreSQL-only site would give viewers who poll: one query over the
show's seats, cached in each worker for a second (so 500 viewers polling every second cost
the database two queries a second, not 500), encoded once per cache fill.

Run: python -m bench.pg_baseline --port 8100 (the benchmark starts it itself).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, StrictInt

from api import auth, errors, metrics, ratelimit
from api.app import NO_TELEMETRY
from api.auth import CurrentUser
from api.errors import ApiError
from api.limits import BodyLimit
from boxoffice.settings import Settings, get_settings

SCHEMA = "bench_baseline"
# A polling site's server cache: every viewer's poll within a second gets the same bytes.
SEATMAP_CACHE_S = 1.0

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.seats (
    show_id   text NOT NULL,
    seat_id   text NOT NULL,
    row_no    integer NOT NULL,
    seat_no   integer NOT NULL,
    status    text NOT NULL DEFAULT 'available',
    order_id  text,
    held_until timestamptz,
    PRIMARY KEY (show_id, seat_id)
);
CREATE INDEX IF NOT EXISTS seats_free ON {SCHEMA}.seats (show_id, row_no, seat_no)
    WHERE status = 'available';
CREATE INDEX IF NOT EXISTS seats_order ON {SCHEMA}.seats (order_id);
"""


class BestIn(BaseModel):
    quantity: StrictInt


class HoldIn(BaseModel):
    seats: list[str] | None = None
    best_available: BestIn | None = None


class PayIn(BaseModel):
    payment_token: str


def create_show_rows(settings: Settings, show_id: str, rows: int, seats_per_row: int) -> None:
    import psycopg

    with psycopg.connect(settings.pg_dsn, autocommit=True) as conn:
        conn.execute(DDL)
        conn.execute(f"DELETE FROM {SCHEMA}.seats WHERE show_id = %s", (show_id,))
        with conn.cursor().copy(
            f"COPY {SCHEMA}.seats (show_id, seat_id, row_no, seat_no) FROM STDIN"
        ) as copy:
            for r in range(1, rows + 1):
                for s in range(1, seats_per_row + 1):
                    copy.write_row((show_id, f"A-{r}-{s}", r, s))


def create_app(settings: Settings, hold_seconds: int) -> FastAPI:
    pool = AsyncConnectionPool(settings.pg_dsn, min_size=4, max_size=20, open=False)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=True)
        try:
            yield
        finally:
            await pool.close()

    # The same HTTP layer as boxoffice's, FastAPI's telemetry off as there.
    app = FastAPI(lifespan=lifespan, telemetry=NO_TELEMETRY)
    errors.install(app)
    auth.install(app, settings)
    ratelimit.install(app, settings)
    app.add_middleware(metrics.MetricsMiddleware)
    app.add_middleware(BodyLimit)

    @app.post("/v1/shows/{show_id}/holds", status_code=201)
    async def hold(
        show_id: str, body: HoldIn, user: CurrentUser, request: Request
    ) -> dict[str, Any]:
        order_id = f"{show_id}.{secrets.token_urlsafe(16)}"
        async with pool.connection() as conn, conn.transaction():
            if body.seats is not None:
                # Expired holds count as free at decision time, as in boxoffice.
                rows = await (
                    await conn.execute(
                        f"UPDATE {SCHEMA}.seats SET status = 'held', order_id = %s,"
                        f" held_until = now() + make_interval(secs => %s)"
                        f" WHERE show_id = %s AND seat_id = ANY(%s) AND (status = 'available'"
                        f" OR (status = 'held' AND held_until < now())) RETURNING seat_id",
                        (order_id, hold_seconds, show_id, body.seats),
                    )
                ).fetchall()
                if len(rows) != len(set(body.seats)):
                    raise _Rollback(
                        ApiError(409, "seats_unavailable", "seats are taken", {"unavailable": []})
                    )
            else:
                assert body.best_available is not None
                n = body.best_available.quantity
                rows = await (
                    await conn.execute(
                        f"UPDATE {SCHEMA}.seats SET status = 'held', order_id = %s,"
                        f" held_until = now() + make_interval(secs => %s)"
                        f" WHERE (show_id, seat_id) IN (SELECT show_id, seat_id FROM {SCHEMA}.seats"
                        f" WHERE show_id = %s AND status = 'available' ORDER BY row_no, seat_no"
                        f" LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING seat_id",
                        (order_id, hold_seconds, show_id, n),
                    )
                ).fetchall()
                if len(rows) != n:
                    raise _Rollback(ApiError(409, "not_enough_seats", "not enough seats"))
            seats = [r[0] for r in rows]
            expires = await (
                await conn.execute("SELECT now() + make_interval(secs => %s)", (hold_seconds,))
            ).fetchone()
        assert expires is not None
        return {
            "order_id": order_id,
            "show_id": show_id,
            "status": "held",
            "seats": seats,
            "zone": None,
            "expires_at": expires[0].isoformat(),
            "total_cents": 5000 * len(seats),
        }

    @app.post("/v1/orders/{order_id}/payment")
    async def pay(order_id: str, body: PayIn, user: CurrentUser) -> dict[str, Any]:
        async with pool.connection() as conn, conn.transaction():
            rows = await (
                await conn.execute(
                    f"UPDATE {SCHEMA}.seats SET status = 'sold' WHERE order_id = %s"
                    f" AND status = 'held' AND held_until > now() RETURNING seat_id",
                    (order_id,),
                )
            ).fetchall()
            if not rows:
                raise _Rollback(ApiError(409, "hold_expired", "the hold ran out"))
        return {"order_id": order_id, "status": "paid", "seats": [r[0] for r in rows]}

    @app.delete("/v1/orders/{order_id}")
    async def cancel(order_id: str, user: CurrentUser) -> dict[str, Any]:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(
                f"UPDATE {SCHEMA}.seats SET status = 'available', order_id = NULL"
                f" WHERE order_id = %s AND status = 'held'",
                (order_id,),
            )
        return {"order_id": order_id, "status": "cancelled"}

    # show -> (monotonic time it was read, encoded body)
    seatmaps: dict[str, tuple[float, bytes]] = {}
    # One refill at a time: without it every poll arriving while the map is read again
    # would run the query too (a stampede of hundreds of 20,000-row reads each second).
    refilling: dict[str, asyncio.Lock] = {}

    @app.get("/v1/shows/{show_id}/seatmap")
    async def seatmap(show_id: str) -> Response:
        cached = seatmaps.get(show_id)
        if cached is None or time.monotonic() - cached[0] >= SEATMAP_CACHE_S:
            async with refilling.setdefault(show_id, asyncio.Lock()):
                cached = seatmaps.get(show_id)
                if cached is None or time.monotonic() - cached[0] >= SEATMAP_CACHE_S:
                    cached = seatmaps[show_id] = await read_seatmap(show_id)
        return Response(cached[1], media_type="application/json")

    async def read_seatmap(show_id: str) -> tuple[float, bytes]:
        read_at = time.monotonic()
        async with pool.connection() as conn:
            rows = await (
                await conn.execute(
                    f"SELECT seat_id, CASE WHEN status = 'held' AND held_until < now()"
                    f" THEN 'available' ELSE status END FROM {SCHEMA}.seats"
                    f" WHERE show_id = %s",
                    (show_id,),
                )
            ).fetchall()
        body = {"show_id": show_id, "version": int(read_at * 1000), "seats": dict(rows)}
        return read_at, orjson.dumps(body)

    @app.exception_handler(_Rollback)
    async def rolled_back(request: Request, exc: Exception) -> Any:
        assert isinstance(exc, _Rollback)
        from fastapi.responses import JSONResponse

        error = exc.error
        return JSONResponse(
            errors.error_body(error.code, error.message, error.details), status_code=error.status
        )

    return app


class _Rollback(Exception):  # noqa: N818  (control flow: leaving the block rolls back)
    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


def app_from_env() -> FastAPI:
    """The app for each uvicorn worker process (workers import it by name)."""
    return create_app(get_settings(), int(os.environ.get("BENCH_HOLD_SECONDS", "630")))


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--hold-seconds", type=int, default=630)
    # Two workers: the design people deploy on a machine like this one.
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.environ["BENCH_HOLD_SECONDS"] = str(args.hold_seconds)
    uvicorn.run(
        "bench.pg_baseline:app_from_env",
        factory=True,
        workers=args.workers,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
