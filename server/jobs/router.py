"""Job routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from sqlalchemy.orm import Session

from server.auth.dependencies import OwnerProjectDep, PrincipalDep, ProjectDep, SessionDep
from server.auth.service import accessible
from server.db.models import Job
from server.errors import ERROR_RESPONSES
from server.ids import AfterId, DbId
from server.jobs import repository, service
from server.jobs.schemas import JobCreate, JobEventRead, JobRead

router = APIRouter(tags=["jobs"], responses=ERROR_RESPONSES)


def _read(session: Session, jobs: list[Job]) -> list[JobRead]:
    """Jobs with their history (one query for all of them)."""
    events = repository.events_for(session, [job.id for job in jobs])
    return [
        JobRead.model_validate(job).model_copy(
            update={"history": [JobEventRead.model_validate(e) for e in events[job.id]]}
        )
        for job in jobs
    ]


@router.post(
    "/projects/{project_id}/jobs",
    status_code=status.HTTP_201_CREATED,
    response_model=JobRead,
    responses={200: {"description": "a training job was already queued or running: that job"}},
)
def create_job(
    project_id: DbId,
    project: OwnerProjectDep,
    principal: PrincipalDep,
    session: SessionDep,
    request: Request,
    response: Response,
    body: JobCreate | None = None,
) -> JobRead:
    """Queue a training job (owner). One training per project at a time: while one is queued
    or running, this answers 200 with that job instead of creating a second."""
    overrides = (
        body.training.model_dump(mode="json", exclude_none=True) if body and body.training else None
    )
    job, created = service.request_training(
        session, request.app.state.job_queue, project, overrides, principal.token_id
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return _read(session, [job])[0]


@router.get("/projects/{project_id}/jobs", response_model=list[JobRead])
def list_jobs(
    project_id: DbId,
    project: ProjectDep,
    session: SessionDep,
    after_id: AfterId = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[JobRead]:
    jobs = repository.list_for_project(session, project_id, after_id=after_id, limit=limit)
    return _read(session, jobs)


def _load_job(
    session: SessionDep, principal: PrincipalDep, job_id: int, *, owner: bool = False
) -> Job:
    return accessible(principal, repository.get(session, job_id), "job", owner=owner)


@router.get("/jobs/{job_id}", response_model=JobRead)
def get_job(job_id: DbId, principal: PrincipalDep, session: SessionDep) -> JobRead:
    return _read(session, [_load_job(session, principal, job_id)])[0]


@router.post("/jobs/{job_id}/cancel", response_model=JobRead)
def cancel_job(job_id: DbId, principal: PrincipalDep, session: SessionDep) -> JobRead:
    """Cancel (owner): queued → cancelled now; running → ``cancel_requested`` for the worker."""
    job = _load_job(session, principal, job_id, owner=True)
    return _read(session, [service.cancel_job(session, job)])[0]
