"""SQL for deleting a project. Rows go by the schema's ``ON DELETE CASCADE`` from
``projects`` (items, label revisions, leases, scores, jobs, models, tokens)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, delete, exists, func, select
from sqlalchemy.orm import Session, aliased

from server.db.models import Item, ItemLease, ItemScore, Job, LabelRevision, ModelVersion, Project

CHUNK = 1000


def counts(session: Session, project_id: int) -> dict[str, int]:
    """What the project holds, for the answer."""
    item_ids = select(Item.id).where(Item.project_id == project_id)
    model_ids = select(ModelVersion.id).where(ModelVersion.project_id == project_id)

    def count(query: Select[Any]) -> int:
        return int(session.scalar(query) or 0)

    return {
        "items": count(select(func.count()).select_from(Item).where(Item.project_id == project_id)),
        "label_revisions": count(
            select(func.count())
            .select_from(LabelRevision)
            .where(LabelRevision.item_id.in_(item_ids))
        ),
        "leases": count(
            select(func.count()).select_from(ItemLease).where(ItemLease.project_id == project_id)
        ),
        "jobs": count(select(func.count()).select_from(Job).where(Job.project_id == project_id)),
        "models": count(
            select(func.count())
            .select_from(ModelVersion)
            .where(ModelVersion.project_id == project_id)
        ),
        "scores": count(
            select(func.count()).select_from(ItemScore).where(ItemScore.model_id.in_(model_ids))
        ),
    }


def job_ids(session: Session, project_id: int) -> list[int]:
    return [int(i) for i in session.scalars(select(Job.id).where(Job.project_id == project_id))]


def images_only_here(session: Session, project_id: int) -> list[str]:
    """sha256 of the project's images that no other project has."""
    other = aliased(Item)
    shared = exists().where(other.sha256 == Item.sha256, other.project_id != project_id)
    return list(session.scalars(select(Item.sha256).where(Item.project_id == project_id, ~shared)))


def shas_in_use(session: Session, shas: Iterable[str]) -> set[str]:
    """Those of ``shas`` some item references now (checked again after the commit)."""
    values = list(shas)
    used: set[str] = set()
    for start in range(0, len(values), CHUNK):
        chunk = values[start : start + CHUNK]
        used.update(session.scalars(select(Item.sha256).where(Item.sha256.in_(chunk)).distinct()))
    return used


def delete_project(session: Session, project_id: int) -> None:
    session.execute(
        delete(Project).where(Project.id == project_id).execution_options(synchronize_session=False)
    )
    session.expunge_all()
