"""The embedded mode: SQLite database, kombu's SQLAlchemy transport on a SQLite file as the
broker (no server), the API and a worker process sharing both."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from worker_helpers import Client, WorkerProcess, finished, make_client, worker_env

from server.db.migrate import upgrade_to_head

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, WorkerProcess]]:
    root = tmp_path_factory.mktemp("embedded")
    database_url = f"sqlite:///{root / 'xmodel.db'}"
    broker_url = f"sqla+sqlite:///{root / 'broker.sqlite'}"
    upgrade_to_head(database_url)
    process = WorkerProcess(
        worker_env(database_url, root / "storage", broker_url, "xmodel"), root
    ).start()
    try:
        for client in make_client(database_url, root / "storage", broker_url, "xmodel"):
            yield client, process
    finally:
        process.stop()


def test_embedded_loop(embedded: tuple[Client, WorkerProcess]) -> None:
    client, worker = embedded
    project_id, owner, ids = client.project(
        {"steps": 15, "batch_size": 8, "unlabelled_batch_size": 8}
    )
    job_id = client.train(project_id, owner)
    job = client.wait_job(job_id, owner, finished, timeout=180, worker=worker)
    assert job["status"] == "succeeded", (job, worker.log_text()[-4000:])
    assert client.counts(project_id) == {
        "models": 1,
        "active": 1,
        "jobs": 1,
        "scores": 12,
        "scored_items": 12,
    }
    response = client.http.get(f"/projects/{project_id}/suggest?k=3", headers=owner)
    assert response.status_code == 200 and not response.json()["cold_start"]
    assert {i["item_id"] for i in response.json()["items"]} <= set(ids[12:])
    models = client.http.get(f"/projects/{project_id}/models", headers=owner).json()
    assert len(models) == 1 and models[0]["is_active"]
