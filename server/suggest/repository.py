"""SQL for scores, candidates and leases. Written for both SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import and_, delete, exists, or_, select, text, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from server.db.models import Item, ItemLease, ItemScore

_CLUSTERS_SQL = text("""
WITH RECURSIVE c(cluster) AS (
    SELECT MIN(cluster) FROM item_scores WHERE model_id = :model_id AND strategy = :strategy
    UNION ALL
    SELECT (SELECT MIN(s.cluster) FROM item_scores s
            WHERE s.model_id = :model_id AND s.strategy = :strategy AND s.cluster > c.cluster)
    FROM c WHERE c.cluster IS NOT NULL
)
SELECT cluster FROM c WHERE cluster IS NOT NULL
""")


def write_scores(
    session: Session, model_id: int, strategy: str, rows: Iterable[tuple[int, float, int]]
) -> int:
    """Insert ``(item_id, score, cluster)`` rows for one model and strategy (the worker's
    call; batch it, one transaction per batch). Returns the number of rows written."""
    payload = [
        {
            "model_id": model_id,
            "strategy": strategy,
            "item_id": item_id,
            "score": float(score),
            "cluster": int(cluster),
        }
        for item_id, score, cluster in rows
    ]
    if payload:
        session.execute(ItemScore.__table__.insert(), payload)
    return len(payload)


def delete_scores(session: Session, model_id: int) -> int:
    """Drop a model's scores (a re-run rewrites them all: exactly one row per item)."""
    result = session.execute(delete(ItemScore).where(ItemScore.model_id == model_id))
    return int(result.rowcount or 0)


def has_scores(session: Session, model_id: int, strategy: str) -> bool:
    query = select(exists().where(ItemScore.model_id == model_id, ItemScore.strategy == strategy))
    return bool(session.scalar(query))


def clusters(session: Session, model_id: int, strategy: str) -> list[int]:
    """Distinct clusters by a loose index scan (a few index probes, not a full scan)."""
    rows = session.execute(_CLUSTERS_SQL, {"model_id": model_id, "strategy": strategy})
    return [int(r[0]) for r in rows]


def _free_for(holder: str, now: datetime):  # type: ignore[no-untyped-def]
    taken = select(ItemLease.item_id).where(
        ItemLease.item_id == Item.id, ItemLease.expires_at > now, ItemLease.holder != holder
    )
    return ~taken.exists()


def top_scored(
    session: Session,
    model_id: int,
    strategy: str,
    *,
    holder: str,
    now: datetime,
    limit: int,
    cluster_ids: list[int] | None,
) -> list[tuple[int, float, int]]:
    """Highest-scored unlabelled items free for ``holder``: overall, or ``limit`` per cluster."""

    def one(cluster: int | None):  # type: ignore[no-untyped-def]
        query = (
            select(ItemScore.item_id, ItemScore.score, ItemScore.cluster)
            .join(Item, Item.id == ItemScore.item_id)
            .where(
                ItemScore.model_id == model_id,
                ItemScore.strategy == strategy,
                Item.labelled_at.is_(None),
                Item.unlabellable_at.is_(None),
                _free_for(holder, now),
            )
        )
        if cluster is not None:
            query = query.where(ItemScore.cluster == cluster)
        return query.order_by(ItemScore.score.desc(), ItemScore.item_id).limit(limit)

    if not cluster_ids:
        return [(int(a), float(b), int(c)) for a, b, c in session.execute(one(None))]
    parts = [select(one(c).subquery()) for c in cluster_ids]
    statement = parts[0] if len(parts) == 1 else union_all(*parts)
    return [(int(a), float(b), int(c)) for a, b, c in session.execute(statement)]


def random_unlabelled(
    session: Session, project_id: int, *, holder: str, now: datetime, start: float, limit: int
) -> list[int]:
    """A uniform sample: items in ``random_key`` order from a random start, wrapping round."""

    def part(condition):  # type: ignore[no-untyped-def]
        query = (
            select(Item.id)
            .where(
                Item.project_id == project_id,
                Item.labelled_at.is_(None),
                Item.unlabellable_at.is_(None),
                condition,
                _free_for(holder, now),
            )
            .order_by(Item.random_key)
            .limit(limit)
        )
        return [int(r) for r in session.scalars(query)]

    ids = part(Item.random_key >= start)
    if len(ids) < limit:
        ids += part(Item.random_key < start)[: limit - len(ids)]
    return ids


def claim(
    session: Session,
    project_id: int,
    item_ids: list[int],
    *,
    holder: str,
    token_id: int,
    now: datetime,
    expires_at: datetime,
) -> set[int]:
    """Lease the items that are free (no lease, an expired one, or one of ``holder``'s).

    One conditional upsert on the item_leases primary key; on PostgreSQL a concurrent claim
    of the same row waits for the other transaction and then re-checks the condition, so two
    annotators never both win an item. Ids are sorted so lock order is the same everywhere."""
    if not item_ids:
        return set()
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    table = ItemLease.__table__
    statement = insert(table).values(
        [
            {
                "item_id": i,
                "project_id": project_id,
                "holder": holder,
                "token_id": token_id,
                "expires_at": expires_at,
            }
            for i in sorted(item_ids)
        ]
    )
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.item_id],
        set_={
            "holder": statement.excluded.holder,
            "token_id": statement.excluded.token_id,
            "expires_at": statement.excluded.expires_at,
            "project_id": statement.excluded.project_id,
        },
        where=or_(table.c.expires_at <= now, table.c.holder == holder),
    ).returning(table.c.item_id)
    return {int(r) for r in session.scalars(statement)}


def release_others(session: Session, project_id: int, holder: str, keep: set[int]) -> None:
    query = delete(ItemLease).where(ItemLease.project_id == project_id, ItemLease.holder == holder)
    if keep:
        query = query.where(ItemLease.item_id.not_in(keep))
    session.execute(query)


def renew(
    session: Session, project_id: int, holder: str, now: datetime, expires_at: datetime
) -> list[int]:
    result = session.execute(
        update(ItemLease)
        .where(
            and_(
                ItemLease.project_id == project_id,
                ItemLease.holder == holder,
                ItemLease.expires_at > now,
            )
        )
        .values(expires_at=expires_at)
        .returning(ItemLease.item_id)
        .execution_options(synchronize_session=False)
    )
    return sorted(int(r) for r in result.scalars())


def release(session: Session, project_id: int, holder: str, item_id: int | None = None) -> int:
    query = delete(ItemLease).where(ItemLease.project_id == project_id, ItemLease.holder == holder)
    if item_id is not None:
        query = query.where(ItemLease.item_id == item_id)
    result = session.execute(query)
    return int(result.rowcount or 0)
