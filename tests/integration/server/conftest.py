"""App fixtures for the server tests, parametrised over SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from in_process_api import in_process_settings
from server_test_helpers import ADMIN_TOKEN
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from server.db.base import Base
from server.db.engine import make_engine
from server.jobs.queue import RecordingJobQueue
from server.main import create_app
from server.settings import Settings
from server.storage import FileImageStore

pytestmark = pytest.mark.integration


class CommitCheckingQueue(RecordingJobQueue):
    """Records ids and, at enqueue time, whether another connection can already see the row
    (it can only if the transaction that created it has committed)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine
        self.visible_at_enqueue: list[bool] = []

    def enqueue(self, job_id: int) -> None:
        with self.engine.connect() as connection:
            found = connection.execute(
                text("SELECT id FROM jobs WHERE id = :id"), {"id": job_id}
            ).first()
        self.visible_at_enqueue.append(found is not None)
        super().enqueue(job_id)


@dataclass
class Api:
    client: TestClient
    settings: Settings
    engine: Engine
    queue: CommitCheckingQueue
    store: FileImageStore
    backend: str

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def session(self) -> Session:
        return Session(self.engine)

    def create_project(
        self, task: dict[str, Any] | None = None, **extra: Any
    ) -> tuple[int, dict[str, str]]:
        body = {
            "name": "p",
            "task": task or {"kind": "classification", "classes": ["cat", "dog"]},
            "image_size": 16,
            "backbone": "small_cnn",
            **extra,
        }
        response = self.client.post("/projects", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        data = response.json()
        return data["id"], {"Authorization": f"Bearer {data['owner_token']}"}

    def create_token(
        self, project_id: int, owner: dict[str, str], role: str = "annotator", name: str = "a"
    ) -> tuple[int, dict[str, str]]:
        response = self.client.post(
            f"/projects/{project_id}/tokens", json={"role": role, "name": name}, headers=owner
        )
        assert response.status_code == 201, response.text
        return response.json()["id"], {"Authorization": f"Bearer {response.json()['token']}"}

    def import_zip(
        self, project_id: int, headers: dict[str, str], archive: bytes, name: str = "data.zip"
    ) -> Any:
        return self.client.post(
            f"/projects/{project_id}/items/import",
            headers=headers,
            files={"archive": (name, archive, "application/zip")},
        )

    def upload(
        self,
        project_id: int,
        headers: dict[str, str],
        files: list[tuple[str, bytes]],
        labels: list[Any] | None = None,
    ) -> Any:
        import json

        data = {"labels": json.dumps(labels)} if labels is not None else None
        return self.client.post(
            f"/projects/{project_id}/items",
            headers=headers,
            data=data,
            files=[
                ("files", (name, content, "application/octet-stream")) for name, content in files
            ],
        )


def _reset(engine: Engine) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def api(
    database_url: str, backend: str, tmp_path: Path, settings_overrides: dict[str, Any]
) -> Iterator[Api]:
    engine = make_engine(database_url)
    _reset(engine)
    settings = in_process_settings(
        database_url, tmp_path / "storage", ADMIN_TOKEN, **settings_overrides
    )
    queue = CommitCheckingQueue(engine)
    store = FileImageStore(settings.storage_dir)
    app = create_app(settings, job_queue=queue, image_store=store)
    with TestClient(app) as client:
        yield Api(
            client=client,
            settings=settings,
            engine=engine,
            queue=queue,
            store=store,
            backend=backend,
        )
    engine.dispose()
