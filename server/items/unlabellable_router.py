"""``PUT/DELETE /items/{id}/unlabellable``: flag an item "cannot be labelled", or clear it."""

from __future__ import annotations

from fastapi import APIRouter

from server.auth.dependencies import PrincipalDep, SessionDep
from server.errors import ERROR_RESPONSES
from server.ids import DbId
from server.items import unlabellable
from server.items.router import load_item
from server.items.schemas import ItemRead, UnlabellableCreate

router = APIRouter(tags=["items"], responses=ERROR_RESPONSES)


@router.put("/items/{item_id}/unlabellable", response_model=ItemRead)
def flag_unlabellable(
    item_id: DbId, body: UnlabellableCreate, principal: PrincipalDep, session: SessionDep
) -> ItemRead:
    """Flag the item "cannot be labelled": ``/suggest`` no longer hands it out and the owner
    finds it with ``GET /projects/{id}/items?status=unlabellable``."""
    item = load_item(session, principal, item_id)
    return ItemRead.model_validate(unlabellable.flag(session, item, body.reason))


@router.delete("/items/{item_id}/unlabellable", response_model=ItemRead)
def clear_unlabellable(item_id: DbId, principal: PrincipalDep, session: SessionDep) -> ItemRead:
    """Clear the flag: the item goes back to the pool ``/suggest`` draws from."""
    item = load_item(session, principal, item_id)
    return ItemRead.model_validate(unlabellable.clear(session, item))
