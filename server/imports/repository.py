"""SQL for the import: find a project's items by sha256 or by file name, in chunks."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db.models import Item

CHUNK = 500


def _chunks(values: Iterable[str]) -> Iterable[list[str]]:
    values = sorted(set(values))
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def by_sha(session: Session, project_id: int, shas: Iterable[str]) -> dict[str, Item]:
    found: dict[str, Item] = {}
    for chunk in _chunks(shas):
        query = select(Item).where(Item.project_id == project_id, Item.sha256.in_(chunk))
        found.update((item.sha256, item) for item in session.scalars(query))
    return found


def by_name(session: Session, project_id: int, names: Iterable[str]) -> dict[str, list[Item]]:
    """Items whose stored file name is one of ``names`` (several images may share a name)."""
    found: dict[str, list[Item]] = {}
    for chunk in _chunks(names):
        query = select(Item).where(Item.project_id == project_id, Item.original_name.in_(chunk))
        for item in session.scalars(query.order_by(Item.id)):
            found.setdefault(item.original_name, []).append(item)
    return found
