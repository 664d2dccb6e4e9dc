"""``DELETE /projects/{id}``: the project and everything it holds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from server.auth.dependencies import OwnerProjectDep, SessionDep
from server.db.session import run_in_transaction
from server.deletion import service
from server.deletion.schemas import ProjectDeleted
from server.errors import ERROR_RESPONSES
from server.ids import DbId
from server.jobs import repository as jobs_repository
from server.projects.service import get_project

router = APIRouter(tags=["projects"], responses=ERROR_RESPONSES)


@router.delete("/projects/{project_id}", response_model=ProjectDeleted)
def delete_project(
    project_id: DbId,
    project: OwnerProjectDep,
    session: SessionDep,
    request: Request,
    confirm: Annotated[str | None, Query(description="the project's name")] = None,
) -> ProjectDeleted:
    """Delete a project (admin or its owner) with its items, labels and their history, leases,
    jobs, models, scores and tokens, and the stored images no other project references.
    A queued or running training job is cancelled first. Pass ``confirm=<project name>``."""
    service.check_confirmation(project, confirm)
    session.commit()  # end the read; the cancel below commits on its own
    cancelled = None
    for tx in run_in_transaction(request.app.state.session_factory):
        cancelled = service.stop_training(tx, project_id)
    if cancelled is not None:
        job_id = cancelled.id

        def status() -> str | None:
            found = None
            for tx in run_in_transaction(request.app.state.session_factory):
                job = jobs_repository.get(tx, job_id)
                found = job.status if job else None
            return found

        service.wait_until_stopped(status)
    project = get_project(session, project_id)  # again: the commit above ended the read
    return service.delete_project(
        session,
        request.app.state.image_store,
        request.app.state.artefacts,
        project,
        cancelled,
    )
