"""Project routes. Only the admin creates projects; owners edit theirs."""

from __future__ import annotations

from fastapi import APIRouter, status

from server.auth.dependencies import OwnerProjectDep, PrincipalDep, ProjectDep, SessionDep
from server.auth.service import require_admin
from server.errors import ERROR_RESPONSES
from server.ids import DbId
from server.projects import repository, service
from server.projects.schemas import (
    ProjectCreate,
    ProjectCreated,
    ProjectRead,
    ProjectStats,
    ProjectUpdate,
)

router = APIRouter(tags=["projects"], responses=ERROR_RESPONSES)


@router.post("/projects", status_code=status.HTTP_201_CREATED, response_model=ProjectCreated)
def create_project(
    body: ProjectCreate, principal: PrincipalDep, session: SessionDep
) -> ProjectCreated:
    """Create a project (admin token). The answer carries a first owner token, shown once."""
    require_admin(principal)
    project, secret = service.create_project(session, body, principal)
    return ProjectCreated(**ProjectRead.model_validate(project).model_dump(), owner_token=secret)


@router.get("/projects", response_model=list[ProjectRead])
def list_projects(principal: PrincipalDep, session: SessionDep) -> list[ProjectRead]:
    """All projects for the admin; a project token sees its own project."""
    only = None if principal.is_admin else principal.project_id
    return [ProjectRead.model_validate(p) for p in repository.list_all(session, only)]


@router.get("/projects/{project_id}", response_model=ProjectRead)
def get_project(project_id: DbId, project: ProjectDep, session: SessionDep) -> ProjectRead:
    return ProjectRead.model_validate(project)


@router.patch("/projects/{project_id}", response_model=ProjectRead)
def update_project(
    project_id: DbId, project: OwnerProjectDep, body: ProjectUpdate, session: SessionDep
) -> ProjectRead:
    return ProjectRead.model_validate(service.update_project(session, project, body))


@router.get("/projects/{project_id}/stats", response_model=ProjectStats)
def project_stats(project_id: DbId, project: ProjectDep, session: SessionDep) -> ProjectStats:
    total, labelled = repository.item_counts(session, project_id)
    model = repository.active_model(session, project_id)
    return ProjectStats(items=total, labelled=labelled, active_model_id=model.id if model else None)
