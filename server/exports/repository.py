"""SQL for the export: the project's items with their latest label revision, streamed.

PostgreSQL reads the rows through one server-side cursor (one statement, so one consistent
snapshot, and memory bounded by ``yield_per``). SQLite transactions here start with
``BEGIN IMMEDIATE`` (they take the write lock), so SQLite walks keyset pages instead, each in
its own short transaction, and writers are never held up for the length of an export.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, sessionmaker

from server.db.models import Item, LabelRevision

PAGE_ROWS = 2000


class ExportRow(NamedTuple):
    """One item as the export writes it; ``label_revision`` is the id of its latest revision."""

    item_id: int
    file_name: str
    sha256: str
    width: int
    height: int
    label: Any | None
    labelled_at: datetime | None
    label_revision: int | None


def _query(project_id: int, include_unlabelled: bool) -> Select[Any]:
    latest_revision = (
        select(func.max(LabelRevision.id))
        .where(LabelRevision.item_id == Item.id)
        .correlate(Item)
        .scalar_subquery()
    )
    query = select(
        Item.id,
        Item.original_name,
        Item.sha256,
        Item.width,
        Item.height,
        Item.label,
        Item.labelled_at,
        latest_revision,
    ).where(Item.project_id == project_id)
    if not include_unlabelled:
        query = query.where(Item.labelled_at.is_not(None))
    return query


def iter_rows(
    factory: sessionmaker[Session], project_id: int, *, include_unlabelled: bool
) -> Iterator[ExportRow]:
    """Every (labelled) item of the project in id order, never more than a page in memory."""
    query = _query(project_id, include_unlabelled)
    with factory() as session:
        if session.get_bind().dialect.name == "postgresql":
            result = session.execute(query.order_by(Item.id).execution_options(yield_per=PAGE_ROWS))
            for row in result:
                yield ExportRow(*row)
            session.rollback()
            return
    after_id = 0
    while True:
        with factory() as session:
            rows = session.execute(
                query.where(Item.id > after_id).order_by(Item.id).limit(PAGE_ROWS)
            ).all()
            session.rollback()
        for row in rows:
            yield ExportRow(*row)
        if len(rows) < PAGE_ROWS:
            return
        after_id = rows[-1][0]
