"""Suggest and lease routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from server.auth.dependencies import PrincipalDep, ProjectDep, SessionDep
from server.errors import ERROR_RESPONSES, BadRequest
from server.ids import MAX_DB_ID, DbId
from server.models.item_predictions import predictions_for
from server.settings import MAX_SUGGEST_K
from server.suggest import repository, service
from server.suggest.schemas import LeaseRead, Strategy, SuggestedItem, SuggestRead

router = APIRouter(tags=["suggest"], responses=ERROR_RESPONSES)
Annotator = Annotated[
    str | None,
    Query(max_length=200, description="who will label; leases are held per token and annotator"),
]


@router.get("/projects/{project_id}/suggest", response_model=SuggestRead)
def suggest(
    project_id: DbId,
    project: ProjectDep,
    principal: PrincipalDep,
    session: SessionDep,
    request: Request,
    k: Annotated[int, Query(ge=1, le=MAX_SUGGEST_K, description="how many items")] = 10,
    annotator: Annotator = None,
    strategy: Strategy = "xmodel",
    predictions: Annotated[
        bool, Query(description="attach the active model's guess to each item")
    ] = False,
    exclude: Annotated[
        list[int],
        Query(
            max_length=1000,
            description="item ids not to hand out this time (queued or skipped by the caller)",
        ),
    ] = [],  # noqa: B006
    keep_leases: Annotated[
        bool, Query(description="add to the items already held instead of replacing them")
    ] = False,
) -> SuggestRead:
    """The unlabelled items the active model scores highest (head disagreement), spread
    across feature clusters (``xmodel``), by score only (``xmodel_nodiv``) or at random.
    ``mc_dropout`` (dropout variance) and ``entropy`` (classification) are the baselines
    active learning is measured against; the worker scores them when the project's
    ``training.score_strategies`` lists them. Without a scored model the answer says ``strategy: cold_start_random``. The items are
    leased to this annotator (others will not get them) until ``lease_expires_at``; calling
    again renews the batch, labelling an item releases it."""
    settings = request.app.state.settings
    if k > settings.max_suggest_k:
        raise BadRequest(f"k must be at most {settings.max_suggest_k}")
    result = service.suggest(
        session,
        project,
        principal,
        k=k,
        annotator=annotator,
        strategy=strategy,
        lease_seconds=settings.lease_seconds,
        exclude=frozenset(exclude),
        keep_leases=keep_leases,
    )
    state = request.app.state
    guesses = (
        predictions_for(
            session,
            project_id,
            [c.item_id for c in result.items],
            artefacts=state.artefacts,
            sessions=state.onnx_sessions,
            cache=state.item_predictions,
            store=state.image_store,
        )
        if predictions
        else {}
    )
    return SuggestRead(
        project_id=project_id,
        annotator=result.annotator,
        strategy=result.strategy,  # type: ignore[arg-type]
        requested_strategy=strategy,
        cold_start=result.cold_start,
        note=result.note,
        model_id=result.model_id,
        model_version=result.model_version,
        lease_expires_at=result.lease_expires_at,
        items=[
            SuggestedItem(
                item_id=c.item_id,
                score=c.score,
                cluster=c.cluster,
                image_url=f"/items/{c.item_id}/image",
                prediction=guesses.get(c.item_id),
            )
            for c in result.items
        ],
    )


@router.post("/projects/{project_id}/leases/renew", response_model=LeaseRead)
def renew_leases(
    project_id: DbId,
    project: ProjectDep,
    principal: PrincipalDep,
    session: SessionDep,
    request: Request,
    annotator: Annotator = None,
) -> LeaseRead:
    """Extend every live lease this token+annotator holds in the project."""
    ids, expires = service.renew_leases(
        session, project, principal, annotator, request.app.state.settings.lease_seconds
    )
    return LeaseRead(
        annotator=annotator or "", item_ids=ids, lease_expires_at=expires if ids else None
    )


@router.delete("/projects/{project_id}/leases", response_model=LeaseRead)
def release_leases(
    project_id: DbId,
    project: ProjectDep,
    principal: PrincipalDep,
    session: SessionDep,
    annotator: Annotator = None,
    item_id: Annotated[
        int | None, Query(ge=1, le=MAX_DB_ID, description="only this item (a skip)")
    ] = None,
) -> LeaseRead:
    """Give back every item this token+annotator holds (or just ``item_id``), for others to label."""
    repository.release(session, project_id, service.holder_key(principal, annotator), item_id)
    return LeaseRead(annotator=annotator or "", item_ids=[], lease_expires_at=None)
