"""The web app is served beside the API without shadowing it: `/` is the page, `/web/` its
files, and every API path (unknown ones included) still answers the contract's JSON."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import errors, webapp
from api.app import create_app
from boxoffice.settings import Settings


def make_app() -> FastAPI:
    app = FastAPI()
    errors.install(app)

    @app.post("/v1/things")
    async def command() -> dict[str, str]:
        return {"ok": "yes"}

    webapp.install(app)
    return app


def assert_error_shape(body: object, code: str) -> None:
    assert isinstance(body, dict)
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert isinstance(body["error"]["details"], dict)


def test_root_is_the_page_with_a_strict_policy() -> None:
    response = TestClient(make_app()).get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/web/app.js">' in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-cache"


def test_modules_and_stylesheet_are_served_and_revalidated() -> None:
    client = TestClient(make_app())
    for path, kind in (("/web/app.js", "javascript"), ("/web/style.css", "text/css")):
        response = client.get(path)
        assert response.status_code == 200, path
        assert kind in response.headers["content-type"]
        assert response.headers["cache-control"] == "no-cache"


def test_unknown_paths_keep_the_contract_error_shape() -> None:
    client = TestClient(make_app())
    for path in (
        "/v1/nonexistent",
        "/web/nonexistent.js",
        "/nonexistent",
        "/web/../pyproject.toml",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert_error_shape(response.json(), "not_found")


def test_api_routes_are_not_shadowed() -> None:
    client = TestClient(make_app())
    assert client.post("/v1/things").json() == {"ok": "yes"}
    # A wrong method on an API route is still the route's 405, not a static file's 404.
    wrong = client.get("/v1/things")
    assert wrong.status_code == 405
    assert_error_shape(wrong.json(), "method_not_allowed")


def test_the_real_app_serves_the_page_and_keeps_it_out_of_the_schema() -> None:
    app = create_app(Settings(token_secret="unit-test-secret"))
    client = TestClient(app)  # no lifespan: nothing here needs Kafka or PostgreSQL
    assert client.get("/").status_code == 200
    assert "/" not in app.openapi()["paths"]
    missing = client.get("/v1/nonexistent")
    assert missing.status_code == 404
    assert_error_shape(missing.json(), "not_found")
