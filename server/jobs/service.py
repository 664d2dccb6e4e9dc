"""Job rules: one active training per project (enforced by a partial unique index),
enqueue only after commit, cancellation; asking workers to prefill a project's views."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.db.base import utcnow
from server.db.models import Job, Project
from server.db.session import after_commit
from server.errors import BadRequest, found
from server.jobs import repository
from server.jobs.queue import JobQueue, PrefillThrottle
from xmodel_contracts.names import JobStatus
from xmodel_contracts.training_defaults import caches_trunk
from xmodel_contracts.training_settings import check_training_settings

log = logging.getLogger(__name__)


def prefill_sender(
    queue: JobQueue, project: Project, throttle: PrefillThrottle | None = None
) -> Callable[[], None] | None:
    """A function that asks a worker to compute the project's missing trunk views ahead of its
    next job (through ``throttle`` when given), or None when its jobs use no cached views.
    Call it once what the worker should see is committed. Best effort: a prefill that is
    never sent only leaves the views to the next job."""
    if not caches_trunk(project.task.get("kind", ""), project.backbone, project.training or {}):
        return None
    project_id = project.id

    def send() -> None:
        try:
            queue.prefill(project_id)
        except Exception as exc:  # the broker is down: the request that asked succeeded
            log.warning("project %s: could not ask for a prefill of its views: %s", project_id, exc)

    if throttle is None:
        return send
    return lambda: throttle.request(project_id, send)


def get_job(session: Session, job_id: int) -> Job:
    return found(repository.get(session, job_id), "job")


def request_training(
    session: Session,
    queue: JobQueue,
    project: Project,
    overrides: dict[str, Any] | None,
    token_id: int | None,
) -> tuple[Job, bool]:
    """Create a queued training job, or return the project's queued/running one.

    Returns ``(job, created)``. Race-free: a concurrent insert hits the partial unique index
    and this call answers with the job that won."""
    existing = repository.active_training(session, project.id)
    if existing is not None:
        return existing, False
    params = {**(project.training or {}), **(overrides or {})}
    try:  # the worker validates with the same schema: refuse now what it would refuse later
        check_training_settings(params)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise BadRequest(
            f"the project's training settings cannot be run ({problems}); "
            "correct them with PATCH /projects/{id}"
        ) from exc
    job = Job(
        project_id=project.id,
        kind="train",
        status=JobStatus.QUEUED,
        params=params,
        created_by_token_id=token_id,
    )
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        existing = repository.active_training(session, project.id)
        if existing is None:
            raise
        return existing, False
    job_id = job.id
    after_commit(session, lambda: queue.enqueue(job_id))
    return job, True


def cancel_job(session: Session, job: Job) -> Job:
    """A queued job is cancelled at once; a running one is flagged for the worker to stop.
    Finished jobs are left as they are."""
    if not repository.cancel_if_queued(session, job.id, utcnow()):
        repository.request_cancel_if_running(session, job.id)
    session.refresh(job)
    return job
