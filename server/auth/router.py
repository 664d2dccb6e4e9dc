"""Token routes: an owner (or the admin) creates, lists and revokes a project's tokens."""

from __future__ import annotations

from fastapi import APIRouter, status

from server.auth import repository, service
from server.auth.dependencies import OwnerProjectDep, PrincipalDep, SessionDep
from server.auth.schemas import TokenCreate, TokenCreated, TokenRead
from server.errors import ERROR_RESPONSES
from server.ids import DbId

router = APIRouter(tags=["tokens"], responses=ERROR_RESPONSES)


@router.post(
    "/projects/{project_id}/tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenCreated,
)
def create_token(
    project_id: DbId,
    project: OwnerProjectDep,
    body: TokenCreate,
    principal: PrincipalDep,
    session: SessionDep,
) -> TokenCreated:
    """Create an owner or annotator token. The secret is in this answer only."""
    token, secret = service.create_project_token(
        session, project_id, body.role, body.name, principal
    )
    return TokenCreated(**TokenRead.model_validate(token).model_dump(), token=secret)


@router.get("/projects/{project_id}/tokens", response_model=list[TokenRead])
def list_tokens(project_id: DbId, project: OwnerProjectDep, session: SessionDep) -> list[TokenRead]:
    return [TokenRead.model_validate(t) for t in repository.list_for_project(session, project_id)]


@router.delete(
    "/projects/{project_id}/tokens/{token_id}",
    response_model=TokenRead,
    responses={409: {"description": "the project's last owner token cannot be revoked"}},
)
def revoke_token(
    project_id: DbId, project: OwnerProjectDep, token_id: DbId, session: SessionDep
) -> TokenRead:
    """Revoke a token: it answers 401 from now on. The last live owner token of a project
    cannot be revoked (409): create another owner token first."""
    return TokenRead.model_validate(service.revoke_token(session, project_id, token_id))
