"""Every error, validation errors included, has the contract's shape; never a 500."""

from __future__ import annotations

import psycopg
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg_pool import PoolTimeout
from pydantic import BaseModel

from api import errors


class Body(BaseModel):
    quantity: int


def app() -> FastAPI:
    application = FastAPI()
    errors.install(application)

    @application.post("/things")
    async def make(body: Body) -> dict[str, int]:
        if body.quantity > 50:
            raise errors.ApiError(409, "too_many", "at most 50", {"limit": 50})
        return {"quantity": body.quantity}

    @application.post("/busy")
    async def busy() -> None:
        raise errors.unavailable("the command journal", retry_after_s=3)

    @application.get("/database-restarting")
    async def database_restarting() -> None:
        raise psycopg.errors.AdminShutdown("terminating connection due to administrator command")

    @application.get("/pool-empty")
    async def pool_empty() -> None:
        raise PoolTimeout("couldn't get a connection after 30.00 sec")

    return application


def test_validation_errors_use_the_contract_shape() -> None:
    client = TestClient(app())
    response = client.post("/things", json={"quantity": "many"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"]["code"] == "invalid_request"
    assert body["error"]["details"]["problems"][0]["location"] == "body.quantity"
    response = client.post(
        "/things", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def test_domain_errors_unknown_routes_and_outages() -> None:
    client = TestClient(app())
    conflict = client.post("/things", json={"quantity": 51})
    assert conflict.status_code == 409
    assert conflict.json() == {
        "error": {"code": "too_many", "message": "At most 50.", "details": {"limit": 50}}
    }
    missing = client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    busy = client.post("/busy")
    assert busy.status_code == 503
    assert busy.headers["Retry-After"] == "3"
    assert busy.json()["error"]["code"] == "unavailable"


def test_a_lost_database_is_503_not_500() -> None:
    # Seen in the fault drill: a PostgreSQL restart dropped pooled connections mid-request.
    client = TestClient(app(), raise_server_exceptions=False)
    for path in ("/database-restarting", "/pool-empty"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert response.headers["Retry-After"] == "1"
        assert response.json()["error"]["code"] == "unavailable"
