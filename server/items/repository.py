"""SQL for items, their label revisions and leases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from server.db.models import Item, ItemLease, LabelRevision


def get(session: Session, item_id: int) -> Item | None:
    return session.get(Item, item_id)


def get_by_sha(session: Session, project_id: int, sha256: str) -> Item | None:
    return session.scalar(select(Item).where(Item.project_id == project_id, Item.sha256 == sha256))


def add(session: Session, item: Item) -> Item:
    session.add(item)
    session.flush()
    return item


def sha_in_use(session: Session, sha256: str) -> bool:
    return bool(session.scalar(select(exists().where(Item.sha256 == sha256))))


def delete_item(session: Session, item: Item) -> None:
    session.delete(item)
    session.flush()


def list_page(
    session: Session, project_id: int, *, status: str, after_id: int, limit: int, now: datetime
) -> list[Item]:
    query = select(Item).where(Item.project_id == project_id, Item.id > after_id)
    if status == "labelled":
        query = query.where(Item.labelled_at.is_not(None))
    elif status == "unlabelled":
        query = query.where(Item.labelled_at.is_(None))
    elif status == "unlabellable":
        query = query.where(Item.unlabellable_at.is_not(None))
    elif status == "leased":
        live = select(ItemLease.item_id).where(
            ItemLease.item_id == Item.id, ItemLease.expires_at > now
        )
        query = query.where(live.exists())
    return list(session.scalars(query.order_by(Item.id).limit(limit)))


def add_revision(session: Session, revision: LabelRevision) -> None:
    session.add(revision)


def revisions(session: Session, item_id: int) -> list[LabelRevision]:
    return list(
        session.scalars(
            select(LabelRevision).where(LabelRevision.item_id == item_id).order_by(LabelRevision.id)
        )
    )


def release_lease(session: Session, item_id: int) -> None:
    session.execute(delete(ItemLease).where(ItemLease.item_id == item_id))
