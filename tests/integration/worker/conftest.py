"""Fixtures: the test session's PostgreSQL database, a private Redis queue, a real worker
subprocess, and the API enqueuing through that broker. Not eager mode: the task travels
through Redis to another process."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from worker_helpers import REDIS_URL, Client, WorkerProcess, make_client, purge, worker_env


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


@pytest.fixture(scope="module")
def client(pg_setup: dict) -> Iterator[Client]:
    yield from make_client(
        pg_setup["database_url"], pg_setup["storage"], pg_setup["broker_url"], pg_setup["queue"]
    )


@pytest.fixture
def own_workers(pg_setup: dict) -> Iterator[list[WorkerProcess]]:
    """Worker processes a test starts itself (append them); stopped when it ends."""
    started: list[WorkerProcess] = []
    yield started
    for process in started:
        process.stop()
