"""Settings of an API a test runs in its own process (``TestClient``) over a database the
test session has already migrated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server.settings import Settings


def in_process_settings(
    database_url: str, storage: Path, admin_token: str, **overrides: Any
) -> Settings:
    return Settings(
        database_url=database_url,
        storage_dir=storage,
        admin_token=admin_token,
        auto_migrate=False,
        **overrides,
    )
