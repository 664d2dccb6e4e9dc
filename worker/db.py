"""One engine per worker process, built on first use (never inherited across a fork)."""

from __future__ import annotations

import os

from sqlalchemy.orm import Session, sessionmaker

from server.db.engine import make_engine
from worker.settings import server_settings

_factory: tuple[int, sessionmaker[Session]] | None = None


def session_factory() -> sessionmaker[Session]:
    """This process's sessionmaker; a forked child builds its own engine."""
    global _factory
    if _factory is None or _factory[0] != os.getpid():
        settings = server_settings()
        engine = make_engine(
            settings.database_url, sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms
        )
        _factory = (os.getpid(), sessionmaker(engine, expire_on_commit=False))
    return _factory[1]
