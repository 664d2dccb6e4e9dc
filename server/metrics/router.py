"""Learning-curve route."""

from __future__ import annotations

from fastapi import APIRouter

from server.auth.dependencies import PrincipalDep, SessionDep
from server.auth.service import check_project_access
from server.errors import ERROR_RESPONSES
from server.metrics.schemas import CurvePoint, LearningCurve
from server.models import repository as models_repository
from server.projects import repository as projects_repository
from server.projects.service import get_project

router = APIRouter(tags=["metrics"], responses=ERROR_RESPONSES)


@router.get("/projects/{project_id}/metrics", response_model=LearningCurve)
def learning_curve(project_id: int, principal: PrincipalDep, session: SessionDep) -> LearningCurve:
    """Validation metrics of every model version against the labels it was trained on."""
    check_project_access(principal, project_id)
    get_project(session, project_id)
    points = [CurvePoint(model_id=m.id, version=m.version, labelled_count=m.labelled_count,
                         metrics=m.metrics or {}, created_at=m.created_at, is_active=m.is_active)
              for m in models_repository.list_for_project(session, project_id)]
    return LearningCurve(project_id=project_id, labelled_now=projects_repository.labelled_count(session, project_id),
                         points=points)
