"""SQL for jobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Result, and_, func, or_, select, update
from sqlalchemy.orm import Session

from server.db.base import utcnow
from server.db.models import Job, JobEvent
from xmodel_contracts.names import ACTIVE_JOB_STATUSES, FINAL_JOB_STATUSES, JobPhase, JobStatus


def _changed(result: Result[Any]) -> int:
    """Rows an UPDATE changed (``execute`` is typed as returning any ``Result``)."""
    return int(cast(CursorResult[Any], result).rowcount)


def _update_returning_ids(session: Session, where: ColumnElement[bool], **values: Any) -> list[int]:
    """One conditional UPDATE of the jobs matching ``where``; the ids of the rows it changed."""
    return [
        int(i)
        for i in session.scalars(
            update(Job)
            .where(where)
            .values(**values)
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        )
    ]


def get(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def active_training(session: Session, project_id: int) -> Job | None:
    return session.scalar(
        select(Job).where(
            Job.project_id == project_id, Job.kind == "train", Job.status.in_(ACTIVE_JOB_STATUSES)
        )
    )


def list_for_project(session: Session, project_id: int, *, after_id: int, limit: int) -> list[Job]:
    return list(
        session.scalars(
            select(Job)
            .where(Job.project_id == project_id, Job.id > after_id)
            .order_by(Job.id)
            .limit(limit)
        )
    )


def cancel_if_queued(session: Session, job_id: int, now: datetime) -> bool:
    """Conditional update, so a worker claiming the job at the same moment wins cleanly."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(status=JobStatus.CANCELLED, cancel_requested=True, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    return _changed(result) == 1


def request_cancel_if_running(session: Session, job_id: int) -> bool:
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
        .values(cancel_requested=True)
        .execution_options(synchronize_session=False)
    )
    return _changed(result) == 1


# ---- the worker's side: claim, heartbeat, progress, finish, requeue -----------------------
# Every write below is conditional on the row still being ours (``lease_owner``) and
# ``running``, so a worker that lost its lease (the reaper gave the job to another) can never
# overwrite the state the new owner writes.


def claim(
    session: Session, job_id: int, owner: str, now: datetime, lease_expires_at: datetime
) -> Job | None:
    """queued → running, or running with an expired lease → running (a dead worker's job).

    Returns the claimed row (``attempts`` already counts this attempt), or None when the job
    is not claimable (finished, cancelled, or held by a live worker)."""
    claimable = or_(
        Job.status == JobStatus.QUEUED,
        and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now),
    )
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.cancel_requested.is_(False), claimable)
        .values(
            status=JobStatus.RUNNING,
            lease_owner=owner,
            lease_expires_at=lease_expires_at,
            heartbeat_at=now,
            attempts=Job.attempts + 1,
            phase=JobPhase.LOADING,
            error=None,
            started_at=func.coalesce(Job.started_at, now),
        )
        .execution_options(synchronize_session=False)
    )
    if _changed(result) != 1:
        return None
    job = session.get(Job, job_id)
    if job is not None:
        session.refresh(job)
        previous = job.attempts - 1
        if previous >= 1 and not _has_event(session, job_id, previous):
            # nobody reported how the previous attempt ended: its worker died silently
            add_event(session, job_id, previous, "lost", LOST_REASON, now)
    return job


LOST_REASON = "its worker stopped answering (no heartbeat before the lease expired)"


def add_event(
    session: Session, job_id: int, attempt: int, kind: str, reason: str, now: datetime
) -> None:
    session.add(
        JobEvent(job_id=job_id, attempt=attempt, kind=kind, reason=reason[:4000], created_at=now)
    )
    session.flush()


def _has_event(session: Session, job_id: int, attempt: int) -> bool:
    found = session.scalar(
        select(JobEvent.id).where(JobEvent.job_id == job_id, JobEvent.attempt == attempt).limit(1)
    )
    return found is not None


def events_for(session: Session, job_ids: list[int]) -> dict[int, list[JobEvent]]:
    """Each job's events in the order they happened."""
    out: dict[int, list[JobEvent]] = {job_id: [] for job_id in job_ids}
    if job_ids:
        rows = session.scalars(
            select(JobEvent).where(JobEvent.job_id.in_(job_ids)).order_by(JobEvent.id)
        )
        for event in rows:
            out[event.job_id].append(event)
    return out


def _attempt(session: Session, job_id: int) -> int:
    return int(session.scalar(select(Job.attempts).where(Job.id == job_id)) or 0)


def _owned(job_id: int, owner: str) -> ColumnElement[bool]:
    return and_(Job.id == job_id, Job.lease_owner == owner, Job.status == JobStatus.RUNNING)


def heartbeat(
    session: Session,
    job_id: int,
    owner: str,
    now: datetime,
    lease_expires_at: datetime,
    **progress: Any,
) -> bool | None:
    """Extend the lease (and write any ``progress`` columns: phase, progress_step,
    progress_total, metrics). Returns ``cancel_requested``, or None when the lease was lost."""
    row = session.execute(
        update(Job)
        .where(_owned(job_id, owner))
        .values(heartbeat_at=now, lease_expires_at=lease_expires_at, **progress)
        .returning(Job.cancel_requested)
        .execution_options(synchronize_session=False)
    ).first()
    return None if row is None else bool(row[0])


def finish(
    session: Session,
    job_id: int,
    owner: str,
    status: JobStatus,
    now: datetime,
    *,
    error: str | None = None,
    model_id: int | None = None,
    metrics: dict[str, Any] | None = None,
    phase: JobPhase | None = None,
) -> bool:
    """running → succeeded / failed / cancelled, only while this worker owns the row."""
    if status not in FINAL_JOB_STATUSES:
        raise ValueError(f"not a final status: {status!r}")
    values: dict[str, Any] = {
        "status": status,
        "finished_at": now,
        "error": error,
        "lease_expires_at": None,
        "phase": phase or status,
    }
    if model_id is not None:
        values["model_id"] = model_id
    if metrics is not None:
        values["metrics"] = metrics
    result = session.execute(
        update(Job)
        .where(_owned(job_id, owner))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if _changed(result) == 1 and status == JobStatus.FAILED:
        add_event(session, job_id, _attempt(session, job_id), "failed", error or "failed", now)
    return _changed(result) == 1


def release(session: Session, job_id: int, owner: str, error: str) -> bool:
    """running → queued (an infrastructure error; the task will be retried)."""
    result = session.execute(
        update(Job)
        .where(_owned(job_id, owner))
        .values(
            status=JobStatus.QUEUED,
            lease_owner=None,
            lease_expires_at=None,
            error=error,
            phase=JobPhase.RETRYING,
            sent_at=utcnow(),  # the Celery retry sends the message again
        )
        .execution_options(synchronize_session=False)
    )
    if _changed(result) == 1:
        add_event(session, job_id, _attempt(session, job_id), "retry", error, utcnow())
    return _changed(result) == 1


@dataclass
class ReapResult:
    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    resent: list[int] = field(default_factory=list)  # still queued, message sent again


def requeue_expired(session: Session, now: datetime, max_attempts: int = 3) -> ReapResult:
    """Jobs whose worker died (running, lease expired): back to queued while attempts remain,
    else failed with a clear error; cancelled if a cancel was asked for. Each row moves with a
    conditional UPDATE, so two reapers never both requeue a job. The caller sends
    ``training.run`` for ``requeued`` after commit."""
    expired = and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
    out = ReapResult()
    out.cancelled = _update_returning_ids(
        session,
        and_(expired, Job.cancel_requested.is_(True)),
        status=JobStatus.CANCELLED,
        finished_at=now,
        lease_expires_at=None,
        phase=JobPhase.CANCELLED,
        error="cancelled; its worker stopped answering",
    )
    out.failed = _update_returning_ids(
        session,
        and_(expired, Job.attempts >= max_attempts),
        status=JobStatus.FAILED,
        finished_at=now,
        lease_expires_at=None,
        phase=JobPhase.FAILED,
        error=f"worker lost {max_attempts} times (lease expired without a heartbeat); giving up",
    )
    out.requeued = _update_returning_ids(
        session,
        expired,
        status=JobStatus.QUEUED,
        lease_owner=None,
        lease_expires_at=None,
        phase=JobPhase.REQUEUED,
        error="worker stopped answering; requeued",
        sent_at=now,  # the caller sends it after commit
    )
    for job_id in out.failed + out.requeued:
        attempt = _attempt(session, job_id)
        if not _has_event(session, job_id, attempt):
            add_event(session, job_id, attempt, "lost", LOST_REASON, now)
    return out


def mark_stale_queued_for_resend(
    session: Session, now: datetime, older_than: datetime
) -> list[int]:
    """Queued jobs whose message was last sent before ``older_than`` (or never recorded):
    their message may be lost. Stamps ``sent_at = now`` with a conditional UPDATE, so two
    reapers never both re-send one job in the same period. The caller sends each after
    commit; a duplicate message is harmless (the claim is conditional)."""
    stale = and_(
        Job.status == JobStatus.QUEUED,
        Job.cancel_requested.is_(False),
        or_(Job.sent_at.is_(None), Job.sent_at < older_than),
    )
    return _update_returning_ids(session, stale, sent_at=now)


def count_by_status(session: Session) -> dict[str, int]:
    """Every job by status (the operator's view, all projects)."""
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
    return {str(status): int(count) for status, count in rows}


def oldest_queued_created_at(session: Session) -> datetime | None:
    return session.scalar(select(func.min(Job.created_at)).where(Job.status == JobStatus.QUEUED))
