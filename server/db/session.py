"""Request-scoped sessions: commit on success, roll back on error, then run the hooks.

Services never commit. They may register ``after_commit`` hooks (enqueue a job) and
``after_rollback`` hooks (delete image files written for a request that failed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
Hook = Callable[[], None]


def after_commit(session: Session, hook: Hook) -> None:
    session.info.setdefault("after_commit", []).append(hook)


def after_rollback(session: Session, hook: Hook) -> None:
    session.info.setdefault("after_rollback", []).append(hook)


def _run_hooks(session: Session, key: str) -> None:
    for hook in session.info.pop(key, []):
        try:
            hook()
        except Exception:  # a failed hook must not undo a committed answer
            log.exception("%s hook failed", key)


def run_in_transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Yield a session; commit if the caller finished cleanly, else roll back."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        session.info.pop("after_commit", None)
        _run_hooks(session, "after_rollback")
        session.close()
        raise
    session.info.pop("after_rollback", None)
    _run_hooks(session, "after_commit")
    session.close()


def get_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency (use with ``scope="function"`` so the commit precedes the answer)."""
    yield from run_in_transaction(request.app.state.session_factory)
