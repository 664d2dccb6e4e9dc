"""FastAPI dependencies: the session, the authenticated caller, and the project a route
acts on, loaded only when the caller may reach it (``ProjectDep``; ``OwnerProjectDep`` also
needs an owner token). A route that takes one of these never checks access by hand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from server.auth.service import Principal, authenticate, check_project_access
from server.db.models import Project
from server.db.session import get_session
from server.ids import DbId
from server.projects.service import get_project

_bearer = HTTPBearer(auto_error=False, description="project or admin token")

SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return authenticate(session, credentials.credentials if credentials else None)


PrincipalDep = Annotated[Principal, Depends(get_principal, scope="function")]


def _project_loader(owner: bool) -> Callable[[DbId, Principal, Session], Project]:
    def load_project(project_id: DbId, principal: PrincipalDep, session: SessionDep) -> Project:
        check_project_access(principal, project_id, owner=owner)
        return get_project(session, project_id)

    return load_project


ProjectDep = Annotated[Project, Depends(_project_loader(owner=False), scope="function")]
OwnerProjectDep = Annotated[Project, Depends(_project_loader(owner=True), scope="function")]
