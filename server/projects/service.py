"""Project rules."""

from __future__ import annotations

from sqlalchemy.orm import Session

from server.auth.service import Principal, create_project_token
from server.db.models import Project
from server.errors import found
from server.projects import repository
from server.projects.schemas import ProjectCreate, ProjectUpdate
from xmodel_contracts.training_defaults import default_image_size


def get_project(session: Session, project_id: int) -> Project:
    return found(repository.get(session, project_id), "project")


def create_project(
    session: Session, body: ProjectCreate, creator: Principal
) -> tuple[Project, str]:
    project = repository.add(
        session,
        Project(
            name=body.name,
            task=body.task.model_dump(mode="json", exclude_none=True),
            image_size=body.image_size or default_image_size(body.task.kind),
            backbone=body.backbone,
            training=body.training.model_dump(mode="json", exclude_none=True),
            retrain_every=body.retrain_every or None,
        ),
    )
    _token, secret = create_project_token(session, project.id, "owner", "owner", creator)
    return project, secret


def update_project(session: Session, project: Project, body: ProjectUpdate) -> Project:
    if body.name is not None:
        project.name = body.name
    if body.training is not None:
        project.training = body.training.model_dump(mode="json", exclude_none=True)
    if "retrain_every" in body.model_fields_set:
        project.retrain_every = body.retrain_every or None
    session.flush()
    return project
