"""Fixtures: the test session's PostgreSQL database, a private Redis queue, a real worker
subprocess, and the API enqueuing through that broker. Not eager mode: the task travels
through Redis to another process."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from worker_helpers import ADMIN_TOKEN, Client, WorkerProcess, worker_env

from server.db.engine import make_engine
from server.main import create_app
from server.settings import Settings

REDIS_URL = "redis://127.0.0.1:6379/0"


def purge(broker_url: str, queue: str) -> None:
    import celery

    app = celery.Celery(broker=broker_url)
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)
    app.close()


@pytest.fixture(scope="module")
def pg_setup(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    queue = f"xm-test-{secrets.token_hex(4)}"  # a private queue: no stale messages from others
    purge(REDIS_URL, queue)
    storage = tmp_path_factory.mktemp("storage")
    return {
        "database_url": postgres_url,
        "storage": storage,
        "broker_url": REDIS_URL,
        "queue": queue,
        "logs": tmp_path_factory.mktemp("logs"),
    }


@pytest.fixture(scope="module")
def worker(pg_setup: dict) -> Iterator[WorkerProcess]:
    env = worker_env(
        pg_setup["database_url"], pg_setup["storage"], pg_setup["broker_url"], pg_setup["queue"]
    )
    process = WorkerProcess(env, pg_setup["logs"]).start()
    yield process
    process.stop()


def make_client(database_url: str, storage: Path, broker_url: str, queue: str) -> Iterator[Client]:
    settings = Settings(
        database_url=database_url,
        storage_dir=storage,
        admin_token=ADMIN_TOKEN,
        auto_migrate=False,
        broker_url=broker_url,
        broker_queue=queue,
    )
    engine = make_engine(database_url)
    with TestClient(create_app(settings)) as http:
        yield Client(http, engine)
    engine.dispose()


@pytest.fixture(scope="module")
def client(pg_setup: dict) -> Iterator[Client]:
    yield from make_client(
        pg_setup["database_url"], pg_setup["storage"], pg_setup["broker_url"], pg_setup["queue"]
    )
