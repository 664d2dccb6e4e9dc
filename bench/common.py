"""Small steps several benchmarks (and the test fixtures) share: a PostgreSQL admin connection,
a description of the machine, and saving a result document."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from xmodel_contracts.files import atomic_write_bytes


def pg_admin_connection(host: str, port: int) -> tuple[psycopg.Connection, str]:
    """An autocommit connection as the first user / database that answers (``XM_TEST_PG_USER``,
    then ``postgres``, then ``root``; database ``test``, then ``postgres``) and that user.
    ``RuntimeError`` listing every attempt when none does."""
    errors = []
    for user in (os.environ.get("XM_TEST_PG_USER"), "postgres", "root"):
        if not user:
            continue
        for dbname in ("test", "postgres"):
            try:
                conn = psycopg.connect(
                    host=host, port=port, user=user, dbname=dbname, autocommit=True
                )
                return conn, user
            except psycopg.OperationalError as exc:
                errors.append(f"{user}@{dbname}: {exc}")
    raise RuntimeError(f"no PostgreSQL reachable on {host}:{port}: " + "; ".join(errors))


def machine() -> dict[str, Any]:
    """Where a figure was measured."""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def save_json(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` atomically (folders made as needed) and say so."""
    atomic_write_bytes(path, json.dumps(document, indent=1).encode())
    print(f"wrote {path}")


def save_result(path: Path, document: dict[str, Any]) -> None:
    """Save a benchmark's ``document`` stamped with where and when it was measured."""
    save_json(path, document | {"machine": machine(), "date": now()})
