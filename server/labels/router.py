"""Label routes: set, clear, history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request

from server.auth.dependencies import PrincipalDep, SessionDep
from server.errors import ERROR_RESPONSES
from server.ids import DbId
from server.items import repository as items_repository
from server.items.router import load_item
from server.items.schemas import ItemRead
from server.labels import service
from server.labels.schemas import LABEL_EXAMPLES, LabelResult, LabelRevisionRead
from server.projects.service import get_project

router = APIRouter(tags=["labels"], responses=ERROR_RESPONSES)


@router.put("/items/{item_id}/label", response_model=LabelResult)
def set_label(
    item_id: DbId,
    principal: PrincipalDep,
    session: SessionDep,
    request: Request,
    label: Annotated[dict[str, Any], Body(openapi_examples=LABEL_EXAMPLES)],
) -> LabelResult:
    """Set an item's label. Shapes: classification ``{"class": "cat"}``; regression
    ``{"values": {"age": 31}}``; keypoints ``{"points": [[x, y], ...]}`` (or ``[x, y, v]``)
    in pixels of the original image, one point per task point, in task order. Answers 400
    ``invalid_label`` with the reason when the label does not fit the task."""
    item = load_item(session, principal, item_id)
    project = get_project(session, item.project_id)
    service.apply_label(session, project, item, label, principal.token_id)
    job = service.maybe_retrain(session, request.app.state.job_queue, project, principal.token_id)
    return LabelResult(item=ItemRead.model_validate(item), retrain_job_id=job.id if job else None)


@router.delete("/items/{item_id}/label", response_model=ItemRead)
def clear_label(item_id: DbId, principal: PrincipalDep, session: SessionDep) -> ItemRead:
    item = load_item(session, principal, item_id)
    return ItemRead.model_validate(service.clear_label(session, item, principal.token_id))


@router.get("/items/{item_id}/label/revisions", response_model=list[LabelRevisionRead])
def label_revisions(
    item_id: DbId, principal: PrincipalDep, session: SessionDep
) -> list[LabelRevisionRead]:
    item = load_item(session, principal, item_id)
    return [
        LabelRevisionRead.model_validate(r) for r in items_repository.revisions(session, item.id)
    ]
