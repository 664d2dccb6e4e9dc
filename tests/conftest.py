"""Shared fixtures: a fresh PostgreSQL database and a SQLite file per test session, both
built by the Alembic migrations, and a real S3 server. No torch here."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from s3_test_server import S3Server, running_server, start_seaweedfs

from bench.common import pg_admin_connection

PG_HOST = os.environ.get("XM_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("XM_TEST_PG_PORT", "5432"))


def _pg_admin_connection() -> tuple[psycopg.Connection, str]:
    """Connect with autocommit as the first user/database that answers (the integration
    tests need PostgreSQL)."""
    return pg_admin_connection(PG_HOST, PG_PORT)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a new, migrated database ``xm_test_<hex>``, dropped at the end of the session."""
    from server.db.migrate import upgrade_to_head

    conn, user = _pg_admin_connection()
    name = f"xm_test_{secrets.token_hex(4)}"
    conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{name}"
    try:
        upgrade_to_head(url)
        yield url
    finally:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    from server.db.migrate import upgrade_to_head

    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'xmodel.db'}"
    upgrade_to_head(url)
    return url


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server: ``XM_TEST_S3_URL`` when set, else SeaweedFS started here."""
    running = running_server()
    if running is not None:
        yield running
        return
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh bucket name per test (the stores create it on first use)."""
    return f"xm-test-{secrets.token_hex(4)}"
