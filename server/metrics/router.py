"""Learning-curve route."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from server.auth.dependencies import ProjectDep, SessionDep
from server.errors import ERROR_RESPONSES
from server.ids import DbId
from server.metrics.plot import learning_curve_png
from server.metrics.schemas import CurvePoint, LearningCurve
from server.models import repository as models_repository
from server.projects import repository as projects_repository

router = APIRouter(tags=["metrics"], responses=ERROR_RESPONSES)


@router.get("/projects/{project_id}/metrics", response_model=LearningCurve)
def learning_curve(project_id: DbId, project: ProjectDep, session: SessionDep) -> LearningCurve:
    """Validation metrics of every model version against the labels it was trained on."""
    points = [
        CurvePoint(
            model_id=m.id,
            version=m.version,
            labelled_count=m.labelled_count,
            metrics=m.metrics or {},
            created_at=m.created_at,
            is_active=m.is_active,
        )
        for m in models_repository.list_for_project(session, project_id)
    ]
    return LearningCurve(
        project_id=project_id,
        labelled_now=projects_repository.labelled_count(session, project_id),
        points=points,
    )


@router.get(
    "/projects/{project_id}/metrics.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "the learning curve as a PNG"}},
)
def learning_curve_picture(
    project_id: DbId,
    project: ProjectDep,
    session: SessionDep,
    metric: Annotated[
        str, Query(min_length=1, max_length=100, description="which metrics key to draw")
    ] = "val_error",
) -> Response:
    """The learning curve as a picture: ``metric`` (default the validation error) of every
    model version against the number of labels it was trained on."""
    curve = learning_curve(project_id, project, session)
    png = learning_curve_png(curve.points, metric, f"{project.name}: learning curve")
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})
