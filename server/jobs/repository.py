"""SQL for jobs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.db.models import ACTIVE_JOB_STATUSES, Job


def get(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def active_training(session: Session, project_id: int) -> Job | None:
    return session.scalar(select(Job).where(
        Job.project_id == project_id, Job.kind == "train", Job.status.in_(ACTIVE_JOB_STATUSES)
    ))


def list_for_project(session: Session, project_id: int, *, after_id: int, limit: int) -> list[Job]:
    return list(session.scalars(
        select(Job).where(Job.project_id == project_id, Job.id > after_id).order_by(Job.id).limit(limit)
    ))


def cancel_if_queued(session: Session, job_id: int, now: datetime) -> bool:
    """Conditional update, so a worker claiming the job at the same moment wins cleanly."""
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.status == "queued")
        .values(status="cancelled", cancel_requested=True, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def request_cancel_if_running(session: Session, job_id: int) -> bool:
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.status == "running")
        .values(cancel_requested=True).execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
