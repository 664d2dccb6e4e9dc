"""SQL for tokens."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.db.models import ApiToken, Project


def get_by_hash(session: Session, token_hash: str) -> ApiToken | None:
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))


def get_in_project(session: Session, project_id: int, token_id: int) -> ApiToken | None:
    return session.scalar(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.project_id == project_id)
    )


def list_for_project(session: Session, project_id: int) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken).where(ApiToken.project_id == project_id).order_by(ApiToken.id)
        )
    )


def other_live_owners(session: Session, project_id: int, token_id: int, *, lock: bool) -> int:
    """Owner tokens of the project that are not revoked, other than ``token_id``.

    ``lock`` takes the project's row lock first (PostgreSQL; SQLite's write transactions are
    already serial), so two owners revoking each other at once cannot both succeed."""
    if lock:
        session.execute(select(Project.id).where(Project.id == project_id).with_for_update())
    query = select(func.count(ApiToken.id)).where(
        ApiToken.project_id == project_id,
        ApiToken.role == "owner",
        ApiToken.revoked_at.is_(None),
        ApiToken.id != token_id,
    )
    return int(session.scalar(query) or 0)


def has_admin(session: Session) -> bool:
    query = select(ApiToken.id).where(ApiToken.role == "admin", ApiToken.revoked_at.is_(None))
    return session.scalar(query.limit(1)) is not None


def add(session: Session, token: ApiToken) -> ApiToken:
    session.add(token)
    session.flush()
    return token
