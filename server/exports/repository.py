"""SQL for the export: the project's items with their latest label revision, streamed.

PostgreSQL reads the rows through one server-side cursor (one statement, so one consistent
snapshot, and memory bounded by ``yield_per``). SQLite transactions here start with
``BEGIN IMMEDIATE`` (they take the write lock), so SQLite walks keyset pages instead, each in
its own short transaction, and writers are never held up for the length of an export.

The label comes back as its stored JSON text and the time as the driver gives it: parsing
every label into Python objects and back, and the ORM's time-zone conversion, cost more than
the query itself at a million rows, and most formats only copy the text through.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple
from typing import cast as cast_type

from sqlalchemy import DateTime, Select, Text, cast, func, select, type_coerce
from sqlalchemy.orm import Session, sessionmaker

from server.db.models import Item, LabelRevision

PAGE_ROWS = 5000


class ExportRow(NamedTuple):
    """One item as the export writes it. ``label_json`` is the label's JSON text (None when
    unlabelled), ``labelled_at`` as the driver returns it (see :func:`iso`),
    ``label_revision`` the id of the latest revision of the item's label. The rows yielded
    are the driver's rows with these fields (by name and position), not copies."""

    item_id: int
    file_name: str
    sha256: str
    width: int
    height: int
    label_json: str | None
    labelled_at: datetime | str | None
    label_revision: int | None


def _query(project_id: int, include_unlabelled: bool) -> Select[Any]:
    latest_revision = (
        select(func.max(LabelRevision.id))
        .where(LabelRevision.item_id == Item.id)
        .correlate(Item)
        .scalar_subquery()
    )
    query = select(
        Item.id.label("item_id"),
        Item.original_name.label("file_name"),
        Item.sha256,
        Item.width,
        Item.height,
        cast(Item.label, Text).label("label_json"),
        # the driver's value: the ORM type's time-zone conversion costs more than the query
        type_coerce(Item.labelled_at, DateTime(timezone=True)).label("labelled_at"),
        latest_revision.label("label_revision"),
    ).where(Item.project_id == project_id)
    if not include_unlabelled:
        query = query.where(Item.labelled_at.is_not(None))
    return query


def iso(value: datetime | str | None) -> str | None:
    """ISO 8601 text of a ``labelled_at`` value (SQLite gives naive UTC text)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.replace(" ", "T") + "+00:00"
    if value.tzinfo is None:
        return value.isoformat() + "+00:00"
    return value.isoformat()


def iter_rows(
    factory: sessionmaker[Session], project_id: int, *, include_unlabelled: bool
) -> Iterator[ExportRow]:
    """Every (labelled) item of the project in id order, never more than a page in memory."""
    query = _query(project_id, include_unlabelled)
    with factory() as session:
        if session.get_bind().dialect.name == "postgresql":
            connection = session.connection().execution_options(yield_per=PAGE_ROWS)
            # Core rows, yielded as they are: no ORM loading, no per-row copy
            yield from cast_type("Iterator[ExportRow]", connection.execute(query.order_by(Item.id)))
            session.rollback()
            return
    after_id = 0
    while True:
        with factory() as session:
            rows = session.execute(
                query.where(Item.id > after_id).order_by(Item.id).limit(PAGE_ROWS)
            ).all()
            session.rollback()
        yield from cast_type("list[ExportRow]", rows)
        if len(rows) < PAGE_ROWS:
            return
        after_id = rows[-1][0]
