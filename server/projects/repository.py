"""SQL for projects."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.db.models import Item, ModelVersion, Project


def get(session: Session, project_id: int) -> Project | None:
    return session.get(Project, project_id)


def list_all(session: Session, only_id: int | None = None) -> list[Project]:
    query = select(Project).order_by(Project.id)
    if only_id is not None:
        query = query.where(Project.id == only_id)
    return list(session.scalars(query))


def add(session: Session, project: Project) -> Project:
    session.add(project)
    session.flush()
    return project


def item_counts(session: Session, project_id: int) -> tuple[int, int]:
    total, labelled = session.execute(
        select(func.count(Item.id), func.count(Item.labelled_at)).where(
            Item.project_id == project_id
        )
    ).one()
    return int(total), int(labelled)


def labelled_count(session: Session, project_id: int) -> int:
    query = select(func.count(Item.id)).where(
        Item.project_id == project_id, Item.labelled_at.is_not(None)
    )
    return int(session.scalar(query) or 0)


def active_model(session: Session, project_id: int) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(ModelVersion.project_id == project_id, ModelVersion.is_active)
    )
