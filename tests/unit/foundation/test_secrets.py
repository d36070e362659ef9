"""The token signing secret: never a default, one random secret per var_dir, kept private."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import auth, errors
from api.auth import CurrentUser, TokenSigner, User
from boxoffice.settings import PROJECT_ROOT, SECRET_FILE, Settings, load_or_create_secret


@pytest.fixture(autouse=True)
def no_secret_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOXOFFICE_TOKEN_SECRET", raising=False)


def app_for(settings: Settings) -> FastAPI:
    app = FastAPI()
    errors.install(app)
    auth.install(app, settings)

    @app.get("/v1/private")
    async def private(user: CurrentUser) -> dict[str, object]:
        return {"username": user.username, "organizer": user.organizer}

    return app


def test_the_setting_has_no_default_value_and_no_secret_is_written_in_the_code() -> None:
    field = Settings.model_fields["token_secret"]
    assert field.default_factory is not None  # made per var_dir, not a constant
    # The old built-in secret, and any other literal, are gone from every module.
    for path in [*PROJECT_ROOT.glob("*/*.py"), *PROJECT_ROOT.glob("*/*/*.py")]:
        if path.parts[len(PROJECT_ROOT.parts)] in {".venv", "var", "tests", "build"}:
            continue
        assert "change-me" not in path.read_text(errors="replace"), path
    source = (PROJECT_ROOT / "boxoffice" / "settings.py").read_text()
    assert "token_secret: str = Field(default_factory=_secret_in_var_dir" in source


def test_without_the_variable_each_var_dir_gets_its_own_random_secret_kept_0600(
    tmp_path: Path,
) -> None:
    first = Settings(var_dir=tmp_path / "a")
    again = Settings(var_dir=tmp_path / "a")
    other = Settings(var_dir=tmp_path / "b")
    assert first.token_secret == again.token_secret  # created once, then reused
    assert first.token_secret != other.token_secret
    assert len(first.token_secret) >= 43  # at least 32 random bytes, base64-encoded
    path = tmp_path / "a" / SECRET_FILE
    assert path.read_text().strip() == first.token_secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert first.token_secret not in repr(first)


def test_the_variable_wins_and_an_empty_one_counts_as_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOXOFFICE_TOKEN_SECRET", "a secret from the operator, long enough")
    assert Settings(var_dir=tmp_path).token_secret == "a secret from the operator, long enough"
    assert not (tmp_path / SECRET_FILE).exists()
    monkeypatch.setenv("BOXOFFICE_TOKEN_SECRET", "")
    assert Settings(var_dir=tmp_path).token_secret == (tmp_path / SECRET_FILE).read_text().strip()


def test_processes_racing_to_create_it_all_get_the_same_one(tmp_path: Path) -> None:
    path = tmp_path / SECRET_FILE
    found: list[str] = []
    threads = [
        threading.Thread(target=lambda: found.append(load_or_create_secret(path)))
        for _ in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 16 and len(set(found)) == 1
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left


def test_a_secret_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / SECRET_FILE
    load_or_create_secret(path)
    os.chmod(path, 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        Settings(var_dir=tmp_path)


def test_a_token_signed_with_any_other_key_is_401(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    client = TestClient(app_for(settings))
    ours = TokenSigner(settings.token_secret, 60).issue(User("mallory", True)).token
    assert client.get("/v1/private", headers={"Authorization": f"Bearer {ours}"}).json() == {
        "username": "mallory",
        "organizer": True,
    }
    forged = [
        TokenSigner("change-me-in-production-boxoffice", 60).issue(User("mallory", True)).token,
        TokenSigner(Settings(var_dir=tmp_path / "elsewhere").token_secret, 60)
        .issue(User("mallory", True))
        .token,
    ]
    for token in forged:
        response = client.get("/v1/private", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
