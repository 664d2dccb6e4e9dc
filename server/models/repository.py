"""SQL for model versions."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from server.db.models import ItemScore, ModelVersion


def get(session: Session, model_id: int) -> ModelVersion | None:
    return session.get(ModelVersion, model_id)


def list_for_project(session: Session, project_id: int) -> list[ModelVersion]:
    return list(
        session.scalars(
            select(ModelVersion)
            .where(ModelVersion.project_id == project_id)
            .order_by(ModelVersion.version)
        )
    )


def next_version(session: Session, project_id: int) -> int:
    current = session.scalar(
        select(func.max(ModelVersion.version)).where(ModelVersion.project_id == project_id)
    )
    return int(current or 0) + 1


def add(session: Session, model: ModelVersion) -> ModelVersion:
    session.add(model)
    session.flush()
    return model


def activate(session: Session, model: ModelVersion) -> None:
    """Make ``model`` the project's active one (call after its scores are all written)."""
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.project_id == model.project_id, ModelVersion.is_active)
        .values(is_active=False)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.id == model.id)
        .values(is_active=True)
        .execution_options(synchronize_session=False)
    )
    session.refresh(model)


def for_job(session: Session, job_id: int) -> ModelVersion | None:
    """The model a training job created (a re-run after a crash reuses it)."""
    return session.scalar(select(ModelVersion).where(ModelVersion.job_id == job_id))


def delete_inactive_for_job(session: Session, job_id: int) -> int:
    """Remove a cancelled or failed job's unfinished model (its scores go with it)."""
    ids = list(
        session.scalars(
            select(ModelVersion.id).where(
                ModelVersion.job_id == job_id, ModelVersion.is_active.is_(False)
            )
        )
    )
    if ids:
        session.execute(delete(ItemScore).where(ItemScore.model_id.in_(ids)))
        session.execute(delete(ModelVersion).where(ModelVersion.id.in_(ids)))
    return len(ids)
