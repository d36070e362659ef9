"""docker-compose.yml cannot run on these machines; this keeps it honest with the settings."""

from __future__ import annotations

import os
from typing import Any

import pytest
import yaml

from boxoffice.settings import PROJECT_ROOT, Settings

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
APP_SERVICES = ("setup", "deciders", "views", "chatviews", "reconciler", "processors", "api")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def host_ports(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port"""
    out = {}
    for mapping in service.get("ports", []):
        host, container = str(mapping).split(":")
        out[int(container)] = int(host)
    return out


def test_it_runs_the_whole_stack() -> None:
    services = compose()["services"]
    from stack.services import COMPONENTS

    # Every component `boxoffice up` starts has its service.
    assert set(COMPONENTS) <= set(services)
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_published_ports_are_the_ones_the_settings_default_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in [k for k in os.environ if k.startswith("BOXOFFICE_")]:
        monkeypatch.delenv(key)
    defaults = Settings()
    services = compose()["services"]
    assert host_ports(services["api"]) == {defaults.http_port: defaults.http_port}
    assert host_ports(services["postgres"]) == {5432: defaults.pg_port}
    kafka_port = int(defaults.kafka_bootstrap.rsplit(":", 1)[1])
    assert host_ports(services["kafka"]) == {kafka_port: kafka_port}
    assert (
        f"EXTERNAL://127.0.0.1:{kafka_port}"
        in (services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"])
    )


def test_app_variables_are_real_settings_and_agree_with_the_database() -> None:
    services = compose()["services"]
    fields = set(Settings.model_fields)
    for name in APP_SERVICES:
        env = services[name]["environment"]
        for key in env:
            assert key.startswith("BOXOFFICE_"), key
            assert key.removeprefix("BOXOFFICE_").lower() in fields, key
        # Every value must be one the settings accept.
        Settings(**{k.removeprefix("BOXOFFICE_").lower(): v for k, v in env.items()})
    pg = services["postgres"]["environment"]
    app_env = services["api"]["environment"]
    assert pg["POSTGRES_USER"] == app_env["BOXOFFICE_PG_USER"]
    assert pg["POSTGRES_PASSWORD"] == app_env["BOXOFFICE_PG_PASSWORD"]
    assert pg["POSTGRES_DB"] == app_env["BOXOFFICE_PG_DATABASE"]
    internal = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"INTERNAL://{app_env['BOXOFFICE_KAFKA_BOOTSTRAP']}" in internal


def test_every_app_service_requires_the_token_secret() -> None:
    # `${VAR:?message}`: compose refuses to start without it, so no container signs tokens
    # with a key anyone could know.
    services = compose()["services"]
    for name in APP_SERVICES:
        secret = str(services[name]["environment"]["BOXOFFICE_TOKEN_SECRET"])
        assert secret.startswith("${BOXOFFICE_TOKEN_SECRET:?"), name


def test_every_long_running_service_is_restarted_when_it_dies() -> None:
    from stack.services import PROCESSES

    services = compose()["services"]
    for name in PROCESSES:
        assert services[name]["restart"] == "unless-stopped", name
