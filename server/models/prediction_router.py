"""``GET /items/{id}/prediction``: the active model's guess for a stored item."""

from __future__ import annotations

from fastapi import APIRouter, Request

from server.auth.dependencies import PrincipalDep, SessionDep
from server.errors import ERROR_RESPONSES
from server.ids import DbId
from server.items.router import load_item
from server.models import item_predictions
from server.models.schemas import ItemPredictionRead

router = APIRouter(tags=["models"], responses=ERROR_RESPONSES)


@router.get("/items/{item_id}/prediction", response_model=ItemPredictionRead)
def item_prediction(
    item_id: DbId, principal: PrincipalDep, session: SessionDep, request: Request
) -> ItemPredictionRead:
    """The project's active model run on the item's stored image (ONNX on the CPU, cached
    per model and image). 404 while the project has no trained model."""
    state = request.app.state
    loaded = load_item(session, principal, item_id)
    item = item_predictions.item_ref(loaded)
    model = item_predictions.require_active_model(session, loaded.project_id, state.artefacts)
    session.commit()  # end the read (SQLite's write lock) before the forward pass
    answer = item_predictions.predict_items(
        model,
        [item],
        sessions=state.onnx_sessions,
        cache=state.item_predictions,
        store=state.image_store,
    )
    return ItemPredictionRead(
        item_id=item_id, model_id=model.model_id, model_version=model.version, **answer[item_id]
    )
