"""SQL for model versions."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from server.db.models import ModelVersion


def get(session: Session, model_id: int) -> ModelVersion | None:
    return session.get(ModelVersion, model_id)


def list_for_project(session: Session, project_id: int) -> list[ModelVersion]:
    return list(session.scalars(
        select(ModelVersion).where(ModelVersion.project_id == project_id).order_by(ModelVersion.version)
    ))


def next_version(session: Session, project_id: int) -> int:
    current = session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.project_id == project_id))
    return int(current or 0) + 1


def add(session: Session, model: ModelVersion) -> ModelVersion:
    session.add(model)
    session.flush()
    return model


def activate(session: Session, model: ModelVersion) -> None:
    """Make ``model`` the project's active one (call after its scores are all written)."""
    session.execute(update(ModelVersion)
                    .where(ModelVersion.project_id == model.project_id, ModelVersion.is_active)
                    .values(is_active=False).execution_options(synchronize_session=False))
    session.flush()
    session.execute(update(ModelVersion).where(ModelVersion.id == model.id)
                    .values(is_active=True).execution_options(synchronize_session=False))
    session.refresh(model)
