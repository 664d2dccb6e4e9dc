"""Token rules: creation (secret shown once, hash stored), lookup, revocation, admin bootstrap."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import Protocol, TypeVar

from sqlalchemy.orm import Session

from server.auth import repository
from server.db.base import utcnow
from server.db.models import ApiToken
from server.errors import Conflict, Forbidden, NotFound, Unauthorized, found

log = logging.getLogger(__name__)
TOKEN_PREFIX = "xm_"


class InProject(Protocol):
    """A row that belongs to one project (an item, a job, a model version)."""

    @property
    def project_id(self) -> int: ...


T = TypeVar("T", bound=InProject)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token id, its role, and its project (None for the admin)."""

    token_id: int
    role: str
    project_id: int | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def authenticate(session: Session, secret: str | None) -> Principal:
    if not secret:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    token = repository.get_by_hash(session, hash_token(secret))
    if token is None:
        raise Unauthorized("invalid token")
    if token.revoked_at is not None:
        raise Unauthorized("token has been revoked")
    return Principal(token_id=token.id, role=token.role, project_id=token.project_id)


def check_project_access(principal: Principal, project_id: int, *, owner: bool = False) -> None:
    """Admins reach every project; a project token only its own (others look absent: 404).
    ``owner=True`` additionally requires the owner role (403 for annotators)."""
    if principal.is_admin:
        return
    if principal.project_id != project_id:
        raise NotFound("project not found")
    if owner and principal.role != "owner":
        raise Forbidden("this action needs an owner token of the project")


def accessible(principal: Principal, resource: T | None, what: str, *, owner: bool = False) -> T:
    """``resource`` (anything with a ``project_id``) if the caller may reach its project.

    Missing resources and other projects' resources both answer ``404 <what> not found``, so a
    token cannot probe which ids exist elsewhere; ``owner=True`` as in ``check_project_access``."""
    resource = found(resource, what)
    try:
        check_project_access(principal, resource.project_id, owner=owner)
    except NotFound:
        raise NotFound(f"{what} not found") from None
    return resource


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("this action needs the admin token")


def create_project_token(
    session: Session, project_id: int, role: str, name: str, created_by: Principal
) -> tuple[ApiToken, str]:
    secret = new_secret()
    token = repository.add(
        session,
        ApiToken(
            project_id=project_id,
            role=role,
            name=name,
            token_hash=hash_token(secret),
            prefix=secret[:10],
            created_by_token_id=created_by.token_id,
        ),
    )
    return token, secret


def revoke_token(session: Session, project_id: int, token_id: int) -> ApiToken:
    token = found(repository.get_in_project(session, project_id, token_id), "token")
    if token.revoked_at is None:
        if token.role == "owner" and not repository.other_live_owners(
            session, project_id, token.id, lock=session.get_bind().dialect.name == "postgresql"
        ):
            raise Conflict(
                "this is the project's last owner token; create another owner token "
                "before revoking it, or nobody could manage the project"
            )
        token.revoked_at = utcnow()
    return token


def ensure_admin_token(session: Session, configured: str | None) -> str | None:
    """Make sure an admin token exists. Returns a newly generated secret (to print once)."""
    if configured:
        digest = hash_token(configured)
        if repository.get_by_hash(session, digest) is None:
            repository.add(
                session,
                ApiToken(
                    project_id=None,
                    role="admin",
                    name="admin (settings)",
                    token_hash=digest,
                    prefix=configured[:10],
                ),
            )
        return None
    if repository.has_admin(session):
        return None
    secret = new_secret()
    repository.add(
        session,
        ApiToken(
            project_id=None,
            role="admin",
            name="admin (generated)",
            token_hash=hash_token(secret),
            prefix=secret[:10],
        ),
    )
    return secret
