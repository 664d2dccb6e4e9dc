"""App start-up (admin token bootstrap, auto-migrate) and the migrations matching the ORM."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import text

from server.db.base import Base
from server.db.engine import make_engine
from server.jobs.queue import RecordingJobQueue
from server.main import create_app
from server.settings import Settings

pytestmark = pytest.mark.integration


def test_generated_admin_token_printed_once_and_hashed(tmp_path, capsys) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/fresh.db", storage_dir=tmp_path / "s")
    with TestClient(create_app(settings, job_queue=RecordingJobQueue())) as client:
        printed = capsys.readouterr().err
        assert "generated admin token" in printed
        secret = printed.strip().split()[-1]
        body = {"name": "x", "task": {"kind": "classification", "classes": ["a", "b"]}}
        assert (
            client.post(
                "/projects", json=body, headers={"Authorization": f"Bearer {secret}"}
            ).status_code
            == 201
        )
    with TestClient(create_app(settings, job_queue=RecordingJobQueue())):
        assert "generated admin token" not in capsys.readouterr().err
    engine = make_engine(settings.database_url)
    with engine.connect() as connection:
        hashes = (
            connection.execute(text("SELECT token_hash FROM api_tokens WHERE role = 'admin'"))
            .scalars()
            .all()
        )
    engine.dispose()
    assert len(hashes) == 1 and secret not in hashes


def test_migrations_match_the_orm(database_url) -> None:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []
