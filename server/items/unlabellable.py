"""Rules of the "cannot be labelled" flag: a flagged item leaves /suggest (its lease is
released at once) and stays visible to the owner with its reason; clearing the flag returns
it to the pool. The label, if any, is left as it is."""

from __future__ import annotations

from sqlalchemy.orm import Session

from server.db.base import utcnow
from server.db.models import Item
from server.items import repository


def flag(session: Session, item: Item, reason: str) -> Item:
    item.unlabellable_at = utcnow()
    item.unlabellable_reason = reason.strip() or None
    repository.release_lease(session, item.id)
    session.flush()
    return item


def clear(session: Session, item: Item) -> Item:
    item.unlabellable_at = None
    item.unlabellable_reason = None
    session.flush()
    return item
