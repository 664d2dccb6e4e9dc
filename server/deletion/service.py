"""Deletion rules: confirm by name, stop the project's training first, remove every row in
one transaction, and only after it commits remove the files (images no other project uses,
model artefacts, job scratch folders). A failed delete leaves rows and files as they were."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from server.db.models import Job, Project
from server.db.session import after_commit
from server.deletion import repository
from server.deletion.schemas import ProjectDeleted
from server.errors import BadRequest
from server.jobs import repository as jobs_repository
from server.jobs.service import cancel_job
from server.storage import ArtefactStore, ImageStore
from xmodel_contracts.names import JobStatus

CANCEL_WAIT_SECONDS = 20.0


def check_confirmation(project: Project, confirm: str | None) -> None:
    if confirm != project.name:
        raise BadRequest(
            f"deleting project {project.id} removes all its items, labels, models and "
            f"files; confirm by passing confirm=<the project's name> ({project.name!r})"
        )


def stop_training(session: Session, project_id: int) -> Job | None:
    """Cancel the project's queued or running training (the caller commits)."""
    job = jobs_repository.active_training(session, project_id)
    return cancel_job(session, job) if job is not None else None


def wait_until_stopped(
    read_status: Callable[[], str | None], timeout: float = CANCEL_WAIT_SECONDS
) -> None:
    """Give a running job's worker time to see the cancel and stop writing; after ``timeout``
    the delete goes ahead (the worker's writes are conditional on its row, which is gone)."""
    deadline = time.monotonic() + timeout
    while read_status() == JobStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.25)


def delete_project(
    session: Session,
    store: ImageStore,
    artefacts: ArtefactStore,
    project: Project,
    cancelled: Job | None,
) -> ProjectDeleted:
    project_id = project.id
    counts = repository.counts(session, project_id)
    jobs = repository.job_ids(session, project_id)
    candidates = repository.images_only_here(session, project_id)
    repository.delete_project(session, project_id)

    def remove_files() -> None:
        still_used = repository.shas_in_use(session, candidates)  # an upload may have raced us
        for sha in candidates:
            if sha not in still_used:
                store.delete(sha)
        artefacts.delete_prefix(f"models/{project_id}/")
        for job_id in jobs:
            artefacts.delete_prefix(f"jobs/{job_id}/")

    after_commit(session, remove_files)
    return ProjectDeleted(
        project_id=project_id,
        images_removed=len(candidates),
        cancelled_job_id=cancelled.id if cancelled else None,
        **counts,
    )
